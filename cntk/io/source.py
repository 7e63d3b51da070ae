"""``MinibatchSource``: randomized, partitioned, prefetched minibatches from deserializers.

The source walks one global timeline of sequences (see ``randomizer``): every call takes the
next sequences whose sizes add up to at most the requested number of samples (always at least
one sequence), and a worker of a distributed job keeps its share of them: the sequences of
its chunks when randomizing over at least as many chunks as there are workers, otherwise
every ``num_data_partitions``-th sequence. So all workers agree on where the data stands,
their shares are disjoint and together complete, and one checkpoint restores them all.

While the caller works on a minibatch, the next one (for the same arguments) is assembled on
a background thread; a call with other arguments, or after a restore, discards it.
"""

import concurrent.futures
import copy
import threading
import warnings

import numpy as np

from .corpus import Corpus, gather, gather_pieces, concat
from .deserializer import DataError, collect_warnings, emit_warning
from .minibatch import MinibatchData
from .randomizer import Randomizer
from .streams import Record, StreamInformation

INFINITELY_REPEAT = 2 ** 64 - 1
"""No limit on samples or sweeps (CNTK's SIZE_MAX)."""
FULL_DATA_SWEEP = 2 ** 64 - 2
"""As ``max_samples``: exactly one sweep over the data."""
DEFAULT_RANDOMIZATION_WINDOW_IN_CHUNKS = 128
"""4 GB of 32 MB chunks."""

_STATE_VERSION = 1


def _trace_level_default():
    try:
        from ..logging import get_trace_level
        return get_trace_level()
    except Exception:      # logging not available: CNTK's default (warnings)
        return 1


