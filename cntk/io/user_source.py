"""Minibatch sources written in Python: ``UserMinibatchSource`` and ``MinibatchSourceFromData``."""

import abc
import functools

import numpy as np

from ..core import Value
from .minibatch import MinibatchData
from .deserializer import PackedSequences
from .source import INFINITELY_REPEAT, FULL_DATA_SWEEP
from .streams import Record, StreamInformation


def _accepting_source_call(method):
    """Wraps a subclass's ``next_minibatch(num_samples, number_of_workers, worker_rank,
    device=None)`` so that it can also be called like ``MinibatchSource.next_minibatch``
    (``input_map``, ``num_data_partitions``, ``partition_index``)."""
    @functools.wraps(method)
    def next_minibatch(self, num_samples, number_of_workers=None, worker_rank=None, device=None, input_map=None,
                       num_data_partitions=None, partition_index=None):
        workers = number_of_workers if number_of_workers is not None else (num_data_partitions or 1)
        rank = worker_rank if worker_rank is not None else (partition_index or 0)
        mb = method(self, num_samples, workers, rank, device)
        if not mb or not input_map:
            return mb
        return {var: mb[self.stream_info(stream) if not isinstance(stream, StreamInformation) else stream]
                for var, stream in input_map.items()}
    next_minibatch._wrapped_source_call = True
    return next_minibatch


class UserMinibatchSource(abc.ABC):
    """Base class of minibatch sources written in Python. Implement ``stream_infos()`` and
    ``next_minibatch(num_samples, number_of_workers, worker_rank, device=None)`` returning
    {StreamInformation: MinibatchData} ({} at the end); override ``get_checkpoint_state()`` /
    ``restore_from_checkpoint(state)`` when the source has a position to save. Call
    ``super().__init__()`` after the source can answer ``stream_infos()``."""

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        nm = cls.__dict__.get("next_minibatch")
        if nm is not None and not getattr(nm, "_wrapped_source_call", False):
            cls.next_minibatch = _accepting_source_call(nm)

    def __init__(self):
        infos = self.stream_infos()
        self.streams = Record({si.name: si for si in infos})

    @abc.abstractmethod
    def stream_infos(self):
        """A list of ``StreamInformation``, one per stream."""

    @abc.abstractmethod
    def next_minibatch(self, num_samples, number_of_workers=1, worker_rank=0, device=None):
        """{StreamInformation: MinibatchData} of about ``num_samples`` samples ({} at the end)."""

    def stream_info(self, name):
        """The ``StreamInformation`` of the stream called ``name``."""
        for si in self.stream_infos():
            if si.name == name:
                return si
        raise KeyError("%s has no stream named %r" % (type(self).__name__, name))

    def __getitem__(self, name):
        return self.stream_info(name)

    def get_checkpoint_state(self):
        """The source's position as a dict (default: nothing to save)."""
        return {}

    def restore_from_checkpoint(self, state):
        """Continues from ``state``; a source that returns a non-empty state must override this."""
        if state:
            raise ValueError("%s.restore_from_checkpoint: this source saves no state; override "
                             "get_checkpoint_state/restore_from_checkpoint to support checkpoints" % type(self).__name__)

    def is_infinite(self):
        """Whether the source never runs out of data."""
        return False


def _sequence_type(t):
    """Whether a CNTK type (``Sequence[...]`` from cntk.layers.typing, or a Variable) has a
    sequence axis; and its shape and sparsity if it says."""
    axes = getattr(t, "dynamic_axes", None)
    is_seq = bool(axes) and len(axes) > 1
    return is_seq, getattr(t, "shape", None), getattr(t, "is_sparse", None)


