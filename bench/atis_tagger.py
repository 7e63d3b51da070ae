"""Benchmark: the ATIS slot tagger (CNTK's Language Understanding tutorial), one training step,
cntk vs. idiomatic PyTorch.

Vocabulary 943 (sparse one-hot input), Embedding(150), Recurrence(LSTM(300)), Dense(129),
cross_entropy_with_softmax against sparse one-hot labels; 64 sequences of lengths 5-40.
Ours: ``C.layers.Sequential([Embedding(150), Recurrence(LSTM(300)), Dense(129)])`` fed with
``C.Value.one_hot``, loss = ``C.sequence.reduce_sum(C.cross_entropy_with_softmax(z, y))``,
forward + backward + plain SGD. Torch: ``nn.Embedding``, ``nn.LSTM`` over
``pack_padded_sequence(enforce_sorted=False)``, ``nn.Linear`` on the packed rows and
``F.cross_entropy(reduction='sum')`` against the packed labels, from the same initial weights.
Both sides turn the same lists of word and label indices into their input tensors inside the
timed step.

    python bench/atis_tagger.py [--steps N] [--warmup N] [--quick] [--threads N] [--pin-malloc] [--profile]
"""

import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
if HERE not in sys.path:  # harness.py sits next to this script
    sys.path.insert(0, HERE)
import cntk as C  # noqa: E402
import harness  # noqa: E402

VOCAB, EMB, HIDDEN, SLOTS = 943, 150, 300, 129
BATCH, MIN_LEN, MAX_LEN = 64, 5, 40
LR = 0.01
TARGET = 1.10


def make_data(rng):
    lengths = rng.integers(MIN_LEN, MAX_LEN + 1, BATCH)
    words = [rng.integers(0, VOCAB, n) for n in lengths]
    labels = [rng.integers(0, SLOTS, n) for n in lengths]
    return words, labels


# -- our side --------------------------------------------------------------------------------

class OurSide:
    def __init__(self, lr):
        self.x = C.sequence.input_variable(VOCAB, is_sparse=True, name="x")
        self.y = C.sequence.input_variable(SLOTS, is_sparse=True, name="y")
        model = C.layers.Sequential([C.layers.Embedding(EMB), C.layers.Recurrence(C.layers.LSTM(HIDDEN)),
                                     C.layers.Dense(SLOTS)])
        self.loss = C.sequence.reduce_sum(C.cross_entropy_with_softmax(model(self.x), self.y))
        self.params = self.loss.parameters
        self.tensors = [p._tensor() for p in self.params]
        self.lr = lr
        self.ones = np.ones((BATCH,) + tuple(self.loss.output.shape), dtype=np.float32)
        self.last = None

    def feed(self, words, labels):
        return {self.x: C.Value.one_hot(words, VOCAB), self.y: C.Value.one_hot(labels, SLOTS)}

    def step(self, words, labels):
        out, grads, self.last = harness.our_sgd_step(self.loss, self.feed(words, labels), self.ones, self.params,
                                                     self.tensors, self.lr)
        return out, grads

    def named(self):
        """The parameters as (E, W, H, b, W_out, b_out)."""
        by_shape = {tuple(p.shape): p for p in self.params}
        return (by_shape[(VOCAB, EMB)], by_shape[(EMB, 4 * HIDDEN)], by_shape[(HIDDEN, 4 * HIDDEN)],
                by_shape[(4 * HIDDEN,)], by_shape[(HIDDEN, SLOTS)], by_shape[(SLOTS,)])


# -- torch side -------------------------------------------------------------------------------

# CNTK stacks the LSTM gates [i, candidate, f, o]; torch [i, f, candidate, o]
_PERM = np.concatenate([np.arange(HIDDEN) + k * HIDDEN for k in (0, 2, 1, 3)])


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, EMB)
        self.lstm = nn.LSTM(EMB, HIDDEN, batch_first=True)
        self.out = nn.Linear(HIDDEN, SLOTS)

    def forward(self, words, lengths):
        packed = pack_padded_sequence(self.emb(words), lengths, batch_first=True, enforce_sorted=False)
        h, _ = self.lstm(packed)
        return self.out(h.data), packed.sorted_indices


