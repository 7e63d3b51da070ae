"""The Learner interface: update() inputs, return values, learning_rate()/reset_learning_rate,
counters, defaults, user-defined learners, and bad input."""

import numpy as np
import pytest
import torch

import cntk as C
from cntk.learners import IGNORE

lps, lpss = C.learning_parameter_schedule, C.learning_parameter_schedule_per_sample


def make_params(dtype=np.float64):
    W = C.parameter((3, 2), init=np.arange(6.0).reshape(3, 2) / 10, dtype=dtype, name="W")
    b = C.parameter((2,), init=np.array([0.1, -0.2]), dtype=dtype, name="b")
    return W, b


def ones(W, b):
    return {W: np.ones((3, 2)), b: np.ones(2)}


def test_exported_names():
    for name in ("sgd", "momentum_sgd", "nesterov", "adagrad", "fsadagrad", "adam", "rmsprop", "adadelta",
                 "universal", "UserLearner", "Learner", "UnitType", "learning_parameter_schedule",
                 "learning_parameter_schedule_per_sample", "learning_rate_schedule", "training_parameter_schedule",
                 "momentum_schedule", "momentum_schedule_per_sample", "momentum_as_time_constant_schedule",
                 "default_unit_gain_value", "set_default_unit_gain_value", "default_use_mean_gradient_value",
                 "set_default_use_mean_gradient_value"):
        assert getattr(C, name) is getattr(C.learners, name), name
    assert C.learners.IGNORE == 0


def test_update_accepts_numpy_ndarrayview_value_and_tensors():
    results = []
    for convert in (np.asarray, C.NDArrayView.from_data, lambda a: torch.as_tensor(a),
                    lambda a: a.tolist()):
        W, b = make_params()
        learner = C.sgd([W, b], lps(0.5))
        assert learner.update({W: convert(np.full((3, 2), 2.0)), b: convert(np.ones(2))}, 4) is True
        results.append((W.value, b.value))
    for W_value, b_value in results:
        np.testing.assert_allclose(W_value, np.arange(6.0).reshape(3, 2) / 10 - 0.25)
        np.testing.assert_allclose(b_value, np.array([0.1, -0.2]) - 0.125)


def test_update_rejects_missing_or_misshapen_gradients():
    W, b = make_params()
    learner = C.sgd([W, b], 0.1)
    with pytest.raises(ValueError, match="no gradient given for parameter 'b'"):
        learner.update({W: np.ones((3, 2))}, 1)
    with pytest.raises(ValueError, match="shape \\(2, 3\\)"):
        learner.update({W: np.ones((2, 3)), b: np.ones(2)}, 1)
    with pytest.raises(TypeError, match="dict"):
        learner.update([np.ones((3, 2)), np.ones(2)], 1)
    with pytest.raises(ValueError, match="sample count"):
        learner.update(ones(W, b), -3)
    with pytest.raises(ValueError, match="no gradient for parameter 'W'"):
        learner._update({b: torch.ones(2, dtype=torch.float64)}, 1)


def test_zero_samples_or_zero_learning_rate_do_not_update():
    W, b = make_params()
    learner = C.sgd([W, b], lps([0.1, 0.0], epoch_size=3))
    before = W.value
    assert learner.update(ones(W, b), 0) is False
    np.testing.assert_array_equal(W.value, before)
    assert learner.total_number_of_samples_seen == 0
    assert learner.update(ones(W, b), 3) is True
    assert learner.learning_rate() == 0.0
    after = W.value
    assert learner.update(ones(W, b), 3) is False         # learning has ended
    np.testing.assert_array_equal(W.value, after)
    assert learner.total_number_of_samples_seen == 3


def test_learning_rate_follows_samples_and_sweeps():
    W, b = make_params()
    by_samples = C.sgd([W, b], lps([0.3, 0.2, 0.1], epoch_size=4))
    by_sweeps = C.sgd([W, b], lps([0.3, 0.2, 0.1]))
    rates = []
    for M, end in ((3, False), (2, True), (5, False), (1, True)):
        for learner in (by_samples, by_sweeps):
            learner.update(ones(W, b), M, is_sweep_end=end)
        rates.append((by_samples.learning_rate(), by_sweeps.learning_rate()))
    assert rates == [(0.3, 0.3), (0.2, 0.2), (0.1, 0.2), (0.1, 0.1)]
    assert by_sweeps.total_number_of_sweeps_seen == 2
    assert by_sweeps.total_number_of_minibatches_seen == 4
    assert by_sweeps.total_number_of_samples_seen == 11


