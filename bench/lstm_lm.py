"""Benchmark: a 2-layer LSTM language model, one training step, cntk vs. idiomatic PyTorch.

Vocabulary 10,000 (sparse one-hot input and labels), embedding 256, two LSTM layers of 256,
a 10,000-way softmax with cross entropy; 32 sequences of 32 steps each.
Ours: ``C.layers.Sequential([Embedding(256), Recurrence(LSTM(256)), Recurrence(LSTM(256)),
Dense(10000)])`` fed with ``C.Value.one_hot``, loss =
``C.sequence.reduce_sum(C.cross_entropy_with_softmax(z, y))``, forward + backward + plain SGD.
Torch: ``nn.Embedding``, ``nn.LSTM(256, 256, num_layers=2, batch_first=True)``, ``nn.Linear``
and ``F.cross_entropy(reduction='sum')``, from the same initial weights. Both sides turn the
same lists of word and label indices into their input tensors inside the timed step.

    python bench/lstm_lm.py [--steps N] [--warmup N] [--quick] [--threads N] [--pin-malloc] [--profile]
"""

import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
if HERE not in sys.path:  # harness.py sits next to this script
    sys.path.insert(0, HERE)
import cntk as C  # noqa: E402
import harness  # noqa: E402

VOCAB, EMB, HIDDEN, LAYERS = 10000, 256, 256, 2
BATCH, T = 32, 32
LR = 0.01
TARGET = 1.10


def make_data(rng):
    words = [rng.integers(0, VOCAB, T) for _ in range(BATCH)]
    labels = [np.concatenate([w[1:], rng.integers(0, VOCAB, 1)]) for w in words]   # the next word
    return words, labels


# -- our side --------------------------------------------------------------------------------

class OurSide:
    def __init__(self, lr):
        self.x = C.sequence.input_variable(VOCAB, is_sparse=True, name="x")
        self.y = C.sequence.input_variable(VOCAB, is_sparse=True, name="y")
        model = C.layers.Sequential([C.layers.Embedding(EMB)] +
                                    [C.layers.Recurrence(C.layers.LSTM(HIDDEN)) for _ in range(LAYERS)] +
                                    [C.layers.Dense(VOCAB)])
        self.loss = C.sequence.reduce_sum(C.cross_entropy_with_softmax(model(self.x), self.y))
        self.params = self.loss.parameters
        self.tensors = [p._tensor() for p in self.params]
        self.lr = lr
        self.ones = np.ones((BATCH,) + tuple(self.loss.output.shape), dtype=np.float32)
        self.last = None

    def feed(self, words, labels):
        return {self.x: C.Value.one_hot(words, VOCAB), self.y: C.Value.one_hot(labels, VOCAB)}

    def step(self, words, labels):
        out, grads, self.last = harness.our_sgd_step(self.loss, self.feed(words, labels), self.ones, self.params,
                                                     self.tensors, self.lr)
        return out, grads

    def named(self):
        """The parameters as (E, [(W, H, b) per layer], W_out, b_out), in the order data flows."""
        ps = {id(p): p for p in self.params}
        E = next(p for p in ps.values() if p.name == "E")
        W_out = next(p for p in ps.values() if p.name == "W" and p.shape == (HIDDEN, VOCAB))
        b_out = next(p for p in ps.values() if p.name == "b" and p.shape == (VOCAB,))
        layers = []
        for r in self._recurrences():
            rp = {p.name: p for p in r.parameters}
            layers.append((rp["W"], rp["H"], rp["b"]))
        return E, layers, W_out, b_out

    def _recurrences(self):
        from cntk.engine.graph import walk
        from cntk.ops.functions import Function
        blocks = [p for p in walk([self.loss.output], into_blocks=-1)
                  if p.block is not None and p.block.op_name == "Recurrence"]
        return [Function(p.outputs) for p in blocks]   # walk lists inputs first: layer 1, then 2


# -- torch side -------------------------------------------------------------------------------

# CNTK stacks the LSTM gates [i, candidate, f, o]; torch [i, f, candidate, o]
_PERM = np.concatenate([np.arange(HIDDEN) + k * HIDDEN for k in (0, 2, 1, 3)])


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, EMB)
        self.lstm = nn.LSTM(EMB, HIDDEN, num_layers=LAYERS, batch_first=True)
        self.out = nn.Linear(HIDDEN, VOCAB)

    def forward(self, words):
        h, _ = self.lstm(self.emb(words))
        return self.out(h)


