"""The Learner base class: parameter bookkeeping, schedules and counters, the common options
(clipping, L2, noise, L1), the minibatch-size scaling of CNTK 2.7 and checkpoints.

Conventions (CNTK 2.7, spec section 5.2): the Trainer hands a learner the gradient ``g`` of the
*summed* loss of a minibatch of ``M`` samples. A learning-rate schedule with reference minibatch
size ``N`` gives the step ``lr/N`` on ``g`` (``lr/M`` when ``N`` is IGNORE); a momentum ``beta``
with reference size ``N`` becomes ``beta**(M/N)``. When the learner's own ``minibatch_size`` is
IGNORE ("mean-gradient mode"), ``g`` is divided by ``M`` first and the rate multiplied by ``M``.
"""

import math
import numbers

import numpy as np
import torch

from ..variables import Parameter
from .schedules import IGNORE, TrainingParameterSchedule

__all__ = ["Learner", "default_unit_gain_value", "set_default_unit_gain_value",
           "default_use_mean_gradient_value", "set_default_use_mean_gradient_value"]

_DEFAULTS = {"unit_gain": True, "use_mean_gradient": False}

CHECKPOINT_VERSION = 1


def default_unit_gain_value():
    """Whether momentum is applied in the unit-gain fashion by default (initially True)."""
    return _DEFAULTS["unit_gain"]


def set_default_unit_gain_value(value):
    """Set the unit-gain default used by learners created afterwards without ``unit_gain``."""
    _DEFAULTS["unit_gain"] = bool(value)


def default_use_mean_gradient_value():
    """Whether learners created without ``use_mean_gradient`` average the gradient (initially False)."""
    return _DEFAULTS["use_mean_gradient"]


def set_default_use_mean_gradient_value(value):
    """Set the ``use_mean_gradient`` default used by learners created afterwards."""
    _DEFAULTS["use_mean_gradient"] = bool(value)


def _as_parameter_list(parameters, what):
    if isinstance(parameters, Parameter):
        parameters = [parameters]
    try:
        params = list(parameters)
    except TypeError:
        raise TypeError("%s: parameters must be a list of Parameters, got %s"
                        % (what, type(parameters).__name__)) from None
    if not params:
        raise ValueError("%s: the list of parameters to learn is empty" % what)
    seen = set()
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError("%s: parameters[%d] is not a Parameter but %s" % (what, i, _describe(p)))
        if id(p) in seen:
            raise ValueError("%s: parameter '%s' appears more than once in the list" % (what, p.name or p.uid))
        seen.add(id(p))
    return params


def _describe(obj):
    d = getattr(obj, "_describe", None)
    return d() if callable(d) else "%s %r" % (type(obj).__name__, obj)


