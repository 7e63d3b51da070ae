"""AdaGrad, RMSProp and AdaDelta (CNTK 2.7's update rules, spec section 5.3)."""

import torch

from .base import Learner

__all__ = ["AdaGradLearner", "RMSPropLearner", "AdaDeltaLearner"]

ADAGRAD_FLOOR = 1e-16
RMSPROP_FLOOR = 1e-6
RMSPROP_INITIAL_STEP = 0.02


def _means(tensors):
    """The mean of each tensor, as Python floats (one device sync for all of them)."""
    return torch.stack([t.mean() for t in tensors]).tolist()


class AdaGradLearner(Learner):
    """``s += g^2; w -= (eta/m) * g/sqrt(s + 1e-16)``, ``m`` = mean of ``1/sqrt(s + 1e-16)`` over the
    parameter's elements (``need_ave_multiplier``) or 1."""

    _kind = "adagrad"
    _state_names = ("s",)

    def __init__(self, parameters, lr, need_ave_multiplier, options=None):
        super().__init__(parameters, lr, options)
        self._need_ave = bool(need_ave_multiplier)

    def _apply(self, params, grads, step):
        s = self._state["s"]
        torch._foreach_addcmul_(s, grads, grads)
        denom = torch._foreach_add(s, ADAGRAD_FLOOR)
        torch._foreach_sqrt_(denom)
        direction = torch._foreach_div(grads, denom)
        eta = step["eta"]
        if self._need_ave:
            torch._foreach_reciprocal_(denom)
            torch._foreach_mul_(direction, [-eta / m for m in _means(denom)])
        else:
            torch._foreach_mul_(direction, -eta)
        torch._foreach_add_(params, direction)


class RMSPropLearner(Learner):
    """Per element: ``avg = gamma*avg + (1-gamma)*g^2``; the step grows by ``inc`` (up to ``max``)
    while the gradient keeps its sign and shrinks by ``dec`` (down to ``min``) otherwise; then
    ``w -= (eta/m) * g*step/sqrt(avg + 1e-6)``, ``m`` = mean of ``step/sqrt(avg + 1e-6)`` or 1.
    The first update starts from ``avg = g^2``, ``step = 0.02`` and no previous sign."""

    _kind = "rmsprop"
    _state_names = ("avg", "step", "sign")

    def __init__(self, parameters, lr, gamma, inc, dec, max, min, need_ave_multiplier, options=None):  # noqa: A002
        super().__init__(parameters, lr, options)
        self._gamma, self._inc, self._dec, self._max, self._min = gamma, inc, dec, max, min
        self._need_ave = bool(need_ave_multiplier)
        self._updates = 0   # CNTK's smoothed count: minibatches seen (0 = the moving average is unset)

    def _apply(self, params, grads, step):
        avg, steps, signs = self._state["avg"], self._state["step"], self._state["sign"]
        if self._updates == 0:
            torch._foreach_copy_(avg, torch._foreach_mul(grads, grads))
            for t in steps:
                t.fill_(RMSPROP_INITIAL_STEP)
        self._updates += 1
        g = self._gamma
        torch._foreach_mul_(avg, g)
        torch._foreach_addcmul_(avg, grads, grads, value=1.0 - g)
        new_signs = torch._foreach_sign(grads)
        for st, old, new in zip(steps, signs, new_signs):
            same = (old * new) > 0
            st.copy_(torch.where(same, (st * self._inc).clamp_(max=self._max), (st * self._dec).clamp_(min=self._min)))
        torch._foreach_copy_(signs, new_signs)
        scale = torch._foreach_add(avg, RMSPROP_FLOOR)
        torch._foreach_sqrt_(scale)
        torch._foreach_div_(scale, steps)
        torch._foreach_reciprocal_(scale)          # step / sqrt(avg + floor)
        direction = torch._foreach_mul(grads, scale)
        eta = step["eta"]
        if self._need_ave:
            torch._foreach_mul_(direction, [-eta / m for m in _means(scale)])
        else:
            torch._foreach_mul_(direction, -eta)
        torch._foreach_add_(params, direction)

    def _rule_scalars(self):
        return {"updates": self._updates}

    def _restore_rule_scalars(self, scalars):
        self._updates = int(scalars.get("updates", 0))


class AdaDeltaLearner(Learner):
    """``s = rho*s + (1-rho)*g^2; d = -sqrt(x2 + eps)/sqrt(s + eps)*g; x2 = rho*x2 + (1-rho)*d^2;
    w += eta*d``."""

    _kind = "adadelta"
    _state_names = ("s", "x2")

    def __init__(self, parameters, lr, rho, epsilon, options=None):
        super().__init__(parameters, lr, options)
        self._rho, self._eps = rho, epsilon

    def _apply(self, params, grads, step):
        s, x2 = self._state["s"], self._state["x2"]
        rho, eps = self._rho, self._eps
        torch._foreach_mul_(s, rho)
        torch._foreach_addcmul_(s, grads, grads, value=1.0 - rho)
        num = torch._foreach_add(x2, eps)
        torch._foreach_sqrt_(num)
        den = torch._foreach_add(s, eps)
        torch._foreach_sqrt_(den)
        torch._foreach_div_(num, den)
        delta = torch._foreach_mul(num, grads)
        torch._foreach_neg_(delta)
        torch._foreach_mul_(x2, rho)
        torch._foreach_addcmul_(x2, delta, delta, value=1.0 - rho)
        torch._foreach_add_(params, delta, alpha=step["eta"])
