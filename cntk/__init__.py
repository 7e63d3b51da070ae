"""CNTK 2.7's Python API on PyTorch: ``import cntk as C``."""

import numpy as np

__version__ = "2.7"

DATATYPE = np.float32

from .axis import Axis  # noqa: E402
from . import device, initializer  # noqa: E402
from .device import cpu, gpu, all_devices, try_set_default_device, use_default_device, DeviceDescriptor  # noqa: E402
from .variables import Variable, Parameter, Constant  # noqa: E402
from .core import Value, NDArrayView, asarray, asvalue  # noqa: E402
from .ops import *  # noqa: E402,F401,F403
from .ops import (InferredDimension, FreeDimension, TIMES_NO_INFERRED_INPUT_RANK,  # noqa: E402
                  TIMES_REDUCE_SEQUENCE_AXIS_WITHOUT_INFERRED_INPUT_RANK, sequence, combine, as_block,
                  as_composite, alias, placeholder, input_variable, parameter, constant)
from .ops.functions import Function, CloneMethod, ModelFormat, load_model, BackPropState  # noqa: E402
from .ops.functions import user_function, BlockFunction  # noqa: E402
from .initializer import (uniform, normal, truncated_normal, xavier, glorot_uniform, glorot_normal,  # noqa: E402
                          he_uniform, he_normal, bilinear, initializer_with_rank)
from . import losses, metrics  # noqa: E402
from .losses import *  # noqa: E402,F401,F403
from .metrics import *  # noqa: E402,F401,F403
from . import random  # noqa: E402,F401
from .default_options import default_options, default_options_for, default_override_or  # noqa: E402,F401
from . import layers  # noqa: E402,F401
from . import learners  # noqa: E402,F401
from .learners import *  # noqa: E402,F401,F403
from . import train, logging  # noqa: E402,F401
from .train import *  # noqa: E402,F401,F403
from . import io  # noqa: E402,F401
from . import eval, debugging, cntk_py  # noqa: E402,F401