class MinibatchSourceFromData(UserMinibatchSource):
    """Steps through in-memory data in order (no randomization), counting sweeps:
    ``MinibatchSourceFromData(dict(x=X, y=Y), max_samples=...)``. Each value is an ndarray
    (samples, ...), a CSR matrix (samples, dim), a ``Value``, or ``(list of per-sequence arrays,
    Sequence[...] type)`` for sequences. A minibatch takes whole items while the longest stream
    stays within the requested size (at least one item)."""

    def __init__(self, data_streams, max_samples=INFINITELY_REPEAT):
        if not data_streams:
            raise ValueError("MinibatchSourceFromData: give at least one stream as name=data or name=(data, type)")
        if max_samples == FULL_DATA_SWEEP:
            raise ValueError("MinibatchSourceFromData: max_samples=FULL_DATA_SWEEP is not supported; give a number")
        self._data, self._is_seq, self._infos = {}, {}, []
        n = None
        for i, (name, arg) in enumerate(data_streams.items()):
            is_seq, tshape, tsparse = False, None, None
            if isinstance(arg, tuple):
                value, typ = arg
                is_seq, tshape, tsparse = _sequence_type(typ)
            else:
                value = arg
            if isinstance(value, Value):
                held = getattr(value, "_sparse", None)
                if held is not None and not isinstance(held, list) and not is_seq:
                    value = held            # a sparse batch stays sparse
                else:
                    value = value.as_sequences() if is_seq else value.asarray()
            sparse = hasattr(value, "tocsr") and hasattr(value, "nnz")
            if is_seq:
                if not isinstance(value, (list, tuple)) or not value:
                    raise TypeError("MinibatchSourceFromData: sequence stream '%s' needs a non-empty list of "
                                    "per-sequence arrays" % name)
                first = value[0]
                sparse = hasattr(first, "tocsr") and hasattr(first, "nnz")
                shape = tuple(first.shape[1:])
                items = len(value)
            else:
                if isinstance(value, list):
                    value = np.asarray(value)
                if not sparse and not isinstance(value, np.ndarray):
                    raise TypeError("MinibatchSourceFromData: stream '%s' must be a numpy array, a CSR matrix, a "
                                    "Value or (list of sequences, type), got %s" % (name, type(value).__name__))
                if sparse:
                    value = value.tocsr()
                shape = tuple(value.shape[1:])
                items = value.shape[0]
            if tshape is not None and tuple(tshape) not in ((), shape) and min(tuple(tshape)) >= 0:
                raise ValueError("MinibatchSourceFromData: stream '%s' is declared with shape %s but its samples have "
                                 "shape %s" % (name, tuple(tshape), shape))
            if n is None:
                if items == 0:
                    raise ValueError("MinibatchSourceFromData: stream '%s' is empty" % name)
                n = items
            elif items != n:
                raise ValueError("MinibatchSourceFromData: stream '%s' has %d items but another stream has %d"
                                 % (name, items, n))
            dtype = (value[0] if is_seq else value).dtype
            dtype = dtype if np.dtype(dtype).kind == "f" else np.float32
            self._data[name] = value
            self._is_seq[name] = is_seq
            self._infos.append(StreamInformation(name, i, "sparse" if sparse else "dense", dtype, shape))
        self._n = n
        self._max_samples = max_samples
        self._lengths = {name: (np.array([s.shape[0] for s in v], dtype=np.int64) if self._is_seq[name]
                                else np.ones(n, dtype=np.int64)) for name, v in self._data.items()}
        # an item counts with its longest stream
        self._item_size = np.max(np.stack(list(self._lengths.values())), axis=0)
        self._cursor = 0
        self._total = 0
        super().__init__()

    def stream_infos(self):
        return list(self._infos)

    def next_minibatch(self, num_samples, number_of_workers=1, worker_rank=0, device=None):
        if self._total >= self._max_samples:
            return {}
        begin = self._cursor
        limit = min(num_samples, self._max_samples - self._total)
        cs = np.cumsum(self._item_size[begin:])
        end = begin + max(1, int(np.searchsorted(cs, limit, side="right")))
        taken = int(cs[end - begin - 1])
        self._total += taken
        at_end = end == self._n
        sweep_end = at_end or self._total >= self._max_samples
        sel = np.arange(begin + worker_rank, end, number_of_workers)
        result = {}
        for si in self._infos:
            v = self._data[si.name]
            lengths = self._lengths[si.name][sel]
            if self._is_seq[si.name]:
                seqs = [v[i] for i in sel.tolist()]
                if si.is_sparse:
                    import scipy.sparse
                    data = scipy.sparse.vstack([s.tocsr() for s in seqs], format="csr") if seqs else v[0][:0]
                else:
                    data = np.concatenate([np.asarray(s) for s in seqs]) if seqs else np.asarray(v[0])[:0]
            else:
                data = v[sel]
            if not si.is_sparse:
                data = np.asarray(data)
                if data.dtype != si.dtype:
                    data = data.astype(si.dtype)
            result[si] = MinibatchData._packed(PackedSequences(data, lengths), None, si, sweep_end,
                                               is_sequence=self._is_seq[si.name])
        self._cursor = 0 if at_end else end
        return result

    def get_checkpoint_state(self):
        return {"cursor": int(self._cursor), "total_num_samples": int(self._total)}

    def restore_from_checkpoint(self, state):
        self._cursor = int(state["cursor"])
        self._total = int(state["total_num_samples"])

    def is_infinite(self):
        return self._max_samples == INFINITELY_REPEAT
