"""``ProgressBar``: an interactive progress bar (tqdm) for training and testing; an addition of
ours, not part of CNTK 2.7."""

import sys

from .progress_writer import ProgressWriter
from .progress_print import _avg

__all__ = ["ProgressBar"]


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError("ProgressBar needs the 'tqdm' package (pip install tqdm, or pip install cntk[progress])") \
            from None
    return tqdm


class ProgressBar(ProgressWriter):
    """Shows a progress bar that advances with every training (and test) minibatch, with the
    average loss and metric of the current epoch, and starts a new bar at every training summary.

    Pass it among the progress writers of a Trainer (or the ``callbacks`` of ``Function.train``),
    alone or next to a ``ProgressPrinter``. ``epoch_size``: samples per epoch (the bar's total;
    None: an open-ended counter). ``metric_is_pct`` shows the metric as a percentage. ``file``:
    where to draw (stderr by default). ``disable=True`` turns it off (e.g. when not interactive).
    """

    def __init__(self, epoch_size=None, metric_is_pct=True, desc='Epoch', file=None, leave=True, disable=False):
        super().__init__(1, 0, 1, 0, None, 0)
        self._tqdm = _tqdm()
        self.epoch_size = epoch_size
        self.metric_multiplier = 100.0 if metric_is_pct else 1.0
        self.metric_suffix = '%' if metric_is_pct else ''
        self.desc = desc
        self.file = file if file is not None else sys.stderr
        self.leave = leave
        self.disable = disable
        self._bar = None
        self._test_bar = None
        self._epoch = 1

    def _new_bar(self, desc, total):
        return self._tqdm(total=total, desc=desc, unit='samples', file=self.file, leave=self.leave,
                          disable=self.disable, dynamic_ncols=True)

    def on_write_training_update(self, samples, updates, aggregate_loss, aggregate_metric):
        if self._bar is None:
            self._bar = self._new_bar('%s %d' % (self.desc, self._epoch), self.epoch_size)
        self._bar.update(samples[1] - samples[0])
        self._bar.set_postfix_str('loss = %.4g, metric = %.4g%s' % (
            _avg(aggregate_loss[1], samples[1]), _avg(aggregate_metric[1], samples[1]) * self.metric_multiplier,
            self.metric_suffix), refresh=False)

    def on_write_training_summary(self, samples, updates, summaries, aggregate_loss, aggregate_metric,
                                  elapsed_milliseconds):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._epoch = summaries + 1

    def on_write_test_update(self, samples, updates, aggregate_metric):
        if self._test_bar is None:
            self._test_bar = self._new_bar('Evaluation', None)
        self._test_bar.update(samples[1] - samples[0])
        self._test_bar.set_postfix_str('metric = %.4g%s' % (
            _avg(aggregate_metric[1], samples[1]) * self.metric_multiplier, self.metric_suffix), refresh=False)

    def on_write_test_summary(self, samples, updates, summaries, aggregate_metric, elapsed_milliseconds):
        if self._test_bar is not None:
            self._test_bar.close()
            self._test_bar = None

    def close(self):
        """Close any open bar."""
        for bar in (self._bar, self._test_bar):
            if bar is not None:
                bar.close()
        self._bar = self._test_bar = None
