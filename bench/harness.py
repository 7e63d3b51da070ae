"""Timing harness and train-step sides shared by the bench/ scripts.

A script builds our side and the torch side, checks that they agree, and then uses:

    a = harness.setup(__doc__, steps=30, warmup=3, profile_help="...")  # args, threads, allocator, seeds
    harness.print_steps(a)
    ratio = harness.compare("train", our_step, torch_step, a, target=1.10,
                            parts=(lambda: ours.last, lambda: theirs.last))
    if a.profile:
        harness.profile(our_step)

`parts` callables return a (forward, backward, update) tuple of seconds for the step just run;
our_sgd_step and torch_sgd_finish do the timed train step of each side and return that tuple.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the repository's cntk
import cntk as C  # noqa: E402


def pin_malloc():
    """glibc only: serve all allocations from the heap and never give it back, so the big
    per-step buffers (gradients, stacked sequences) are reused instead of being freshly
    mmapped and page-faulted every step. Which side gets a fresh mapping otherwise depends on
    heap history, which makes run-to-run ratios drift by up to ~10%."""
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))
    except (OSError, AttributeError):
        return False


def parse_args(doc, steps, warmup, profile_help="also cProfile a few of our steps"):
    """The common command line. `steps`/`warmup` are the defaults without --quick. Returns the
    namespace with `steps` and `warmup` resolved (--quick: 5 and 1 unless given)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--steps", type=int, default=None,
                    help="timed steps per side (default %d, --quick 5)" % steps)
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed steps per side (default %d, --quick 1)" % warmup)
    ap.add_argument("--quick", action="store_true", help="few steps, for a smoke test")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads (default: torch's default; 1 gives steadier numbers on a busy machine)")
    ap.add_argument("--pin-malloc", action="store_true",
                    help="glibc: no mmap/trim for big buffers (steadier ratios; see pin_malloc)")
    ap.add_argument("--profile", action="store_true", help=profile_help)
    a = ap.parse_args()
    a.steps = a.steps if a.steps is not None else (5 if a.quick else steps)
    a.warmup = a.warmup if a.warmup is not None else (1 if a.quick else warmup)
    return a


def setup(doc, steps, warmup, profile_help="also cProfile a few of our steps"):
    """parse_args, then apply --threads and --pin-malloc and seed torch and numpy. The returned
    namespace also has `pinned` (whether the pinned allocator is in effect)."""
    a = parse_args(doc, steps, warmup, profile_help)
    if a.threads:
        torch.set_num_threads(a.threads)
    a.pinned = a.pin_malloc and pin_malloc()
    if a.pin_malloc and not a.pinned:
        print("--pin-malloc: mallopt unavailable (not glibc?); running with the default allocator")
    torch.manual_seed(0)
    np.random.seed(0)
    return a


def environment(a):
    """'torch <version>, <n> threads, <pinned|default> allocator' for a script's header line."""
    return "torch %s, %d threads, %s allocator" % (
        torch.__version__, torch.get_num_threads(), "pinned" if a.pinned else "default")


def print_steps(a):
    print("steps: %d timed (+%d warm-up) per side, alternating" % (a.steps, a.warmup))


def our_sgd_step(loss, feed, ones, params, tensors, lr):
    """One train step of our side: loss.forward (keeping the output for backward), backward
    with seed `ones`, then plain SGD on `tensors` (the parameters' torch tensors, in `params`
    order). Returns (outputs, gradients, (forward, backward, update) seconds)."""
    t0 = time.perf_counter()
    state, out = loss.forward(feed, [loss.output], keep_for_backward=[loss.output], as_numpy=False)
    t1 = time.perf_counter()
    grads = loss.backward(state, {loss.output: ones}, params, as_numpy=False)
    t2 = time.perf_counter()
    with torch.no_grad():
        torch._foreach_add_(tensors, [grads[p] for p in params], alpha=-lr)
    t3 = time.perf_counter()
    return out, grads, (t1 - t0, t2 - t1, t3 - t2)


def torch_sgd_finish(loss, params, lr, t0, t1):
    """The rest of a torch train step whose forward ran from t0 to t1 (perf_counter stamps):
    loss.backward(), then plain SGD on params. Returns (forward, backward, update) seconds,
    backward counted from t1."""
    loss.backward()
    t2 = time.perf_counter()
    with torch.no_grad():
        torch._foreach_add_(params, [p.grad for p in params], alpha=-lr)
    t3 = time.perf_counter()
    return (t1 - t0, t2 - t1, t3 - t2)


def alternate(fa, fb, warmup, steps, parts_a=None, parts_b=None):
    """Run fa and fb warmup+steps times each, the order flipping every iteration. Returns the
    timed seconds of each side and, where parts_a/parts_b are given, what they returned right
    after each timed call of their side."""
    ta, tb, pa, pb = [], [], [], []
    for i in range(warmup + steps):
        for side in ((0, 1) if i % 2 == 0 else (1, 0)):
            t0 = time.perf_counter()
            (fa if side == 0 else fb)()
            dt = time.perf_counter() - t0
            if i >= warmup:
                (ta if side == 0 else tb).append(dt)
                if side == 0 and parts_a is not None:
                    pa.append(parts_a())
                if side == 1 and parts_b is not None:
                    pb.append(parts_b())
    return ta, tb, pa, pb


def report(name, ta, tb, target=None):
    """Print medians, mins and the ratio ours/torch (median-, min- and paired-median-based);
    with a target, also PASS/FAIL for the median ratio. Returns the median ratio."""
    ma, mb = statistics.median(ta), statistics.median(tb)
    paired = statistics.median(a / b for a, b in zip(ta, tb))
    print("%s  ours %8.2f ms  torch %8.2f ms  (medians; mins %.2f / %.2f)"
          % (name, ma * 1e3, mb * 1e3, min(ta) * 1e3, min(tb) * 1e3))
    verdict = "" if target is None else "  (target <= %.2f: %s)" % (target, "PASS" if ma / mb <= target else "FAIL")
    print("%s  ratio ours/torch %.3f   [min-based %.3f, paired-median %.3f]%s"
          % (name, ma / mb, min(ta) / min(tb), paired, verdict))
    return ma / mb


def report_breakdown(name, pa, pb):
    """Print each side's median forward / backward / update time."""
    for side, ps in (("ours ", pa), ("torch", pb)):
        fwd, bwd, upd = (statistics.median(p[k] for p in ps) for k in range(3))
        print("%s  %s breakdown (medians): forward %.2f ms, backward %.2f ms, update %.2f ms"
              % (name, side, fwd * 1e3, bwd * 1e3, upd * 1e3))


def compare(name, fa, fb, a, target=None, parts=None):
    """alternate + report (+ report_breakdown when parts=(parts_a, parts_b) is given), with the
    step counts of the parsed args `a`. Returns the median ratio ours/torch."""
    parts_a, parts_b = parts if parts is not None else (None, None)
    ta, tb, pa, pb = alternate(fa, fb, a.warmup, a.steps, parts_a, parts_b)
    ratio = report(name, ta, tb, target)
    if parts is not None:
        report_breakdown(name, pa, pb)
    return ratio


def profile(fn, n=5, top=25):
    """cProfile n calls of fn and print the top functions by own time."""
    import cProfile
    import pstats
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(n):
        fn()
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(top)


class OurSGDStep:
    """Our side's timed train step: ``step(*args)`` feeds ``feed(*args)`` to ``loss`` and runs
    our_sgd_step; ``last`` holds its (forward, backward, update) times."""

    def __init__(self, loss, feed, batch, lr):
        self.loss = loss
        self.feed = feed
        self.params = loss.parameters
        self.tensors = [p._tensor() for p in self.params]
        self.lr = lr
        self.ones = np.ones((batch,) + tuple(loss.output.shape), dtype=np.float32)
        self.last = None

    def step(self, *args):
        out, grads, self.last = our_sgd_step(self.loss, self.feed(*args), self.ones, self.params,
                                             self.tensors, self.lr)
        return out, grads


class OneHotSequenceStep(OurSGDStep):
    """OurSGDStep for ``reduce_sum(cross_entropy_with_softmax(model(x), y))`` over sequences,
    x and y sparse one-hot fed from lists of index arrays (``step(words, labels)``)."""

    def __init__(self, model, n_in, n_out, batch, lr):
        self.x = C.sequence.input_variable(n_in, is_sparse=True, name="x")
        self.y = C.sequence.input_variable(n_out, is_sparse=True, name="y")
        loss = C.sequence.reduce_sum(C.cross_entropy_with_softmax(model(self.x), self.y))
        super().__init__(loss, lambda words, labels: {self.x: C.Value.one_hot(words, n_in),
                                                      self.y: C.Value.one_hot(labels, n_out)}, batch, lr)


class TorchStep:
    """The torch side's timed train step: ``step(*args)`` clears the gradients, evaluates
    ``loss_fn(*args)``, then backward and plain SGD; ``last`` holds the (forward, backward,
    update) times."""

    def __init__(self, params, loss_fn, lr, model=None):
        self.model = model
        self.params = list(params)
        self.loss_fn = loss_fn
        self.lr = lr
        self.last = None

    def step(self, *args):
        t0 = time.perf_counter()
        for p in self.params:
            p.grad = None
        loss = self.loss_fn(*args)
        t1 = time.perf_counter()
        self.last = torch_sgd_finish(loss, self.params, self.lr, t0, t1)
        return loss

    __call__ = step


class TorchClassifierStep(TorchStep):
    """The torch side of a classifier benchmark: forward, summed cross-entropy against class
    indices, backward and the SGD update (``step(X, labels)``)."""

    def __init__(self, model, lr):
        super().__init__(model.parameters(), lambda X, labels: F.cross_entropy(
            model(torch.from_numpy(X)), torch.from_numpy(labels), reduction="sum"), lr, model)


def lstm_gate_order(hidden):
    """Row indices taking CNTK's stacked LSTM gates [i, candidate, f, o] to torch's [i, f, candidate, o]."""
    return np.concatenate([np.arange(hidden) + k * hidden for k in (0, 2, 1, 3)])


class EmbeddingLSTMLinear(nn.Module):
    """nn.Embedding, a stacked nn.LSTM and nn.Linear, loadable from CNTK's
    ``Embedding, Recurrence(LSTM) x layers, Dense`` weights ``(E, [(W, H, b) per layer], W_out, b_out)``."""

    def __init__(self, vocab, emb, hidden, layers, classes):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Linear(hidden, classes)
        self.perm = lstm_gate_order(hidden)

    def forward(self, words, lengths=None):
        """Logits per step (batch, T, classes); with ``lengths``, over pack_padded_sequence and
        for the packed rows only."""
        if lengths is None:
            h, _ = self.lstm(self.emb(words))
            return self.out(h)
        packed = pack_padded_sequence(self.emb(words), lengths, batch_first=True, enforce_sorted=False)
        h, _ = self.lstm(packed)
        return self.out(h.data)

    def load_cntk(self, E, layers, Wo, bo):
        """Copy in CNTK's weights (numpy arrays); CNTK has one LSTM bias, torch's second is zeroed."""
        with torch.no_grad():
            self.emb.weight.copy_(torch.from_numpy(E))
            for k, (W, H, b) in enumerate(layers):
                getattr(self.lstm, "weight_ih_l%d" % k).copy_(torch.from_numpy(W.T[self.perm]))
                getattr(self.lstm, "weight_hh_l%d" % k).copy_(torch.from_numpy(H.T[self.perm]))
                getattr(self.lstm, "bias_ih_l%d" % k).copy_(torch.from_numpy(b[self.perm]))
                getattr(self.lstm, "bias_hh_l%d" % k).zero_()
            self.out.weight.copy_(torch.from_numpy(Wo.T))
            self.out.bias.copy_(torch.from_numpy(bo))
        return self

    def cntk_grads(self):
        """The gradients in load_cntk's layout."""
        inv = np.argsort(self.perm)
        lstm = self.lstm
        layers = [(getattr(lstm, "weight_ih_l%d" % k).grad.numpy()[inv].T,
                   getattr(lstm, "weight_hh_l%d" % k).grad.numpy()[inv].T,
                   getattr(lstm, "bias_ih_l%d" % k).grad.numpy()[inv]) for k in range(lstm.num_layers)]
        return self.emb.weight.grad.numpy(), layers, self.out.weight.grad.numpy().T, self.out.bias.grad.numpy()


def flat(named):
    """(E, [(W, H, b) per layer], W_out, b_out) as one flat list."""
    E, layers, Wo, bo = named
    return [E] + [p for layer in layers for p in layer] + [Wo, bo]


def values(named):
    """(E, [(W, H, b) per layer], W_out, b_out) of Parameters as the same nesting of numpy values."""
    E, layers, Wo, bo = named
    return E.value, [tuple(p.value for p in layer) for layer in layers], Wo.value, bo.value


def check_train_step(ours, theirs, args, our_params, torch_grads, reset_torch, rtol=1e-3, atol=1e-4):
    """One train step of each side on ``args`` from the same weights: assert the same loss and
    that our gradients of ``our_params`` match ``torch_grads()`` (numpy, same order); then put
    both sides back to the weights before (``reset_torch(values)`` gets our values before), so
    timing starts from the same weights. Returns the two losses."""
    before = [p.value for p in our_params]
    out, grads = ours.step(*args)
    our_loss = float(np.sum(out[ours.loss.output].asarray()))
    torch_loss = float(theirs.step(*args).detach())
    assert np.allclose(our_loss, torch_loss, rtol=1e-4), (our_loss, torch_loss)
    for p, g in zip(our_params, torch_grads()):
        np.testing.assert_allclose(grads[p].numpy(), g, rtol=rtol, atol=atol, err_msg=p.name)
    for p, v in zip(our_params, before):
        p._tensor().data.copy_(torch.from_numpy(v))
    reset_torch(before)
    return our_loss, torch_loss


def check_embedding_lstm(ours, theirs, words, labels):
    """check_train_step for a OneHotSequenceStep with ``named()`` against a TorchStep whose model
    is an EmbeddingLSTMLinear."""
    named = ours.named()
    return check_train_step(ours, theirs, (words, labels), flat(named), lambda: flat(theirs.model.cntk_grads()),
                            lambda _: theirs.model.load_cntk(*values(named)))


def time_train(a, ours, theirs, args, target, profile_ours=True):
    """print_steps, then compare the two sides' train steps on ``args`` (with the breakdown), then
    with --profile (unless profile_ours is False) cProfile ours. Returns the median ratio."""
    print_steps(a)
    ratio = compare("train", lambda: ours.step(*args), lambda: theirs.step(*args), a, target,
                    parts=(lambda: ours.last, lambda: theirs.last))
    if a.profile and profile_ours:
        profile(lambda: ours.step(*args))
    return ratio