def test_reset_learning_rate_starts_at_the_current_position():
    W, b = make_params()
    learner = C.sgd([W, b], lps(0.5), minibatch_size=4)
    learner.update(ones(W, b), 6)
    learner.reset_learning_rate(lps([0.2, 0.1], epoch_size=5))
    assert learner.learning_rate() == 0.2
    assert learner._lr.minibatch_size == 4          # not explicit: takes the learner's size
    before = W.value
    learner.update(ones(W, b), 4)                    # 4 samples into the new schedule: still 0.2
    np.testing.assert_allclose(W.value, before - 0.2 / 4 * 1.0)
    assert learner.learning_rate() == 0.2
    learner.update(ones(W, b), 1)
    assert learner.learning_rate() == 0.1
    learner.reset_learning_rate(lpss(0.01))
    assert learner._lr.minibatch_size == 1 and learner.learning_rate() == 0.01
    with pytest.raises(TypeError, match="learning_parameter_schedule"):
        learner.reset_learning_rate(0.1)
    with pytest.raises(ValueError, match="non-negative"):
        learner.reset_learning_rate(lps(-0.1))


def test_learner_level_minibatch_size_only_fills_unspecified_schedules():
    W, b = make_params()
    assert C.sgd([W, b], 0.1, minibatch_size=8)._lr.minibatch_size == 8
    assert C.sgd([W, b], lps(0.1), minibatch_size=8)._lr.minibatch_size == 8
    assert C.sgd([W, b], lps(0.1, minibatch_size=2), minibatch_size=8)._lr.minibatch_size == 2
    assert C.sgd([W, b], lpss(0.1), minibatch_size=8)._lr.minibatch_size == 1
    user_schedule = lps(0.1)
    C.sgd([W, b], user_schedule, minibatch_size=8)
    assert user_schedule.minibatch_size == IGNORE       # the learner keeps its own copy
    learner = C.sgd([W, b], 0.1)
    assert learner.minibatch_size is None and not learner.is_minibatch_size_explicitly_specified
    assert C.sgd([W, b], 0.1, use_mean_gradient=True).minibatch_size == IGNORE
    assert C.sgd([W, b], lpss(0.1), use_mean_gradient=True)._lr.minibatch_size == IGNORE


def test_default_unit_gain_and_mean_gradient_switches():
    W, b = make_params()
    assert C.default_unit_gain_value() is True
    try:
        C.set_default_unit_gain_value(False)
        assert C.momentum_sgd([W, b], 0.1, 0.9)._unit_gain is False
        assert C.adam([W, b], 0.1, 0.9)._unit_gain is False
        assert C.momentum_sgd([W, b], 0.1, 0.9, unit_gain=True)._unit_gain is True
    finally:
        C.set_default_unit_gain_value(True)
    assert C.momentum_sgd([W, b], 0.1, 0.9)._unit_gain is True
    assert C.default_use_mean_gradient_value() is False
    try:
        C.set_default_use_mean_gradient_value(True)
        assert C.sgd([W, b], 0.1).minibatch_size == IGNORE
    finally:
        C.set_default_use_mean_gradient_value(False)
    assert C.sgd([W, b], 0.1).minibatch_size is None


def test_bad_parameter_lists():
    W, b = make_params()
    x = C.input_variable(3)
    with pytest.raises(ValueError, match="empty"):
        C.sgd([], 0.1)
    with pytest.raises(ValueError, match="parameter 'W' appears more than once"):
        C.adam([W, b, W], 0.1, 0.9)
    with pytest.raises(TypeError, match="parameters\\[1\\] is not a Parameter but input"):
        C.sgd([W, x], 0.1)
    with pytest.raises(TypeError, match="parameters\\[0\\] is not a Parameter but constant"):
        C.momentum_sgd([C.constant(1.0)], 0.1, 0.9)
    with pytest.raises(TypeError, match="list of Parameters"):
        C.sgd(3, 0.1)
    assert C.sgd(W, 0.1).parameters == [W]          # a single Parameter is accepted
    assert C.sgd((W, b), 0.1).parameters == [W, b]


