"""``Trainer``: one minibatch at a time, the gradient of the summed loss handed to the learners,
with CNTK 2.7's sample counting, progress reporting and checkpoints."""

import sys

import torch

from . import criterion as _crit
from . import checkpoint as _checkpoint
from .evaluator import Evaluator
from .minibatch_args import prepare_arguments
from ..engine.graph import Variable
from ..ops.functions import Function

__all__ = ["Trainer"]

_UNIT_ATTRS = ("total_number_of_samples_seen", "total_number_of_minibatches_seen", "total_number_of_sweeps_seen")


def _loss_and_metric(criterion):
    """(loss Function, metric Function or None) from a criterion: a Function with one or two
    outputs, or a (loss, metric) tuple whose members are Functions or Variables (metric may be None)."""
    if isinstance(criterion, Function):
        parts = tuple(criterion.outputs)
    elif isinstance(criterion, Variable):
        parts = (criterion,)
    elif isinstance(criterion, (tuple, list)):
        parts = tuple(criterion)
    else:
        raise TypeError("Trainer: criterion must be a Function with one or two outputs or a (loss, metric) tuple, "
                        "got %s" % type(criterion).__name__)
    if len(parts) == 1:
        parts = parts + (None,)
    if len(parts) != 2:
        raise ValueError("Trainer: criterion must be a singleton or a tuple of 2 elements (loss, metric); got %d"
                         % len(parts))
    if parts[0] is None:
        raise ValueError("Trainer: the loss must not be None")
    return _crit.as_function(parts[0], "Trainer: the loss"), _crit.as_function(parts[1], "Trainer: the metric")


def _learner_list(parameter_learners):
    if parameter_learners is None:
        return []
    if not isinstance(parameter_learners, (list, tuple)):
        parameter_learners = [parameter_learners]
    for i, l in enumerate(parameter_learners):
        if not hasattr(l, "parameters") or not (hasattr(l, "_update") or hasattr(l, "update")):
            raise TypeError("Trainer: parameter_learners[%d] is not a learner (cntk.learners), got %s"
                            % (i, type(l).__name__))
    return list(parameter_learners)


def _names(params):
    return ", ".join("'%s'" % (p.name or p.uid) for p in params)


