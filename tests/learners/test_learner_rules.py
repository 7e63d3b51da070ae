"""Every learner against the numpy reference of its update rule (learner_reference.py): several
parameters, minibatches of different sizes, reference sizes (IGNORE, 1, N), mean-gradient mode,
clipping, L1/L2, unit gain on and off, schedules that change over samples and sweeps."""

import numpy as np
import pytest
import torch

import cntk as C
from learner_reference import Reference, Schedule

SHAPES = [(4, 3), (5,), (2, 2, 2)]
SIZES = [3, 1, 7, 2, 5, 4, 6]
SWEEP_ENDS = [False, True, False, False, True, False, False]

lps, lpss = C.learning_parameter_schedule, C.learning_parameter_schedule_per_sample
ms, mss = C.momentum_schedule, C.momentum_schedule_per_sample
S = Schedule

# (id, learner factory f(params), reference factory r(params))
CASES = [
    ("sgd_ignore", lambda p: C.sgd(p, lps(0.1)), lambda p: Reference("sgd", p, S([(1, 0.1)]))),
    ("sgd_per_sample_l1_l2", lambda p: C.sgd(p, lpss(0.02), l1_regularization_weight=0.01,
                                             l2_regularization_weight=0.02),
     lambda p: Reference("sgd", p, S([(1, 0.02)], ref=1), l1=0.01, l2=0.02)),
    ("sgd_ref4_list_samples", lambda p: C.sgd(p, lps([0.1, 0.05, 0.01], minibatch_size=4, epoch_size=5)),
     lambda p: Reference("sgd", p, S([(1, 0.1), (1, 0.05), (1, 0.01)], epoch=5, ref=4))),
    ("sgd_pairs_sweeps", lambda p: C.sgd(p, lps([(2, 0.1), (1, 0.02)])),
     lambda p: Reference("sgd", p, S([(2, 0.1), (1, 0.02)]))),
    ("sgd_clip_norm_mean_mode", lambda p: C.sgd(p, lps(0.1), gradient_clipping_threshold_per_sample=0.3,
                                                gradient_clipping_with_truncation=False,
                                                minibatch_size=C.learners.IGNORE),
     lambda p: Reference("sgd", p, S([(1, 0.1)]), learner_mb=0, clip=0.3, truncate=False)),
    ("momentum_ug_per_sample_clip", lambda p: C.momentum_sgd(p, lpss(0.01), mss(0.95),
                                                             gradient_clipping_threshold_per_sample=0.2),
     lambda p: Reference("momentum_sgd", p, S([(1, 0.01)], ref=1), S([(1, 0.95)], ref=1), clip=0.2)),
    ("momentum_no_ug_lr_changes", lambda p: C.momentum_sgd(p, lps([0.1, 0.01], epoch_size=6), ms(0.8),
                                                           unit_gain=False),
     lambda p: Reference("momentum_sgd", p, S([(1, 0.1), (1, 0.01)], epoch=6), S([(1, 0.8)]), unit_gain=False)),
    ("momentum_learner_mb5", lambda p: C.momentum_sgd(p, 0.1, [0.9, 0.5], minibatch_size=5, epoch_size=8,
                                                      l2_regularization_weight=0.01),
     lambda p: Reference("momentum_sgd", p, S([(1, 0.1)], ref=5), S([(1, 0.9), (1, 0.5)], epoch=8, ref=5),
                         l2=0.01)),
    ("nesterov_ref3", lambda p: C.nesterov(p, lps(0.05, minibatch_size=3), ms(0.9, minibatch_size=3),
                                           l1_regularization_weight=0.005),
     lambda p: Reference("nesterov", p, S([(1, 0.05)], ref=3), S([(1, 0.9)], ref=3), l1=0.005)),
    ("adagrad_ave", lambda p: C.adagrad(p, lps(0.1)), lambda p: Reference("adagrad", p, S([(1, 0.1)]))),
    ("adagrad_no_ave_mean_mode_clip", lambda p: C.adagrad(p, lpss(0.02), need_ave_multiplier=False,
                                                          minibatch_size=C.learners.IGNORE,
                                                          gradient_clipping_threshold_per_sample=0.4),
     lambda p: Reference("adagrad", p, S([(1, 0.02)], ref=1), learner_mb=0, clip=0.4, need_ave_multiplier=False)),
    ("rmsprop_ave_l2", lambda p: C.rmsprop(p, lps(0.01), 0.9, 1.2, 0.7, 10.0, 0.1,
                                           l2_regularization_weight=0.01),
     lambda p: Reference("rmsprop", p, S([(1, 0.01)]), l2=0.01, gamma=0.9, inc=1.2, dec=0.7, max=10.0, min=0.1)),
    ("rmsprop_no_ave_ref4", lambda p: C.rmsprop(p, lps(0.02, minibatch_size=4), 0.8, 1.5, 0.5, 2.0, 0.01,
                                                need_ave_multiplier=False),
     lambda p: Reference("rmsprop", p, S([(1, 0.02)], ref=4), gamma=0.8, inc=1.5, dec=0.5, max=2.0, min=0.01,
                         need_ave_multiplier=False)),
    ("adadelta_default_lr", lambda p: C.adadelta(p, rho=0.9, epsilon=1e-6, l1_regularization_weight=0.001),
     lambda p: Reference("adadelta", p, S([(1, 1.0)], ref=1), l1=0.001, rho=0.9, epsilon=1e-6)),
    ("adadelta_mean_mode", lambda p: C.adadelta(p, lps(0.5), rho=0.95, epsilon=1e-6, use_mean_gradient=True),
     lambda p: Reference("adadelta", p, S([(1, 0.5)]), learner_mb=0, rho=0.95, epsilon=1e-6)),
    ("fsadagrad_default_variance", lambda p: C.fsadagrad(p, lps(0.1), ms(0.9)),
     lambda p: Reference("fsadagrad", p, S([(1, 0.1)]), S([(1, 0.9)]), S([(1, 0.9999986111120757)], ref=1))),
    ("fsadagrad_no_momentum_ref2", lambda p: C.fsadagrad(p, lps(0.1, minibatch_size=2), ms(0.0), unit_gain=False,
                                                         variance_momentum=ms(0.99, minibatch_size=2)),
     lambda p: Reference("fsadagrad", p, S([(1, 0.1)], ref=2), S([(1, 0.0)]), S([(1, 0.99)], ref=2),
                         unit_gain=False)),
    ("adam_per_sample", lambda p: C.adam(p, lpss(0.01), mss(0.9), variance_momentum=mss(0.999)),
     lambda p: Reference("adam", p, S([(1, 0.01)], ref=1), S([(1, 0.9)], ref=1), S([(1, 0.999)], ref=1))),
    ("adam_no_ug_eps_clip_trunc", lambda p: C.adam(p, lps(0.05), ms(0.9), unit_gain=False,
                                                   variance_momentum=ms(0.99), epsilon=1e-3,
                                                   gradient_clipping_threshold_per_sample=0.3),
     lambda p: Reference("adam", p, S([(1, 0.05)]), S([(1, 0.9)]), S([(1, 0.99)]), unit_gain=False,
                         clip=0.3, epsilon=1e-3)),
    ("adamax_lr_sweeps", lambda p: C.adam(p, lps([0.05, 0.01]), ms(0.9), variance_momentum=ms(0.999), adamax=True),
     lambda p: Reference("adamax", p, S([(1, 0.05), (1, 0.01)]), S([(1, 0.9)]), S([(1, 0.999)]))),
]