@pytest.mark.parametrize("call,exc,msg", [
    (lambda p: C.sgd(p, "fast"), TypeError, "sgd: lr must be a number, a list or a schedule"),
    (lambda p: C.sgd(p, None), TypeError, "lr must be"),
    (lambda p: C.momentum_sgd(p, 0.1, None), TypeError, "momentum_sgd: momentum"),
    (lambda p: C.sgd(p, [0.1, (0, 0.2), 0.3], epoch_size=2), ValueError, "sgd: lr: schedule entry 1"),
    (lambda p: C.sgd(p, 0.1, minibatch_size=-1), ValueError, "minibatch_size"),
    (lambda p: C.sgd(p, 0.1, l2_regularization_weight=-0.1), ValueError, "l2_regularization_weight"),
    (lambda p: C.sgd(p, 0.1, l1_regularization_weight="a"), TypeError, "l1_regularization_weight"),
    (lambda p: C.sgd(p, 0.1, gradient_clipping_threshold_per_sample=-1), ValueError, "clipping"),
    (lambda p: C.sgd(p, 0.1, gradient_clipping_with_truncation=None), TypeError, "truncation"),
    (lambda p: C.sgd(p, 0.1, gaussian_noise_injection_std_dev=-1.0), ValueError, "noise"),
    (lambda p: C.adam(p, 0.1, 0.9, epsilon=-1e-8), ValueError, "epsilon"),
    (lambda p: C.sgd(p, lps([0.1, -0.01])), ValueError, "sgd: lr: schedule values must be non-negative, got -0.01"),
    (lambda p: C.momentum_sgd(p, 0.1, -0.9), ValueError, "momentum_sgd: momentum: .*non-negative"),
    (lambda p: C.adam(p, 0.1, 0.9, variance_momentum=[0.99, -1.0]), ValueError, "adam: variance_momentum"),
    (lambda p: C.adam(p, 0.1, 0.9, unit_gain="yes"), TypeError, "unit_gain"),
    (lambda p: C.adagrad(p, 0.1, need_ave_multiplier=1), TypeError, "need_ave_multiplier"),
    (lambda p: C.rmsprop(p, 0.1, gamma=0.9, inc=1.2, dec=0.7, max=1.0, min=-0.1), ValueError, "min"),
])
def test_bad_learner_arguments(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call(list(make_params()))


def test_user_learner():
    class MySgd(C.UserLearner):
        def __init__(self, parameters, lr):
            super().__init__(parameters, lr)
            self.calls = []

        def update(self, gradient_values, training_sample_count, sweep_end):
            self.calls.append((training_sample_count, sweep_end, type(next(iter(gradient_values.values())))))
            lr = self.learning_rate()
            for p, g in gradient_values.items():
                p.value = p.value - lr / training_sample_count * g
            return training_sample_count < 5

    W, b = make_params()
    learner = MySgd([W, b], lps(0.5))
    grads = {W: torch.ones(3, 2, dtype=torch.float64), b: torch.ones(2, dtype=torch.float64)}
    assert learner._update(grads, 2, True) is True
    np.testing.assert_allclose(b.value, np.array([0.1, -0.2]) - 0.25)
    assert learner._update(grads, 5, False) is False
    assert learner.calls == [(2, True, np.ndarray), (5, False, np.ndarray)]
    assert learner.total_number_of_samples_seen == 7

    class Raw(C.UserLearner):
        def update(self, gradient_values, training_sample_count, sweep_end):
            self.kinds = {type(v) for v in gradient_values.values()}
            return True

    raw = Raw([W, b], lps(0.1), as_numpy=False)
    raw._update(grads, 1)
    assert raw.kinds == {C.NDArrayView}

    class Forgot(C.UserLearner):
        pass

    with pytest.raises(TypeError, match="must override update"):
        Forgot([W, b], lps(0.1))


def test_universal_learner_runs_the_assign_graph():
    def my_adagrad(parameters, gradients):
        accumulators = [C.constant(0, shape=p.shape, dtype=p.dtype, name="accum") for p in parameters]
        updates = []
        for p, g, a in zip(parameters, gradients, accumulators):
            accum_new = C.assign(a, a + g * g)
            updates.append(C.assign(p, p - 0.01 * g / C.sqrt(accum_new + 1e-6)))
        return C.combine(updates)

    W, b = make_params()
    learner = C.universal(my_adagrad, [W, b])
    w, acc = W.value, np.zeros((3, 2))
    rng = np.random.default_rng(0)
    for M in (2, 5, 1):
        g = rng.standard_normal((3, 2))
        assert learner._update({W: torch.as_tensor(g), b: torch.zeros(2, dtype=torch.float64)}, M)
        acc = acc + g * g
        w = w - 0.01 * g / np.sqrt(acc + 1e-6)
    np.testing.assert_allclose(W.value, w, rtol=1e-7)   # the graph's scalars 0.01, 1e-6 are float32 constants
    assert learner.total_number_of_samples_seen == 8

    with pytest.raises(ValueError, match="two arguments"):
        C.universal(lambda p: None, [W, b])
    with pytest.raises(ValueError, match="does not use parameter 'b'"):
        C.universal(lambda ps, gs: C.combine([C.assign(ps[0], ps[0] - gs[0])]), [W, b])
    with pytest.raises(TypeError, match="must return a Function"):
        C.universal(lambda ps, gs: None, [W, b])
