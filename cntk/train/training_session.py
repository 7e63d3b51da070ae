"""``training_session``: CNTK's training loop over a minibatch source, with periodic
checkpoints, progress summaries and cross validation, a final test, and restart from the last
checkpoint.

After every minibatch the session looks at how many samples, minibatches or sweeps the trainer
has seen; each periodic action (checkpoint, progress summary, cross validation, in that order)
runs whenever that count crosses a multiple of its frequency, and once more at the end for the
last partial period. A frequency of ``sys.maxsize`` therefore means "once, at the end".
"""

import enum
import numbers
import os
import re
import sys
import warnings

from ..learners.schedules import minibatch_size_schedule, TrainingParameterSchedule

__all__ = ["DataUnit", "CheckpointConfig", "CrossValidationConfig", "TestConfig", "TrainingSession",
           "training_session", "minibatch_size_schedule"]

_SOURCE_STATE_KEY = "TrainingMinibatchSource"


class DataUnit(enum.IntEnum):
    """What a frequency counts: samples, minibatches or sweeps over the data."""
    sample = 0
    minibatch = 1
    sweep = 2


def _unpack_frequency(frequency, what):
    """(frequency or None, DataUnit) from an int (samples) or a (count, DataUnit) pair."""
    if frequency is None:
        return None, DataUnit.sample
    if isinstance(frequency, numbers.Integral) and not isinstance(frequency, bool):
        if frequency < 0:
            raise ValueError("%s: the frequency must be >= 0, got %d" % (what, frequency))
        return int(frequency), DataUnit.sample
    if isinstance(frequency, tuple) and len(frequency) == 2 and isinstance(frequency[0], numbers.Integral) \
            and not isinstance(frequency[0], bool) and isinstance(frequency[1], DataUnit) and frequency[0] >= 0:
        return int(frequency[0]), frequency[1]
    raise ValueError("%s: unsupported frequency %r; give a number of samples or a (count, DataUnit) pair"
                     % (what, frequency))


def _schedule(size, what, default=None):
    if size is None and default is not None:
        size = default
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        if size <= 0:
            raise ValueError("%s must be positive, got %d" % (what, size))
        return minibatch_size_schedule(int(size))
    if isinstance(size, TrainingParameterSchedule):
        return size
    raise ValueError("%s of type %s is not supported; it must be an int or the result of minibatch_size_schedule()"
                     % (what, type(size).__name__))


def _deprecated_source_args(minibatch_source, minibatch_size, source, mb_size):
    """(minibatch_source, minibatch_size), taken from the deprecated ``source``/``mb_size`` where
    given (with a DeprecationWarning pointing at the config's caller)."""
    if source is not None:
        warnings.warn('DEPRECATED: "source" parameter is deprecated, please use "minibatch_source" instead',
                      DeprecationWarning, stacklevel=3)
        minibatch_source = source
    if mb_size is not None:
        warnings.warn('DEPRECATED: "mb_size" parameter is deprecated, please use "minibatch_size" instead',
                      DeprecationWarning, stacklevel=3)
        minibatch_size = mb_size
    return minibatch_source, minibatch_size


def _is_source(obj):
    return hasattr(obj, "next_minibatch")


def _sanitize_source(source, mapping, criterion, infinitely_repeat=True):
    """(source, {input: stream}) where data given as a tuple of arrays (one per argument of
    ``criterion``, in order) is wrapped into a ``MinibatchSourceFromData``."""
    if source is None or _is_source(source):
        return source, mapping
    args = tuple(source) if isinstance(source, (tuple, list)) else (source,)
    if criterion is None:
        raise ValueError("when data is passed directly in place of a minibatch source, the criterion must be given")
    params = criterion.arguments
    if len(params) != len(args):
        raise ValueError("to pass data directly in place of a minibatch source, pass a tuple of %d numpy or scipy "
                         "arrays, in the order of the arguments of the criterion function; you passed %d value(s)"
                         % (len(params), len(args)))
    if mapping is not None:
        raise ValueError("model_inputs_to_streams must not be given when data is passed directly")
    from ..io import MinibatchSourceFromData, INFINITELY_REPEAT
    names = [p.name if p.name else "stream_%d" % i for i, p in enumerate(params)]
    if len(set(names)) != len(names):
        names = ["stream_%d" % i for i in range(len(params))]
    first = args[0]
    n = len(first) if isinstance(first, (list, tuple)) else first.shape[0]
    source = MinibatchSourceFromData({name: (data, p.type) for name, data, p in zip(names, args, params)},
                                     max_samples=INFINITELY_REPEAT if infinitely_repeat else n)
    return source, {p: source.streams[name] for p, name in zip(params, names)}


