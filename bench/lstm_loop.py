"""Benchmark: an LSTM built from primitive ops and sequence.past_value, cntk vs. a hand-written
PyTorch loop.

hidden 256, input 256, T=32, batch 32 (every sequence has length 32). The cell is built the
way CNTK's layers library builds it (placeholders for h and c, past_value delays, one packed
projection sliced into the gates [i, candidate, f, o]) and bound with replace_placeholders;
our engine runs the recurrent loop step by step. The torch side is the same cell as a Python
loop over t with torch ops, with x @ W + b precomputed once for all steps (as our engine
does for everything outside the loop).

loss = sum over the sequence of reduce_sum(h); train step = forward + backward + plain SGD.
Also timed: forward only (eval, no autograd).

    python bench/lstm_loop.py [--steps N] [--warmup N] [--quick] [--threads N] [--pin-malloc] [--profile]
"""

import numpy as np
import torch

import harness  # sits next to this script; puts the repository on sys.path
import cntk as C

N_IN, N_H, T, BATCH = 256, 256, 32, 32
LR = 1e-4
TARGET = 1.5


# -- our side --------------------------------------------------------------------------------

def build_ours():
    x = C.sequence.input_variable(N_IN, name="x")
    W = C.parameter((N_IN, 4 * N_H), init=C.glorot_uniform(), name="W")
    H = C.parameter((N_H, 4 * N_H), init=C.glorot_uniform(), name="H")
    b = C.parameter((4 * N_H,), init=C.uniform(0.1), name="b")
    h_ph = C.placeholder(N_H, name="h_ph")
    c_ph = C.placeholder(N_H, name="c_ph")
    dh = C.sequence.past_value(h_ph)
    dc = C.sequence.past_value(c_ph)
    p = b + x @ W + dh @ H

    def gate(k):
        return C.slice(p, 0, k * N_H, (k + 1) * N_H)
    i = C.sigmoid(gate(0))
    g = C.tanh(gate(1))
    f = C.sigmoid(gate(2))
    o = C.sigmoid(gate(3))
    c = f * dc + i * g
    h = o * C.tanh(c)
    model = C.combine([h, c])
    model.replace_placeholders({h_ph: model.outputs[0], c_ph: model.outputs[1]})
    loss = C.sequence.reduce_sum(C.reduce_sum(model.outputs[0]))
    return x, loss, (W, H, b)


class OurSide(harness.OurSGDStep):
    def __init__(self, x, loss, lr):
        super().__init__(loss, lambda X: {x: X}, BATCH, lr)   # loss shape is ()
        self.x = x

    def eval(self, X):
        return self.loss.eval({self.x: X}, as_numpy=False)


# -- torch side -------------------------------------------------------------------------------

class TorchSide(harness.TorchStep):
    def __init__(self, W, H, b, lr):
        self.W = torch.tensor(W, requires_grad=True)
        self.H = torch.tensor(H, requires_grad=True)
        self.b = torch.tensor(b, requires_grad=True)
        super().__init__([self.W, self.H, self.b], self.loss, lr)

    def loss(self, X):
        x = torch.from_numpy(X)                      # (B, T, N_IN)
        xw = torch.matmul(x, self.W) + self.b        # all time steps at once
        B = x.shape[0]
        h = x.new_zeros(B, N_H)
        c = x.new_zeros(B, N_H)
        hs = []
        # unbind, not xw[:, t]: the backward of T selects would build T full-size zero tensors
        for xw_t in xw.unbind(1):
            i, g, f, o = (xw_t + h @ self.H).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            hs.append(h)
        return torch.stack(hs, 1).sum()

    def eval(self, X):
        with torch.no_grad():
            return self.loss(X)


# -- checks and timing ---------------------------------------------------------------------------

def check_same(ours, theirs, X, weights):
    our_eval = float(ours.eval(X).asarray().sum())
    torch_eval = float(theirs.eval(X))
    assert np.allclose(our_eval, torch_eval, rtol=1e-4), (our_eval, torch_eval)

    def reset_torch(before):
        with torch.no_grad():
            for v, t in zip(before, theirs.params):
                t.copy_(torch.from_numpy(v))
    return harness.check_train_step(ours, theirs, (X,), list(weights),
                                    lambda: [t.grad.numpy() for t in theirs.params], reset_torch, atol=1e-3)


def main():
    a = harness.setup(__doc__, steps=100, warmup=5, profile_help="also cProfile a few of our train steps")
    X = np.random.default_rng(0).standard_normal((BATCH, T, N_IN)).astype(np.float32)
    x, loss, weights = build_ours()
    ours = OurSide(x, loss, LR)
    theirs = TorchSide(*[w.value for w in weights], LR)
    l1, l2 = check_same(ours, theirs, X, weights)
    print("lstm_loop: LSTM in %d, hidden %d, T=%d, batch %d; %s" % (N_IN, N_H, T, BATCH, harness.environment(a)))
    print("check: loss ours %.4f torch %.4f, eval and gradients allclose: ok" % (l1, l2))
    r_train = harness.time_train(a, ours, theirs, (X,), TARGET, profile_ours=False)
    r_eval = harness.compare("eval ", lambda: ours.eval(X), lambda: theirs.eval(X), a)
    if a.profile:
        harness.profile(lambda: ours.step(X))
    return r_train, r_eval


if __name__ == "__main__":
    main()