def _params(dtype=np.float64, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _grads(step, seed=2):
    rng = np.random.default_rng(seed + step)
    gs = [rng.standard_normal(s) * SIZES[step] * 0.3 for s in SHAPES]
    gs[0][0, 0] = 0.0          # an element with an exactly-zero gradient
    return gs


@pytest.mark.parametrize("cid,make,ref", CASES, ids=[c[0] for c in CASES])
def test_rule_matches_numpy_reference(cid, make, ref, kernels):
    init = _params()
    ps = [C.parameter(a.shape, init=a, dtype=np.float64) for a in init]
    learner = make(ps)
    reference = ref([a.copy() for a in init])
    for k, M in enumerate(SIZES):
        g = _grads(k)
        assert learner._update({p: torch.as_tensor(gi) for p, gi in zip(ps, g)}, M, SWEEP_ENDS[k])
        reference.update(g, M, SWEEP_ENDS[k])
        for i, (p, w) in enumerate(zip(ps, reference.params)):
            np.testing.assert_allclose(p.value, w, rtol=1e-12, atol=1e-14,
                                       err_msg="%s: step %d, parameter %d" % (cid, k, i))


@pytest.mark.parametrize("cid,make,ref", CASES[:1] + CASES[5:6] + CASES[17:18], ids=["sgd", "momentum", "adam"])
def test_float32_parameters_follow_the_reference(cid, make, ref):
    init = _params(np.float32)
    ps = [C.parameter(a.shape, init=a, dtype=np.float32) for a in init]
    learner = make(ps)
    reference = ref([a.astype(np.float64) for a in init])
    for k, M in enumerate(SIZES[:4]):
        g = _grads(k)
        learner._update({p: torch.as_tensor(gi.astype(np.float32)) for p, gi in zip(ps, g)}, M)
        reference.update([gi.astype(np.float32).astype(np.float64) for gi in g], M)
    for p, w in zip(ps, reference.params):
        assert p.value.dtype == np.float32
        np.testing.assert_allclose(p.value, w, rtol=1e-4, atol=1e-5)


def test_mean_gradient_mode_is_identical_for_sgd_family_but_not_adaptive():
    """Spec 5.2: IGNORE at learner level changes nothing for sgd/momentum/nesterov (clipping and
    L2 included) and makes adaptive learners take ~M times larger steps."""
    def run(factory):
        init = _params()
        ps = [C.parameter(a.shape, init=a, dtype=np.float64) for a in init]
        learner = factory(ps)
        for k, M in enumerate(SIZES[:4]):
            learner._update({p: torch.as_tensor(gi) for p, gi in zip(ps, _grads(k))}, M)
        return [p.value - a for p, a in zip(ps, init)]

    opts = dict(l2_regularization_weight=0.01, gradient_clipping_threshold_per_sample=0.5)
    for f in (C.sgd, lambda p, lr, **kw: C.nesterov(p, lr, ms(0.9), **kw)):
        a = run(lambda p: f(p, lps(0.1), **opts))
        b = run(lambda p: f(p, lps(0.1), minibatch_size=C.learners.IGNORE, **opts))
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-15)
    a = run(lambda p: C.adam(p, lps(0.01), ms(0.9)))
    b = run(lambda p: C.adam(p, lps(0.01), ms(0.9), minibatch_size=C.learners.IGNORE))
    ratio = np.abs(b[1]).sum() / np.abs(a[1]).sum()
    assert 2.0 < ratio < 7.0    # minibatches of 3, 1, 7 and 2 samples


