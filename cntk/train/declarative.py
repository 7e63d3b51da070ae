"""``Function.train`` and ``Function.test``: CNTK's declarative training and testing of a
criterion function (built on Trainer, training_session and Evaluator)."""

import sys

from ..logging import ProgressWriter
from .training_session import (training_session, CheckpointConfig, CrossValidationConfig, TestConfig,
                               _sanitize_source, _is_source, _schedule)

__all__ = ["Record", "train", "test"]


class Record(dict):
    """A dict whose entries are also attributes (CNTK's ``Record``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def updated_with(self, **kwargs):
        """A copy with ``kwargs`` added."""
        r = Record(self)
        r.update(kwargs)
        return r


class _ProgressCollector(ProgressWriter):
    """Records training updates and summaries and test summaries as Records (loss, metric, samples)."""

    def __init__(self, progress_writers=None, summary_period=None):
        self.training_updates = []
        self.training_summaries = []
        self.test_summaries = []
        first = progress_writers[0] if progress_writers else None
        period = getattr(first, "freq", None) if first is not None else summary_period
        super().__init__(sys.maxsize if period is None else period, 0, sys.maxsize, 0, sys.maxsize, 0)

    def on_write_training_update(self, samples, updates, aggregate_loss, aggregate_metric):
        n = samples[1] - samples[0]
        d = n if n else 1
        self.training_updates.append(Record(loss=(aggregate_loss[1] - aggregate_loss[0]) / d,
                                            metric=(aggregate_metric[1] - aggregate_metric[0]) / d, samples=n))

    def on_write_training_summary(self, samples, updates, summaries, aggregate_loss, aggregate_metric,
                                  elapsed_milliseconds):
        d = samples if samples else 1
        self.training_summaries.append(Record(loss=aggregate_loss / d, metric=aggregate_metric / d, samples=samples))

    def on_write_test_summary(self, samples, updates, summaries, aggregate_metric, elapsed_milliseconds):
        self.test_summaries.append(Record(metric=aggregate_metric / (samples if samples else 1), samples=samples))


def _first_length(data):
    first = data[0] if isinstance(data, (tuple, list)) else data
    try:
        return len(first)
    except TypeError:
        return first.shape[0]


def train(criterion, minibatch_source, minibatch_size=32, streams=None, model_inputs_to_streams=None,
          parameter_learners=[], callbacks=[], progress_frequency=None, max_epochs=None, epoch_size=None,
          max_samples=None):
    """Train the parameters of ``criterion`` (a loss, or a (loss, metric) Function); see
    ``Function.train``."""
    if minibatch_size is None:
        raise ValueError("train: minibatch_size must not be None")
    minibatch_size = _schedule(minibatch_size, "train: minibatch_size")
    if max_samples is None:
        if epoch_size is None:
            if _is_source(minibatch_source):
                raise ValueError("train: epoch_size must be given unless max_samples is given or the data is "
                                 "passed as numpy/scipy arrays")
            epoch_size = _first_length(minibatch_source)
        if max_epochs is None:
            max_epochs = 1
        max_samples = int(max_epochs * epoch_size)
    elif max_epochs is not None:
        raise ValueError("train: max_epochs and max_samples are mutually exclusive")
    writers, configs = [], {CheckpointConfig: None, CrossValidationConfig: None, TestConfig: None}
    for cb in callbacks or []:
        if isinstance(cb, ProgressWriter):
            writers.append(cb)
            continue
        kind = next((k for k in configs if isinstance(cb, k)), None)
        if kind is None:
            raise ValueError("train: callbacks may only be ProgressWriters, CheckpointConfig, CrossValidationConfig "
                             "and TestConfig objects; got %s" % type(cb).__name__)
        if configs[kind] is not None:
            raise ValueError("train: only one %s is permitted among the callbacks" % kind.__name__)
        configs[kind] = cb
    if progress_frequency is None and epoch_size is not None:
        progress_frequency = epoch_size
    period = None
    if progress_frequency is not None:
        freq = progress_frequency[0] if isinstance(progress_frequency, tuple) else progress_frequency
        period = max(freq // minibatch_size[0], 1)
    collector = _ProgressCollector(writers, period)
    from .trainer import Trainer
    trainer = Trainer(None, criterion, parameter_learners, progress_writers=writers + [collector])
    if streams:
        if model_inputs_to_streams:
            raise ValueError("train: streams and model_inputs_to_streams are mutually exclusive")
        model_inputs_to_streams = criterion.argument_map(*streams)
    session = training_session(trainer, minibatch_source, minibatch_size, model_inputs_to_streams,
                               progress_frequency=progress_frequency, max_samples=max_samples,
                               checkpoint_config=configs[CheckpointConfig], cv_config=configs[CrossValidationConfig],
                               test_config=configs[TestConfig])
    session.train()
    if collector.training_summaries:
        result = Record(updates=collector.training_updates, epoch_summaries=collector.training_summaries)
    else:
        result = Record(updates=[Record(loss=0, metric=0, samples=0)],
                        epoch_summaries=[Record(loss=0, metric=0, samples=0)])
    if configs[TestConfig] is not None:
        result = result.updated_with(test_summary=collector.test_summaries[-1])
    return result


def test(criterion, minibatch_source, minibatch_size=32, streams=None, model_inputs_to_streams=None, callbacks=None):
    """The average metric (or loss, for a single-output criterion) of ``criterion`` over all of
    ``minibatch_source``; see ``Function.test``."""
    if minibatch_size is None:
        raise ValueError("test: minibatch_size must not be None")
    schedule = _schedule(minibatch_size, "test: minibatch_size")
    if streams:
        if model_inputs_to_streams:
            raise ValueError("test: streams and model_inputs_to_streams are mutually exclusive")
        model_inputs_to_streams = criterion.argument_map(*streams)
    source, mapping = _sanitize_source(minibatch_source, model_inputs_to_streams, criterion, infinitely_repeat=False)
    if not mapping:
        raise ValueError("test: give streams or model_inputs_to_streams to map the inputs to the source's streams")
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        callbacks = [callbacks]
    for cb in callbacks or []:
        if not isinstance(cb, ProgressWriter):
            raise ValueError("test: callbacks must only contain ProgressWriter objects; got %s" % type(cb).__name__)
    is_infinite = getattr(source, "is_infinite", None)
    if callable(is_infinite) and is_infinite():
        raise ValueError("test: the minibatch source must have a limited number of samples or sweeps")
    collector = _ProgressCollector()
    outputs = criterion.outputs
    from ..ops import combine
    output = combine([outputs[0] if len(outputs) == 1 else outputs[1]])   # the metric if there is one
    from .evaluator import Evaluator
    evaluator = Evaluator(output, list(callbacks or []) + [collector])
    samples = 0
    while True:
        data = source.next_minibatch(schedule[samples])
        if not data:
            break
        mb = {var: data[stream] for var, stream in mapping.items()}
        total, count = evaluator._test(mb, None)
        if count:
            evaluator._update_test_progress(count, total)
            samples += count
    evaluator.summarize_test_progress()
    return collector.test_summaries[-1]
