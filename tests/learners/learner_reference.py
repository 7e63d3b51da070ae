"""A plain numpy implementation of CNTK 2.7's learner update rules (spec sections 5.2 and 5.3),
written independently of cntk.learners for the tests to compare against.

Not a test module: ``tests/learners/test_learner_rules.py`` imports it.
"""

import math

import numpy as np


class Schedule:
    """values: list of (count, value); epoch: samples per unit (0 = sweeps); ref: N (0 = IGNORE)."""

    def __init__(self, values, epoch=0, ref=0):
        self.values, self.epoch, self.ref = values, epoch, ref

    def at(self, samples, sweeps):
        count = sweeps if self.epoch == 0 else samples
        unit = 1 if self.epoch == 0 else self.epoch
        end = 0
        for n, v in self.values:
            end += unit * (n or 1)
            if count < end:
                return v
        return self.values[-1][1]


class Reference:
    """One learner over a list of numpy parameters (updated in place)."""

    def __init__(self, rule, params, lr, momentum=None, variance=None, unit_gain=True, learner_mb=None,
                 l1=0.0, l2=0.0, clip=math.inf, truncate=True, **hyper):
        self.rule, self.params, self.lr = rule, params, lr
        self.momentum, self.variance, self.unit_gain = momentum, variance, unit_gain
        self.mean_mode = learner_mb == 0
        self.l1, self.l2, self.clip, self.truncate = l1, l2, clip, truncate
        self.hyper = hyper
        self.samples = self.sweeps = 0
        self.t = 0
        self.count = 0.0
        z = [np.zeros_like(p) for p in params]
        self.v, self.s, self.x2 = [a.copy() for a in z], [a.copy() for a in z], [a.copy() for a in z]
        self.step = [np.full_like(p, 0.02) for p in params]
        self.sign = [a.copy() for a in z]

    def _beta(self, sched, M):
        b = sched.at(self.samples, self.sweeps)
        return b if sched.ref == 0 else b ** (M / sched.ref)

    def update(self, grads, M, sweep_end=False):
        lr = self.lr.at(self.samples, self.sweeps)
        eta_sum = lr / (M if self.lr.ref == 0 else self.lr.ref)
        scale = 1.0 / M if self.mean_mode else 1.0
        eta = eta_sum / scale
        if self.rule in ("adam", "adamax", "rmsprop"):
            self.t += 1
        if self.rule == "fsadagrad":
            b2 = self._beta(self.variance, M)
            self.count = b2 * self.count + (1 - b2) * M
        for i, (w, g) in enumerate(zip(self.params, grads)):
            g = g * scale
            T = self.clip * M * scale
            if math.isfinite(T):
                if self.truncate:
                    g = np.clip(g, -T, T)
                else:
                    n = np.sqrt(np.sum(g * g))
                    if n > T:
                        g = g * (T / n)
            g = g + self.l2 * M * scale * w
            w -= self._rule(i, w, g, M, eta)
            if self.l1 > 0:
                tau = eta_sum * self.l1 * M
                w[...] = np.sign(w) * np.maximum(np.abs(w) - tau, 0.0)
        self.samples += M
        self.sweeps += bool(sweep_end)

    def _rule(self, i, w, g, M, eta):
        """The decrement of w."""
        r = self.rule
        if r == "sgd":
            return eta * g
        if r in ("momentum_sgd", "nesterov", "adam", "adamax", "fsadagrad"):
            beta = self._beta(self.momentum, M)
            ug = (1 - beta) if self.unit_gain else 1.0
        if r == "momentum_sgd":
            self.v[i] = beta * self.v[i] + ug * eta * g
            return self.v[i]
        if r == "nesterov":
            self.v[i] = beta * self.v[i] + ug * eta * g
            return beta * self.v[i] + ug * eta * g
        if r == "adagrad":
            self.s[i] = self.s[i] + g * g
            d = np.sqrt(self.s[i] + 1e-16)
            m = np.mean(1 / d) if self.hyper.get("need_ave_multiplier", True) else 1.0
            return eta / m * g / d
        if r == "rmsprop":
            h = self.hyper
            if self.t == 1:
                self.s[i] = g * g
            self.s[i] = h["gamma"] * self.s[i] + (1 - h["gamma"]) * g * g
            same = np.sign(g) * self.sign[i] > 0
            self.step[i] = np.where(same, np.minimum(self.step[i] * h["inc"], h["max"]),
                                    np.maximum(self.step[i] * h["dec"], h["min"]))
            self.sign[i] = np.sign(g)
            k = self.step[i] / np.sqrt(self.s[i] + 1e-6)
            m = np.mean(k) if h.get("need_ave_multiplier", True) else 1.0
            return eta / m * g * k
        if r in ("adam", "adamax"):
            b2 = self._beta(self.variance, M)
            eps = self.hyper.get("epsilon", 1e-8)
            if r == "adam":
                self.s[i] = b2 * self.s[i] + (1 - b2) * g * g
                a = np.sqrt(self.s[i])
                bc = math.sqrt(1 - b2 ** self.t) / (1 - beta ** self.t)
            else:
                self.s[i] = np.maximum(b2 * self.s[i], np.abs(g))
                a = self.s[i]
                bc = 1 / (1 - beta ** self.t)
            self.v[i] = beta * self.v[i] + ug * g
            return eta * bc * self.v[i] / (a + eps)
        if r == "fsadagrad":
            b2 = self._beta(self.variance, M)
            self.s[i] = b2 * self.s[i] + (1 - b2) * g * g
            with np.errstate(divide="ignore"):
                k = np.where(self.s[i] != 0, np.minimum(math.sqrt(self.count) / np.sqrt(self.s[i]), 10.0), 1.0)
            g = g * k
            if beta > 0:
                self.v[i] = beta * self.v[i] + ug * g
                g = self.v[i]
            return eta * g
        if r == "adadelta":
            rho, eps = self.hyper["rho"], self.hyper["epsilon"]
            self.s[i] = rho * self.s[i] + (1 - rho) * g * g
            d = -np.sqrt(self.x2[i] + eps) / np.sqrt(self.s[i] + eps) * g
            self.x2[i] = rho * self.x2[i] + (1 - rho) * d * d
            return -eta * d
        raise ValueError(r)
