"""The learner constructors CNTK users call (``sgd``, ``momentum_sgd``, ...): they resolve plain
numbers, lists and schedules against the learner-level ``minibatch_size`` / ``use_mean_gradient``
exactly as CNTK 2.7 does, then build the learner."""

import itertools
import numbers

import numpy as np

from .base import default_unit_gain_value, default_use_mean_gradient_value
from .schedules import (IGNORE, TrainingParameterSchedule, learning_parameter_schedule,
                        momentum_schedule_per_sample, training_parameter_schedule)
from .sgd import SGDLearner, MomentumSGDLearner, NesterovLearner
from .adaptive import AdaGradLearner, RMSPropLearner, AdaDeltaLearner
from .adam import AdamLearner, FSAdaGradLearner
from .base import _check_real

__all__ = ["sgd", "momentum_sgd", "nesterov", "adagrad", "rmsprop", "adadelta", "adam", "fsadagrad"]

# the default variance momentum of Adam and FSAdaGrad (per sample)
DEFAULT_VARIANCE_MOMENTUM = 0.9999986111120757

_noise_seeds = itertools.count(1)   # each learner draws its own noise stream


def _ref_minibatch_size(minibatch_size, use_mean_gradient, what):
    """The learner-level reference minibatch size (None: not given). ``use_mean_gradient=True``
    (deprecated) means IGNORE unless an explicit ``minibatch_size`` overrides it."""
    if minibatch_size is not None:
        if isinstance(minibatch_size, bool) or not isinstance(minibatch_size, numbers.Integral) \
                or minibatch_size < 0:
            raise ValueError("%s: minibatch_size must be a non-negative integer or C.learners.IGNORE, got %r"
                             % (what, minibatch_size))
        return int(minibatch_size)
    if use_mean_gradient is None:
        use_mean_gradient = default_use_mean_gradient_value()
    return IGNORE if use_mean_gradient else None


def _schedule(value, ref_mb, epoch_size, what, use_mean_gradient=False):
    """A learner's copy of ``value`` (number, list or schedule) as a schedule of non-negative values."""
    s = _as_schedule(value, ref_mb, epoch_size, what, use_mean_gradient)
    _check_non_negative(s, what)
    return s


def _check_non_negative(schedule, what):
    bad = [v for v in schedule._values if v < 0]
    if bad:
        raise ValueError("%s: schedule values must be non-negative, got %r" % (what, bad[0]))


def _as_schedule(value, ref_mb, epoch_size, what, use_mean_gradient):
    if isinstance(value, TrainingParameterSchedule):
        s = value._copy()
        if not s.is_minibatch_size_explicitly_specified and ref_mb is not None:
            s.minibatch_size = ref_mb
        # legacy combination: use_mean_gradient with a per-sample lr means the lr applies to the mean
        if use_mean_gradient and s.minibatch_size == 1:
            s.minibatch_size = IGNORE
        return s
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, list)):
        raise TypeError("%s must be a number, a list or a schedule (e.g. C.learning_parameter_schedule), got %r"
                        % (what, value))
    try:
        return learning_parameter_schedule(value, IGNORE if ref_mb is None else ref_mb,
                                           epoch_size if isinstance(value, list) else None)
    except (TypeError, ValueError) as e:
        raise type(e)("%s: %s" % (what, e)) from None


def _check_bool(value, what):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError("%s must be True or False, got %r" % (what, value))
    return bool(value)


def _common(kind, parameters, lr, l1, l2, noise, clip, clip_truncate, use_mean_gradient, minibatch_size,
            epoch_size):
    """(ref minibatch size, lr schedule, options dict) shared by every learner constructor."""
    ref_mb = _ref_minibatch_size(minibatch_size, use_mean_gradient, kind)
    umg = use_mean_gradient if use_mean_gradient is not None else default_use_mean_gradient_value()
    lr = _schedule(lr, ref_mb, epoch_size, "%s: lr" % kind, use_mean_gradient=umg)
    if isinstance(noise, TrainingParameterSchedule):
        noise_schedule = noise
    else:
        noise_schedule = training_parameter_schedule(noise)
    _check_non_negative(noise_schedule, "%s: gaussian_noise_injection_std_dev" % kind)
    has_noise = any(v != 0 for v in noise_schedule._values)
    options = {"minibatch_size": ref_mb, "l1": l1, "l2": l2, "clip": clip,
               "clip_truncate": _check_bool(clip_truncate, "%s: gradient_clipping_with_truncation" % kind),
               "noise": noise_schedule if has_noise else None, "noise_seed": next(_noise_seeds)}
    return ref_mb, lr, options


def _unit_gain(unit_gain, kind):
    return default_unit_gain_value() if unit_gain is None else _check_bool(unit_gain, "%s: unit_gain" % kind)


