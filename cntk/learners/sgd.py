"""Plain, momentum and Nesterov SGD (CNTK 2.7's update rules, spec section 5.3)."""

import torch

from . import fused
from .base import Learner

__all__ = ["SGDLearner", "MomentumSGDLearner", "NesterovLearner"]


class SGDLearner(Learner):
    """``w -= eta * g``."""

    _kind = "sgd"

    def _apply(self, params, grads, step):
        torch._foreach_add_(params, grads, alpha=-step["eta"])


class _MomentumLearner(Learner):
    """Shared option handling of the learners with a (unit-gain) momentum schedule."""

    def __init__(self, parameters, lr, momentum, unit_gain, options=None):
        super().__init__(parameters, lr, options)
        self._momentum_schedule = momentum
        self._unit_gain = bool(unit_gain)

    def _beta_and_gain(self, M):
        beta = self._momentum(self._momentum_schedule, M)
        return beta, (1.0 - beta) if self._unit_gain else 1.0


class MomentumSGDLearner(_MomentumLearner):
    """``v = beta*v + ug*eta*g; w -= v`` (the learning rate is folded into v)."""

    _kind = "momentum_sgd"
    _state_names = ("v",)

    def _apply(self, params, grads, step):
        beta, gain = self._beta_and_gain(step["M"])
        v = self._state["v"]
        scale = gain * step["eta"]
        fuse, rest = fused.partition("sgd", params, grads, v) if beta != 0.0 else ([], range(len(params)))
        if fuse:
            pk = fused.pick
            fused.momentum_sgd_step(pk(params, fuse), pk(grads, fuse), pk(v, fuse), beta, scale)
            if not rest:
                return
            params, grads, v = (fused.pick(ts, rest) for ts in (params, grads, v))
        torch._foreach_mul_(v, beta)
        torch._foreach_add_(v, grads, alpha=scale)
        torch._foreach_sub_(params, v)


class NesterovLearner(_MomentumLearner):
    """``v = beta*v + ug*eta*g; w -= beta*v + ug*eta*g``."""

    _kind = "nesterov"
    _state_names = ("v",)

    def _apply(self, params, grads, step):
        beta, gain = self._beta_and_gain(step["M"])
        v = self._state["v"]
        torch._foreach_mul_(v, beta)
        torch._foreach_add_(v, grads, alpha=gain * step["eta"])
        torch._foreach_add_(params, v, alpha=-beta)
        torch._foreach_add_(params, grads, alpha=-gain * step["eta"])
