"""create_checkpoint / restore_from_checkpoint: plain data only, and resuming continues
bit-identically for every learner (noise injection and a reset learning rate included)."""

import json

import numpy as np
import pytest
import torch

import cntk as C

lps, lpss = C.learning_parameter_schedule, C.learning_parameter_schedule_per_sample
ms = C.momentum_schedule

SIZES = [3, 1, 4, 2, 5, 3, 2]

LEARNERS = {
    "sgd_noise_l1": lambda p: C.sgd(p, lps([0.1, 0.05], epoch_size=6), l1_regularization_weight=0.01,
                                    gaussian_noise_injection_std_dev=0.01),
    "momentum_sgd": lambda p: C.momentum_sgd(p, lpss(0.02), ms(0.9), l2_regularization_weight=0.01),
    "nesterov": lambda p: C.nesterov(p, lps(0.1), ms([0.9, 0.5])),
    "adagrad": lambda p: C.adagrad(p, lps(0.1), gradient_clipping_threshold_per_sample=0.5),
    "fsadagrad": lambda p: C.fsadagrad(p, lps(0.1), ms(0.9)),
    "adam": lambda p: C.adam(p, lps(0.05), ms(0.9), variance_momentum=ms(0.999)),
    "adamax": lambda p: C.adam(p, lps(0.05), ms(0.9), adamax=True),
    "rmsprop": lambda p: C.rmsprop(p, lps(0.01), 0.9, 1.2, 0.7, 10.0, 0.1),
    "adadelta": lambda p: C.adadelta(p, rho=0.9, epsilon=1e-6),
}


def params(seed=0):
    rng = np.random.default_rng(seed)
    return [C.parameter((4, 3), init=rng.standard_normal((4, 3)), dtype=np.float64, name="W"),
            C.parameter((3,), init=rng.standard_normal(3), dtype=np.float32, name="b")]


def grads(ps, k):
    rng = np.random.default_rng(100 + k)
    return {p: torch.as_tensor(rng.standard_normal(p.shape)).to(torch.float64 if p.dtype == np.float64
                                                                  else torch.float32) for p in ps}


def run(learner, ps, steps):
    for k in steps:
        learner._update(grads(ps, k), SIZES[k], is_sweep_end=(k == 2))


def plain(obj):
    """The checkpoint with numpy arrays turned into lists; fails on anything not JSON-able."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        assert all(isinstance(k, str) for k in obj)
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    assert obj is None or isinstance(obj, (bool, int, float, str)), type(obj)
    return obj


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_resume_is_bit_identical(name):
    make = LEARNERS[name]
    ps = params()
    learner = make(ps)
    run(learner, ps, range(3))
    if name == "adam":
        learner.reset_learning_rate(lps([0.02, 0.01], epoch_size=4))
    ck = learner.create_checkpoint()
    json.dumps(plain(ck))
    saved_values = [p.value for p in ps]
    run(learner, ps, range(3, 7))
    expected = [p.value for p in ps]

    ps2 = params(seed=5)                      # a fresh model, set to the saved values
    for p, v in zip(ps2, saved_values):
        p.value = v
    learner2 = make(ps2)
    learner2.restore_from_checkpoint(ck)
    assert learner2.total_number_of_samples_seen == learner.total_number_of_samples_seen - sum(SIZES[3:7])
    run(learner2, ps2, range(3, 7))
    for p, e in zip(ps2, expected):
        np.testing.assert_array_equal(p.value, e)
    assert learner2.learning_rate() == learner.learning_rate()


def test_checkpoint_before_the_first_update():
    ps = params()
    learner = C.adam(ps, 0.1, 0.9)
    ck = learner.create_checkpoint()
    assert ck["state"] is None and ck["sample_count"] == 0
    run(learner, ps, range(2))
    learner.restore_from_checkpoint(ck)
    assert learner.total_number_of_samples_seen == 0 and learner._state is None and learner._t == 0


def test_restore_rejects_checkpoints_that_do_not_fit():
    ps = params()
    learner = C.momentum_sgd(ps, 0.1, 0.9)
    run(learner, ps, range(2))
    ck = learner.create_checkpoint()
    before = learner.create_checkpoint()

    other = [C.parameter((4, 2), init=0.0, dtype=np.float64, name="W"), C.parameter((3,), init=0.0, dtype=np.float32)]
    with pytest.raises(ValueError, match="parameter 0 \\('W'\\) has shape \\(4, 3\\) in the checkpoint but"
                                         " \\(4, 2\\) here"):
        C.momentum_sgd(other, 0.1, 0.9).restore_from_checkpoint(ck)
    with pytest.raises(ValueError, match="2 parameters, this learner 1"):
        C.momentum_sgd(ps[:1], 0.1, 0.9).restore_from_checkpoint(ck)
    with pytest.raises(ValueError, match="MomentumSGDLearner, not a AdamLearner"):
        C.adam(ps, 0.1, 0.9).restore_from_checkpoint(ck)
    truncated = {k: v for k, v in ck.items() if k != "state"}
    with pytest.raises(ValueError, match="missing state"):
        learner.restore_from_checkpoint(truncated)
    bad_buffer = dict(ck, state={"v": [np.zeros((4, 3)), np.zeros(5)]})
    with pytest.raises(ValueError, match="buffer 'v' of parameter 1 has shape \\(5,\\)"):
        learner.restore_from_checkpoint(bad_buffer)
    with pytest.raises(ValueError, match="create_checkpoint"):
        learner.restore_from_checkpoint("checkpoint.ckp")
    with pytest.raises(ValueError, match="version"):
        learner.restore_from_checkpoint(dict(ck, version=99))
    after = learner.create_checkpoint()      # failed restores changed nothing
    assert json.dumps(plain(after)) == json.dumps(plain(before))