def sgd(parameters, lr, l1_regularization_weight=0.0, l2_regularization_weight=0.0,
        gaussian_noise_injection_std_dev=0.0, gradient_clipping_threshold_per_sample=np.inf,
        gradient_clipping_with_truncation=True, use_mean_gradient=None, minibatch_size=None, epoch_size=None):
    """Stochastic gradient descent: ``w -= eta * g``."""
    _, lr, opts = _common("sgd", parameters, lr, l1_regularization_weight, l2_regularization_weight,
                          gaussian_noise_injection_std_dev, gradient_clipping_threshold_per_sample,
                          gradient_clipping_with_truncation, use_mean_gradient, minibatch_size, epoch_size)
    return SGDLearner(parameters, lr, opts)


def _momentum_learner(cls, parameters, lr, momentum, unit_gain, l1, l2, noise, clip, clip_truncate,
                      use_mean_gradient, minibatch_size, epoch_size):
    kind = cls._kind
    ref_mb, lr, opts = _common(kind, parameters, lr, l1, l2, noise, clip, clip_truncate, use_mean_gradient,
                               minibatch_size, epoch_size)
    momentum = _schedule(momentum, ref_mb, epoch_size, "%s: momentum" % kind)
    return cls(parameters, lr, momentum, _unit_gain(unit_gain, kind), opts)


def momentum_sgd(parameters, lr, momentum, unit_gain=None, l1_regularization_weight=0.0,
                 l2_regularization_weight=0.0, gaussian_noise_injection_std_dev=0.0,
                 gradient_clipping_threshold_per_sample=np.inf, gradient_clipping_with_truncation=True,
                 use_mean_gradient=None, minibatch_size=None, epoch_size=None):
    """Momentum SGD: ``v = beta*v + ug*eta*g; w -= v`` (``ug = 1-beta`` with unit gain, the default
    given by ``default_unit_gain_value()``)."""
    return _momentum_learner(MomentumSGDLearner, parameters, lr, momentum, unit_gain, l1_regularization_weight,
                             l2_regularization_weight, gaussian_noise_injection_std_dev,
                             gradient_clipping_threshold_per_sample, gradient_clipping_with_truncation,
                             use_mean_gradient, minibatch_size, epoch_size)


def nesterov(parameters, lr, momentum, unit_gain=None, l1_regularization_weight=0.0,
             l2_regularization_weight=0.0, gaussian_noise_injection_std_dev=0.0,
             gradient_clipping_threshold_per_sample=np.inf, gradient_clipping_with_truncation=True,
             use_mean_gradient=None, minibatch_size=None, epoch_size=None):
    """Nesterov momentum: ``v = beta*v + ug*eta*g; w -= beta*v + ug*eta*g``."""
    return _momentum_learner(NesterovLearner, parameters, lr, momentum, unit_gain, l1_regularization_weight,
                             l2_regularization_weight, gaussian_noise_injection_std_dev,
                             gradient_clipping_threshold_per_sample, gradient_clipping_with_truncation,
                             use_mean_gradient, minibatch_size, epoch_size)


def adagrad(parameters, lr, need_ave_multiplier=True, l1_regularization_weight=0.0, l2_regularization_weight=0.0,
            gaussian_noise_injection_std_dev=0.0, gradient_clipping_threshold_per_sample=np.inf,
            gradient_clipping_with_truncation=True, use_mean_gradient=None, minibatch_size=None, epoch_size=None):
    """AdaGrad: ``s += g^2; w -= (eta/m) * g/sqrt(s + 1e-16)`` (``m``: see ``need_ave_multiplier``)."""
    _, lr, opts = _common("adagrad", parameters, lr, l1_regularization_weight, l2_regularization_weight,
                          gaussian_noise_injection_std_dev, gradient_clipping_threshold_per_sample,
                          gradient_clipping_with_truncation, use_mean_gradient, minibatch_size, epoch_size)
    return AdaGradLearner(parameters, lr, _check_bool(need_ave_multiplier, "adagrad: need_ave_multiplier"), opts)


def rmsprop(parameters, lr, gamma, inc, dec, max, min, need_ave_multiplier=True,  # noqa: A002 (CNTK's names)
            l1_regularization_weight=0.0, l2_regularization_weight=0.0, gaussian_noise_injection_std_dev=0.0,
            gradient_clipping_threshold_per_sample=np.inf, gradient_clipping_with_truncation=True,
            use_mean_gradient=None, minibatch_size=None, epoch_size=None):
    """RMSProp with CNTK's per-element step adaptation (``inc``/``dec`` within [``min``, ``max``])."""
    gamma, inc, dec = (_check_real(v, "rmsprop: " + n) for v, n in ((gamma, "gamma"), (inc, "inc"), (dec, "dec")))
    mx, mn = _check_real(max, "rmsprop: max"), _check_real(min, "rmsprop: min")
    if not 0.0 < gamma < 1.0:
        raise ValueError("rmsprop: gamma must be in the range (0.0, 1.0), got %r" % gamma)
    if not inc > 1.0:
        raise ValueError("rmsprop: inc must be greater than 1, got %r" % inc)
    if not 0.0 < dec < 1.0:
        raise ValueError("rmsprop: dec must be in the range (0.0, 1.0), got %r" % dec)
    if not mn > 0.0:
        raise ValueError("rmsprop: min must be greater than zero, got %r" % mn)
    if not (mx > 0.0 and mx > mn):
        raise ValueError("rmsprop: max must be greater than zero and greater than min, got max=%r, min=%r" % (mx, mn))
    _, lr, opts = _common("rmsprop", parameters, lr, l1_regularization_weight, l2_regularization_weight,
                          gaussian_noise_injection_std_dev, gradient_clipping_threshold_per_sample,
                          gradient_clipping_with_truncation, use_mean_gradient, minibatch_size, epoch_size)
    return RMSPropLearner(parameters, lr, gamma, inc, dec, mx, mn,
                          _check_bool(need_ave_multiplier, "rmsprop: need_ave_multiplier"), opts)


