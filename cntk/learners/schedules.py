"""Training-parameter schedules: piecewise-constant values over samples or data sweeps."""

import math
import numbers
import warnings
from enum import Enum, unique

__all__ = [
    "UnitType", "IGNORE", "FULL_DATA_SWEEP", "TrainingParameterSchedule",
    "training_parameter_schedule", "learning_parameter_schedule", "learning_parameter_schedule_per_sample",
    "learning_rate_schedule", "momentum_schedule", "momentum_schedule_per_sample",
    "momentum_as_time_constant_schedule", "minibatch_size_schedule",
]

IGNORE = 0
"""Reference minibatch size meaning "apply the value to whatever minibatch arrives" (no scaling)."""

FULL_DATA_SWEEP = 0
"""``epoch_size`` sentinel: the schedule's unit is one sweep over the data, not a number of samples."""


@unique
class UnitType(Enum):
    """Deprecated since CNTK 2.2: whether schedule values are per sample or per minibatch."""

    sample = "sample"
    """Values are per sample (reference minibatch size 1)."""

    minibatch = "minibatch"
    """Values are per minibatch (reference minibatch size IGNORE)."""


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _check_count(value, what, allow_zero):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError("%s must be an integer, got %r" % (what, value))
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError("%s must be %s, got %d" % (what, "non-negative" if allow_zero else "positive", value))
    return int(value)


class TrainingParameterSchedule:
    """A piecewise-constant schedule (CNTK's ``training_double_parameter_schedule``).

    ``pairs`` is a list of ``(count, value)``: each value holds for ``count`` units, a unit being
    ``epoch_size`` samples, or one data sweep when ``epoch_size`` is ``FULL_DATA_SWEEP``. The last
    value persists. ``minibatch_size`` is the reference minibatch size the values were tuned for
    (``IGNORE`` = 0: applied as is to any minibatch). ``schedule[i]`` is the value at count ``i``.
    """

    def __init__(self, pairs, epoch_size=FULL_DATA_SWEEP, minibatch_size=IGNORE,
                 is_minibatch_size_explicitly_specified=True, transform=None):
        if not isinstance(pairs, (list, tuple)) or len(pairs) == 0:
            raise ValueError("a schedule needs at least one value, got %r" % (pairs,))
        self._epoch_size = _check_count(epoch_size, "schedule epoch_size", allow_zero=True)
        self.minibatch_size = minibatch_size
        self.is_minibatch_size_explicitly_specified = bool(is_minibatch_size_explicitly_specified)
        self._transform = transform
        unit = self._epoch_size if self._epoch_size != FULL_DATA_SWEEP else 1
        self._pairs = []     # (count, value) as given, validated
        self._ends = []      # cumulative end count (in samples or sweeps) of each entry
        total = 0
        for i, entry in enumerate(pairs):
            count, value = self._entry(entry, i)
            # a count of 0 is allowed only for the last entry (it then lasts forever)
            if count == 0 and i < len(pairs) - 1:
                raise ValueError("schedule entry %d: the count of every entry but the last must be positive, got %r"
                                 % (i, entry))
            self._pairs.append((count, value))
            total += count if count != 0 else 1
            self._ends.append(unit * total)
        self._values = [transform(v) if transform else v for _, v in self._pairs]

    @staticmethod
    def _entry(entry, i):
        if _is_number(entry):
            count, value = 1, entry
        elif isinstance(entry, (tuple, list)) and len(entry) == 2:
            count, value = entry
            count = _check_count(count, "schedule entry %d: count" % i, allow_zero=True)
        else:
            raise TypeError("schedule entry %d must be a number or a (count, value) pair, got %r" % (i, entry))
        if not _is_number(value):
            raise TypeError("schedule entry %d: value must be a number, got %r" % (i, value))
        value = float(value)
        if math.isnan(value):
            raise ValueError("schedule entry %d: value is NaN" % i)
        return count, value

    # -- properties ------------------------------------------------------------------------
    @property
    def minibatch_size(self):
        """The reference minibatch size N the values are meant for (0 = IGNORE)."""
        return self._minibatch_size

    @minibatch_size.setter
    def minibatch_size(self, n):
        self._minibatch_size = _check_count(n, "schedule minibatch_size", allow_zero=True)

    @property
    def epoch_size(self):
        """Samples per scheduling unit; 0 (FULL_DATA_SWEEP) when the unit is a data sweep."""
        return self._epoch_size

    def is_sweep_based(self):
        """True when the schedule advances per data sweep (no epoch_size given)."""
        return self._epoch_size == FULL_DATA_SWEEP

    @property
    def pairs(self):
        """The (count, value) entries as given (before any conversion such as time constants)."""
        return list(self._pairs)

    def __getitem__(self, count):
        """The value at ``count`` samples (or sweeps, for a sweep-based schedule)."""
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
            raise IndexError("a schedule is indexed by a non-negative integer count, got %r" % (count,))
        for end, v in zip(self._ends, self._values):
            if count < end:
                return v
        return self._values[-1]

    def _copy(self):
        c = TrainingParameterSchedule.__new__(TrainingParameterSchedule)
        c.__dict__.update(self.__dict__)
        c._pairs, c._ends, c._values = list(self._pairs), list(self._ends), list(self._values)
        return c

    def _to_state(self):
        return {"pairs": [[c, v] for c, v in self._pairs], "values": list(self._values),
                "epoch_size": self._epoch_size, "minibatch_size": self._minibatch_size,
                "explicit": self.is_minibatch_size_explicitly_specified}

    @classmethod
    def _from_state(cls, state):
        s = cls([tuple(p) for p in state["pairs"]], int(state["epoch_size"]), int(state["minibatch_size"]),
                bool(state["explicit"]))
        s._values = [float(v) for v in state["values"]]
        return s

    def __repr__(self):
        unit = "sweeps" if self.is_sweep_based() else "x %d samples" % self._epoch_size
        return "TrainingParameterSchedule(%s, %s, minibatch_size=%d)" % (self._pairs, unit, self._minibatch_size)


