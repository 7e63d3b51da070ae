"""The data a ``MinibatchSource`` reads: its deserializers joined into one chunked corpus.

``Corpus`` checks and normalises what deserializers return into ``PackedSequences``, joins
several deserializers by sequence key (the first one's chunks and order lead), applies frame
mode, keeps loaded chunks in a bounded cache (loading several at once on worker threads when
asked to) and remembers each chunk's per-sequence sizes for the randomizer.
"""

import collections
import concurrent.futures
import inspect
import math
import os
import threading

import numpy as np

from .deserializer import PackedSequences, ErrorBudget, DataError, emit_warning
from .streams import StreamInformation


def _is_csr(x):
    return hasattr(x, "tocsr") and hasattr(x, "indptr") and getattr(x, "format", None) == "csr"


def _is_sparse(x):
    return hasattr(x, "tocsr") and hasattr(x, "nnz")


def gather(ps, idx):
    """The sequences ``idx`` of a ``PackedSequences``, in that order."""
    idx = np.asarray(idx, dtype=np.int64)
    lengths = ps.lengths[idx]
    total = int(lengths.sum())
    rows = np.arange(total, dtype=np.int64) + np.repeat(ps.offsets[idx] - (np.cumsum(lengths) - lengths), lengths)
    return PackedSequences(ps.data[rows], lengths)


def gather_pieces(ps, idx, t0, n):
    """Pieces ``[t0, t0 + n)`` (clipped to each sequence) of the sequences ``idx``."""
    idx = np.asarray(idx, dtype=np.int64)
    t0 = np.asarray(t0, dtype=np.int64)
    full = ps.lengths[idx]
    start = np.minimum(t0, full)
    lengths = np.clip(np.minimum(full - start, np.asarray(n, dtype=np.int64)), 0, None)
    total = int(lengths.sum())
    rows = np.arange(total, dtype=np.int64) + np.repeat(ps.offsets[idx] + start - (np.cumsum(lengths) - lengths), lengths)
    return PackedSequences(ps.data[rows], lengths)


def concat(parts):
    """One ``PackedSequences`` holding the sequences of ``parts`` in order."""
    if len(parts) == 1:
        return parts[0]
    datas = [p.data for p in parts]
    if _is_sparse(datas[0]):
        import scipy.sparse
        data = scipy.sparse.vstack([d.tocsr() for d in datas], format="csr")
    else:
        data = np.concatenate(datas)
    return PackedSequences(data, np.concatenate([p.lengths for p in parts]))


def _takes_sweep(d):
    try:
        return "sweep" in inspect.signature(d.get_chunk).parameters
    except (TypeError, ValueError):
        return False


class Chunk:
    """A loaded chunk: ``streams`` {name: PackedSequences}, ``sizes`` (samples per sequence as
    the minibatch size counts them) and ``keys`` (or None)."""

    __slots__ = ("streams", "sizes", "keys", "n")

    def __init__(self, streams, sizes, keys):
        self.streams = streams
        self.sizes = sizes
        self.keys = keys
        self.n = len(sizes)