def adadelta(parameters, lr=None, rho=0.95, epsilon=1e-8, l1_regularization_weight=0.0,
             l2_regularization_weight=0.0, gaussian_noise_injection_std_dev=0.0,
             gradient_clipping_threshold_per_sample=np.inf, gradient_clipping_with_truncation=True,
             use_mean_gradient=None, minibatch_size=None, epoch_size=None):
    """AdaDelta: ``s = rho*s + (1-rho)*g^2; d = -sqrt(x2+eps)/sqrt(s+eps)*g; x2 = rho*x2 + (1-rho)*d^2;
    w += eta*d``. The default ``lr`` is ``learning_parameter_schedule_per_sample(1)``."""
    if lr is None:
        lr = learning_parameter_schedule(1, minibatch_size=1)
    rho, epsilon = _check_real(rho, "adadelta: rho"), _check_real(epsilon, "adadelta: epsilon")
    _, lr, opts = _common("adadelta", parameters, lr, l1_regularization_weight, l2_regularization_weight,
                          gaussian_noise_injection_std_dev, gradient_clipping_threshold_per_sample,
                          gradient_clipping_with_truncation, use_mean_gradient, minibatch_size, epoch_size)
    return AdaDeltaLearner(parameters, lr, rho, epsilon, opts)


def _variance_learner(kind, parameters, lr, momentum, unit_gain, variance_momentum, l1, l2, noise, clip,
                      clip_truncate, use_mean_gradient, minibatch_size, epoch_size):
    ref_mb, lr, opts = _common(kind, parameters, lr, l1, l2, noise, clip, clip_truncate, use_mean_gradient,
                               minibatch_size, epoch_size)
    momentum = _schedule(momentum, ref_mb, epoch_size, "%s: momentum" % kind)
    if variance_momentum is None:
        variance_momentum = momentum_schedule_per_sample(DEFAULT_VARIANCE_MOMENTUM)
    variance_momentum = _schedule(variance_momentum, ref_mb, epoch_size, "%s: variance_momentum" % kind)
    return lr, momentum, _unit_gain(unit_gain, kind), variance_momentum, opts


def fsadagrad(parameters, lr, momentum, unit_gain=None, variance_momentum=None, l1_regularization_weight=0.0,
              l2_regularization_weight=0.0, gaussian_noise_injection_std_dev=0.0,
              gradient_clipping_threshold_per_sample=np.inf, gradient_clipping_with_truncation=True,
              use_mean_gradient=None, minibatch_size=None, epoch_size=None):
    """FSAdaGrad: AdaGrad-normalised gradients (smoothed with ``variance_momentum``, default
    ``momentum_schedule_per_sample(0.9999986111120757)``) fed to a (unit-gain) momentum filter."""
    lr, momentum, ug, var, opts = _variance_learner(
        "fsadagrad", parameters, lr, momentum, unit_gain, variance_momentum, l1_regularization_weight,
        l2_regularization_weight, gaussian_noise_injection_std_dev, gradient_clipping_threshold_per_sample,
        gradient_clipping_with_truncation, use_mean_gradient, minibatch_size, epoch_size)
    return FSAdaGradLearner(parameters, lr, momentum, ug, var, opts)


def adam(parameters, lr, momentum, unit_gain=None, variance_momentum=None, l1_regularization_weight=0.0,
         l2_regularization_weight=0.0, gaussian_noise_injection_std_dev=0.0,
         gradient_clipping_threshold_per_sample=np.inf, gradient_clipping_with_truncation=True,
         use_mean_gradient=None, epsilon=1e-8, adamax=False, minibatch_size=None, epoch_size=None):
    """Adam (Adamax with ``adamax=True``): ``momentum`` is beta1, ``variance_momentum`` beta2 (default
    ``momentum_schedule_per_sample(0.9999986111120757)``); ``w -= eta*bc*v/(sqrt(s) + epsilon)``."""
    epsilon = _check_real(epsilon, "adam: epsilon")
    if epsilon < 0:
        raise ValueError("adam: epsilon must be non-negative, got %r" % epsilon)
    lr, momentum, ug, var, opts = _variance_learner(
        "adam", parameters, lr, momentum, unit_gain, variance_momentum, l1_regularization_weight,
        l2_regularization_weight, gaussian_noise_injection_std_dev, gradient_clipping_threshold_per_sample,
        gradient_clipping_with_truncation, use_mean_gradient, minibatch_size, epoch_size)
    return AdamLearner(parameters, lr, momentum, ug, var, epsilon, _check_bool(adamax, "adam: adamax"), opts)
