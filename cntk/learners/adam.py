"""Adam (and Adamax) and FSAdaGrad (CNTK 2.7's update rules, spec section 5.3)."""

import math

import torch

from . import fused
from .sgd import _MomentumLearner

__all__ = ["AdamLearner", "FSAdaGradLearner"]

FSADAGRAD_MAX_SCALE = 10.0


class _VarianceMomentumLearner(_MomentumLearner):
    """A momentum learner with a second (variance) momentum schedule."""

    _state_names = ("v", "s")

    def __init__(self, parameters, lr, momentum, unit_gain, variance_momentum, options=None):
        super().__init__(parameters, lr, momentum, unit_gain, options)
        self._variance_schedule = variance_momentum


class AdamLearner(_VarianceMomentumLearner):
    """``t += 1``; Adam: ``s = b2*s + (1-b2)*g^2, a = sqrt(s), bc = sqrt(1-b2^t)/(1-b^t)``; Adamax:
    ``s = max(b2*s, |g|), a = s, bc = 1/(1-b^t)``; then ``v = b*v + ug*g; w -= eta*bc*v/(a + eps)``."""

    _kind = "adam"

    def __init__(self, parameters, lr, momentum, unit_gain, variance_momentum, epsilon, adamax, options=None):
        super().__init__(parameters, lr, momentum, unit_gain, variance_momentum, options)
        self._eps = epsilon
        self._adamax = bool(adamax)
        self._t = 0

    def _apply(self, params, grads, step):
        M = step["M"]
        beta, gain = self._beta_and_gain(M)
        beta2 = self._momentum(self._variance_schedule, M)
        self._t += 1
        t = self._t
        v, s = self._state["v"], self._state["s"]
        if self._unit_gain and not self._adamax and 0.0 <= beta < 1.0 and 0.0 <= beta2 < 1.0 and beta2 ** t < 1.0:
            fuse, rest = fused.partition("adam", params, grads, v, s)
            if fuse:
                pk = fused.pick
                fused.adam_step(pk(params, fuse), pk(grads, fuse), pk(v, fuse), pk(s, fuse), t, step["eta"],
                                beta, beta2, self._eps)
                if not rest:
                    return
                params, grads, v, s = (fused.pick(ts, rest) for ts in (params, grads, v, s))
        if self._adamax:
            bc = 1.0 / (1.0 - beta ** t)
            torch._foreach_mul_(s, beta2)
            torch._foreach_maximum_(s, torch._foreach_abs(grads))
            denom = torch._foreach_add(s, self._eps)
        else:
            bc = math.sqrt(1.0 - beta2 ** t) / (1.0 - beta ** t)
            torch._foreach_mul_(s, beta2)
            torch._foreach_addcmul_(s, grads, grads, value=1.0 - beta2)
            denom = torch._foreach_sqrt(s)
            torch._foreach_add_(denom, self._eps)
        torch._foreach_mul_(v, beta)
        torch._foreach_add_(v, grads, alpha=gain)
        torch._foreach_addcdiv_(params, v, denom, value=-step["eta"] * bc)

    def _rule_scalars(self):
        return {"t": self._t}

    def _restore_rule_scalars(self, scalars):
        self._t = int(scalars.get("t", 0))


class FSAdaGradLearner(_VarianceMomentumLearner):
    """Per minibatch ``cnt = b2*cnt + (1-b2)*M``; per element ``s = b2*s + (1-b2)*g^2``, where
    ``s != 0``: ``g *= min(sqrt(cnt)/sqrt(s), 10)``; if ``b > 0``: ``v = b*v + ug*g, g = v``;
    ``w -= eta*g``."""

    _kind = "fsadagrad"

    def __init__(self, parameters, lr, momentum, unit_gain, variance_momentum, options=None):
        super().__init__(parameters, lr, momentum, unit_gain, variance_momentum, options)
        self._smoothed_count = 0.0

    def _apply(self, params, grads, step):
        M = step["M"]
        beta, gain = self._beta_and_gain(M)
        beta2 = self._momentum(self._variance_schedule, M)
        self._smoothed_count = beta2 * self._smoothed_count + (1.0 - beta2) * M
        mul = math.sqrt(self._smoothed_count)
        s = self._state["s"]
        torch._foreach_mul_(s, beta2)
        torch._foreach_addcmul_(s, grads, grads, value=1.0 - beta2)
        # min(mul/sqrt(s), 10), and 1 where s == 0 (the gradient is kept as is there)
        scale = torch._foreach_sqrt(s)
        torch._foreach_reciprocal_(scale)
        torch._foreach_mul_(scale, mul)
        torch._foreach_clamp_max_(scale, FSADAGRAD_MAX_SCALE)   # 1/0 = inf -> 10 ...
        for sc, sv in zip(scale, s):
            sc.masked_fill_(sv == 0, 1.0)                          # ... then 1 where s == 0
        g = torch._foreach_mul(grads, scale)
        if beta > 0:
            v = self._state["v"]
            torch._foreach_mul_(v, beta)
            torch._foreach_add_(v, g, alpha=gain)
            g = v
        torch._foreach_add_(params, g, alpha=-step["eta"])

    def _rule_scalars(self):
        return {"smoothed_count": self._smoothed_count}

    def _restore_rule_scalars(self, scalars):
        self._smoothed_count = float(scalars.get("smoothed_count", 0.0))
