"""The few names scripts use from CNTK's native module ``cntk.cntk_py``: the fixed random seed,
deterministic algorithms, the CPU thread count, and the base classes custom code subclasses or
tests against (``ProgressWriter``, ``Variable``, ``Function``, ...)."""

import numbers
import os

import torch

from . import initializer as _initializer
from .axis import Axis
from .core import Value, NDArrayView
from .device import DeviceDescriptor
from .logging.progress_writer import ProgressWriter
from .ops.functions import Function
from .variables import Variable, Parameter, Constant

__all__ = ["set_fixed_random_seed", "reset_random_seed", "is_random_seed_fixed",
           "force_deterministic_algorithms", "should_force_deterministic_algorithms",
           "set_max_num_cpu_threads", "get_max_num_cpu_threads",
           "ProgressWriter", "Variable", "Parameter", "Constant", "Function", "Value", "NDArrayView",
           "DeviceDescriptor", "Axis"]

_seed_fixed = [False]


def _seed_arg(where, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < 2 ** 32:
        raise ValueError("%s: the seed must be an int in [0, 2**32); got %r" % (where, value))
    return int(value)


def _restart_seed_streams(seed):
    """Restart every stream of automatic seeds from ``seed``: the one parameter initializers and
    random ops draw from (cntk.initializer), and the counter that numbers automatic dropout seeds
    (kept apart so that adding a dropout does not shift parameter initial values)."""
    _initializer.set_global_seed(seed)
    from .ops import normalization
    normalization.restart_dropout_seeds(seed + 1)


def set_fixed_random_seed(value):
    """Fix the random seed: every Parameter, random op (``cntk.random``, ``random_sample``,
    ``nce_loss``) and dropout created afterwards with an automatic seed gets its seed from a stream
    restarted at ``value``, so a script that builds the same model after the same call gets the
    same initial values and the same random draws."""
    _restart_seed_streams(_seed_arg("set_fixed_random_seed", value))
    _seed_fixed[0] = True


def reset_random_seed(value=0):
    """Restart the automatic seeds from ``value`` and clear the 'fixed' flag."""
    _restart_seed_streams(_seed_arg("reset_random_seed", value))
    _seed_fixed[0] = False


def is_random_seed_fixed():
    """Whether ``set_fixed_random_seed`` was called (and not undone by ``reset_random_seed``)."""
    return _seed_fixed[0]


def force_deterministic_algorithms():
    """Make torch pick deterministic algorithms (cuDNN included, no autotuning); an op that has
    none warns instead of failing."""
    # read by cuBLAS when it starts: without it, cuBLAS matrix products on CUDA >= 10.2 are not
    # reproducible
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def should_force_deterministic_algorithms():
    """Whether deterministic algorithms are forced."""
    return torch.are_deterministic_algorithms_enabled()


def set_max_num_cpu_threads(num_cpu_threads):
    """Use at most ``num_cpu_threads`` threads for computations on the CPU."""
    if isinstance(num_cpu_threads, bool) or not isinstance(num_cpu_threads, numbers.Integral) or num_cpu_threads < 1:
        raise ValueError("set_max_num_cpu_threads: expected a positive int; got %r" % (num_cpu_threads,))
    torch.set_num_threads(int(num_cpu_threads))


def get_max_num_cpu_threads():
    """The most threads computations on the CPU use."""
    return torch.get_num_threads()