class MinibatchSource:
    """Reads minibatches from one or more deserializers (joined by sequence key).

    ``max_samples`` / ``max_sweeps`` (exclusive) end the data; ``randomize`` shuffles chunks
    and the sequences inside a window of ``randomization_window_in_chunks`` chunks (or of
    ``randomization_window_in_samples`` samples), re-seeded with ``randomization_seed + sweep``
    every sweep; ``frame_mode`` makes every sample its own sequence; ``truncation_length``
    cuts sequences into pieces for truncated BPTT (continuations are marked, so recurrent
    state carries over between minibatches); ``max_errors`` bad sequences are skipped with a
    warning before malformed data raises; ``multithreaded_deserializer`` loads the chunks of a
    window on worker threads (``None``: when a deserializer asks for it, as image readers do).
    """

    def __init__(self, deserializers, max_samples=INFINITELY_REPEAT, max_sweeps=INFINITELY_REPEAT,
                 randomization_window_in_chunks=DEFAULT_RANDOMIZATION_WINDOW_IN_CHUNKS,
                 randomization_window_in_samples=0, randomization_seed=0, trace_level=None,
                 multithreaded_deserializer=None, frame_mode=False, truncation_length=0, randomize=True,
                 max_errors=0):
        for name, v in (("max_samples", max_samples), ("max_sweeps", max_sweeps),
                        ("randomization_window_in_chunks", randomization_window_in_chunks),
                        ("randomization_window_in_samples", randomization_window_in_samples),
                        ("truncation_length", truncation_length), ("max_errors", max_errors)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
                raise ValueError("MinibatchSource: %s must be a non-negative integer, got %r" % (name, v))
        if max_samples != INFINITELY_REPEAT and max_sweeps != INFINITELY_REPEAT:
            raise ValueError("MinibatchSource: max_samples and max_sweeps are mutually exclusive")
        if randomization_window_in_samples and randomization_window_in_chunks not in (
                0, DEFAULT_RANDOMIZATION_WINDOW_IN_CHUNKS):
            raise ValueError("MinibatchSource: randomization_window_in_chunks and randomization_window_in_samples "
                             "are mutually exclusive")
        if frame_mode and truncation_length:
            raise ValueError("MinibatchSource: frame_mode and truncation_length cannot be combined")
        if max_samples == 0 or max_sweeps == 0:
            raise ValueError("MinibatchSource: max_samples and max_sweeps must be positive")
        self._max_samples = None
        self._max_sweeps = None
        if max_samples == FULL_DATA_SWEEP:
            self._max_sweeps = 1
        elif max_samples != INFINITELY_REPEAT:
            self._max_samples = int(max_samples)
        if max_sweeps not in (INFINITELY_REPEAT, FULL_DATA_SWEEP):
            self._max_sweeps = int(max_sweeps)
        elif max_sweeps == FULL_DATA_SWEEP:
            self._max_sweeps = 1
        randomize = bool(randomize) and (randomization_window_in_chunks > 0 or randomization_window_in_samples > 0)
        self.trace_level = _trace_level_default() if trace_level is None else getattr(trace_level, "value", trace_level)
        window = int(randomization_window_in_chunks) if not randomization_window_in_samples else 0
        self._corpus = Corpus(deserializers, frame_mode=frame_mode, max_errors=max_errors,
                              multithreaded=multithreaded_deserializer,
                              cache_chunks=(window if randomize and window else 1) + 2)
        if self._corpus.num_chunks == 0:
            raise ValueError("MinibatchSource: the deserializer %r has no data" % (self._corpus.deserializers[0],))
        self._rand = Randomizer(self._corpus, randomize, window, randomization_window_in_samples, randomization_seed)
        self._config = {"randomize": randomize, "window_in_chunks": window,
                        "window_in_samples": int(randomization_window_in_samples), "seed": int(randomization_seed),
                        "frame_mode": bool(frame_mode), "truncation_length": int(truncation_length),
                        "num_chunks": self._corpus.num_chunks}
        self._truncation = int(truncation_length)
        self._infos = list(self._corpus.infos)
        self._streams = Record({si.name: si for si in self._infos})
        self._state = {"version": _STATE_VERSION, "sweep": 0, "start": 0, "pos": 0, "sweep_seq": 0, "samples": 0,
                       "slots": None}
        self._lock = threading.Lock()
        self._pending = None
        self._executor = None

    # -- streams ----------------------------------------------------------------------------------
    def stream_infos(self):
        """The ``StreamInformation`` of every stream, in stream-id order."""
        return list(self._infos)

    @property
    def streams(self):
        """The streams by name (``source.streams.features``)."""
        return self._streams

    def stream_info(self, name):
        """The ``StreamInformation`` of the stream called ``name``."""
        if isinstance(name, StreamInformation):
            name = name.name
        if name not in self._streams:
            raise KeyError("MinibatchSource has no stream named %r (streams: %s)"
                           % (name, ", ".join(self._streams)))
        return self._streams[name]

    def __getitem__(self, name):
        return self.stream_info(name)

    def is_infinite(self):
        """Whether the source never runs out of data (no max_samples or max_sweeps)."""
        return self._max_samples is None and self._max_sweeps is None

    # -- reading ----------------------------------------------------------------------------------
    def next_minibatch(self, minibatch_size_in_samples, input_map=None, device=None, num_data_partitions=None,
                       partition_index=None):
        """The next minibatch: {StreamInformation: MinibatchData}, or {Variable: MinibatchData}
        with ``input_map`` ({variable: stream}). ``{}`` once the data is exhausted.

        The size counts samples of the stream that defines the minibatch size (the longest
        stream of each sequence unless one is marked ``defines_mb_size``); whole sequences are
        packed while the total stays within the size, and a longer sequence comes alone. With
        ``num_data_partitions=K`` and ``partition_index=r`` the size is the global one and this
        worker receives its share (about 1/K).
        """
        M = minibatch_size_in_samples
        if not isinstance(M, (int, np.integer)) or isinstance(M, bool) or M <= 0:
            raise ValueError("next_minibatch: minibatch_size_in_samples must be a positive integer, got %r" % (M,))
        K = 1 if num_data_partitions is None else num_data_partitions
        r = 0 if partition_index is None else partition_index
        if not isinstance(K, (int, np.integer)) or K < 1 or not isinstance(r, (int, np.integer)) or not 0 <= r < K:
            raise ValueError("next_minibatch: partition_index must be in [0, num_data_partitions), got %r of %r"
                             % (partition_index, num_data_partitions))
        args = (int(M), int(K), int(r))
        with self._lock:
            pending, self._pending = self._pending, None
            state = self._state
        result = None
        if pending is not None:
            # wait for it even when it is of no use: its warnings are issued, and no two
            # threads ever assemble at once
            res, exc, warns = pending[2].result()
            for message, category in warns:
                warnings.warn(message, category, stacklevel=2)
            if exc is None and pending[0] == args and pending[1] is state:
                result = res
        if result is None:
            result = self._assemble(copy.deepcopy(state), *args)
        parts, new_state = result
        with self._lock:
            self._state = new_state
        if parts:
            self._prefetch(args, new_state)
        out = {}
        for si in self._infos:
            if parts:
                out[si] = parts[si.name]
        if not out:
            return {}
        if input_map:
            mapped = {}
            for var, stream in input_map.items():
                si = self.stream_info(stream)
                mapped[var] = out[si]
            return mapped
        return out

    def _prefetch(self, args, state):
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cntk-reader")
        fut = self._executor.submit(collect_warnings, self._assemble, copy.deepcopy(state), *args)
        with self._lock:
            self._pending = (args, state, fut)

    def _assemble(self, state, M, K, r):
        """(parts, new state): the minibatch at ``state`` as {stream name: MinibatchData}."""
        if self._truncation:
            return self._assemble_bptt(state, M, K, r)
        crossed = False
        while True:
            units, eos, taken = self._take(state, M)
            if units is None:
                return {}, state
            crossed = crossed or eos
            chunk, index, pos, sweep = units
            if K > 1:
                if self._rand.randomize and self._corpus.num_chunks >= K:
                    keep = chunk % K == r
                else:
                    keep = pos % K == r
                chunk, index, sweep = chunk[keep], index[keep], sweep[keep]
            if len(chunk):      # else this worker has no share of that global minibatch: take the next
                break
        eos = crossed
        parts = {}
        for name, p in self._gather(chunk, index, sweep).items():
            si = self._streams[name]
            parts[name] = MinibatchData._packed(p, None, si, eos)
        return parts, state

    def _gather(self, chunk, index, sweep, t0=None, n=None):
        """{stream: PackedSequences} of the given sequences (or pieces), in the given order."""
        sweep = sweep if self._corpus.sweep_aware else np.zeros(len(chunk), dtype=np.int64)
        key = chunk * (int(sweep.max()) + 1) + sweep if len(chunk) else chunk
        keys = np.unique(key)
        groups, order = [], []
        for kk in keys.tolist():
            at = np.flatnonzero(key == kk) if len(keys) > 1 else np.arange(len(chunk))
            c = self._corpus.chunk(int(chunk[at[0]]), int(sweep[at[0]]))
            if t0 is None:
                groups.append({name: gather(p, index[at]) for name, p in c.streams.items()})
            else:
                groups.append({name: gather_pieces(p, index[at], t0[at], n[at]) for name, p in c.streams.items()})
            order.append(at)
        if len(groups) == 1:
            return groups[0]
        inv = np.empty(len(chunk), dtype=np.int64)
        inv[np.concatenate(order)] = np.arange(len(chunk))
        return {name: gather(concat([g[name] for g in groups]), inv) for name in groups[0]}

    def _exhausted(self, state):
        if self._max_sweeps is not None and state["sweep"] >= self._max_sweeps:
            return True
        return self._max_samples is not None and state["samples"] >= self._max_samples

    def _next_window(self, state, w):
        """Moves ``state`` past the randomization window ``w`` once all its sequences are taken;
        returns whether that ends a sweep (the next window is then the first of a new sweep)."""
        if state["pos"] < len(w.sizes):
            return False
        state["start"], state["pos"] = w.end, 0
        if w.end < self._corpus.num_chunks:
            return False
        state["sweep"] += 1
        state["start"] = state["sweep_seq"] = 0
        return True

    def _take(self, state, M):
        """Advances ``state`` over the next global minibatch of at most M samples. Returns
        ((chunk, index, position in sweep) arrays, end of sweep, samples) or (None, ...)."""
        if self._exhausted(state):
            return None, False, 0
        budget = M
        if self._max_samples is not None:
            budget = min(budget, self._max_samples - state["samples"])
        chunks, indices, positions, sweeps = [], [], [], []
        taken, eos = 0, False
        C = self._corpus.num_chunks
        empty = 0
        while True:
            w = self._rand.window(state["sweep"], state["start"])
            empty = empty + 1 if not len(w.sizes) else 0
            if empty > C:
                raise DataError("MinibatchSource: the data has no sequences")
            sizes = w.sizes[state["pos"]:]
            if len(sizes):
                cs = np.cumsum(sizes)
                k = int(np.searchsorted(cs, budget - taken, side="right"))
                if k == 0 and taken == 0:
                    k = 1
                a = state["pos"]
                chunks.append(w.chunk[a:a + k])
                indices.append(w.index[a:a + k])
                positions.append(state["sweep_seq"] + np.arange(k, dtype=np.int64))
                sweeps.append(np.full(k, state["sweep"], dtype=np.int64))
                if k:
                    taken += int(cs[k - 1])
                state["pos"] += k
                state["sweep_seq"] += k
                full = k < len(sizes)
            else:
                full = False
            if self._next_window(state, w):
                eos = True
            if full or taken >= budget or (self._max_sweeps is not None and state["sweep"] >= self._max_sweeps):
                break
        state["samples"] += taken
        if not taken:
            return None, False, 0
        return (np.concatenate(chunks), np.concatenate(indices), np.concatenate(positions),
                np.concatenate(sweeps)), eos, taken

    # -- truncated BPTT ---------------------------------------------------------------------------
    def _next_unit(self, state, K, r):
        """The next sequence of this worker's share: (chunk, index, size, sweep, crossed a sweep
        end) or None at the end of the data."""
        crossed = False
        C = self._corpus.num_chunks
        sweeps = 0
        while True:
            if self._max_sweeps is not None and state["sweep"] >= self._max_sweeps:
                return None
            if sweeps > 2:
                raise DataError("MinibatchSource: partition %d of %d receives no sequences" % (r, K))
            w = self._rand.window(state["sweep"], state["start"])
            found = None
            if state["pos"] < len(w.sizes):
                a = state["pos"]
                c, i, s = int(w.chunk[a]), int(w.index[a]), int(w.sizes[a])
                sw = state["sweep"]
                pos = state["sweep_seq"]
                state["pos"] += 1
                state["sweep_seq"] += 1
                if K == 1 or ((c % K == r) if (self._rand.randomize and C >= K) else (pos % K == r)):
                    found = (c, i, s, sw)
            if self._next_window(state, w):
                crossed = True
                sweeps += 1
            if found is not None:
                return found + (crossed,)

    def _assemble_bptt(self, state, M, K, r):
        T = self._truncation
        if self._max_samples is not None and state["samples"] >= self._max_samples:
            return {}, state
        slots = state["slots"]
        if slots is None:
            slots = [None] * max(1, M // T)
        eos = False
        rows = []      # (slot, chunk, index, t0, n, starts)
        for s, cur in enumerate(slots):
            if cur is None:
                u = self._next_unit(state, K, r)
                if u is None:
                    continue
                c, i, size, sw, crossed = u
                eos = eos or crossed
                cur = [c, i, 0, size, sw]
            c, i, t0, size, sw = cur
            n = min(T, size - t0)
            rows.append((s, c, i, t0, n, sw))
            slots[s] = [c, i, t0 + n, size, sw] if t0 + n < size else None
        state["slots"] = slots
        if not rows:
            state["slots"] = None
            return {}, state
        starts = [row[3] == 0 for row in rows]
        # a piece continues the previous minibatch's row only in the same row: when the data runs
        # out in some slots, the rows after them move up and their sequences restart
        moved = [k for k, row in enumerate(rows) if row[0] != k and row[3] > 0]
        if moved:
            emit_warning("truncated BPTT: the data ran out in some slots, so the remaining pieces of %d sequence(s) "
                         "move to another row and restart their recurrent state" % len(moved))
            for k in moved:
                starts[k] = True
        chunk = np.array([row[1] for row in rows], dtype=np.int64)
        index = np.array([row[2] for row in rows], dtype=np.int64)
        t0 = np.array([row[3] for row in rows], dtype=np.int64)
        n = np.array([row[4] for row in rows], dtype=np.int64)
        sweep = np.array([row[5] for row in rows], dtype=np.int64)
        state["samples"] += int(n.sum())
        parts = {}
        for name, p in self._gather(chunk, index, sweep, t0, n).items():
            parts[name] = MinibatchData._packed(p, None, self._streams[name], eos, starts=starts)
        return parts, state

    # -- checkpoints ------------------------------------------------------------------------------
    def get_checkpoint_state(self):
        """The reading position as a JSON-able dict; ``restore_from_checkpoint`` continues
        from it with exactly the minibatches this source would have produced next."""
        with self._lock:
            st = copy.deepcopy(self._state)
        st["config"] = dict(self._config)
        return st

    def restore_from_checkpoint(self, checkpoint):
        """Continues reading from a state returned by ``get_checkpoint_state``."""
        if not isinstance(checkpoint, dict) or checkpoint.get("version") != _STATE_VERSION:
            raise ValueError("MinibatchSource.restore_from_checkpoint: not a reader state of this version: %r"
                             % (checkpoint,))
        cfg = checkpoint.get("config")
        if cfg is not None and cfg != self._config:
            diff = sorted(k for k in set(cfg) | set(self._config) if cfg.get(k) != self._config.get(k))
            raise ValueError("MinibatchSource.restore_from_checkpoint: the state was saved by a source configured "
                             "differently (%s)" % ", ".join("%s: %r vs %r" % (k, cfg.get(k), self._config.get(k))
                                                            for k in diff))
        st = {k: copy.deepcopy(checkpoint[k]) for k in ("version", "sweep", "start", "pos", "sweep_seq", "samples",
                                                           "slots")}
        with self._lock:
            self._state = st

    @property
    def current_position(self):
        """The reading position (settable; see ``get_checkpoint_state``)."""
        return self.get_checkpoint_state()

    @current_position.setter
    def current_position(self, position):
        self.restore_from_checkpoint(position)

    def __del__(self):
        ex = getattr(self, "_executor", None)
        if ex is not None:
            ex.shutdown(wait=False)
