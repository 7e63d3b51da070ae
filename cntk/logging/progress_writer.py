"""``ProgressWriter``: the base class of everything that reports training and test progress.

A Trainer or Evaluator calls ``update_training`` / ``update_test`` after every minibatch with
the running totals it keeps since the last summary, and ``write_training_summary`` /
``write_test_summary`` when the user summarizes. The writer decides, by its frequencies, when to
call its hooks (``on_write_training_update`` etc.), which subclasses override. The windowing
follows CNTK 2.7: an update window runs from the last written update to the current one, and
every hook receives ``(start, end)`` pairs of cumulative counts within the current summary.
"""

import sys
import time

__all__ = ["ProgressWriter"]


def _as_float(value):
    """A running total (a number, a 0-d tensor or None) as a float; read only when written so
    that device totals are not copied to the host after every minibatch."""
    if value is None:
        return 0.0
    return float(value)


class _Window:
    """The (start, end) counters of one kind of update (training, test or distributed sync)."""

    __slots__ = ("frequency", "first", "total_updates", "total_summaries", "loss", "metric", "samples",
                 "updates", "last_reset")

    def __init__(self, frequency, first):
        self.frequency = sys.maxsize if frequency is None else int(frequency)
        self.first = int(first or 0)
        if self.frequency < 0 or self.first < 0:
            raise ValueError("ProgressWriter: frequencies and 'first' counts must be non-negative; got %r, %r"
                             % (frequency, first))
        self.total_updates = 0
        self.total_summaries = 0
        self.reset()

    def reset(self):
        self.loss = [0.0, 0.0]
        self.metric = [0.0, 0.0]
        self.samples = [0, 0]
        self.updates = [0, 0]
        self.last_reset = time.perf_counter()

    def _due(self, update):
        if self.frequency == 0:     # geometric: after updates 1, 3, 7, 15, ... (2^i - 1)
            return ((update + 1) & update) == 0
        return update % self.frequency == 0 or update <= self.first

    def update(self, samples, loss, metric, callback):
        if samples == 0:
            return
        self.samples[1] += samples
        self.updates[1] += 1
        self.total_updates += 1
        if self._due(self.updates[1]):
            if loss is not None:
                self.loss[1] = _as_float(loss)
            if metric is not None:
                self.metric[1] = _as_float(metric)
            callback(tuple(self.samples), tuple(self.updates), tuple(self.loss), tuple(self.metric))
            self.loss[0], self.metric[0] = self.loss[1], self.metric[1]
            self.samples[0], self.updates[0] = self.samples[1], self.updates[1]

    def summary(self, loss, metric, callback):
        if self.samples[1] > 0:
            if loss is not None:
                self.loss[1] = _as_float(loss)
            if metric is not None:
                self.metric[1] = _as_float(metric)
        self.total_summaries += 1
        elapsed_ms = int((time.perf_counter() - self.last_reset) * 1000)
        callback(self.samples[1], self.updates[1], self.total_summaries, self.loss[1], self.metric[1], elapsed_ms)
        self.reset()