class CheckpointConfig:
    """Checkpointing of a training session: to ``filename`` every ``frequency`` samples (or a
    (count, DataUnit) pair; None or ``sys.maxsize``: once at the end; 0: never). ``restore``
    continues from the checkpoint if one exists; ``preserve_all`` keeps every checkpoint as
    ``filename<index>``."""

    def __init__(self, filename, frequency=None, restore=True, preserve_all=False):
        frequency, unit = _unpack_frequency(frequency, "CheckpointConfig")
        if filename is None:
            if frequency is not None and frequency != 0:
                raise ValueError("CheckpointConfig: the checkpoint frequency cannot be specified without a filename")
            frequency, filename = 0, ""
        filename = os.fspath(filename)
        if frequency is None:
            frequency = sys.maxsize
        if not filename and preserve_all:
            raise ValueError("CheckpointConfig: preserve_all needs a checkpoint filename")
        self.filename = filename
        self.frequency = frequency if filename else 0
        self.frequency_unit = unit
        self.restore = bool(restore)
        self.preserve_all = bool(preserve_all)


class CrossValidationConfig:
    """Cross validation during a training session: every ``frequency`` samples (or (count,
    DataUnit); None: once at the end) the trainer's metric is averaged over
    ``minibatch_source`` (or over up to ``max_samples`` of it) in minibatches of
    ``minibatch_size``, the source is rewound, and ``callback(index, average_error, num_samples,
    num_minibatches)`` is called; returning False stops training. Without a source the callback
    alone is called (with zeros). ``minibatch_source`` may also be a tuple of arrays, one per
    argument of ``criterion``."""

    def __init__(self, minibatch_source=None, frequency=None, minibatch_size=32, callback=None, max_samples=None,
                 model_inputs_to_streams=None, criterion=None, source=None, mb_size=None):
        minibatch_source, minibatch_size = _deprecated_source_args(minibatch_source, minibatch_size, source, mb_size)
        self.callback = callback
        frequency, unit = _unpack_frequency(frequency, "CrossValidationConfig")
        if minibatch_source is None and callback is None:
            if frequency is not None and frequency != 0:
                raise ValueError("CrossValidationConfig: either minibatch_source or callback must be given")
            frequency = 0
        if frequency is None:
            frequency = sys.maxsize
        if callback is not None and not callable(callback):
            raise TypeError("CrossValidationConfig: callback must be callable")
        self.frequency = frequency
        self.frequency_unit = unit
        self.minibatch_size = _schedule(minibatch_size, "CrossValidationConfig: minibatch_size", default=1)
        self.max_samples = sys.maxsize if max_samples is None else int(max_samples)
        self.minibatch_source, self.model_inputs_to_streams = _sanitize_source(
            minibatch_source, model_inputs_to_streams, criterion, infinitely_repeat=False)


