"""CNTK's normalization ops (part of ``cntk.ops``): batch, local response and mean-variance
normalization, image scaling and dropout."""

import itertools
import numbers
import warnings

import numpy as np

from . import _op, element_times, minus, sanitize_input, _int_arg, _float_arg
from ..engine.oplib import normalization as _normalization  # noqa: F401 (registers the ops)
from ..initializer import SentinelValueForAutoSelectRandomSeed, resolve_seed
from ..variables import Constant

__all__ = ["batch_normalization", "local_response_normalization", "mean_variance_normalization",
           "per_dim_mean_variance_normalize", "image_scaler", "dropout"]


def batch_normalization(operand, scale, bias, running_mean, running_inv_std, spatial,
                        normalization_time_constant=5000, blend_time_constant=0, epsilon=0.00001,
                        use_cudnn_engine=False, disable_regularization=False, running_count=None, name=""):
    """Batch normalization: ``scale * (x - mean) / sqrt(var + epsilon) + bias``.

    In training the statistics are those of the minibatch (per channel when ``spatial``, per
    element otherwise), blended with the running ones by ``blend_time_constant``, and the
    running statistics (Constants; ``running_inv_std`` holds the variance) and
    ``running_count`` are updated with time constant ``normalization_time_constant``. In
    inference only the running statistics are used.
    """
    if running_count is None:
        running_count = Constant(0)
        warnings.warn("batch_normalization requires an additional 'running_count' parameter, which can be "
                      "instantiated as 'running_count = Constant(0, shape=())'", Warning, stacklevel=2)
    return _op("BatchNormalization", [operand, scale, bias, running_mean, running_inv_std, running_count],
               {"spatial": bool(spatial),
                "normalization_time_constant": _float_arg("batch_normalization", "normalization_time_constant",
                                                          normalization_time_constant),
                "blend_time_constant": _float_arg("batch_normalization", "blend_time_constant", blend_time_constant),
                "epsilon": _float_arg("batch_normalization", "epsilon", epsilon),
                "use_cudnn_engine": bool(use_cudnn_engine), "disable_regularization": bool(disable_regularization)},
               name)


def local_response_normalization(operand, depth_radius, bias, alpha, beta, name=""):
    """``x / (bias + alpha / (2 * depth_radius + 1) * sum(x**2 over nearby channels)) ** beta``
    on (C, H, W) items, summing over the channels within ``depth_radius``."""
    return _op("LocalResponseNormalization", [operand],
               {"depth_radius": _int_arg("local_response_normalization", "depth_radius", depth_radius),
                "bias": _float_arg("local_response_normalization", "bias", bias),
                "alpha": _float_arg("local_response_normalization", "alpha", alpha),
                "beta": _float_arg("local_response_normalization", "beta", beta)},
               name)


def mean_variance_normalization(operand, epsilon=0.00001, use_stats_across_channels=False, do_variance_scaling=True,
                                name=""):
    """Per sample, subtract the mean and divide by (standard deviation + epsilon); statistics
    per channel (axis 0) unless ``use_stats_across_channels``; no division without
    ``do_variance_scaling``."""
    return _op("MeanVarianceNormalization", [operand],
               {"epsilon": _float_arg("mean_variance_normalization", "epsilon", epsilon),
                "use_stats_across_channels": bool(use_stats_across_channels),
                "do_variance_scaling": bool(do_variance_scaling)}, name)


def per_dim_mean_variance_normalize(operand, mean, inv_stddev, name=""):
    """``(operand - mean) * inv_stddev``, elementwise."""
    return element_times(minus(operand, sanitize_input(mean)), sanitize_input(inv_stddev), name=name)


def image_scaler(x, scalar, biases, name=""):
    """``x * scalar + biases[c]`` for each channel c of (C, H, W) items."""
    return _op("ImageScaler", [x], {"scalar": _float_arg("image_scaler", "scalar", scalar),
                                    "biases": [_float_arg("image_scaler", "biases", b) for b in np.ravel(biases)]},
               name)


# Automatic dropout seeds come from this counter, not from cntk.initializer's seed generator, so
# that adding a dropout does not change the initial values of the parameters created after it.
_auto_seeds = itertools.count(1)


def restart_dropout_seeds(start):
    """Number the automatic dropout seeds from ``start`` on (used by set_fixed_random_seed)."""
    global _auto_seeds
    _auto_seeds = itertools.count(start)


def dropout(x, dropout_rate=0.0, seed=SentinelValueForAutoSelectRandomSeed, name=""):
    """Inverted dropout, active only in training: each element is kept with probability
    ``1 - dropout_rate`` and scaled by ``1 / (1 - dropout_rate)``; the identity in inference.
    The random stream is determined by ``seed`` (chosen automatically by default)."""
    if not isinstance(dropout_rate, numbers.Real) or not 0.0 <= dropout_rate < 1.0:
        raise ValueError("dropout: dropout_rate must be in the interval [0, 1); got %r" % (dropout_rate,))
    # an automatic seed is fixed at construction, so that a saved model keeps its random stream
    seed = resolve_seed("dropout", seed, auto=lambda: next(_auto_seeds))
    return _op("Dropout", [x], {"dropout_rate": float(dropout_rate), "seed": seed}, name)
