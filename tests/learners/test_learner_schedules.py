"""Schedules: construction, indexing, reference minibatch sizes, legacy forms and bad input."""

import math
import warnings

import numpy as np
import pytest

import cntk as C
from cntk.learners import IGNORE, UnitType


def values(s, counts):
    return tuple(s[i] for i in counts)


def test_constant_and_lists_by_samples():
    s = C.learning_parameter_schedule(0.01)
    assert values(s, [0, 1, 10 ** 9]) == (0.01,) * 3
    s = C.learning_parameter_schedule([0.01, 0.001], epoch_size=1000)
    assert values(s, [0, 1, 999, 1000, 1001]) == (0.01, 0.01, 0.01, 0.001, 0.001)
    s = C.learning_parameter_schedule([(12, 0.1), (15, 0.01), (1, 0.001)], epoch_size=100)
    assert values(s, [0, 1199, 1200, 2699, 2700, 5000]) == (0.1, 0.1, 0.01, 0.01, 0.001, 0.001)
    assert not s.is_sweep_based() and s.epoch_size == 100


def test_pairs_and_bare_values_mix_and_sweep_units():
    m = C.momentum_schedule([(999, 0.99), (888, 0.88), (0, 0.77)])
    assert m.is_sweep_based()
    assert values(m, [0, 998, 999, 999 + 888 - 1, 999 + 888, 10 ** 6]) == (0.99, 0.99, 0.88, 0.88, 0.77, 0.77)
    s = C.learning_parameter_schedule([0.5, (2, 0.25), 0.125], epoch_size=10)
    assert values(s, [9, 10, 29, 30, 31, 100]) == (0.5, 0.25, 0.25, 0.125, 0.125, 0.125)
    assert s.pairs == [(1, 0.5), (2, 0.25), (1, 0.125)]


def test_reference_minibatch_sizes():
    assert C.learning_parameter_schedule(0.1).minibatch_size == IGNORE == 0
    assert not C.learning_parameter_schedule(0.1).is_minibatch_size_explicitly_specified
    assert C.learning_parameter_schedule(0.1, minibatch_size=32).minibatch_size == 32
    assert C.learning_parameter_schedule_per_sample(0.1).minibatch_size == 1
    assert C.momentum_schedule(0.9).minibatch_size == IGNORE
    assert C.momentum_schedule(0.9, minibatch_size=8).minibatch_size == 8
    assert C.momentum_schedule_per_sample(0.9).minibatch_size == 1
    assert C.momentum_schedule_per_sample(0.9).is_minibatch_size_explicitly_specified


def test_schedule_object_passes_through():
    s = C.learning_parameter_schedule(0.3, minibatch_size=4)
    assert C.learning_parameter_schedule(s) is s


def test_momentum_as_time_constant():
    m = C.momentum_as_time_constant_schedule(1100)
    assert m.minibatch_size == 1 and m[0] == pytest.approx(math.exp(-1 / 1100), rel=1e-15)
    m = C.momentum_as_time_constant_schedule([1100, 0], epoch_size=1000)
    assert m[999] == pytest.approx(math.exp(-1 / 1100)) and m[1000] == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        C.momentum_as_time_constant_schedule(-5)


def test_legacy_unit_types():
    s = C.learning_rate_schedule(0.1, UnitType.sample)
    assert s.minibatch_size == 1 and s.is_minibatch_size_explicitly_specified
    s = C.learning_rate_schedule([0.1, 0.2], UnitType.minibatch, epoch_size=5)
    assert s.minibatch_size == IGNORE and s.is_minibatch_size_explicitly_specified
    assert values(s, [4, 5]) == (0.1, 0.2)
    assert C.training_parameter_schedule(0.5).minibatch_size == IGNORE
    assert C.training_parameter_schedule(0.5, "sample").minibatch_size == 1
    with pytest.raises(ValueError, match="unit"):
        C.training_parameter_schedule(0.5, "epoch")


def test_minibatch_size_schedule():
    s = C.minibatch_size_schedule([(2, 32), (1, 64)], epoch_size=100)
    assert values(s, [0, 199, 200, 10 ** 6]) == (32, 32, 64, 64)
    assert isinstance(s[0], int)
    assert C.minibatch_size_schedule(16)[12345] == 16
    with pytest.raises(ValueError, match="positive integers"):
        C.minibatch_size_schedule([16, 2.5])
    with pytest.raises(ValueError, match="positive integers"):
        C.minibatch_size_schedule(0)


def test_number_with_epoch_size_warns():
    with pytest.warns(RuntimeWarning, match="epoch_size is ignored"):
        C.learning_parameter_schedule(0.1, epoch_size=10)


@pytest.mark.parametrize("bad,exc,msg", [
    ([], ValueError, "empty"),
    ((0.1, 0.2), ValueError, "number or a list"),
    ("0.1", ValueError, "number or a list"),
    ([(0, 0.1), (1, 0.05)], ValueError, "every entry but the last"),
    ([(-1, 0.1)], ValueError, "non-negative"),
    ([(1.5, 0.1)], TypeError, "integer"),
    ([(1, "a")], TypeError, "must be a number"),
    ([None], TypeError, "number or a \\(count, value\\) pair"),
    ([(1, 2, 3)], TypeError, "pair"),
    ([float("nan")], ValueError, "NaN"),
])
def test_bad_schedules_raise(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        C.learning_parameter_schedule(bad, epoch_size=2)


def test_bad_epoch_and_minibatch_sizes():
    with pytest.raises(ValueError, match="epoch_size"):
        C.learning_parameter_schedule([0.1, 0.2], epoch_size=-1)
    with pytest.raises(ValueError, match="minibatch_size"):
        C.learning_parameter_schedule(0.1, minibatch_size=-4)
    with pytest.raises(TypeError, match="minibatch_size"):
        C.learning_parameter_schedule(0.1, minibatch_size=2.5)
    with pytest.raises(IndexError):
        C.learning_parameter_schedule(0.1)[-1]


def test_zero_count_last_entry_lasts_forever():
    s = C.learning_parameter_schedule([(2, 0.1), (0, 0.05)], epoch_size=2)
    assert values(s, [3, 4, 10 ** 7]) == (0.1, 0.05, 0.05)


def test_numpy_scalars_are_accepted():
    s = C.learning_parameter_schedule([np.float32(0.5), (np.int64(2), np.float64(0.25))], epoch_size=1)
    assert values(s, [0, 1, 2, 3]) == (0.5, 0.25, 0.25, 0.25)


def test_no_warning_for_plain_lists():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        C.learning_parameter_schedule([0.1, 0.2], epoch_size=3)