class ProgressWriter:
    """Base class of progress writers (``ProgressPrinter``, ``TensorBoardProgressWriter``, or your
    own). Frequencies count minibatches: ``k`` writes every k-th update (and each of the first
    ``first`` ones), ``0`` writes on a geometric schedule (1, 2, 4, ... updates since the last
    write), None never writes per-minibatch updates (summaries only).

    Override the hooks to receive the progress:

    * ``on_write_training_update(samples, updates, aggregate_loss, aggregate_metric)``
    * ``on_training_update_end()`` (after every training minibatch)
    * ``on_write_test_update(samples, updates, aggregate_metric)``
    * ``on_write_distributed_sync_update(samples, updates, aggregate_metric)``
    * ``on_write_training_summary(samples, updates, summaries, aggregate_loss, aggregate_metric,
      elapsed_milliseconds)``
    * ``on_write_test_summary(samples, updates, summaries, aggregate_metric, elapsed_milliseconds)``
    * ``write(key, value)`` (named values, e.g. a learner's 'Learning rate' when it changes)

    In the update hooks every argument is a ``(start, end)`` pair of totals since the last
    summary: the window being written is ``end - start``. Summary hooks get plain totals.
    """

    def __init__(self, training_update_write_freq=None, first_training_updates_to_write=0,
                 test_update_write_freq=None, first_test_updates_to_write=0,
                 distributed_sync_update_write_freq=None, first_distributed_sync_updates_to_write=0):
        self._training = _Window(training_update_write_freq, first_training_updates_to_write)
        self._test = _Window(test_update_write_freq, first_test_updates_to_write)
        self._sync = _Window(distributed_sync_update_write_freq, first_distributed_sync_updates_to_write)

    def _windows(self):
        # subclasses that forget to call ProgressWriter.__init__ still get default windows
        if "_training" not in self.__dict__:
            ProgressWriter.__init__(self)
        return self._training, self._test, self._sync

    # -- called by Trainer / Evaluator ---------------------------------------------------
    def update_training(self, samples, accumulated_loss, accumulated_metric):
        """Record a training minibatch of ``samples`` samples; the totals are since the last summary."""
        training = self._windows()[0]
        training.update(samples, accumulated_loss, accumulated_metric,
                        lambda s, u, l, m: self.on_write_training_update(s, u, l, m))
        self.on_training_update_end()

    def update_test(self, samples, accumulated_metric):
        """Record a test minibatch of ``samples`` samples; the total is since the last summary."""
        test = self._windows()[1]
        test.update(samples, None, accumulated_metric, lambda s, u, l, m: self.on_write_test_update(s, u, m))

    def update_distributed_sync(self, samples, accumulated_metric):
        """Record a synchronization of distributed workers covering ``samples`` samples."""
        sync = self._windows()[2]
        sync.update(samples, None, accumulated_metric,
                    lambda s, u, l, m: self.on_write_distributed_sync_update(s, u, m))

    def write_training_summary(self, accumulated_loss, accumulated_metric):
        """Write the summary of the training since the last one and start a new window."""
        training = self._windows()[0]
        training.summary(accumulated_loss, accumulated_metric,
                         lambda s, u, n, l, m, ms: self.on_write_training_summary(s, u, n, l, m, ms))

    def write_test_summary(self, accumulated_metric):
        """Write the summary of the testing since the last one and start a new window."""
        test = self._windows()[1]
        test.summary(None, accumulated_metric, lambda s, u, n, l, m, ms: self.on_write_test_summary(s, u, n, m, ms))

    def total_training_updates(self):
        """Training minibatches recorded so far (all summaries)."""
        return self._windows()[0].total_updates

    def total_test_updates(self):
        """Test minibatches recorded so far (all summaries)."""
        return self._windows()[1].total_updates

    # -- hooks ----------------------------------------------------------------------------
    def on_write_training_update(self, samples, updates, aggregate_loss, aggregate_metric):
        """Called when a training update is due (see the class docstring)."""

    def on_training_update_end(self):
        """Called after every training minibatch."""

    def on_write_test_update(self, samples, updates, aggregate_metric):
        """Called when a test update is due."""

    def on_write_distributed_sync_update(self, samples, updates, aggregate_metric):
        """Called when a distributed-synchronization update is due."""

    def on_write_training_summary(self, samples, updates, summaries, aggregate_loss, aggregate_metric,
                                  elapsed_milliseconds):
        """Called by ``Trainer.summarize_training_progress``."""

    def on_write_test_summary(self, samples, updates, summaries, aggregate_metric, elapsed_milliseconds):
        """Called by ``summarize_test_progress``."""

    def write(self, key, value):
        """Called with named values (e.g. a learner's 'Learning rate' when it changes)."""