class TorchSide:
    def __init__(self, E, W, H, b, Wo, bo, lr):
        self.model = Tagger()
        with torch.no_grad():
            m = self.model
            m.emb.weight.copy_(torch.from_numpy(E))
            m.lstm.weight_ih_l0.copy_(torch.from_numpy(W.T[_PERM]))
            m.lstm.weight_hh_l0.copy_(torch.from_numpy(H.T[_PERM]))
            m.lstm.bias_ih_l0.copy_(torch.from_numpy(b[_PERM]))
            m.lstm.bias_hh_l0.zero_()
            m.out.weight.copy_(torch.from_numpy(Wo.T))
            m.out.bias.copy_(torch.from_numpy(bo))
        self.params = list(self.model.parameters())
        self.lr = lr
        self.last = None

    def step(self, words, labels):
        t0 = time.perf_counter()
        for p in self.params:
            p.grad = None
        lengths = torch.tensor([len(w) for w in words])
        x = pad_sequence([torch.from_numpy(w) for w in words], batch_first=True)
        y = pad_sequence([torch.from_numpy(s) for s in labels], batch_first=True)
        logits, _ = self.model(x, lengths)
        target = pack_padded_sequence(y, lengths, batch_first=True, enforce_sorted=False).data
        loss = F.cross_entropy(logits, target, reduction="sum")
        t1 = time.perf_counter()
        self.last = harness.torch_sgd_finish(loss, self.params, self.lr, t0, t1)
        return loss

    def grads(self):
        m = self.model
        inv = np.argsort(_PERM)
        return (m.emb.weight.grad.numpy(), m.lstm.weight_ih_l0.grad.numpy()[inv].T,
                m.lstm.weight_hh_l0.grad.numpy()[inv].T, m.lstm.bias_ih_l0.grad.numpy()[inv],
                m.out.weight.grad.numpy().T, m.out.bias.grad.numpy())


# -- checks and timing ---------------------------------------------------------------------------

def check_same(ours, theirs, words, labels):
    named = ours.named()
    before = [p.value for p in named]
    out, grads = ours.step(words, labels)
    our_loss = float(out[ours.loss.output].asarray().sum()) if hasattr(out[ours.loss.output], "asarray") \
        else float(np.sum(out[ours.loss.output]))
    torch_loss = float(theirs.step(words, labels).detach())
    assert np.allclose(our_loss, torch_loss, rtol=1e-4), (our_loss, torch_loss)
    for p, g in zip(named, theirs.grads()):
        np.testing.assert_allclose(grads[p].numpy(), g, rtol=1e-3, atol=1e-4, err_msg=p.name)
    for p, v in zip(named, before):  # both sides start timing from the same weights
        p._tensor().data.copy_(torch.from_numpy(v))
    with torch.no_grad():
        for p, v in zip(theirs.params, TorchSide(*before, LR).params):
            p.copy_(v)
    return our_loss, torch_loss


def main():
    a = harness.setup(__doc__, steps=30, warmup=3, profile_help="also cProfile a few of our train steps")
    words, labels = make_data(np.random.default_rng(0))
    ours = OurSide(LR)
    theirs = TorchSide(*[p.value for p in ours.named()], LR)
    l1, l2 = check_same(ours, theirs, words, labels)
    print("atis_tagger: vocab %d, embedding %d, LSTM %d, %d slots, %d sequences of lengths %d-%d (%d words); %s"
          % (VOCAB, EMB, HIDDEN, SLOTS, BATCH, MIN_LEN, MAX_LEN, sum(len(w) for w in words), harness.environment(a)))
    print("check: loss ours %.4f torch %.4f, gradients allclose: ok" % (l1, l2))
    harness.print_steps(a)
    ratio = harness.compare("train", lambda: ours.step(words, labels), lambda: theirs.step(words, labels), a,
                            TARGET, parts=(lambda: ours.last, lambda: theirs.last))
    if a.profile:
        harness.profile(lambda: ours.step(words, labels))
    return ratio


if __name__ == "__main__":
    main()