class Trainer(Evaluator):
    """Trains ``model``'s parameters on the ``criterion`` (a loss, or loss and metric) with the
    ``parameter_learners``, each updating its own parameters (a parameter may belong to one
    learner only; parameters no learner has stay as they are).

    Every ``train_minibatch`` runs the criterion forward and backward once and gives each learner
    the gradient of the loss summed over the valid samples of the minibatch, with that number of
    samples (the valid cells of the loss's dynamic axes: sequence padding does not count)."""

    def __init__(self, model, criterion, parameter_learners, progress_writers=None):
        loss, metric = _loss_and_metric(criterion)
        self._model = _crit.as_function(model, "Trainer: model") if model is not None else None
        self._loss_function = loss
        self._init_eval(metric, progress_writers)
        self._loss_var = _crit.criterion_output(loss, "loss")
        self._count_var = _crit.training_count_variable(loss)
        self._learners = _learner_list(parameter_learners)

        outs = []
        for v in (list(self._model.outputs) if self._model is not None else []) + [self._loss_var] + \
                (self._test_outputs if metric is not None else []) + [self._count_var]:
            if not any(v is u for u in outs):
                outs.append(v)
        self._combined = Function(outs)
        self._train_outputs = [self._loss_var] + ([self._metric_var] if metric is not None else [])
        if not any(self._count_var is u for u in self._train_outputs):
            self._train_outputs.append(self._count_var)
        self._count_index = next(i for i, u in enumerate(self._train_outputs) if u is self._count_var)
        self._check_learners()

        self._samples = self._minibatches = self._sweeps = 0
        self._prev_count = 0
        self._prev_loss = self._prev_metric = None
        self._train_loss_total = self._train_metric_total = None
        self._reported = {}

    def _check_learners(self):
        model_params = self._combined.parameters
        in_model = {id(p) for p in model_params}
        owner = {}
        for i, learner in enumerate(self._learners):
            params = list(learner.parameters)
            foreign = [p for p in params if id(p) not in in_model]
            if foreign:
                raise ValueError("Trainer: %d of the parameters of learner %d (%s) are not part of the model and "
                                 "criterion being trained" % (len(foreign), i, _names(foreign)))
            for p in params:
                if id(p) in owner and owner[id(p)] != i:
                    raise ValueError("Trainer: the parameter '%s' is given to learner %d and to learner %d; each "
                                     "parameter may have one learner only" % (p.name or p.uid, owner[id(p)], i))
                owner[id(p)] = i
        self._learner_params = [p for p in model_params if id(p) in owner]
        frozen = len(model_params) - len(self._learner_params)
        if frozen:
            from ..logging import get_trace_level, TraceLevel
            if get_trace_level() >= TraceLevel.Warning:
                sys.stderr.write("[Note:] Trainer ctor: %d of the model parameters are not covered by any of the "
                                 "specified Learners; these parameters will not be learned\n" % frozen)

    # -- properties ------------------------------------------------------------------------
    @property
    def model(self):
        """The model being trained (None if only a criterion was given)."""
        return self._model

    @property
    def loss_function(self):
        """The loss function."""
        return self._loss_function

    @property
    def parameter_learners(self):
        """The learners."""
        return list(self._learners)

    @property
    def previous_minibatch_sample_count(self):
        """The number of samples in the last minibatch trained on (0 if it was empty)."""
        return self._prev_count

    @property
    def previous_minibatch_loss_average(self):
        """The loss summed over the last minibatch trained on, per sample."""
        if self._prev_count == 0:
            raise RuntimeError("There was no preceding call to train_minibatch or the minibatch was empty.")
        return float(self._prev_loss) / self._prev_count

    @property
    def previous_minibatch_evaluation_average(self):
        """The evaluation criterion summed over the last minibatch trained on, per sample."""
        if self._evaluation_function is None:
            raise ValueError("previous_minibatch_evaluation_average: the trainer has no evaluation function")
        if self._prev_count == 0:
            raise RuntimeError("There was no preceding call to train_minibatch or the minibatch was empty.")
        return float(self._prev_metric) / self._prev_count

    @property
    def total_number_of_samples_seen(self):
        """Samples trained on since the start (the first learner's count, as CNTK keeps it)."""
        return self._units_seen(0)

    def _units_seen(self, unit):
        """Samples (0), minibatches (1) or sweeps (2) trained on since the start."""
        if self._learners:
            v = getattr(self._learners[0], _UNIT_ATTRS[unit], None)
            if v is not None:
                return int(v() if callable(v) else v)
        return (self._samples, self._minibatches, self._sweeps)[unit]

    def _argument_order(self):
        order = list(self._loss_function.arguments)
        for f in (self._model, self._evaluation_function):
            if f is not None:
                order += [a for a in f.arguments if not any(a is b for b in order)]
        return order

    # -- training --------------------------------------------------------------------------
    def train_minibatch(self, arguments, outputs=None, device=None, is_sweep_end=None):
        """Train on one minibatch: ``arguments`` maps inputs (or their names) to data (numpy
        arrays, lists of sequences, Values or a reader's MinibatchData); a list gives the data in
        the loss's argument order; an empty map marks the end of the data. ``is_sweep_end``
        overrides the sweep-end flag of MinibatchData. Returns whether any learner updated, or
        ``(updated, {output: value})`` when ``outputs`` are requested."""
        args, sweep_end = prepare_arguments(self._combined, self._argument_order(), arguments)
        if is_sweep_end is not None:
            sweep_end = bool(is_sweep_end)
        fetch = [o.output if isinstance(o, Function) else o for o in (outputs or [])]
        if not args:
            self._prev_count = 0
            return (False, {}) if outputs else False
        run_outs = self._train_outputs + [v for v in fetch if not any(v is u for u in self._train_outputs)]
        with torch.enable_grad():
            _, values, layouts, _ = self._combined._run(args, run_outs, device, training=True)
            loss_total = _crit.total(self._loss_var, values[0], layouts)
        count = _crit.sample_count(self._count_var, values[self._count_index], layouts)
        grads = self._gradients(loss_total)
        updated = False
        for i, learner in enumerate(self._learners):
            self._report_training_parameters(i, learner)
            g = {p: grads[p] for p in learner.parameters}
            if hasattr(learner, "_update"):
                updated = bool(learner._update(g, count, sweep_end)) or updated
            else:
                updated = bool(learner.update(g, count, sweep_end)) or updated
        self._prev_count = count
        self._prev_loss = loss_total.detach()
        self._prev_metric = _crit.total(self._metric_var, values[1], layouts).detach() \
            if self._evaluation_function is not None else None
        if count:
            self._samples += count
            self._minibatches += 1
            self._sweeps += int(sweep_end)
        self._update_training_progress(count)
        if not outputs:
            return updated
        from ..engine import feed as _feed
        result = {}
        for o, v in zip(outputs, fetch):
            t = values[next(i for i, u in enumerate(run_outs) if u is v)]
            result[o] = _feed.to_numpy(v, t, layouts)
        return updated, result

    def _gradients(self, loss_total):
        """{parameter: gradient of the summed loss} for the parameters the learners update."""
        params = self._learner_params
        if not params:
            return {}
        tensors = [p._tensor() for p in params]
        if loss_total.requires_grad:
            gs = torch.autograd.grad(loss_total, tensors, allow_unused=True)
        else:
            gs = [None] * len(tensors)
        return {p: (g if g is not None else torch.zeros_like(t)) for p, t, g in zip(params, tensors, gs)}

    def _report_training_parameters(self, i, learner):
        """As CNTK's learners do before each update: tell the progress writers the learning rate
        (and momentum) when it changes, e.g. "Learning rate per minibatch: 0.1"."""
        if not self._progress_writers:
            return
        reported = getattr(learner, "_reported_parameters", None)
        for name, value in (reported() if callable(reported) else ()):
            key = (i, name)
            if self._reported.get(key) != value:
                self._reported[key] = value
                for w in self._progress_writers:
                    w.write(name, value)

    def _update_training_progress(self, count):
        if count == 0:
            return
        self._train_loss_total = self._prev_loss.clone() if self._train_loss_total is None \
            else self._train_loss_total + self._prev_loss
        if self._prev_metric is not None:
            self._train_metric_total = self._prev_metric.clone() if self._train_metric_total is None \
                else self._train_metric_total + self._prev_metric
        for w in self._progress_writers:
            w.update_training(count, self._train_loss_total, self._train_metric_total)

    def summarize_training_progress(self):
        """Write the summary of the training since the last summary to the progress writers."""
        for w in self._progress_writers:
            w.write_training_summary(self._train_loss_total, self._train_metric_total)
        self._train_loss_total = self._train_metric_total = None

    # -- checkpoints -----------------------------------------------------------------------
    def save_checkpoint(self, filename, external_state={}):
        """Save the model to ``filename`` and the trainer state (learners, counters, random
        generators, ``external_state``) to ``filename + '.ckp'``, each atomically."""
        _checkpoint.save_checkpoint(self, filename, external_state)

    def restore_from_checkpoint(self, filename):
        """Restore the model parameters and the trainer state saved by ``save_checkpoint``;
        returns the external state saved with it."""
        return _checkpoint.restore_checkpoint(self, filename)

    def _counters_state(self):
        return {"samples": self._samples, "minibatches": self._minibatches, "sweeps": self._sweeps}

    def _restore_counters(self, state):
        self._samples, self._minibatches, self._sweeps = state["samples"], state["minibatches"], state["sweeps"]
        self._prev_count = 0
        self._prev_loss = self._prev_metric = None
