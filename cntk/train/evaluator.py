"""``Evaluator``: the average of an evaluation function over minibatches, with progress
reporting (CNTK's ``cntk.eval.Evaluator``); the Trainer tests through the same code."""

import math

import torch

from . import criterion as _crit
from .minibatch_args import prepare_arguments

__all__ = ["Evaluator"]


def _writer_list(progress_writers):
    if progress_writers is None:
        return []
    if not isinstance(progress_writers, (list, tuple)):
        progress_writers = [progress_writers]
    from ..logging import ProgressWriter
    for w in progress_writers:
        if not isinstance(w, ProgressWriter):
            raise TypeError("progress_writers must be ProgressWriter objects (cntk.logging), got %s"
                            % type(w).__name__)
    return list(progress_writers)


class Evaluator:
    """Evaluates ``eval_function`` on minibatches: ``test_minibatch`` returns the average per
    sample (summed over the valid samples, divided by their number) and reports to the
    ``progress_writers``; ``summarize_test_progress`` writes the summary since the last one."""

    def __init__(self, eval_function, progress_writers=None):
        if eval_function is None:
            raise ValueError("Evaluator: the evaluation function must not be None")
        self._init_eval(_crit.as_function(eval_function, "Evaluator: eval_function"), progress_writers)
        self._combined = self._evaluation_function

    def _init_eval(self, eval_function, progress_writers):
        self._evaluation_function = eval_function
        self._progress_writers = _writer_list(progress_writers)
        self._test_total = None         # summed metric since the last test summary (a tensor)
        if eval_function is not None:
            self._metric_var = _crit.criterion_output(eval_function, "evaluation")
            self._test_count_var = _crit.test_count_variable(eval_function)
            outs = [self._metric_var]
            if self._test_count_var is not self._metric_var:
                outs.append(self._test_count_var)
            self._test_outputs = outs

    @property
    def evaluation_function(self):
        """The evaluation function (None for a Trainer without one)."""
        return self._evaluation_function

    @property
    def progress_writers(self):
        """The progress writers this object reports to."""
        return list(self._progress_writers)

    def _test(self, arguments, device):
        """(summed metric tensor, sample count) of one minibatch; (None, 0) for no data."""
        if self._evaluation_function is None:
            raise ValueError("test_minibatch: there is no evaluation function (the criterion gave a loss only)")
        arguments, _ = prepare_arguments(self._combined, self._argument_order(), arguments)
        if not arguments:
            return None, 0
        with torch.no_grad():
            _, values, layouts, _ = self._combined._run(arguments, self._test_outputs, device, training=False)
        total = _crit.total(self._metric_var, values[0], layouts)
        count = _crit.sample_count(self._test_count_var, values[-1], layouts)
        return total, count

    def _argument_order(self):
        return self._evaluation_function.arguments

    def test_minibatch(self, arguments, device=None, distributed=False):
        """The average of the evaluation function per sample over the minibatch ``arguments``
        ({input: data}, or the data alone for a single input). With ``distributed=True`` the sum
        and the count are added up over the workers of an initialized torch.distributed group."""
        total, count = self._test(arguments, device)
        if distributed and total is not None:
            total, count = _all_reduce(total, count)
        if count == 0:
            return math.nan
        self._update_test_progress(count, total)
        return float(total) / count

    def _update_test_progress(self, count, total):
        total = total.detach()
        self._test_total = total.clone() if self._test_total is None else self._test_total + total
        for w in self._progress_writers:
            w.update_test(count, self._test_total)

    def summarize_test_progress(self):
        """Write the summary of the test minibatches since the last summary to the progress writers."""
        for w in self._progress_writers:
            w.write_test_summary(self._test_total)
        self._test_total = None


def _all_reduce(total, count):
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return total, count    # a single worker: its own numbers are the aggregate
    buf = torch.stack([total.double().reshape(()), torch.tensor(float(count), dtype=torch.float64,
                                                                 device=total.device)])
    dist.all_reduce(buf)
    return buf[0].to(total.dtype), int(round(float(buf[1])))
