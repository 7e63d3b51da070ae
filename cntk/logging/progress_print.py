"""``ProgressPrinter`` (CNTK's text log of training and test progress) and
``log_number_of_parameters``."""

import sys
import time
import warnings
from functools import reduce
from operator import mul

from .progress_writer import ProgressWriter

__all__ = ["ProgressPrinter", "log_number_of_parameters"]


def _avg(numerator, denominator):
    """numerator / denominator, where either may be a (start, end) pair (its difference is used);
    0 when there is nothing to average over."""
    if isinstance(numerator, tuple):
        numerator = numerator[1] - numerator[0]
    if isinstance(denominator, tuple):
        denominator = denominator[1] - denominator[0]
    return (numerator / denominator) if denominator > 0 else 0.0


def _warn_deprecated(message):
    warnings.warn("DEPRECATED: " + message, DeprecationWarning, stacklevel=3)


class ProgressPrinter(ProgressWriter):
    """Prints training and test progress in CNTK's log format.

    ``freq``: None prints epoch summaries only; 0 prints a table on a geometric schedule (after
    1, 2, 4, ... minibatches, no epoch summaries); k prints a line every k minibatches (and for
    each of the first ``first``). ``tag`` goes into the epoch summary lines. ``log_to_file``
    writes to that file (suffixed ``rank<r>`` with ``rank``) instead of stdout. ``num_epochs`` is
    the N of "Epoch[i of N]". ``test_freq``/``test_first`` do for test minibatches what
    ``freq``/``first`` do for training. ``metric_is_pct`` prints the metric as a percentage.
    ``gen_heartbeat`` prints "PROGRESS: 0.00%" at most every 10 seconds while training.
    """

    def __init__(self, freq=None, first=0, tag='', log_to_file=None, rank=None, gen_heartbeat=False, num_epochs=300,
                 test_freq=None, test_first=0, metric_is_pct=True, distributed_freq=None, distributed_first=0):
        freq = sys.maxsize if freq is None else freq
        test_freq = sys.maxsize if test_freq is None else test_freq
        distributed_freq = sys.maxsize if distributed_freq is None else distributed_freq
        super().__init__(freq, first, test_freq, test_first, distributed_freq, distributed_first)
        self.loss_since_start = 0
        self.metric_since_start = 0
        self.samples_since_start = 0
        self.updates_since_start = 0
        self.loss_since_last = 0
        self.metric_since_last = 0
        self.samples_since_last = 0
        self.total_updates = 0
        self.epochs = 0
        self.freq = freq
        self.first = first
        self.test_freq = test_freq
        self.tag = '' if not tag else "[{}] ".format(tag)
        self.epoch_start_time = time.time()
        self.progress_timer_time = 0
        self.log_to_file = log_to_file
        self.gen_heartbeat = gen_heartbeat
        self.num_epochs = num_epochs
        self.metric_is_pct = metric_is_pct
        self.metric_multiplier = 100.0 if metric_is_pct else 1.0
        self.logfilename = None
        if log_to_file is not None:
            self.logfilename = str(log_to_file) + ('rank' + str(rank) if rank is not None else '')
            print("Redirecting log to file " + self.logfilename)
            with open(self.logfilename, "w") as f:
                f.write(self.logfilename + "\n")
            self._logprint('CNTKCommandTrainInfo: train : ' + str(num_epochs))
            self._logprint('CNTKCommandTrainInfo: CNTKNoMoreCommands_Total : ' + str(num_epochs))
            self._logprint('CNTKCommandTrainBegin: train')
        if freq == 0:
            self._logprint(' average      since    average      since      examples')
            self._logprint('    loss       last     metric       last              ')
            self._logprint(' ------------------------------------------------------')

    # -- output -----------------------------------------------------------------------------
    def _logprint(self, line):
        if self.log_to_file is None:
            print(line)
        else:
            with open(self.logfilename, "a") as f:
                f.write(line + "\n")

    def log(self, message):
        """Write ``message`` to the log."""
        self._logprint(message)

    def end_progress_print(self, msg=""):
        """Mark the end of training in the log (and write ``msg`` when logging to a file)."""
        self._logprint('CNTKCommandTrainEnd: train')
        if msg != "" and self.log_to_file is not None:
            self._logprint(msg)

    def _heartbeat(self):
        if self.gen_heartbeat and time.time() - self.progress_timer_time > 10:
            print("PROGRESS: 0.00%")   # always to stdout, where job schedulers look for it
            self.progress_timer_time = time.time()

    # -- ProgressWriter hooks -------------------------------------------------------------
    def on_write_training_update(self, samples, updates, aggregate_loss, aggregate_metric):
        self._write_update(samples, updates, aggregate_loss, aggregate_metric, self.freq, '')

    def on_training_update_end(self):
        self._heartbeat()

    def on_write_test_update(self, samples, updates, aggregate_metric):
        self._write_update(samples, updates, None, aggregate_metric, self.test_freq, 'Evaluation ')

    def on_write_distributed_sync_update(self, samples, updates, aggregate_metric):
        self._logprint("Distributed training: #Syncs elapsed = {}, #Samples elapsed = {}".format(
            updates[1] - updates[0], samples[1] - samples[0]))

    def write(self, key, value):
        """Log a named value, e.g. "Learning rate per minibatch: 0.1" (learners report these)."""
        self._logprint("{}: {}".format(key, value))

    def _write_update(self, samples, updates, aggregate_loss, aggregate_metric, frequency, name):
        if frequency == 0:
            # geometric schedule: averages since the start of the epoch and over the last window
            line = ' '
            if aggregate_loss is not None:
                line += '{:8.3g}   {:8.3g}   '.format(_avg(aggregate_loss[1], samples[1]),
                                                      _avg(aggregate_loss, samples))
            else:
                line += '{:8s}   {:8s}   '.format('', '')
            if aggregate_metric is not None:
                line += '{:8.3g}   {:8.3g}   '.format(_avg(aggregate_metric[1], samples[1]),
                                                      _avg(aggregate_metric, samples))
            else:
                line += '{:8s}   {:8s}   '.format('', '')
            line += ' {:10d}'.format(samples[1])
        else:
            line = ' {}Minibatch[{:4d}-{:4d}]: '.format(name, updates[0] + 1, updates[1])
            count = samples[1] - samples[0]
            if aggregate_loss is not None:
                line += 'loss = {:0.6f} * {:d}'.format(_avg(aggregate_loss, samples), count)
            if aggregate_metric is not None:
                if aggregate_loss is not None:
                    line += ', '
                value = _avg(aggregate_metric, samples) * self.metric_multiplier
                line += ('metric = {:0.2f}% * {:d}' if self.metric_is_pct else 'metric = {:0.6f} * {:d}').format(
                    value, count)
            line += ';'
        self._logprint(line)

    def on_write_training_summary(self, samples, updates, summaries, aggregate_loss, aggregate_metric,
                                  elapsed_milliseconds):
        if self.freq == 0:
            return   # the geometric table has no epoch summaries
        seconds = elapsed_milliseconds / 1000
        speed = _avg(samples, seconds)
        loss = _avg(aggregate_loss, samples)
        if aggregate_metric is not None:
            metric = _avg(aggregate_metric, samples) * self.metric_multiplier
            fmt = ("Finished Epoch[{} of {}]: {}loss = {:0.6f} * {}, metric = "
                   + ("{:0.2f}% * {}" if self.metric_is_pct else "{:0.6f} * {}")
                   + " {:0.3f}s ({:5.1f} samples/s);")
            msg = fmt.format(summaries, self.num_epochs, self.tag, loss, samples, metric, samples, seconds, speed)
        else:
            msg = "Finished Epoch[{} of {}]: {}loss = {:0.6f} * {} {:0.3f}s ({:5.1f} samples/s);".format(
                summaries, self.num_epochs, self.tag, loss, samples, seconds, speed)
        self._logprint(msg)

    def on_write_test_summary(self, samples, updates, summaries, aggregate_metric, elapsed_milliseconds):
        fmt = ("Finished Evaluation [{}]: Minibatch[1-{}]: metric = {:0.2f}% * {};" if self.metric_is_pct else
               "Finished Evaluation [{}]: Minibatch[1-{}]: metric = {:0.6f} * {};")
        self._logprint(fmt.format(summaries, updates, _avg(aggregate_metric, samples) * self.metric_multiplier,
                                  samples))

    # -- the deprecated manual interface (before progress writers were given to the Trainer) ---
    def update(self, loss, minibatch_size, metric=None):
        """DEPRECATED: record a minibatch's average ``loss`` (and ``metric``) over ``minibatch_size``
        samples yourself; prints on the printer's schedule."""
        if self.total_updates == 0:
            _warn_deprecated('The method was deprecated.')
        if minibatch_size == 0:
            return
        self.samples_since_start += minibatch_size
        self.samples_since_last += minibatch_size
        self.loss_since_start += loss * minibatch_size
        self.loss_since_last += loss * minibatch_size
        self.updates_since_start += 1
        self.total_updates += 1
        if metric is not None:
            self.metric_since_start += metric * minibatch_size
            self.metric_since_last += metric * minibatch_size
        self._heartbeat()
        n = self.updates_since_start
        due = (self.freq == 0 and ((n + 1) & n) == 0) or \
            (self.freq > 0 and (n % self.freq == 0 or n <= self.first))
        if due:
            samples = (self.samples_since_start - self.samples_since_last, self.samples_since_start)
            updates = None
            if self.freq > 0:
                first_update = n if n <= self.first else max(n - self.freq, self.first)
                updates = (first_update, n)
            loss_pair = (self.loss_since_start - self.loss_since_last, self.loss_since_start)
            metric_pair = None if metric is None else \
                (self.metric_since_start - self.metric_since_last, self.metric_since_start)
            self.on_write_training_update(samples, updates, loss_pair, metric_pair)
            self._reset_last()

    def update_with_trainer(self, trainer, with_metric=False):
        """DEPRECATED: ``update`` from the trainer's previous minibatch (pass the printer to the
        Trainer instead)."""
        if self.total_updates == 0:
            _warn_deprecated('Inefficient. Please pass an instance of ProgressPrinter to Trainer upon construction.')
        if trainer is not None and trainer.previous_minibatch_sample_count != 0:
            self.update(trainer.previous_minibatch_loss_average, trainer.previous_minibatch_sample_count,
                        trainer.previous_minibatch_evaluation_average if with_metric else None)

    def epoch_summary(self, with_metric=False):
        """DEPRECATED: print an epoch summary of what ``update`` recorded and reset it."""
        _warn_deprecated('The method was deprecated.')
        self.epochs += 1
        now = time.time()
        elapsed_ms = (now - self.epoch_start_time) * 1000
        self.epoch_start_time = now
        metric = self.metric_since_start if with_metric else None
        self.on_write_training_summary(self.samples_since_start, self.updates_since_start, self.epochs,
                                       self.loss_since_start, metric, elapsed_ms)
        if self.freq > 0:
            return self.reset_start()

    def avg_loss_since_start(self):
        """DEPRECATED: average loss recorded by ``update`` since the start."""
        return _avg(self.loss_since_start, self.samples_since_start)

    def avg_metric_since_start(self):
        """DEPRECATED: average metric recorded by ``update`` since the start."""
        return _avg(self.metric_since_start, self.samples_since_start)

    def avg_loss_since_last(self):
        """DEPRECATED: average loss recorded by ``update`` since the last print."""
        return _avg(self.loss_since_last, self.samples_since_last)

    def avg_metric_since_last(self):
        """DEPRECATED: average metric recorded by ``update`` since the last print."""
        return _avg(self.metric_since_last, self.samples_since_last)

    def reset_start(self):
        """DEPRECATED: reset the since-start totals; returns (avg loss, avg metric, samples) before."""
        ret = self.avg_loss_since_start(), self.avg_metric_since_start(), self.samples_since_start
        self.loss_since_start = self.metric_since_start = self.samples_since_start = self.updates_since_start = 0
        return ret

    def reset_last(self):
        """DEPRECATED: reset the since-last-print totals; returns (avg loss, avg metric, samples) before."""
        return self._reset_last()

    def _reset_last(self):
        ret = self.avg_loss_since_last(), self.avg_metric_since_last(), self.samples_since_last
        self.loss_since_last = self.metric_since_last = self.samples_since_last = 0
        return ret


def log_number_of_parameters(model, trace_level=0):
    """Print how many parameter values (and tensors) ``model`` has; with ``trace_level`` > 0 also
    each parameter's shape."""
    parameters = model.parameters
    if any(d < 0 for p in parameters for d in p.shape):
        total = 'so far unspecified number of'
    else:
        total = sum(reduce(mul, tuple(p.shape) + (1,)) for p in parameters)
    print("Training {} parameters in {} parameter tensors.".format(total, len(parameters)))
    if trace_level > 0:
        print()
        for p in parameters:
            print("\t{}".format(p.shape))
