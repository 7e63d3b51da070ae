"""The interface every deserializer implements, and the public ``UserDeserializer``.

A deserializer presents its data as numbered chunks of whole sequences. ``MinibatchSource``
does everything else (randomization, partitioning, packing, prefetching, checkpoints).

Contract
--------
``stream_infos()``
    list of ``StreamInformation``, one per stream, in a fixed order.
``num_chunks()``
    the number of chunks (int, ≥ 0). Chunk ids are ``0 .. num_chunks()-1``.
``get_chunk(chunk_id)``
    dict stream name → the chunk's sequences for that stream, in chunk order. Every stream holds
    the same number of sequences. Preferred form: a list with one entry per sequence, each a dense
    numpy array ``(T, *shape)`` or, for sparse streams, a ``scipy.sparse.csr_matrix`` ``(T, dim)``
    (T may differ between streams of one sequence, and may be 0). Also accepted (CNTK's
    ``UserDeserializer`` forms): one ndarray ``(N, *shape)`` or one CSR matrix ``(N, dim)``, which
    means N sequences of one sample each; and, fastest for many short sequences,
    ``PackedSequences(data, lengths)``: all samples of the chunk back to back plus one length
    per sequence. Must return the same data every time it is called with the same id (the
    source may load a chunk more than once).
    A deserializer whose ``get_chunk`` takes a ``sweep`` keyword (random transforms that change
    from sweep to sweep) is passed the sweep being read, and its chunks are cached per sweep.
``sequence_keys(chunk_id)``
    list of the chunk's sequence keys (str or int) in chunk order, used to join several
    deserializers by sequence id; ``None`` (the default) means "not joinable by key".
``chunk_sizes()`` (optional)
    list of ``(num_sequences, num_samples)`` per chunk when known without loading, else ``None``.
``multithreaded_by_default`` (optional class attribute)
    True asks ``MinibatchSource(multithreaded_deserializer=None)`` to load several chunks at once
    on worker threads.

Malformed data: call ``self.report_error(message)`` for each bad sequence and leave the
sequence out. It raises ``DataError(message)`` unless the source's ``max_errors`` budget allows
skipping it, in which case it warns and returns. Messages should name the file and line.
"""

import threading
import warnings

import numpy as np


class PackedSequences:
    """Sequences stored back to back: ``data`` (ndarray ``(total, *shape)`` or CSR ``(total, dim)``)
    and ``lengths`` (int array, one entry per sequence, summing to ``total``)."""

    __slots__ = ("data", "lengths", "offsets")

    def __init__(self, data, lengths):
        lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if lengths.size and lengths.min() < 0:
            raise ValueError("PackedSequences: negative sequence length")
        total = int(lengths.sum())
        if data.shape[0] != total:
            raise ValueError("PackedSequences: the lengths sum to %d but the data has %d rows" % (total, data.shape[0]))
        self.data = data
        self.lengths = lengths
        self.offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)

    def __len__(self):
        return len(self.lengths)

    def sequence(self, i):
        """The i-th sequence (a view for dense data)."""
        return self.data[self.offsets[i]:self.offsets[i + 1]]


class DataError(ValueError):
    """Malformed or unreadable input data (names the file, line and problem)."""


_sink = threading.local()


def emit_warning(message, category=RuntimeWarning):
    """``warnings.warn``, except on a thread that collects warnings (the reader's prefetch
    thread), where the warning is kept to be issued when its minibatch is handed out."""
    collected = getattr(_sink, "warnings", None)
    if collected is not None:
        collected.append((message, category))
    else:
        warnings.warn(message, category, stacklevel=3)


def collect_warnings(fn, *args):
    """Runs ``fn(*args)`` keeping the warnings it emits through ``emit_warning``. Returns
    (result or None, exception or None, warnings)."""
    _sink.warnings = []
    try:
        return fn(*args), None, _sink.warnings
    except BaseException as e:      # handed to the thread that wants the result
        return None, e, _sink.warnings
    finally:
        _sink.warnings = None


class ErrorBudget:
    """How many bad sequences may be skipped (``max_errors``), shared by all deserializers of a
    source. Thread-safe enough for our use: counting happens in one loader thread at a time."""

    def __init__(self, max_errors=0):
        self.max_errors = int(max_errors)
        self.count = 0
        self._seen = set()

    def report(self, message):
        """Raise ``DataError`` or, within the budget, warn once per distinct message."""
        if message in self._seen:       # the same chunk loaded again: already counted
            return
        if self.count >= self.max_errors:
            if self.max_errors:
                message += " (max_errors=%d exceeded)" % self.max_errors
            raise DataError(message)
        self._seen.add(message)
        self.count += 1
        emit_warning("skipping malformed data (%d of at most %d): %s" % (self.count, self.max_errors, message))


class Deserializer:
    """Base class of deserializers; see the module docstring for the contract."""

    #: set by MinibatchSource so that every deserializer of a source shares one budget
    error_budget = None

    def stream_infos(self):
        raise TypeError("%s must implement stream_infos()" % type(self).__name__)

    def num_chunks(self):
        raise TypeError("%s must implement num_chunks()" % type(self).__name__)

    def get_chunk(self, chunk_id):
        raise TypeError("%s must implement get_chunk(chunk_id)" % type(self).__name__)

    def sequence_keys(self, chunk_id):
        return None

    def chunk_sizes(self):
        return None

    def report_error(self, message):
        """A bad sequence: raises ``DataError``, or warns and returns within ``max_errors``."""
        budget = self.error_budget if self.error_budget is not None else ErrorBudget(0)
        budget.report(message)


class UserDeserializer(Deserializer):
    """CNTK's base class for deserializers written in Python: implement ``stream_infos()``,
    ``num_chunks()`` and ``get_chunk(chunk_id)``; pass an instance to ``MinibatchSource``, which
    then randomizes, partitions and packs the data like any other deserializer."""