def _normalize_list(schedule, what):
    if isinstance(schedule, list):
        if len(schedule) == 0:
            raise ValueError("%s: the schedule list is empty" % what)
        return list(schedule)
    raise ValueError("%s: schedule must be either a number or a list, not %s" % (what, type(schedule).__name__))


def _make(schedule, minibatch_size, epoch_size, explicit, what, transform=None):
    if _is_number(schedule):
        if epoch_size is not None:
            warnings.warn("When providing the schedule as a number, epoch_size is ignored", RuntimeWarning)
        return TrainingParameterSchedule([(1, schedule)], FULL_DATA_SWEEP, minibatch_size, explicit, transform)
    pairs = _normalize_list(schedule, what)
    epoch = FULL_DATA_SWEEP if epoch_size is None else _check_count(epoch_size, what + ": epoch_size", True)
    return TrainingParameterSchedule(pairs, epoch, minibatch_size, explicit, transform)


def learning_parameter_schedule(schedule, minibatch_size=None, epoch_size=None):
    """A learning-parameter schedule: a number, a list of values (each for ``epoch_size`` samples,
    or one sweep without ``epoch_size``) or of ``(count, value)`` pairs. ``minibatch_size`` is the
    reference minibatch size N the values are tuned for; None leaves it to the learner (IGNORE
    unless the learner gets a ``minibatch_size``)."""
    if isinstance(schedule, TrainingParameterSchedule):
        return schedule
    explicit = minibatch_size is not None
    n = IGNORE if minibatch_size is None else _check_count(minibatch_size, "learning_parameter_schedule: "
                                                           "minibatch_size", allow_zero=True)
    return _make(schedule, n, epoch_size, explicit, "learning_parameter_schedule")


def learning_parameter_schedule_per_sample(schedule, epoch_size=None):
    """A learning-parameter schedule whose values are meant for minibatches of one sample (N = 1)."""
    return learning_parameter_schedule(schedule, minibatch_size=1, epoch_size=epoch_size)


def momentum_schedule(momentum, epoch_size=None, minibatch_size=None):
    """A momentum schedule (same semantics as ``learning_parameter_schedule``): with a reference
    ``minibatch_size`` N the decay is β^(M/N) on a minibatch of M samples, else β per minibatch."""
    return learning_parameter_schedule(momentum, minibatch_size, epoch_size)


def momentum_schedule_per_sample(momentum, epoch_size=None):
    """A momentum schedule whose values are per-sample decays (N = 1)."""
    return momentum_schedule(momentum, epoch_size=epoch_size, minibatch_size=1)


def _time_constant_to_momentum(tc):
    if tc < 0:
        raise ValueError("momentum_as_time_constant_schedule: time constants must be non-negative, got %r" % tc)
    return 0.0 if tc == 0 else math.exp(-1.0 / tc)


def momentum_as_time_constant_schedule(momentum, epoch_size=None):
    """Deprecated since CNTK 2.2: momentum given as the time constant (in samples) of a unit-gain
    filter; a value tc means the per-sample momentum exp(-1/tc) (tc = 0: no momentum)."""
    if isinstance(momentum, TrainingParameterSchedule):
        momentum.is_minibatch_size_explicitly_specified = True
        return momentum
    what = "momentum_as_time_constant_schedule"
    if not _is_number(momentum):
        for i, entry in enumerate(_normalize_list(momentum, what)):
            TrainingParameterSchedule._entry(entry, i)   # type check before conversion
    return _make(momentum, 1, epoch_size, True, what, transform=_time_constant_to_momentum)


def training_parameter_schedule(schedule, unit=UnitType.minibatch, epoch_size=None):
    """Deprecated since CNTK 2.2: a schedule of per-sample (``UnitType.sample``, N = 1) or
    per-minibatch (``UnitType.minibatch``, N = IGNORE) values."""
    try:
        unit = UnitType(unit)
    except ValueError:
        raise ValueError("training_parameter_schedule: unit must be UnitType.sample or UnitType.minibatch, got %r"
                         % (unit,)) from None
    n = 1 if unit is UnitType.sample else IGNORE
    if isinstance(schedule, TrainingParameterSchedule):
        schedule.is_minibatch_size_explicitly_specified = True
        return schedule
    return _make(schedule, n, epoch_size, True, "training_parameter_schedule")


def learning_rate_schedule(lr, unit, epoch_size=None):
    """Deprecated since CNTK 2.2: ``training_parameter_schedule(lr, unit, epoch_size)``."""
    return training_parameter_schedule(lr, unit, epoch_size)


def minibatch_size_schedule(schedule, epoch_size=1):
    """A schedule of minibatch sizes (positive integers); each value lasts ``epoch_size`` samples."""
    what = "minibatch_size_schedule"
    entries = [schedule] if _is_number(schedule) else _normalize_list(schedule, what)
    for i, entry in enumerate(entries):
        _, v = TrainingParameterSchedule._entry(entry, i)
        if v != int(v) or v <= 0:
            raise ValueError("%s: entry %d: minibatch sizes must be positive integers, got %r" % (what, i, v))
    if _is_number(schedule):
        if epoch_size != 1:
            warnings.warn("When providing the schedule as a number, epoch_size is ignored", RuntimeWarning)
        s = TrainingParameterSchedule([(1, schedule)], 1, IGNORE, True)
    else:
        s = TrainingParameterSchedule(entries, _check_count(epoch_size, what + ": epoch_size", False), IGNORE, True)
    s._values = [int(v) for v in s._values]
    return s