def _check_real(value, what, minimum=None, allow_inf=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("%s must be a number, got %r" % (what, value))
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError("%s must be finite, got %r" % (what, value))
    if minimum is not None and value < minimum:
        raise ValueError("%s must be >= %g, got %r" % (what, minimum, value))
    return value


class Learner:
    """Learns a set of parameters from first-order gradients (create one with ``sgd``, ``adam``, ...).

    Subclasses define ``_state_names`` (per-parameter buffers, zero-initialised) and
    ``_apply(params, grads, step)``, which updates ``params`` in place from the preprocessed
    gradients with multi-tensor torch operations.
    """

    _state_names = ()
    _kind = "learner"

    def __init__(self, parameters, lr, options=None):
        self._parameters = _as_parameter_list(parameters, self._kind)
        if not isinstance(lr, TrainingParameterSchedule):
            raise TypeError("%s: lr must be a learning_parameter_schedule, got %r" % (self._kind, lr))
        self._lr = lr
        self._lr_offset = None          # (samples, sweeps) at the last reset_learning_rate
        opts = dict(options or {})
        self.minibatch_size = opts.get("minibatch_size")  # learner-level reference size (None: not given)
        self.is_minibatch_size_explicitly_specified = self.minibatch_size is not None
        self._l1 = _check_real(opts.get("l1", 0.0), "%s: l1_regularization_weight" % self._kind, 0.0)
        self._l2 = _check_real(opts.get("l2", 0.0), "%s: l2_regularization_weight" % self._kind, 0.0)
        self._clip = _check_real(opts.get("clip", np.inf), "%s: gradient_clipping_threshold_per_sample"
                                 % self._kind, 0.0, allow_inf=True)
        self._clip_truncate = bool(opts.get("clip_truncate", True))
        self._noise = opts.get("noise")  # schedule of the Gaussian noise std dev (None: no noise)
        self._noise_seed = int(opts.get("noise_seed", 0))
        self._noise_gen = None
        self._sample_count = 0
        self._minibatch_count = 0
        self._sweep_count = 0
        self._state = None              # {name: [tensor per parameter]}, created at the first update

    # -- public API ----------------------------------------------------------------------
    @property
    def parameters(self):
        """The parameters this learner updates."""
        return list(self._parameters)

    @property
    def total_number_of_samples_seen(self):
        """Samples in all minibatches this learner has updated from."""
        return self._sample_count

    @property
    def total_number_of_minibatches_seen(self):
        """Number of updates performed."""
        return self._minibatch_count

    @property
    def total_number_of_sweeps_seen(self):
        """Number of data sweeps completed (``is_sweep_end`` updates)."""
        return self._sweep_count

    def learning_rate(self):
        """The learning-rate schedule's value at the current sample (or sweep) count, unscaled."""
        return self._lr_value()

    def _reported_parameters(self):
        """[(name, value)] of the learning rate and momentum as CNTK's learners report them to the
        progress writers: "<name> per minibatch" for a schedule without reference minibatch size,
        else "<name> per N samples"."""
        def name(base, schedule):
            n = getattr(schedule, "minibatch_size", None)
            if n is None:
                return base
            return base + (" per minibatch" if n == 0 or self.minibatch_size == 0 else " per %d samples" % n)
        out = [(name("Learning rate", self._lr), self.learning_rate())]
        momentum = getattr(self, "_momentum_schedule", None)
        if momentum is not None:
            out.append((name("Momentum", momentum), self._value(momentum)))
        return out

    def reset_learning_rate(self, learning_rate):
        """Replace the learning-rate schedule; its count 0 is the current position in training."""
        if not isinstance(learning_rate, TrainingParameterSchedule):
            raise TypeError("reset_learning_rate expects a learning_parameter_schedule, got %r" % (learning_rate,))
        if any(v < 0 for v in learning_rate._values):
            raise ValueError("reset_learning_rate: schedule values must be non-negative, got %r" % (learning_rate,))
        lr = learning_rate._copy()
        if not lr.is_minibatch_size_explicitly_specified and self.minibatch_size is not None \
                and self.minibatch_size != IGNORE:
            lr.minibatch_size = self.minibatch_size
        self._lr = lr
        self._lr_offset = (self._sample_count, self._sweep_count)

    def update(self, gradient_values, training_sample_count, is_sweep_end=False):
        """Update the parameters from ``{parameter: gradient}`` (numpy arrays, NDArrayViews, Values
        or tensors: the gradient of the loss summed over ``training_sample_count`` samples).
        Returns False when learning has stopped (the learning rate is 0)."""
        if not isinstance(gradient_values, dict):
            raise TypeError("%s.update: gradient_values must be a dict {Parameter: gradient}, got %s"
                            % (type(self).__name__, type(gradient_values).__name__))
        grads = {}
        for p in self._parameters:
            if p not in gradient_values:
                raise ValueError("%s.update: no gradient given for parameter '%s'" % (type(self).__name__,
                                                                                   p.name or p.uid))
            grads[p] = _to_tensor(gradient_values[p], p)
        return self._update(grads, training_sample_count, is_sweep_end)

    # -- the update ----------------------------------------------------------------------
    def _update(self, grads, sample_count, is_sweep_end=False):
        """Update the parameters in place from ``{Parameter: torch.Tensor}`` (gradients of the summed
        loss over ``sample_count`` samples). Returns True if an update was made."""
        M = self._check_sample_count(sample_count)
        if M == 0:
            return False
        lr = self._lr_value()
        if lr == 0.0:
            return False
        params = [p._tensor() for p in self._parameters]
        try:
            g = [grads[p] for p in self._parameters]
        except KeyError as e:
            raise ValueError("%s: no gradient for parameter '%s'" % (self._kind, e.args[0].name or e.args[0].uid)) \
                from None
        # sparse gradients (e.g. of an embedding fed one-hot data) are applied densely
        g = [x if x.layout == torch.strided else x.to_dense() for x in g]
        if self._state is None:
            self._state = {n: [torch.zeros_like(t) for t in params] for n in self._state_names}
        step = self._step_context(M, lr)
        with torch.no_grad():
            g = self._preprocess(params, g, step)
            self._apply(params, g, step)
            self._postprocess(params, step)
        self._count_update(M, is_sweep_end)
        return True

    def _count_update(self, M, is_sweep_end):
        """Counts an update from M samples (and the end of a sweep when it ends one)."""
        self._sample_count += M
        self._minibatch_count += 1
        if is_sweep_end:
            self._sweep_count += 1

    def _check_sample_count(self, n):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError("%s: the training sample count must be a non-negative integer, got %r"
                             % (self._kind, n))
        return int(n)

    @property
    def _mean_gradient_mode(self):
        return self.minibatch_size == IGNORE

    def _value(self, schedule, offset=None):
        if schedule.is_sweep_based():
            count = self._sweep_count - (offset[1] if offset else 0)
        else:
            count = self._sample_count - (offset[0] if offset else 0)
        return schedule[count]

    def _lr_value(self):
        return self._value(self._lr, self._lr_offset)

    def _momentum(self, schedule, M):
        """A momentum schedule's value for a minibatch of M samples: beta**(M/N), or beta for IGNORE."""
        beta = self._value(schedule)
        N = schedule.minibatch_size
        return beta if N == IGNORE else beta ** (M / N)

    def _step_context(self, M, lr):
        """Per-update scalars: ``eta`` multiplies the gradient the rule sees (the mean gradient in
        mean-gradient mode), ``g_scale`` turns the summed gradient into that gradient."""
        N = self._lr.minibatch_size
        eta_sum = lr / (M if N == IGNORE else N)           # step on the summed gradient
        g_scale = 1.0 / M if self._mean_gradient_mode else 1.0
        return {"M": M, "eta": eta_sum / g_scale, "eta_sum": eta_sum, "g_scale": g_scale}

    def _preprocess(self, params, grads, step):
        """(Mean-gradient scaling), clipping per sample, L2. Never modifies the caller's tensors."""
        M, s = step["M"], step["g_scale"]
        owned = False
        if s != 1.0:
            grads, owned = torch._foreach_mul(grads, s), True
        if math.isfinite(self._clip):
            T = self._clip * M * s
            if self._clip_truncate:
                grads, owned = torch._foreach_clamp_max(grads, T), True
                torch._foreach_clamp_min_(grads, -T)
            else:
                norms = [float(n) for n in torch._foreach_norm(grads)]
                if any(n > T for n in norms):
                    factors = [T / n if n > T else 1.0 for n in norms]
                    grads, owned = torch._foreach_mul(grads, factors), True
        if self._l2 > 0.0:
            c = self._l2 * M * s
            if owned:
                torch._foreach_add_(grads, params, alpha=c)
            else:
                grads = torch._foreach_add(grads, params, alpha=c)
        return grads

    def _postprocess(self, params, step):
        """Gaussian noise injection, then L1 as a proximal step (soft threshold)."""
        if self._noise is not None:
            std = self._value(self._noise)
            if std > 0:
                gen = self._generator()
                for t in params:
                    t.add_(torch.randn(t.shape, generator=gen, dtype=t.dtype).to(t.device), alpha=std)
        if self._l1 > 0.0:
            tau = step["eta_sum"] * self._l1 * step["M"]
            shrunk = torch._foreach_abs(params)
            torch._foreach_sub_(shrunk, tau)
            torch._foreach_clamp_min_(shrunk, 0.0)
            torch._foreach_mul_(shrunk, torch._foreach_sign(params))
            torch._foreach_copy_(params, shrunk)

    def _generator(self):
        if self._noise_gen is None:
            self._noise_gen = torch.Generator().manual_seed(self._noise_seed)
        return self._noise_gen

    # -- rule hooks ------------------------------------------------------------------------
    def _apply(self, params, grads, step):
        raise TypeError("%s does not define an update rule" % type(self).__name__)

    def _rule_scalars(self):
        """Rule-specific scalar state for checkpoints (JSON-able)."""
        return {}

    def _restore_rule_scalars(self, scalars):
        pass

    # -- checkpoints -------------------------------------------------------------------------
    def create_checkpoint(self):
        """The learner's state: counters, per-parameter buffers and random state (numpy arrays
        and JSON-able values only)."""
        ck = {
            "version": CHECKPOINT_VERSION,
            "learner": type(self).__name__,
            "sample_count": self._sample_count,
            "minibatch_count": self._minibatch_count,
            "sweep_count": self._sweep_count,
            "parameters": [{"name": p.name, "shape": list(p.shape)} for p in self._parameters],
            "state": None if self._state is None else
            {n: [t.detach().cpu().numpy().copy() for t in ts] for n, ts in self._state.items()},
            "scalars": self._rule_scalars(),
            "noise_seed": self._noise_seed,
            "noise_rng": None if self._noise_gen is None else self._noise_gen.get_state().numpy().copy(),
        }
        # as in CNTK, the learning-rate schedule travels with the checkpoint (it may have been reset)
        ck["lr_schedule"] = self._lr._to_state()
        ck["lr_offset"] = None if self._lr_offset is None else list(self._lr_offset)
        return ck

    def restore_from_checkpoint(self, checkpoint):
        """Restore the state saved by ``create_checkpoint`` (for the same parameters). Nothing is
        changed when the checkpoint does not fit this learner."""
        what = "%s.restore_from_checkpoint" % type(self).__name__
        if not isinstance(checkpoint, dict):
            raise ValueError("%s: expected the dict made by create_checkpoint, got %s"
                             % (what, type(checkpoint).__name__))
        missing = [k for k in ("version", "learner", "sample_count", "minibatch_count", "sweep_count",
                               "parameters", "state") if k not in checkpoint]
        if missing:
            raise ValueError("%s: not a learner checkpoint (missing %s)" % (what, ", ".join(missing)))
        if checkpoint["version"] != CHECKPOINT_VERSION:
            raise ValueError("%s: unsupported checkpoint version %r" % (what, checkpoint["version"]))
        if checkpoint["learner"] != type(self).__name__:
            raise ValueError("%s: the checkpoint is of a %s, not a %s"
                             % (what, checkpoint["learner"], type(self).__name__))
        saved = checkpoint["parameters"]
        if len(saved) != len(self._parameters):
            raise ValueError("%s: the checkpoint has %d parameters, this learner %d"
                             % (what, len(saved), len(self._parameters)))
        for i, (rec, p) in enumerate(zip(saved, self._parameters)):
            if tuple(rec["shape"]) != tuple(p.shape):
                raise ValueError("%s: parameter %d ('%s') has shape %s in the checkpoint but %s here"
                                 % (what, i, p.name or p.uid, tuple(rec["shape"]), tuple(p.shape)))
        state = checkpoint["state"]
        new_state = None
        if state is not None:
            if set(state) != set(self._state_names):
                raise ValueError("%s: the checkpoint holds buffers %s, expected %s"
                                 % (what, sorted(state), sorted(self._state_names)))
            params = [p._tensor() for p in self._parameters]
            new_state = {}
            for n in self._state_names:
                if len(state[n]) != len(params):
                    raise ValueError("%s: buffer '%s' has %d entries for %d parameters"
                                     % (what, n, len(state[n]), len(params)))
                bufs = []
                for i, (a, t) in enumerate(zip(state[n], params)):
                    a = np.asarray(a)
                    if a.shape != tuple(t.shape):
                        raise ValueError("%s: buffer '%s' of parameter %d has shape %s, expected %s"
                                         % (what, n, i, a.shape, tuple(t.shape)))
                    bufs.append(torch.as_tensor(a).to(dtype=t.dtype, device=t.device).clone())
                new_state[n] = bufs
        lr = self._lr
        if checkpoint.get("lr_schedule") is not None:
            lr = TrainingParameterSchedule._from_state(checkpoint["lr_schedule"])
        offset = checkpoint.get("lr_offset")
        rng = checkpoint.get("noise_rng")
        gen = None
        if rng is not None:
            gen = torch.Generator()
            gen.set_state(torch.as_tensor(np.asarray(rng, dtype=np.uint8)))
        # everything is checked: apply
        self._state = new_state
        self._sample_count = int(checkpoint["sample_count"])
        self._minibatch_count = int(checkpoint["minibatch_count"])
        self._sweep_count = int(checkpoint["sweep_count"])
        self._restore_rule_scalars(checkpoint.get("scalars") or {})
        self._noise_seed = int(checkpoint.get("noise_seed", self._noise_seed))
        self._noise_gen = gen
        self._lr = lr
        self._lr_offset = None if offset is None else tuple(int(v) for v in offset)

    def __repr__(self):
        return "%s(%d parameters, learning_rate=%g)" % (type(self).__name__, len(self._parameters),
                                                        self.learning_rate())


def _to_tensor(value, p):
    """A gradient given to ``Learner.update`` as a tensor shaped and typed like parameter ``p``."""
    from ..core import NDArrayView, Value
    t = p._tensor()
    if isinstance(value, NDArrayView):
        value = value._t
    elif isinstance(value, Value):
        value = value.data._t
    if torch.is_tensor(value):
        g = value.detach()
    else:
        g = torch.as_tensor(np.asarray(value))
    if tuple(g.shape) != tuple(t.shape):
        raise ValueError("gradient for parameter '%s' has shape %s, the parameter %s"
                         % (p.name or p.uid, tuple(g.shape), tuple(t.shape)))
    return g.to(dtype=t.dtype, device=t.device)
