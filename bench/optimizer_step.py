"""Benchmark: one optimizer step on the 13.7M-parameter FCN-S MLP, cntk learners vs torch.optim.

Parameters: the weights and biases of MLP 784-4096-2048-1024-10 (float32, 13.7M values), with
fixed random gradients (the gradient of a summed loss over a minibatch of 128 samples). One step
is one learner update of all 8 tensors.

    ours                                   torch
    C.momentum_sgd(lr per sample,          torch.optim.SGD(lr, momentum=0.9), foreach=True / fused=True
                   momentum 0.9, no unit gain)
    C.adam(lr per sample, momentum 0.9,    torch.optim.Adam(lr, betas=(0.9, 0.999), eps), foreach / fused
           variance_momentum 0.999)

With these settings both sides compute the same update (CNTK's Adam adds epsilon to sqrt(s) before
the bias correction, torch after it; the check allows for that). Before timing, a few steps of
each pair are run from identical states and compared. Then each pair is timed in alternation
(harness.alternate) and the ratio ours/torch is printed for each torch variant.

    python bench/optimizer_step.py [--steps N] [--warmup N] [--quick] [--threads N] [--pin-malloc]
"""

import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import cntk as C  # noqa: E402
import harness  # noqa: E402

SIZES = [784, 4096, 2048, 1024, 10]
BATCH = 128
LR_SGD, MOMENTUM = 1e-4, 0.9
LR_ADAM, BETA2, EPS = 1e-4, 0.999, 1e-8
TARGET = 1.10


def make_values(seed=0):
    rng = np.random.default_rng(seed)
    shapes = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        shapes += [(n_in, n_out), (n_out,)]
    params = [(rng.standard_normal(s) * 0.05).astype(np.float32) for s in shapes]
    grads = [rng.standard_normal(s) * 0.5 for s in shapes]
    # magnitudes >= 0.01, so that where epsilon enters (see above) is invisible in the check
    grads = [(np.sign(g) * np.maximum(np.abs(g), 0.01)).astype(np.float32) for g in grads]
    return params, grads


class Ours:
    """Our learner over C.parameters holding ``values``; the step updates them in place."""

    def __init__(self, kind, values, grads):
        self.params = [C.parameter(v.shape, init=v, dtype=np.float32, name="p%d" % i) for i, v in enumerate(values)]
        if kind == "momentum_sgd":
            self.learner = C.momentum_sgd(self.params, C.learning_parameter_schedule_per_sample(LR_SGD),
                                          C.momentum_schedule(MOMENTUM), unit_gain=False)
        else:
            self.learner = C.adam(self.params, C.learning_parameter_schedule_per_sample(LR_ADAM),
                                  C.momentum_schedule(MOMENTUM), variance_momentum=C.momentum_schedule(BETA2),
                                  epsilon=EPS)
        self.grads = {p: torch.from_numpy(g) for p, g in zip(self.params, grads)}

    def __call__(self):
        self.learner._update(self.grads, BATCH)

    def values(self):
        return [p.value for p in self.params]


class Theirs:
    """torch.optim over tensors holding ``values``, with .grad set once to the same gradients."""

    def __init__(self, kind, values, grads, variant):
        self.params = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values]
        for p, g in zip(self.params, grads):
            p.grad = torch.from_numpy(g)
        opt = {variant: True}
        if kind == "momentum_sgd":
            self.opt = torch.optim.SGD(self.params, lr=LR_SGD, momentum=MOMENTUM, **opt)
        else:
            self.opt = torch.optim.Adam(self.params, lr=LR_ADAM, betas=(MOMENTUM, BETA2), eps=EPS, **opt)

    def __call__(self):
        self.opt.step()

    def values(self):
        return [p.detach().numpy().copy() for p in self.params]


def check_same(kind, variant, steps=3):
    values, grads = make_values()
    ours, theirs = Ours(kind, values, grads), Theirs(kind, values, grads, variant)
    for _ in range(steps):
        ours()
        theirs()
    for i, (a, b) in enumerate(zip(ours.values(), theirs.values())):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg="%s/%s tensor %d" % (kind, variant, i))


def variants():
    """torch.optim implementations available here: foreach always, fused where the CPU build has it."""
    out = ["foreach"]
    try:
        p = torch.nn.Parameter(torch.zeros(2))
        p.grad = torch.zeros(2)
        torch.optim.Adam([p], fused=True).step()
        torch.optim.SGD([p], lr=0.1, momentum=0.9, fused=True).step()
        out.append("fused")
    except (RuntimeError, TypeError, ValueError):
        pass
    return out


def main():
    a = harness.setup(__doc__, steps=30, warmup=3)
    n = sum(int(np.prod(v.shape)) for v in make_values()[0])
    print("optimizer_step: MLP %s parameters (%d values, float32); %s"
          % ("-".join(map(str, SIZES)), n, harness.environment(a)))
    harness.print_steps(a)
    ratios = {}
    for kind in ("momentum_sgd", "adam"):
        for variant in variants():
            check_same(kind, variant)
            values, grads = make_values()
            ours, theirs = Ours(kind, values, grads), Theirs(kind, values, grads, variant)
            name = "%s vs torch %s" % (kind, variant)
            print("check: %s: 3 steps agree" % name)
            ratios[name] = harness.compare(name, ours, theirs, a, TARGET)
    print("summary: " + ", ".join("%s %.3f" % kv for kv in ratios.items()))
    return ratios


if __name__ == "__main__":
    main()
