"""The performance profiler (CNTK's ``start_profiler``/``enable_profiler``/``disable_profiler``/
``stop_profiler``), recorded with ``torch.profiler`` and written as Chrome trace files
(chrome://tracing, Perfetto, TensorBoard's profiler view)."""

import numbers
import os

import torch

__all__ = ["start_profiler", "stop_profiler", "enable_profiler", "disable_profiler"]

# CNTK's default profiler buffer (32 MiB)
DEFAULT_PROFILER_BUFFER_SIZE = 32 * 1024 * 1024


class _State:
    def __init__(self, dir, sync_gpu):
        self.dir = dir
        self.sync_gpu = sync_gpu
        self.active = None      # the torch profiler recording now (between enable and disable)
        self.segments = []      # finished recordings, written by stop_profiler


_state = [None]


def _sync(state):
    if state.sync_gpu and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def start_profiler(dir="profiler", sync_gpu=True, reserve_mem=DEFAULT_PROFILER_BUFFER_SIZE):
    """Prepare profiling into the directory ``dir``; nothing is recorded until ``enable_profiler``.
    ``sync_gpu`` waits for the GPU at each enable/disable so the recorded times include its work;
    ``reserve_mem`` (bytes) is accepted for compatibility (torch sizes its own buffers)."""
    if _state[0] is not None:
        raise RuntimeError("start_profiler: the profiler is already started (call stop_profiler first)")
    if not isinstance(dir, (str, os.PathLike)) or not str(dir):
        raise ValueError("start_profiler: dir must be a non-empty path; got %r" % (dir,))
    if isinstance(reserve_mem, bool) or not isinstance(reserve_mem, numbers.Integral) or reserve_mem <= 0:
        raise ValueError("start_profiler: reserve_mem must be a positive number of bytes; got %r" % (reserve_mem,))
    os.makedirs(dir, exist_ok=True)
    _state[0] = _State(os.fspath(dir), bool(sync_gpu))


def _started(op):
    s = _state[0]
    if s is None:
        raise RuntimeError("%s: the profiler is not started (call start_profiler first)" % op)
    return s


def enable_profiler():
    """Start recording (no effect when already recording)."""
    s = _started("enable_profiler")
    if s.active is not None:
        return
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    _sync(s)
    s.active = torch.profiler.profile(activities=activities, record_shapes=True)
    s.active.__enter__()


def disable_profiler():
    """Stop recording (no effect when not recording); what was recorded is kept for ``stop_profiler``."""
    s = _started("disable_profiler")
    if s.active is None:
        return
    _sync(s)
    s.active.__exit__(None, None, None)
    s.segments.append(s.active)
    s.active = None


def stop_profiler():
    """Stop the profiler and write each recorded stretch (enable .. disable) to
    ``<dir>/<pid>_<n>.trace.json``; returns the paths written."""
    s = _started("stop_profiler")
    disable_profiler()
    paths = []
    for n, prof in enumerate(s.segments):
        path = os.path.join(s.dir, "%d_%d.trace.json" % (os.getpid(), n))
        prof.export_chrome_trace(path)
        paths.append(path)
    _state[0] = None
    return paths
