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

import numpy as np
import torch
import torch.nn.functional as F

import harness  # sits next to this script; puts the repository on sys.path
import cntk as C

VOCAB, EMB, HIDDEN, LAYERS = 10000, 256, 256, 2
BATCH, T = 32, 32
LR = 0.01
TARGET = 1.10


def make_data(rng):
    words = [rng.integers(0, VOCAB, T) for _ in range(BATCH)]
    labels = [np.concatenate([w[1:], rng.integers(0, VOCAB, 1)]) for w in words]   # the next word
    return words, labels


# -- our side --------------------------------------------------------------------------------

class OurSide(harness.OneHotSequenceStep):
    def __init__(self, lr):
        super().__init__(C.layers.Sequential([C.layers.Embedding(EMB)] +
                                             [C.layers.Recurrence(C.layers.LSTM(HIDDEN)) for _ in range(LAYERS)] +
                                             [C.layers.Dense(VOCAB)]), VOCAB, VOCAB, BATCH, lr)

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

def torch_side(named_values, lr):
    """nn.Embedding, nn.LSTM(num_layers=LAYERS), nn.Linear, cross entropy; the input tensors
    are stacked in the step."""
    model = harness.EmbeddingLSTMLinear(VOCAB, EMB, HIDDEN, LAYERS, VOCAB).load_cntk(*named_values)

    def loss(words, labels):
        logits = model(torch.from_numpy(np.stack(words)))
        return F.cross_entropy(logits.reshape(-1, VOCAB), torch.from_numpy(np.stack(labels)).reshape(-1),
                               reduction="sum")
    return harness.TorchStep(model.parameters(), loss, lr, model)


# -- checks and timing ---------------------------------------------------------------------------

def main():
    a = harness.setup(__doc__, steps=20, warmup=3, profile_help="also cProfile a few of our train steps")
    words, labels = make_data(np.random.default_rng(0))
    ours = OurSide(LR)
    theirs = torch_side(harness.values(ours.named()), LR)
    l1, l2 = harness.check_embedding_lstm(ours, theirs, words, labels)
    print("lstm_lm: vocab %d, embedding %d, %d LSTM layers of %d, %d sequences x %d steps; %s"
          % (VOCAB, EMB, LAYERS, HIDDEN, BATCH, T, harness.environment(a)))
    print("check: loss ours %.4f torch %.4f, gradients allclose: ok" % (l1, l2))
    return harness.time_train(a, ours, theirs, (words, labels), TARGET)


if __name__ == "__main__":
    main()
