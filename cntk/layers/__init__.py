"""CNTK's layers library: layer factories that return block Functions."""

from ..default_options import default_options, default_options_for, default_override_or, get_default_override
from ..ops.functions import Function, BlockFunction
from . import blocks, layers, higher_order_layers, typing, sequence  # noqa: F401
from .blocks import identity, ForwardDeclaration, LSTM, GRU, RNNStep, RNNUnit  # noqa: F401
from .sequence import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .higher_order_layers import *  # noqa: F401,F403
from . import models  # noqa: F401
from .models import AttentionModel  # noqa: F401
