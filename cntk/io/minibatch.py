"""``MinibatchData``: one stream's part of a minibatch, and the ``Value`` it feeds the engine.

A reader's minibatch is stored packed: all samples of the minibatch back to back (a float
array ``(total, *shape)`` or a CSR matrix ``(total, dim)``) plus one length per sequence. It is
turned into the engine's padded tensor (or compact sparse batch) in a few vectorised numpy
operations when it is fed, without Python work per sequence or per sample.
"""

import math

import numpy as np
import torch

from ..core import Value
from ..engine import sparse as _sparse
from ..engine.graph import torch_dtype
from .deserializer import PackedSequences


def _rows(lengths, T):
    """Flat (b * T + t) positions of every sample of left-aligned sequences in a (B, T) grid."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    starts = np.arange(len(lengths), dtype=np.int64) * T
    firsts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    return np.arange(total, dtype=np.int64) + np.repeat(starts - firsts, lengths)


class PackedValue(Value):
    """A ``Value`` over packed sequences (``PackedSequences``) with optional per-sequence start
    flags (False: the sequence continues the one in the same row of the previous minibatch).
    ``is_sequence`` False means every sequence has one sample and there is no sequence axis."""

    def __init__(self, packed, sample_shape, is_sparse, starts=None, is_sequence=True, device=None):
        super().__init__(device=device)
        self._packed = packed
        self._sample_shape = tuple(sample_shape)
        self._is_sparse_data = bool(is_sparse)
        self._seq_starts = None if starts is None else [bool(s) for s in starts]
        self._is_sequence = bool(is_sequence)

    # -- what Value reports --------------------------------------------------------------------
    def _seq_lengths(self):
        return [int(n) for n in self._packed.lengths] if self._is_sequence else None

    @property
    def shape(self):
        n = len(self._packed.lengths)
        if not self._is_sequence:
            return (n,) + self._sample_shape
        T = int(self._packed.lengths.max()) if n else 0
        return (n, T) + self._sample_shape

    @property
    def is_sparse(self):
        return self._is_sparse_data

    @property
    def dtype(self):
        return np.float32 if self._is_sparse_data else self._packed.data.dtype.type

    @property
    def mask(self):
        lengths = self._packed.lengths
        if not self._is_sequence:
            return np.full((len(lengths), 1), 2, dtype=np.int8)
        T = int(lengths.max()) if len(lengths) else 0
        m = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int8)
        first = lengths > 0
        if self._seq_starts is None:
            m[first, 0] = 2
        else:
            m[first & np.asarray(self._seq_starts, dtype=bool), 0] = 2
        return m

    def _dense_packed(self):
        d = self._packed.data
        if self._is_sparse_data:
            d = d.toarray().astype(np.float32, copy=False)
        return d.reshape((d.shape[0],) + self._sample_shape)

    def asarray(self):
        """Dense: one padded (batch, max length, ...) array, or (batch, ...) without a sequence
        axis. Sparse: a CSR matrix of the samples (batch without a sequence axis), as CNTK."""
        if self._is_sparse_data and not self._is_sequence:
            return self._packed.data
        d = self._dense_packed()
        if not self._is_sequence:
            return d
        lengths = self._packed.lengths
        B, T = len(lengths), int(lengths.max()) if len(lengths) else 0
        out = np.zeros((B * T,) + self._sample_shape, dtype=d.dtype)
        out[_rows(lengths, T)] = d
        return out.reshape((B, T) + self._sample_shape)

    def as_sequences(self, variable=None):
        """A list of per-sequence arrays (CSR matrices for sparse data)."""
        p = self._packed
        data = p.data if self._is_sparse_data else self._dense_packed()
        return [data[p.offsets[i]:p.offsets[i + 1]] for i in range(len(p.lengths))]

    @property
    def data(self):
        from ..core import NDArrayView
        a = self.asarray()
        if _sparse.is_sparse_matrix(a):
            a = a.toarray()
        return NDArrayView._wrap(torch.as_tensor(np.asarray(a)))

    # -- feeding the engine ----------------------------------------------------------------------
    def _for_variable(self, var, device, starts=None):
        p = self._packed
        vshape = tuple(var._shape)
        dim = math.prod(self._sample_shape)
        if math.prod(vshape) != dim:
            raise ValueError("reader data with samples of shape %s cannot feed %s (shape %s)"
                             % (self._sample_shape, var._describe(), vshape))
        lengths = p.lengths
        starts = starts if starts is not None else self._seq_starts
        if var.has_sequence_axis:
            if len(lengths) and lengths.min() == 0:
                raise ValueError("the reader gave an empty sequence (no samples of this stream) for %s; "
                                 "sequences must have at least one element" % var._describe())
            seq_lengths = [int(n) for n in lengths]
            T = max(seq_lengths) if seq_lengths else 0
        else:
            if len(lengths) and (lengths.min() != 1 or lengths.max() != 1):
                raise ValueError("%s has no sequence axis but the reader gave sequences of up to %d samples; "
                                 "use a sequence input (C.sequence.input_variable) or frame_mode=True"
                                 % (var._describe(), int(lengths.max())))
            seq_lengths, T, starts = None, 1, None
        B = len(lengths)
        dt = torch_dtype(var._dtype or np.float32)
        if self._is_sparse_data:
            m = p.data
            if var._is_sparse and len(vshape) == 1:
                return self._sparse_batch(var, m, seq_lengths, B, T, dt, device), seq_lengths, starts
            d = m.toarray()
        else:
            d = p.data.reshape(p.data.shape[0], dim)
        if d.dtype.kind == "f" and d.size and not np.isfinite(d).all():
            raise ValueError("the reader data fed to %s contains NaN or infinity" % var._describe())
        if seq_lengths is None:
            t = torch.as_tensor(np.ascontiguousarray(d), device=device).to(dt)
            return t.reshape((B,) + vshape), None, None
        if all(n == T for n in seq_lengths):
            out = d
        else:
            out = np.zeros((B * T, dim), dtype=d.dtype)
            out[_rows(lengths, T)] = d
        t = torch.as_tensor(np.ascontiguousarray(out), device=device).to(dt)
        return t.reshape((B, T) + vshape), seq_lengths, starts

    @staticmethod
    def _sparse_batch(var, m, seq_lengths, B, T, dt, device):
        V = var._shape[0]
        if m.shape[1] != V:
            raise ValueError("sparse reader data of dimension %d cannot feed %s" % (m.shape[1], var._describe()))
        if not m.has_canonical_format:
            m = m.copy()
            m.sum_duplicates()
        one_hot = bool(np.all(np.diff(m.indptr) == 1)) and bool(np.all(m.data == 1))
        if seq_lengths is None:
            if one_hot:
                return _sparse.SparseBatch((B, V), dt, device, index=torch.as_tensor(m.indices.astype(np.int64), device=device))
            rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
            size = (B, V)
        else:
            pos = _rows(np.asarray(seq_lengths), T)
            if one_hot:
                idx = np.zeros(B * T, dtype=np.int64)
                idx[pos] = m.indices
                return _sparse._one_hot_batch(idx.reshape(B, T), seq_lengths, dt, device, V)
            rows = np.repeat(pos, np.diff(m.indptr))
            size = (B * T, V)
        ind = torch.as_tensor(np.stack((rows, m.indices.astype(np.int64))), device=device)
        vals = torch.as_tensor(m.data, device=device).to(dt)
        mat = _sparse._coo(ind, vals, size)
        return _sparse.SparseBatch((B, V) if seq_lengths is None else (B, T, V), dt, device, matrix=mat)


class MinibatchData:
    """One stream's data in a minibatch from a reader: ``data`` (a ``Value``), ``num_samples``,
    ``num_sequences``, ``end_of_sweep``, ``is_sparse``, ``shape``, ``mask``, ``as_sequences()``,
    ``asarray()``. Pass it (or its ``data``) directly to ``eval``, ``train_minibatch`` and
    ``test_minibatch``.

    ``MinibatchData(value, num_sequences, num_samples, sweep_end)`` as in CNTK, for
    ``UserMinibatchSource`` implementations; readers build theirs packed.
    """

    def __init__(self, value, num_sequences, num_samples, sweep_end):
        if not isinstance(value, Value):
            value = Value(value)
        self._value = value
        self._num_sequences = int(num_sequences)
        self._num_samples = int(num_samples)
        self._sweep_end = bool(sweep_end)

    @classmethod
    def _packed(cls, data, lengths, info, sweep_end, starts=None, is_sequence=True):
        packed = data if isinstance(data, PackedSequences) else PackedSequences(data, lengths)
        value = PackedValue(packed, info.shape, info.is_sparse, starts, is_sequence)
        return cls(value, len(packed.lengths), int(packed.lengths.sum()), sweep_end)

    @property
    def data(self):
        """The minibatch as a ``Value``."""
        return self._value

    value = data

    @property
    def num_sequences(self):
        """The number of sequences in this minibatch."""
        return self._num_sequences

    number_of_sequences = num_sequences

    @property
    def num_samples(self):
        """The number of samples in this minibatch."""
        return self._num_samples

    number_of_samples = num_samples

    @property
    def end_of_sweep(self):
        """Whether this minibatch ends a sweep over the data (or crosses into the next one)."""
        return self._sweep_end

    sweep_end = end_of_sweep

    @property
    def is_sparse(self):
        """Whether the data is sparse."""
        return self._value.is_sparse

    @property
    def shape(self):
        """The shape of the data: (sequences, max length, ...) or (samples, ...)."""
        return self._value.shape

    @property
    def mask(self):
        """Per sequence and step: 2 = sequence start, 1 = valid (or continuation), 0 = padding."""
        return self._value.mask

    def as_sequences(self, variable=None):
        """The data as a list of per-sequence arrays (CSR matrices for sparse data)."""
        return self._value.as_sequences(variable)

    def asarray(self):
        """The data as one array (padded for sequences; a CSR matrix for sparse non-sequence data)."""
        return self._value.asarray()

    def __len__(self):
        return self._num_sequences

    def __repr__(self):
        return "MinibatchData(num_sequences=%d, num_samples=%d, end_of_sweep=%s, shape=%s%s)" % (
            self._num_sequences, self._num_samples, self._sweep_end, self.shape, ", sparse" if self.is_sparse else "")
