"""CNTK's global trace level (how much the library reports on stderr)."""

import enum

__all__ = ["TraceLevel", "set_trace_level", "get_trace_level"]


class TraceLevel(enum.IntEnum):
    """Verbosity of the library's own messages."""
    Error = 0
    Warning = 1
    Info = 2


_level = [TraceLevel.Warning]


def set_trace_level(value):
    """Set the trace level (a TraceLevel or its int value)."""
    try:
        _level[0] = TraceLevel(value)
    except ValueError:
        raise ValueError("set_trace_level: expected one of %s, got %r"
                         % (", ".join("%s (%d)" % (t.name, t.value) for t in TraceLevel), value)) from None


def get_trace_level():
    """The current trace level."""
    return _level[0]
