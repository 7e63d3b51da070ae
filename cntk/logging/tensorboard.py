"""``TensorBoardProgressWriter``: training progress as TensorBoard event files (through
``torch.utils.tensorboard``, which needs the optional ``tensorboard`` package)."""

import sys

import numpy as np

from .progress_writer import ProgressWriter
from .progress_print import _avg

__all__ = ["TensorBoardProgressWriter"]


def _summary_writer(log_dir):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:   # torch raises ImportError naming tensorboard when it is missing
        raise ImportError("TensorBoardProgressWriter needs the 'tensorboard' package "
                          "(pip install tensorboard, or pip install cntk[tensorboard]): %s" % e) from None
    return SummaryWriter(log_dir=log_dir)


class TensorBoardProgressWriter(ProgressWriter):
    """Writes the average loss and metric of every ``freq`` training minibatches
    (``minibatch/avg_loss``, ``minibatch/avg_metric``), of every training summary
    (``summary/avg_loss``, ``summary/avg_metric``) and of test summaries to event files in
    ``log_dir``. ``freq=None`` writes summaries only. With ``rank`` other than None or 0 nothing
    is written (one writer per distributed job). ``model`` is recorded as a text description."""

    def __init__(self, freq=None, log_dir='.', rank=None, model=None):
        if freq is not None and (isinstance(freq, bool) or not isinstance(freq, int) or freq <= 0):
            raise ValueError("TensorBoardProgressWriter: freq must be None or a positive int; got %r" % (freq,))
        super().__init__(sys.maxsize if freq is None else freq, 0, sys.maxsize, 0, sys.maxsize, 0)
        self.freq = sys.maxsize if freq is None else freq
        self.writer = _summary_writer(log_dir) if not rank else None
        self.closed = False
        self._summaries = 0
        if self.writer is not None and model is not None:
            self.writer.add_text("model", "```\n%s\n```" % _describe_model(model), 0)

    def _check_open(self):
        if self.closed:
            raise RuntimeError("Attempting to use a closed TensorBoardProgressWriter")

    def write_value(self, name, value, step):
        """Record the scalar ``value`` of ``name`` at ``step``."""
        self._check_open()
        if self.writer is not None:
            self.writer.add_scalar(str(name), float(value), int(step))

    def write_image(self, name, data, step):
        """Record a batch of images (N, C, H, W), given as an array or as a {variable: array}
        map (the form CNTK takes), at ``step``. Values above 1 are taken as 0-255 pixels."""
        self._check_open()
        if isinstance(data, dict):
            if len(data) != 1:
                raise ValueError("write_image: give one {variable: images} pair, got %d" % len(data))
            data = next(iter(data.values()))
        images = np.asarray(getattr(data, "asarray", lambda: data)(), dtype=np.float32)
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[1] not in (1, 3, 4):
            raise ValueError("write_image: expected images of shape (N, C, H, W) with 1, 3 or 4 channels; got %s"
                             % (images.shape,))
        if images.size and images.max() > 1.0:
            images = images / 255.0
        if self.writer is not None:
            self.writer.add_images(str(name), np.clip(images, 0.0, 1.0), int(step), dataformats="NCHW")

    def flush(self):
        """Write out everything recorded so far."""
        self._check_open()
        if self.writer is not None:
            self.writer.flush()

    def close(self):
        """Flush and close the event file; the writer cannot be used afterwards."""
        self._check_open()
        if self.writer is not None:
            self.writer.close()
        self.closed = True

    def on_write_training_update(self, samples, updates, aggregate_loss, aggregate_metric):
        step = self.total_training_updates()
        self.write_value('minibatch/avg_loss', _avg(aggregate_loss, samples), step)
        self.write_value('minibatch/avg_metric', _avg(aggregate_metric, samples), step)

    def on_write_training_summary(self, samples, updates, summaries, aggregate_loss, aggregate_metric,
                                  elapsed_milliseconds):
        self._summaries = summaries
        self.write_value('summary/avg_loss', _avg(aggregate_loss, samples), summaries)
        self.write_value('summary/avg_metric', _avg(aggregate_metric, samples), summaries)

    def on_write_test_summary(self, samples, updates, summaries, aggregate_metric, elapsed_milliseconds):
        metric = _avg(aggregate_metric, samples)
        if self.total_training_updates() != 0:
            # stepped by training minibatches, so that test and training curves line up
            self.write_value('minibatch/test_avg_metric', metric, self.total_training_updates())
        else:
            self.write_value('summary/test_avg_metric', metric, summaries)

    def write(self, key, value):
        """Named values (e.g. a learner's learning rate) go in as scalars at the current update."""
        if not self.closed:
            self.write_value(key, value, self.total_training_updates())


def _describe_model(model):
    lines = [repr(model)]
    for p in getattr(model, "parameters", []):
        lines.append("  %s %s" % (p.name or p.uid, tuple(p.shape)))
    return "\n".join(lines)