class TestConfig:
    """A test at the end of a training session: the trainer's metric over all of
    ``minibatch_source`` in minibatches of ``minibatch_size`` (reported to the progress writers
    as a test summary). ``minibatch_source`` may also be a tuple of arrays, one per argument of
    ``criterion``."""

    __test__ = False   # not a pytest test class

    def __init__(self, minibatch_source=None, minibatch_size=32, model_inputs_to_streams=None, criterion=None,
                 source=None, mb_size=None):
        minibatch_source, minibatch_size = _deprecated_source_args(minibatch_source, minibatch_size, source, mb_size)
        self.minibatch_size = _schedule(minibatch_size, "TestConfig: minibatch_size")
        self.minibatch_source, self.model_inputs_to_streams = _sanitize_source(
            minibatch_source, model_inputs_to_streams, criterion, infinitely_repeat=False)


class _Action:
    __slots__ = ("frequency", "unit", "run", "index", "last_units")

    def __init__(self, frequency, unit, run):
        self.frequency, self.unit, self.run = frequency, unit, run
        self.index = 0
        self.last_units = 0


def _distribution(trainer):
    """(workers, this worker's rank, samples before distribution starts) from distributed learners."""
    workers, rank, after = 1, 0, 0
    for learner in trainer.parameter_learners:
        comm = getattr(learner, "communicator", None)
        if not callable(comm):
            continue
        c = comm()
        workers = len(c.workers())
        rank = c.current_worker().global_rank
        after = max(after, int(getattr(learner, "distributed_after", 0) or 0))
    return workers, rank, after


