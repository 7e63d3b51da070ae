"""Progress reporting (CNTK's ``cntk.logging``): ``ProgressWriter`` and its ``ProgressPrinter``,
``TensorBoardProgressWriter`` and ``ProgressBar`` forms, ``log_number_of_parameters`` and the
trace level."""

from .progress_writer import ProgressWriter
from .progress_print import ProgressPrinter, log_number_of_parameters
from .tensorboard import TensorBoardProgressWriter
from .progress_bar import ProgressBar
from .trace import TraceLevel, set_trace_level, get_trace_level

__all__ = ["ProgressWriter", "ProgressPrinter", "TensorBoardProgressWriter", "ProgressBar",
           "log_number_of_parameters", "TraceLevel", "set_trace_level", "get_trace_level"]
