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

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

import harness  # sits next to this script; puts the repository on sys.path
import cntk as C

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

class OurSide(harness.OneHotSequenceStep):
    def __init__(self, lr):
        super().__init__(C.layers.Sequential([C.layers.Embedding(EMB), C.layers.Recurrence(C.layers.LSTM(HIDDEN)),
                                              C.layers.Dense(SLOTS)]), VOCAB, SLOTS, BATCH, lr)

    def named(self):
        """The parameters as (E, [(W, H, b)], W_out, b_out)."""
        by_shape = {tuple(p.shape): p for p in self.params}
        return (by_shape[(VOCAB, EMB)],
                [(by_shape[(EMB, 4 * HIDDEN)], by_shape[(HIDDEN, 4 * HIDDEN)], by_shape[(4 * HIDDEN,)])],
                by_shape[(HIDDEN, SLOTS)], by_shape[(SLOTS,)])


# -- torch side -------------------------------------------------------------------------------

def torch_side(named_values, lr):
    """nn.Embedding, nn.LSTM over pack_padded_sequence(enforce_sorted=False), nn.Linear on the
    packed rows, cross entropy against the packed labels; the input tensors are built in the step."""
    model = harness.EmbeddingLSTMLinear(VOCAB, EMB, HIDDEN, 1, SLOTS).load_cntk(*named_values)

    def loss(words, labels):
        lengths = torch.tensor([len(w) for w in words])
        x = pad_sequence([torch.from_numpy(w) for w in words], batch_first=True)
        y = pad_sequence([torch.from_numpy(s) for s in labels], batch_first=True)
        target = pack_padded_sequence(y, lengths, batch_first=True, enforce_sorted=False).data
        return F.cross_entropy(model(x, lengths), target, reduction="sum")
    return harness.TorchStep(model.parameters(), loss, lr, model)


# -- checks and timing ---------------------------------------------------------------------------

def main():
    a = harness.setup(__doc__, steps=30, warmup=3, profile_help="also cProfile a few of our train steps")
    words, labels = make_data(np.random.default_rng(0))
    ours = OurSide(LR)
    theirs = torch_side(harness.values(ours.named()), LR)
    l1, l2 = harness.check_embedding_lstm(ours, theirs, words, labels)
    print("atis_tagger: vocab %d, embedding %d, LSTM %d, %d slots, %d sequences of lengths %d-%d (%d words); %s"
          % (VOCAB, EMB, HIDDEN, SLOTS, BATCH, MIN_LEN, MAX_LEN, sum(len(w) for w in words), harness.environment(a)))
    print("check: loss ours %.4f torch %.4f, gradients allclose: ok" % (l1, l2))
    return harness.time_train(a, ours, theirs, (words, labels), TARGET)


if __name__ == "__main__":
    main()