class TrainingSession:
    """A training loop; create it with ``training_session`` and run it with ``train``. Subclasses
    may override the hooks ``on_minibatch_start``, ``on_minibatch_end`` (return False to stop),
    ``on_checkpoint_start``/``on_checkpoint_end`` (with the checkpoint index),
    ``on_cross_validation_end`` and ``get_minibatch_size``."""

    def __init__(self, trainer, mb_source, mb_size, model_inputs_to_streams, max_samples, progress_frequency,
                 checkpoint_config, cv_config, test_config):
        if trainer is None:
            raise ValueError("training_session: the trainer must not be None")
        if mb_source is None:
            raise ValueError("training_session: the training minibatch source must not be None")
        progress_frequency, progress_unit = _unpack_frequency(progress_frequency, "training_session: "
                                                                                  "progress_frequency")
        mb_source, model_inputs_to_streams = _sanitize_source(mb_source, model_inputs_to_streams,
                                                              trainer.loss_function)
        if not model_inputs_to_streams:
            raise ValueError("training_session: the mapping between input variables and streams must not be empty")
        max_samples = sys.maxsize if max_samples is None else int(max_samples)
        if max_samples <= 0:
            raise ValueError("training_session: max_samples must be positive, got %d" % max_samples)
        self.trainer = trainer
        self.mb_source = mb_source
        self.mb_size = _schedule(mb_size, "training_session: mb_size")
        self.model_inputs_to_streams = dict(model_inputs_to_streams)
        self.max_samples = max_samples
        self.progress_frequency = sys.maxsize if progress_frequency is None else progress_frequency
        self.checkpoint_config = checkpoint_config if checkpoint_config is not None else CheckpointConfig(None)
        self.cv_config = cv_config if cv_config is not None else CrossValidationConfig(None)
        self.test_config = test_config if test_config is not None else TestConfig(None)
        self.cv_callback = self.cv_config.callback
        self._workers, self._rank, self._parallel_after = _distribution(trainer)

        cp, cv = self.checkpoint_config, self.cv_config
        self._actions = []
        if cp.frequency:
            self._actions.append(_Action(cp.frequency, cp.frequency_unit, self._checkpoint_action))
        if self.progress_frequency:
            self._actions.append(_Action(self.progress_frequency, progress_unit, self._progress_action))
        if cv.frequency:
            self._actions.append(_Action(cv.frequency, cv.frequency_unit, self._cross_validate))

    # -- hooks ------------------------------------------------------------------------------
    def get_minibatch_size(self):
        """The size of the next training minibatch (by default from the mb_size schedule)."""
        return self.mb_size[self.trainer.total_number_of_samples_seen]

    def on_minibatch_start(self):
        """Called before each training minibatch."""

    def on_minibatch_end(self):
        """Called after each training minibatch; return False to stop training."""
        return True

    def on_checkpoint_start(self, index):
        """Called before checkpoint ``index`` is written."""

    def on_checkpoint_end(self, index):
        """Called after checkpoint ``index`` is written."""

    def on_cross_validation_end(self, index, average_error, num_samples, num_minibatches):
        """Called after each cross validation; returns whether training should continue."""
        if self.cv_callback is not None:
            return self.cv_callback(index, average_error, num_samples, num_minibatches)
        return True

    # -- the loop ------------------------------------------------------------------------------
    def train(self, device=None):
        """Train until ``max_samples`` samples were seen, the source runs dry, a callback asks to
        stop or the learners stop; then test (with a TestConfig)."""
        trainer = self.trainer
        restored = 0
        cp = self.checkpoint_config
        if cp.restore and cp.filename:
            self._restore(device)
            restored = trainer.total_number_of_samples_seen
        early_exit = False
        should_train = True
        while should_train:
            seen = trainer.total_number_of_samples_seen
            left = 0 if early_exit or self.max_samples <= seen else self.max_samples - seen
            minibatch = self._training_minibatch(left, device)
            self.on_minibatch_start()
            should_train = trainer.train_minibatch(minibatch, device=device)
            if self.on_minibatch_end() is False:
                early_exit = True
            for a in self._actions:
                units = trainer._units_seen(a.unit)
                index = units // a.frequency
                if index != a.index:
                    if a.run(a.index, device) is False:
                        early_exit = True
                    a.index = index
                    a.last_units = units
        if restored != trainer.total_number_of_samples_seen:
            for a in self._actions:   # the last, partial period
                units = trainer._units_seen(a.unit)
                if units % a.frequency != 0 and units != a.last_units:
                    a.run(a.index, device)
        if cp.frequency and cp.preserve_all and not os.path.exists(cp.filename):
            self._save_checkpoint(cp.filename)
        self._test(device)

    # -- data ------------------------------------------------------------------------------------
    def _next_minibatch(self, source, size, mapping, device, workers=1, rank=0):
        """{input: MinibatchData} of the next minibatch of at most ``size`` samples ({}: none)."""
        if size <= 0:
            return {}
        from .. import io as _io
        user_source = getattr(_io, "UserMinibatchSource", None)
        if user_source is not None and isinstance(source, user_source):
            data = source.next_minibatch(size, workers, rank, device)
        elif workers > 1:
            data = source.next_minibatch(size, device=device, num_data_partitions=workers, partition_index=rank)
        else:
            data = source.next_minibatch(size, device=device)
        if not data:
            return {}
        out = {}
        for var, stream in mapping.items():
            if isinstance(stream, str):
                match = [s for s in data if getattr(s, "name", None) == stream or s == stream]
                if len(match) != 1:
                    raise ValueError("training_session: the minibatch has no stream named '%s' (streams: %s)"
                                     % (stream, ", ".join(str(getattr(s, "name", s)) for s in data)))
                stream = match[0]
            if stream not in data:
                raise ValueError("training_session: the minibatch source gave no data for the stream %r mapped to %s"
                                 % (getattr(stream, "name", stream), getattr(var, "name", var)))
            out[var] = data[stream]
        return out

    def _training_minibatch(self, samples_left, device):
        workers, rank = self._workers, self._rank
        if self._parallel_after > self.trainer.total_number_of_samples_seen:
            workers, rank = 1, 0
        size = min(self.get_minibatch_size(), samples_left)
        return self._next_minibatch(self.mb_source, size, self.model_inputs_to_streams, device, workers, rank)

    def _evaluate(self, source, schedule, mapping, max_samples, device):
        """(summed metric, samples, minibatches) of the trainer's metric over ``source``."""
        trainer = self.trainer
        total, samples, minibatches = 0.0, 0, 0
        while True:
            left = 0 if max_samples <= samples else max_samples - samples
            size = min(schedule[samples], left)
            mb = self._next_minibatch(source, size, mapping, device, self._workers, self._rank)
            t, count = trainer._test(mb, device)
            if count == 0:
                break
            trainer._update_test_progress(count, t)
            total += float(t)
            samples += count
            minibatches += 1
        return total, samples, minibatches

    # -- actions -----------------------------------------------------------------------------------
    def _progress_action(self, index, device):
        self.trainer.summarize_training_progress()
        return True

    def _cross_validate(self, index, device):
        cv = self.cv_config
        if cv.minibatch_source is None:
            return self.on_cross_validation_end(index, 0, 0, 0)
        source = cv.minibatch_source
        position = source.get_checkpoint_state()
        total, samples, minibatches = self._evaluate(source, cv.minibatch_size,
                                                     cv.model_inputs_to_streams or self.model_inputs_to_streams,
                                                     cv.max_samples, device)
        source.restore_from_checkpoint(position)
        self.trainer.summarize_test_progress()
        average = total / samples if samples else float("nan")
        return self.on_cross_validation_end(index, average, samples, minibatches)

    def _test(self, device):
        tc = self.test_config
        if tc.minibatch_source is None:
            return
        self._evaluate(tc.minibatch_source, tc.minibatch_size, tc.model_inputs_to_streams or
                       self.model_inputs_to_streams, sys.maxsize, device)
        self.trainer.summarize_test_progress()

    def _checkpoint_action(self, index, device):
        self.on_checkpoint_start(index)
        name = self.checkpoint_config.filename
        if self.checkpoint_config.preserve_all:
            name += str(index)
        self._save_checkpoint(name)
        self.on_checkpoint_end(index)
        return True

    def _save_checkpoint(self, filename):
        get_state = getattr(self.mb_source, "get_checkpoint_state", None)
        external = {_SOURCE_STATE_KEY: get_state() if get_state is not None else {}}
        if self._rank == 0:
            self.trainer.save_checkpoint(filename, external)

    def _restore(self, device):
        """Continue from the checkpoint file, or from the newest ``<filename><N>`` one."""
        path = self.checkpoint_config.filename
        parent = os.path.dirname(path) or "."
        os.makedirs(parent, exist_ok=True)
        chosen = None
        if os.path.exists(path):
            chosen = path
        else:
            base = os.path.basename(path)
            best = -1
            for f in os.listdir(parent):
                suffix = f[len(base):] if f.startswith(base) else ""
                if re.fullmatch(r"[0-9]+", suffix) and os.path.exists(os.path.join(parent, f + ".ckp")):
                    if int(suffix) > best:
                        best, chosen = int(suffix), os.path.join(parent, f)
        if chosen is None:
            return
        sys.stderr.write("Restoring training session from the checkpoint '%s'\n" % chosen)
        external = self.trainer.restore_from_checkpoint(chosen)
        restore = getattr(self.mb_source, "restore_from_checkpoint", None)
        if restore is not None and isinstance(external, dict) and external.get(_SOURCE_STATE_KEY) is not None:
            restore(external[_SOURCE_STATE_KEY])
        for a in self._actions:
            units = self.trainer._units_seen(a.unit)
            a.index = units // a.frequency
            a.last_units = units - units % a.frequency


def training_session(trainer, mb_source, mb_size, model_inputs_to_streams, progress_frequency=None, max_samples=None,
                     checkpoint_config=None, cv_config=None, test_config=None):
    """A TrainingSession that trains ``trainer`` on ``mb_source`` (a MinibatchSource, or a tuple
    of arrays, one per argument of the loss) in minibatches of ``mb_size`` samples (an int or a
    ``minibatch_size_schedule``), feeding each input from its stream in
    ``model_inputs_to_streams``, for at most ``max_samples`` samples, summarizing progress every
    ``progress_frequency`` samples (or (count, DataUnit)). Call ``.train()`` on it."""
    return TrainingSession(trainer, mb_source, mb_size, model_inputs_to_streams, max_samples, progress_frequency,
                           checkpoint_config, cv_config, test_config)
