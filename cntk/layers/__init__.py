"""CNTK's layers library: layer factories that return block Functions."""

from ..default_options import default_options, default_options_for, default_override_or, get_default_override
from ..ops.functions import Function, BlockFunction
from . import blocks, layers, higher_order_layers, typing, sequence  # noqa: F401
from .blocks import *  # noqa: F401,F403
from .typing import *  # noqa: F401,F403  (CNTK's higher_order_layers exports the typing names here)
from .sequence import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .higher_order_layers import *  # noqa: F401,F403
from . import models  # noqa: F401
from .models import *  # noqa: F401,F403