def test_noise_injection_adds_gaussian_noise_of_the_scheduled_std():
    init = np.zeros((200, 50))
    p = C.parameter(init.shape, init=init, dtype=np.float64)
    learner = C.sgd([p], lps(0.0001), gaussian_noise_injection_std_dev=C.training_parameter_schedule([0.5, 0.0]))
    learner._update({p: torch.zeros(init.shape, dtype=torch.float64)}, 4, is_sweep_end=True)
    w = p.value
    assert abs(w.std() - 0.5) < 0.02 and abs(w.mean()) < 0.02
    learner._update({p: torch.zeros(init.shape, dtype=torch.float64)}, 4)   # second sweep: std 0
    np.testing.assert_array_equal(p.value, w)


def test_the_callers_gradients_are_not_modified():
    init = _params()
    ps = [C.parameter(a.shape, init=a, dtype=np.float64) for a in init]
    grads = [torch.as_tensor(g) for g in _grads(0)]
    copies = [g.clone() for g in grads]
    learner = C.adam(ps, lps(0.1), ms(0.9), l2_regularization_weight=0.1, gradient_clipping_threshold_per_sample=0.1,
                     minibatch_size=C.learners.IGNORE)
    learner._update(dict(zip(ps, grads)), 3)
    for g, c in zip(grads, copies):
        assert torch.equal(g, c)


def test_fused_kernels_serve_uniform_parameters(monkeypatch):
    """momentum_sgd and unit-gain Adam use torch's one-pass kernels for large tensors that share
    the dtype and device of the first such tensor; the rest (small, or here another dtype) go
    through the foreach formulation, and both parts are updated."""
    calls = []
    for name in ("momentum_sgd_step", "adam_step"):
        real = getattr(C.learners.fused, name)
        monkeypatch.setattr(C.learners.fused, name,
                            lambda *a, _real=real, _name=name, **k: (calls.append((_name, len(a[0]))), _real(*a, **k)))
    big = (256, 256)
    uniform = [C.parameter(big, init=0.5), C.parameter(big, init=0.1)]
    small = [C.parameter((3, 2), init=0.5), C.parameter((2,), init=0.1)]
    mixed = [C.parameter(big, init=0.5, dtype=np.float64), C.parameter(big, init=0.1, dtype=np.float32),
             C.parameter((3, 2), init=0.5)]
    for ps, expected in ((uniform, [2, 2]), (small, []), (mixed, [1, 1])):
        calls.clear()
        g = {p: torch.ones(p.shape, dtype=p._tensor().dtype) for p in ps}
        before = [p.value for p in ps]
        for learner in (C.momentum_sgd(ps, 0.1, 0.9), C.adam(ps, 0.1, 0.9), C.adam(ps, 0.1, 0.9, unit_gain=False),
                        C.adam(ps, 0.1, 0.9, adamax=True), C.momentum_sgd(ps, 0.1, 0.0)):
            learner._update(g, 2)
        assert [n for n, _ in calls] == ["momentum_sgd_step", "adam_step"][:len(expected)]
        assert [k for _, k in calls] == expected
        assert all((p.value < b).all() for p, b in zip(ps, before))   # every parameter moved
