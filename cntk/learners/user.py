"""Learners whose update is written by the user: ``UserLearner`` (Python) and ``universal`` (a
CNTK graph of ``assign`` ops)."""

import inspect

import torch

from .base import Learner, _as_parameter_list
from .schedules import TrainingParameterSchedule, learning_parameter_schedule

__all__ = ["UserLearner", "UniversalLearner", "universal"]


class UserLearner(Learner):
    """Base class of learners written in Python: subclass it and override
    ``update(gradient_values, training_sample_count, sweep_end) -> bool``, which receives
    ``{Parameter: gradient}`` (numpy arrays when ``as_numpy``, else NDArrayViews) and updates the
    parameters (e.g. ``p.value = ...``). Returning False signals that learning has finished."""

    _kind = "UserLearner"

    def __init__(self, parameters, lr_schedule, as_numpy=True):
        if type(self).update is Learner.update:
            raise TypeError("%s: a UserLearner subclass must override update(gradient_values, "
                            "training_sample_count, sweep_end)" % type(self).__name__)
        if not isinstance(lr_schedule, TrainingParameterSchedule):
            lr_schedule = learning_parameter_schedule(lr_schedule)
        super().__init__(parameters, lr_schedule)
        self.as_numpy = bool(as_numpy)

    def _update(self, grads, sample_count, is_sweep_end=False):
        from ..core import NDArrayView
        M = self._check_sample_count(sample_count)
        if M == 0:
            return False
        values = {}
        for p in self._parameters:
            if p not in grads:
                raise ValueError("%s: no gradient for parameter '%s'" % (type(self).__name__, p.name or p.uid))
            g = grads[p].detach()
            values[p] = g.cpu().numpy().copy() if self.as_numpy else NDArrayView._wrap(g.clone())
        result = self.update(values, M, bool(is_sweep_end))
        self._count_update(M, is_sweep_end)
        return bool(result)


class UniversalLearner(Learner):
    """Runs a graph of ``assign`` ops built by ``update_func(parameters, gradients)``; the gradient
    constants hold the raw gradients of the summed loss at every update."""

    _kind = "universal"

    def __init__(self, parameters, gradients, update_function):
        super().__init__(parameters, learning_parameter_schedule(1.0))
        self._gradients = list(gradients)
        self._function = update_function

    def _update(self, grads, sample_count, is_sweep_end=False):
        M = self._check_sample_count(sample_count)
        if M == 0:
            return False
        with torch.no_grad():
            for p, c in zip(self._parameters, self._gradients):
                if p not in grads:
                    raise ValueError("universal learner: no gradient for parameter '%s'" % (p.name or p.uid))
                c._tensor().copy_(grads[p])
        self._function.eval({})
        self._count_update(M, is_sweep_end)
        return True


def universal(update_func, parameters):
    """A learner whose update is a CNTK function: ``update_func(parameters, gradients)`` returns a
    Function of ``assign`` ops (``gradients`` are constants holding each parameter's gradient of
    the summed loss at every update)."""
    from ..variables import Constant
    from ..ops.functions import Function
    try:
        n_args = len(inspect.signature(update_func).parameters)
    except (TypeError, ValueError):
        raise TypeError("universal: update_func must be a function (parameters, gradients)") from None
    if n_args != 2:
        raise ValueError("universal: update_func must be a function that accepts two arguments "
                         "(parameters, gradients)")
    params = _as_parameter_list(parameters, "universal")
    gradients = []
    for p in params:
        if any(d < 0 for d in p.shape):
            raise ValueError("universal: parameter '%s' has inferred dimensions %s; create the learner after "
                             "all parameter shapes are known" % (p.name or p.uid, p.shape))
        gradients.append(Constant(0, shape=p.shape, dtype=p.dtype, name="grad"))
    result = update_func(params, gradients)
    if not isinstance(result, Function):
        raise TypeError("universal: update_func must return a Function (e.g. C.combine of assign ops), got %s"
                        % type(result).__name__)
    inputs = set(result.inputs)
    for p in params:
        if p not in inputs:
            raise ValueError("universal: the update function does not use parameter '%s'" % (p.name or p.uid))
    return UniversalLearner(params, gradients, result)