class Corpus:
    """The deserializers of a source as one sequence of chunks."""

    def __init__(self, deserializers, frame_mode=False, max_errors=0, multithreaded=None, cache_chunks=8):
        if not isinstance(deserializers, (list, tuple)):
            deserializers = [deserializers]
        if not deserializers:
            raise ValueError("MinibatchSource: no deserializers given")
        self.deserializers = list(deserializers)
        self.budget = ErrorBudget(max_errors)
        for d in self.deserializers:
            for m in ("stream_infos", "num_chunks", "get_chunk"):
                if not callable(getattr(d, m, None)):
                    raise TypeError("MinibatchSource: %r is not a deserializer (it has no %s() method)" % (d, m))
            try:
                d.error_budget = self.budget
            except AttributeError:
                pass
        self.frame_mode = bool(frame_mode)
        infos, owner = [], []
        names = set()
        for di, d in enumerate(self.deserializers):
            for si in d.stream_infos():
                if not isinstance(si, StreamInformation):
                    raise TypeError("%r: stream_infos() must return StreamInformation objects, got %r"
                                    % (d, type(si).__name__))
                if si.name in names:
                    raise ValueError("MinibatchSource: two deserializers define a stream named '%s'" % si.name)
                names.add(si.name)
                infos.append(si)
                owner.append(di)
        if not infos:
            raise ValueError("MinibatchSource: the deserializers define no streams")
        self.infos = [StreamInformation(si.name, i, si.storage_format, si.dtype, si.shape, si.defines_mb_size)
                      for i, si in enumerate(infos)]
        self._owner = {si.name: di for si, di in zip(self.infos, owner)}
        self._names_of = [[si.name for si, o in zip(self.infos, owner) if o == di] for di in range(len(self.deserializers))]
        mb = [si.name for si in self.infos if si.defines_mb_size]
        if len(mb) > 1:
            raise ValueError("MinibatchSource: several streams define the minibatch size (%s); mark only one"
                             % ", ".join(mb))
        self.mb_stream = mb[0] if mb else None
        self.num_chunks = int(self.deserializers[0].num_chunks())
        if multithreaded is None:     # automatic: on for image readers (decoding is the costly part)
            from . import image
            multithreaded = any(getattr(d, "multithreaded_by_default", False) or
                                isinstance(d, (image.ImageDeserializer, image.Base64ImageDeserializer))
                                for d in self.deserializers)
        self.multithreaded = bool(multithreaded)
        self._pool = None
        self._cache = collections.OrderedDict()
        self._cache_limit = max(int(cache_chunks), 2)
        self._loading = {}
        self._lock = threading.Lock()
        self._meta = {}                 # chunk id -> sizes (kept for good: small)
        self._join = None
        self._sec_cache = collections.OrderedDict()
        # deserializers whose get_chunk takes the sweep (random transforms that change per sweep)
        self._takes_sweep = [_takes_sweep(d) for d in self.deserializers]
        self.sweep_aware = any(self._takes_sweep)

    def _get(self, di, cid, sweep):
        d = self.deserializers[di]
        return d.get_chunk(cid, sweep=sweep) if self._takes_sweep[di] else d.get_chunk(cid)

    # -- loading ----------------------------------------------------------------------------------
    def chunk(self, cid, sweep=0):
        """The loaded chunk ``cid`` as read in ``sweep`` (from the cache, or loaded now)."""
        cid = (int(cid), int(sweep) if self.sweep_aware else 0)
        with self._lock:
            c = self._cache.get(cid)
            if c is not None:
                self._cache.move_to_end(cid)
                return c
            fut = self._loading.get(cid)
            mine = fut is None
            if mine:
                fut = concurrent.futures.Future()
                self._loading[cid] = fut
        if not mine:
            return fut.result()
        try:
            c = self._load(*cid)
        except BaseException as e:
            with self._lock:
                del self._loading[cid]
            fut.set_exception(e)
            raise
        with self._lock:
            self._cache[cid] = c
            self._meta[cid[0]] = c.sizes
            while len(self._cache) > self._cache_limit:
                self._cache.popitem(last=False)
            del self._loading[cid]
        fut.set_result(c)
        return c

    def preload(self, cids, sweep=0):
        """Loads the chunks ``cids`` (in parallel when multithreaded)."""
        key = int(sweep) if self.sweep_aware else 0
        cids = [c for c in cids if (c, key) not in self._cache]
        if len(cids) > 1 and self.multithreaded:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
            list(self._pool.map(lambda c: self.chunk(c, sweep), cids))

    def sizes(self, cid, sweep=0):
        """Per-sequence sizes of chunk ``cid`` (loads it once if needed)."""
        s = self._meta.get(cid)
        if s is None:
            s = self.chunk(cid, sweep).sizes
        return s

    def ensure_cache(self, n):
        """Keeps at least ``n`` chunks loaded."""
        self._cache_limit = max(self._cache_limit, int(n))

    def _load(self, cid, sweep):
        d0 = self.deserializers[0]
        streams = self._normalize(0, self._get(0, cid, sweep), cid)
        keys = d0.sequence_keys(cid) if callable(getattr(d0, "sequence_keys", None)) else None
        n = len(next(iter(streams.values())))
        if keys is not None:
            keys = np.asarray(keys)
            if len(keys) != n:
                raise DataError("%r: sequence_keys(%d) gave %d keys for %d sequences" % (d0, cid, len(keys), n))
        if len(self.deserializers) > 1:
            streams, keys = self._joined(cid, sweep, streams, keys, n)
        if self.frame_mode:
            streams = self._frames(streams, cid)
        sizes = self._sizes(streams)
        return Chunk(streams, sizes, keys)

    def _sizes(self, streams):
        if self.mb_stream is not None:
            s = streams[self.mb_stream].lengths.copy()
        else:
            s = np.max(np.stack([p.lengths for p in streams.values()]), axis=0)
        return np.maximum(s, 1)

    def _frames(self, streams, cid):
        ref_name, ref = next(iter(streams.items()))
        for name, p in streams.items():
            if not np.array_equal(p.lengths, ref.lengths):
                i = int(np.flatnonzero(p.lengths != ref.lengths)[0])
                raise ValueError("frame_mode: in chunk %d, sequence %d has %d samples of stream '%s' but %d of '%s'; "
                                 "frame mode needs every stream to have one sample per frame"
                                 % (cid, i, int(ref.lengths[i]), ref_name, int(p.lengths[i]), name))
        return {name: PackedSequences(p.data, np.ones(p.data.shape[0], dtype=np.int64)) for name, p in streams.items()}

    def _normalize(self, di, raw, cid):
        """A deserializer's chunk as {name: PackedSequences}, checked against its stream infos."""
        d = self.deserializers[di]
        if not isinstance(raw, dict):
            raise TypeError("%r: get_chunk(%d) must return a dict of stream name -> data, got %s"
                            % (d, cid, type(raw).__name__))
        out, n = {}, None
        for name in self._names_of[di]:
            if name not in raw:
                raise DataError("%r: get_chunk(%d) gave no data for stream '%s'" % (d, cid, name))
            si = self.infos[[s.name for s in self.infos].index(name)]
            p = self._pack(d, cid, si, raw[name])
            if n is None:
                n = len(p.lengths)
            elif len(p.lengths) != n:
                raise DataError("%r: get_chunk(%d) gave %d sequences for stream '%s' but %d for another stream"
                                % (d, cid, len(p.lengths), name, n))
            out[name] = p
        return out

    @staticmethod
    def _pack(d, cid, si, v):
        shape = si.shape
        dim = math.prod(shape)
        where = "%r: get_chunk(%d), stream '%s'" % (d, cid, si.name)
        if isinstance(v, PackedSequences):
            p = v
        elif _is_sparse(v):
            p = PackedSequences(v.tocsr(), np.ones(v.shape[0], dtype=np.int64))
        elif isinstance(v, np.ndarray) and v.dtype != object:
            if v.shape[1:] != shape and not (v.ndim == 1 and dim == 1):
                raise DataError("%s: data of shape %s; expected (sequences,) + %s" % (where, v.shape, shape))
            p = PackedSequences(v.reshape((-1,) + shape), np.ones(v.shape[0], dtype=np.int64))
        elif isinstance(v, (list, tuple)):
            if v and all(_is_sparse(s) for s in v):
                import scipy.sparse
                p = PackedSequences(scipy.sparse.vstack([s.tocsr() for s in v], format="csr"),
                                    [s.shape[0] for s in v])
            else:
                arrs = []
                for i, s in enumerate(v):
                    a = np.asarray(s)
                    if a.shape[1:] != shape:
                        if a.ndim == 1 and dim == 1:
                            a = a.reshape(-1, 1)
                        elif a.shape == shape:
                            a = a[None]
                        else:
                            raise DataError("%s: sequence %d has shape %s; expected (length,) + %s" % (where, i, a.shape, shape))
                    arrs.append(a.reshape((a.shape[0],) + shape))
                data = np.concatenate(arrs) if arrs else np.zeros((0,) + shape, dtype=np.float32)
                p = PackedSequences(data, [a.shape[0] for a in arrs])
        else:
            raise DataError("%s: unsupported data type %s (give a list of sequences, an ndarray, a CSR matrix or "
                            "PackedSequences)" % (where, type(v).__name__))
        data = p.data
        if si.is_sparse:
            if not _is_sparse(data):
                import scipy.sparse
                data = scipy.sparse.csr_matrix(np.asarray(data).reshape(data.shape[0], -1))
            data = data.tocsr()
            if data.shape[1] != dim:
                raise DataError("%s: sparse data has %d columns; the stream has dimension %d" % (where, data.shape[1], dim))
            if data.dtype != si.dtype:
                data = data.astype(si.dtype)
        else:
            if _is_sparse(data):
                data = data.toarray()
            data = np.asarray(data)
            if data.shape[1:] != shape:
                if math.prod(data.shape[1:]) != dim:
                    raise DataError("%s: samples of shape %s; the stream has shape %s" % (where, data.shape[1:], shape))
                data = data.reshape((data.shape[0],) + shape)
            if data.dtype != si.dtype:
                if data.dtype.kind not in "biuf":
                    raise DataError("%s: data of type %s is not numeric" % (where, data.dtype))
                data = data.astype(si.dtype)
        return p if data is p.data else PackedSequences(data, p.lengths)

    # -- joining by key ---------------------------------------------------------------------------
    def _join_index(self):
        """For each secondary deserializer: sorted keys and their (chunk, index)."""
        if self._join is not None:
            return self._join
        idx = []
        for di, d in enumerate(self.deserializers[1:], start=1):
            keys, chunks, pos = [], [], []
            for c in range(int(d.num_chunks())):
                k = d.sequence_keys(c) if callable(getattr(d, "sequence_keys", None)) else None
                if k is None:
                    idx.append(None)
                    break
                k = np.asarray(k)
                keys.append(k)
                chunks.append(np.full(len(k), c, dtype=np.int64))
                pos.append(np.arange(len(k), dtype=np.int64))
            else:
                if keys:
                    keys = np.concatenate(keys)
                    chunks = np.concatenate(chunks)
                    pos = np.concatenate(pos)
                else:
                    keys, chunks, pos = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
                order = np.argsort(keys, kind="stable")
                keys = keys[order]
                if len(keys) > 1 and (keys[1:] == keys[:-1]).any():
                    dupk = keys[1:][keys[1:] == keys[:-1]][0]
                    raise DataError("%r: sequence key %r occurs more than once; sequences of several deserializers "
                                    "are joined by key, which must be unique" % (d, dupk))
                idx.append((keys, chunks[order], pos[order]))
        self._join = idx
        return idx

    def _sec_chunk(self, di, c, sweep):
        key = (di, c, sweep if self._takes_sweep[di] else 0)
        hit = self._sec_cache.get(key)
        if hit is None:
            hit = self._normalize(di, self._get(di, c, sweep), c)
            with self._lock:
                self._sec_cache[key] = hit
                while len(self._sec_cache) > 2 * len(self.deserializers):
                    self._sec_cache.popitem(last=False)
        return hit

    def _joined(self, cid, sweep, streams, keys, n):
        index = self._join_index()
        keep = np.ones(n, dtype=bool)
        located = []
        for di, ix in enumerate(index, start=1):
            d = self.deserializers[di]
            if ix is None or keys is None:
                # no keys: join by position (the chunk structures must agree)
                if int(d.num_chunks()) != self.num_chunks:
                    raise DataError("MinibatchSource: %r and %r have no sequence keys to join by and different "
                                    "numbers of chunks (%d vs %d)" % (self.deserializers[0], d, self.num_chunks, d.num_chunks()))
                located.append((np.full(n, cid, dtype=np.int64), np.arange(n, dtype=np.int64)))
                continue
            skeys, schunk, spos = ix
            try:
                at = np.searchsorted(skeys, keys)
            except TypeError:
                raise DataError("MinibatchSource: the sequence keys of %r and %r cannot be compared"
                                % (self.deserializers[0], d)) from None
            atc = np.minimum(at, max(len(skeys) - 1, 0))
            found = (at < len(skeys)) & (skeys[atc] == keys) if len(skeys) else np.zeros(n, dtype=bool)
            keep &= found
            located.append((np.where(found, schunk[atc], -1), np.where(found, spos[atc], -1)))
        if not keep.all():
            emit_warning("MinibatchSource: %d sequence(s) of chunk %d of %r have no match by key in every other "
                          "deserializer and are skipped" % (int((~keep).sum()), cid, self.deserializers[0]))
        sel = np.flatnonzero(keep)
        out = {name: gather(p, sel) for name, p in streams.items()} if not keep.all() else dict(streams)
        for di, (chunks_, pos_) in enumerate(located, start=1):
            chunks_, pos_ = chunks_[sel], pos_[sel]
            parts, order = [], []
            for c in np.unique(chunks_).tolist():
                at = np.flatnonzero(chunks_ == c)
                data = self._sec_chunk(di, c, sweep)
                n_c = len(next(iter(data.values())).lengths)
                if len(pos_) and pos_[at].max() >= n_c:
                    raise DataError("MinibatchSource: %r has fewer sequences in chunk %d than %r"
                                    % (self.deserializers[di], c, self.deserializers[0]))
                parts.append({name: gather(p, pos_[at]) for name, p in data.items()})
                order.append(at)
            inv = np.empty(len(sel), dtype=np.int64)
            if order:
                inv[np.concatenate(order)] = np.arange(len(sel))
            for name in self._names_of[di]:
                if parts:
                    out[name] = gather(concat([p[name] for p in parts]), inv)
                else:
                    si = self.infos[[s.name for s in self.infos].index(name)]
                    if si.is_sparse:
                        import scipy.sparse
                        empty = scipy.sparse.csr_matrix((0, math.prod(si.shape)), dtype=si.dtype)
                    else:
                        empty = np.zeros((0,) + si.shape, dtype=si.dtype)
                    out[name] = PackedSequences(empty, [])
        return out, (keys[sel] if keys is not None else None)