class TorchSide:
    def __init__(self, E, layers, Wo, bo, lr):
        self.model = LM()
        with torch.no_grad():
            m = self.model
            m.emb.weight.copy_(torch.from_numpy(E))
            for k, (W, H, b) in enumerate(layers):
                getattr(m.lstm, "weight_ih_l%d" % k).copy_(torch.from_numpy(W.T[_PERM]))
                getattr(m.lstm, "weight_hh_l%d" % k).copy_(torch.from_numpy(H.T[_PERM]))
                getattr(m.lstm, "bias_ih_l%d" % k).copy_(torch.from_numpy(b[_PERM]))
                getattr(m.lstm, "bias_hh_l%d" % k).zero_()
            m.out.weight.copy_(torch.from_numpy(Wo.T))
            m.out.bias.copy_(torch.from_numpy(bo))
        self.params = list(self.model.parameters())
        self.lr = lr
        self.last = None

    def step(self, words, labels):
        t0 = time.perf_counter()
        for p in self.params:
            p.grad = None
        x = torch.from_numpy(np.stack(words))
        y = torch.from_numpy(np.stack(labels))
        logits = self.model(x)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1), reduction="sum")
        t1 = time.perf_counter()
        self.last = harness.torch_sgd_finish(loss, self.params, self.lr, t0, t1)
        return loss

    def grads(self):
        m = self.model
        inv = np.argsort(_PERM)
        layers = [(getattr(m.lstm, "weight_ih_l%d" % k).grad.numpy()[inv].T,
                   getattr(m.lstm, "weight_hh_l%d" % k).grad.numpy()[inv].T,
                   getattr(m.lstm, "bias_ih_l%d" % k).grad.numpy()[inv]) for k in range(LAYERS)]
        return m.emb.weight.grad.numpy(), layers, m.out.weight.grad.numpy().T, m.out.bias.grad.numpy()


# -- checks and timing ---------------------------------------------------------------------------

def _flat(named):
    E, layers, Wo, bo = named
    return [E] + [p for layer in layers for p in layer] + [Wo, bo]


def _values(named):
    E, layers, Wo, bo = named
    return E.value, [tuple(p.value for p in layer) for layer in layers], Wo.value, bo.value


def check_same(ours, theirs, words, labels):
    named = ours.named()
    before = _values(named)
    out, grads = ours.step(words, labels)
    our_loss = float(np.sum(out[ours.loss.output].asarray()))
    torch_loss = float(theirs.step(words, labels).detach())
    assert np.allclose(our_loss, torch_loss, rtol=1e-4), (our_loss, torch_loss)
    for p, g in zip(_flat(named), _flat(theirs.grads())):
        np.testing.assert_allclose(grads[p].numpy(), g, rtol=1e-3, atol=1e-4, err_msg=p.name)
    for p, v in zip(_flat(named), _flat(before)):  # both sides start timing from the same weights
        p._tensor().data.copy_(torch.from_numpy(v))
    with torch.no_grad():
        for p, v in zip(theirs.params, TorchSide(*before, LR).params):
            p.copy_(v)
    return our_loss, torch_loss


def main():
    a = harness.setup(__doc__, steps=20, warmup=3, profile_help="also cProfile a few of our train steps")
    words, labels = make_data(np.random.default_rng(0))
    ours = OurSide(LR)
    theirs = TorchSide(*_values(ours.named()), LR)
    l1, l2 = check_same(ours, theirs, words, labels)
    print("lstm_lm: vocab %d, embedding %d, %d LSTM layers of %d, %d sequences x %d steps; %s"
          % (VOCAB, EMB, LAYERS, HIDDEN, BATCH, T, harness.environment(a)))
    print("check: loss ours %.4f torch %.4f, gradients allclose: ok" % (l1, l2))
    harness.print_steps(a)
    ratio = harness.compare("train", lambda: ours.step(words, labels), lambda: theirs.step(words, labels), a,
                            TARGET, parts=(lambda: ours.last, lambda: theirs.last))
    if a.profile:
        harness.profile(lambda: ours.step(words, labels))
    return ratio


if __name__ == "__main__":
    main()
