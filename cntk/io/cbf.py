"""CNTK's binary format (CBF): ``CBFDeserializer`` reads it, ``CBFWriter`` writes it, and
``ctf_to_cbf`` converts a CTF file (what CNTK's ``Scripts/ctf2bin.py`` does).

Layout (little-endian throughout):

* prefix: ``uint64`` magic ``0x636e746b5f62696e``, ``uint32`` version (1);
* chunks, back to back. A chunk holds ``uint32`` sample counts of its N sequences, then for
  every stream (in header order) its N sequences:

  - dense: ``uint32`` samples T, then ``T * dim`` values;
  - sparse: ``uint32`` samples T, ``int32`` nnz, nnz values, nnz ``int32`` indices (within the
    sample), T ``int32`` per-sample nnz counts;

  values are float32 or float64 as the stream declares;
* header: magic again, ``uint32`` chunk count, ``uint32`` stream count, per stream ``uint8``
  encoding (0 dense, 1 sparse), ``uint32`` name length + ASCII name, ``uint8`` element type
  (0 float32, 1 float64), ``uint32`` sample dimension; then per chunk ``int64`` file offset,
  ``uint32`` sequences, ``uint32`` samples;
* last 8 bytes: ``int64`` offset of the header.
"""

import os
import struct

import numpy as np

from .deserializer import DataError, Deserializer, PackedSequences
from .streams import StreamInformation

MAGIC = 0x636e746b5f62696e
VERSION = 1
DENSE, SPARSE = 0, 1
_DTYPES = {0: np.dtype("<f4"), 1: np.dtype("<f8")}


class _CBFStream:
    __slots__ = ("name", "file_name", "encoding", "dtype", "dim", "defines_mb_size")


class CBFDeserializer(Deserializer):
    """Reads a CNTK binary format file (CNTK's ``CBFDeserializer``).

    Every stream in the file is exposed under its name in the file; ``streams`` may rename some:
    ``StreamDefs(new_name=StreamDef(field='name_in_file'))`` (a given ``shape`` must match the
    file's dimension). Chunks are the file's chunks; sequence ids are the 0-based positions of
    the sequences in the file.
    """

    def __init__(self, filename, streams={}):
        self.filename = os.fspath(filename)
        try:
            f = open(self.filename, "rb")
        except OSError as e:
            raise DataError("CBFDeserializer: cannot open %r: %s" % (self.filename, e.strerror or e)) from None
        with f:
            self._read_header(f)
        self._apply_renames(streams)
        self._corrupt = set()
        self._starts = np.concatenate([[0], np.cumsum([c[1] for c in self._chunks])]).astype(np.int64)

    # -- header ----------------------------------------------------------------------------------

    def _fail(self, what):
        raise DataError("CBFDeserializer: %r is not a valid CNTK binary format file: %s" % (self.filename, what))

    def _read_header(self, f):
        size = os.fstat(f.fileno()).st_size
        prefix = f.read(12)
        if len(prefix) < 12:
            self._fail("it has only %d bytes" % len(prefix))
        magic, version = struct.unpack("<QI", prefix)
        if magic != MAGIC:
            self._fail("bad magic number 0x%016x (expected 0x%016x)" % (magic, MAGIC))
        if version != VERSION:
            raise DataError("CBFDeserializer: %r: the reader version is %d, but the data file was created for "
                            "version %d" % (self.filename, VERSION, version))
        if size < 12 + 8 + 16:
            self._fail("it is truncated (%d bytes)" % size)
        f.seek(size - 8)
        (header,) = struct.unpack("<q", f.read(8))
        if not 12 <= header <= size - 8 - 16:
            self._fail("header offset %d is outside the file (%d bytes); the file may be truncated" % (header, size))
        f.seek(header)
        blob = f.read(size - 8 - header)
        try:
            magic, num_chunks, num_streams = struct.unpack_from("<QII", blob, 0)
            if magic != MAGIC:
                self._fail("bad magic number 0x%016x at the header (offset %d)" % (magic, header))
            pos, streams = 16, []
            for i in range(num_streams):
                s = _CBFStream()
                (enc, n), pos = struct.unpack_from("<BI", blob, pos), pos + 5
                name = blob[pos:pos + n]
                if len(name) < n:
                    raise struct.error("name")
                pos += n
                (elem, dim), pos = struct.unpack_from("<BI", blob, pos), pos + 5
                if enc not in (DENSE, SPARSE):
                    self._fail("unknown encoding type %d of stream %d" % (enc, i))
                if elem not in _DTYPES:
                    self._fail("unsupported element type %d of stream %d" % (elem, i))
                try:
                    s.name = s.file_name = name.decode("ascii")
                except UnicodeDecodeError:
                    self._fail("stream %d has a non-ASCII name" % i)
                s.encoding, s.dtype, s.dim, s.defines_mb_size = enc, _DTYPES[elem], dim, False
                streams.append(s)
            table = np.frombuffer(blob, dtype=np.dtype([("offset", "<i8"), ("seqs", "<u4"), ("samples", "<u4")]),
                                  count=num_chunks, offset=pos)
        except (struct.error, ValueError):
            self._fail("its header at offset %d is truncated" % header)
        if len(set(s.name for s in streams)) != len(streams):
            self._fail("two streams have the same name")
        offsets = table["offset"].astype(np.int64)
        ends = np.append(offsets[1:], header)
        if num_chunks and (offsets[0] < 12 or np.any(ends < offsets)):
            self._fail("its chunk table has offsets outside the data section")
        self._streams = streams
        self._chunks = [(int(o), int(q), int(m), int(e)) for (o, q, m), e in
                        zip(zip(offsets, table["seqs"], table["samples"]), ends)]

    def _apply_renames(self, streams):
        by_file_name = {s.file_name: s for s in self._streams}
        renamed = set()
        for new_name, sd in dict(streams).items():
            field = sd.get("stream_alias", sd.get("field")) or new_name
            s = by_file_name.get(field)
            if s is None:
                raise ValueError("CBFDeserializer: %r has no stream named %r (it has %s)"
                                 % (self.filename, field, ", ".join(repr(n) for n in by_file_name)))
            if field in renamed:
                raise ValueError("CBFDeserializer: stream %r of %r is declared twice" % (field, self.filename))
            dim = sd.get("dim")
            if dim is not None:
                want = int(np.prod(dim)) if isinstance(dim, (tuple, list)) else int(dim)
                if want != s.dim:
                    raise ValueError("CBFDeserializer: stream %r (%r in %r) has dimension %d, not shape %r"
                                     % (new_name, field, self.filename, s.dim, dim))
            renamed.add(field)
            s.name = new_name
            s.defines_mb_size = bool(sd.get("defines_mb_size", False))
        names = [s.name for s in self._streams]
        if len(set(names)) != len(names):
            raise ValueError("CBFDeserializer: after renaming, %r has two streams called the same (%s)"
                             % (self.filename, ", ".join(names)))

    # -- the contract ----------------------------------------------------------------------------

    def stream_infos(self):
        return [StreamInformation(s.name, i, "sparse" if s.encoding == SPARSE else "dense", s.dtype.type,
                                  (s.dim,), s.defines_mb_size) for i, s in enumerate(self._streams)]

    def num_chunks(self):
        return len(self._chunks)

    def chunk_sizes(self):
        return [(q, m) for _, q, m, _ in self._chunks]

    def sequence_keys(self, chunk_id):
        if chunk_id in self._corrupt:      # skipped within max_errors: no sequences
            return []
        start = int(self._starts[chunk_id])
        return list(range(start, start + self._chunks[chunk_id][1]))

    def get_chunk(self, chunk_id):
        offset, count, _, end = self._chunks[chunk_id]
        buf = bytearray(end - offset)      # writable, so the arrays viewing it are too
        with open(self.filename, "rb") as f:
            f.seek(offset)
            got = f.readinto(buf)
        try:
            if got < end - offset:
                raise ValueError("the file ends inside the chunk")
            return self._parse_chunk(buf, count)
        except ValueError as e:
            self.report_error("CBFDeserializer: %s: chunk %d (at offset %d) is corrupt: %s"
                              % (self.filename, chunk_id, offset, e))
            self._corrupt.add(chunk_id)
            return self._parse_chunk(b"", 0)      # the whole chunk is skipped: no sequences

    def _parse_chunk(self, buf, count):
        """``{stream name: PackedSequences}`` of one chunk's bytes. Every field is a whole number
        of 4-byte words, so the chunk is walked as words: a short loop finds where each
        sequence's pieces start, then one index gathers each stream's values."""
        import scipy.sparse as sp   # optional dependency, needed for sparse streams
        if len(buf) % 4:
            raise ValueError("its size (%d bytes) is not a whole number of 4-byte words" % len(buf))
        words = np.frombuffer(buf, "<u4")
        mv = memoryview(buf).cast("I") if len(buf) else ()
        n_words = len(words)
        pos = count                 # the per-sequence sample counts (longest stream) come first
        if pos > n_words:
            raise ValueError("sequence table truncated")
        out = {}
        for s in self._streams:
            wpv = s.dtype.itemsize // 4           # words per value
            starts = np.empty(count, dtype=np.int64)
            lengths = np.empty(count, dtype=np.int64)
            nnzs = np.zeros(count, dtype=np.int64)
            dense, dim = s.encoding == DENSE, s.dim
            try:
                for i in range(count):
                    T = mv[pos]
                    lengths[i] = T
                    if dense:
                        starts[i] = pos + 1
                        pos += 1 + T * dim * wpv
                    else:
                        nnz = mv[pos + 1]
                        if nnz >= 1 << 31:
                            raise ValueError("stream %r, sequence %d: negative nnz" % (s.file_name, i))
                        nnzs[i] = nnz
                        starts[i] = pos + 2
                        pos += 2 + nnz * (wpv + 1) + T
                    if pos > n_words:
                        raise IndexError
            except IndexError:
                raise ValueError("stream %r, sequence %d: data runs past the end of the chunk" % (s.file_name, i)) from None
            total = int(lengths.sum())
            if dense:
                vals = _gather_values(words, starts, lengths * dim, wpv, s.dtype)
                out[s.name] = PackedSequences(vals.reshape(total, dim), lengths)
                continue
            vals = _gather_values(words, starts, nnzs, wpv, s.dtype)
            idx = words[_ranges(starts + nnzs * wpv, nnzs)].view("<i4")
            cnt = words[_ranges(starts + nnzs * (wpv + 1), lengths)].view("<i4").astype(np.int64)
            indptr = np.zeros(total + 1, dtype=np.int64)
            np.cumsum(cnt, out=indptr[1:])
            ends = np.cumsum(lengths)
            negative = np.flatnonzero(cnt < 0)
            per_seq = indptr[ends] - indptr[ends - lengths]
            bad = np.flatnonzero(per_seq != nnzs)
            if len(negative) or len(bad):
                i = int(np.searchsorted(ends, negative[0], side="right")) if len(negative) else int(bad[0])
                raise ValueError("stream %r, sequence %d: per-sample counts do not add up to nnz=%d"
                                 % (s.file_name, i, int(nnzs[i])))
            wrong = np.flatnonzero((idx < 0) | (idx >= dim))
            if len(wrong):
                k = int(wrong[0])
                seq = int(np.searchsorted(np.cumsum(nnzs), k, side="right"))
                raise ValueError("stream %r, sequence %d: sparse index %d outside [0, %d)"
                                 % (s.file_name, seq, int(idx[k]), dim))
            out[s.name] = PackedSequences(sp.csr_matrix((vals, idx, indptr), shape=(total, dim)), lengths)
        return out


def _ranges(starts, lengths):
    """The concatenated index ranges ``[starts[i], starts[i] + lengths[i])``."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    first = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) + np.repeat(np.asarray(starts, dtype=np.int64) - first, lengths)


def _gather_values(words, starts, counts, wpv, dtype):
    """``counts[i]`` values of ``dtype`` (``wpv`` words each) from word ``starts[i]`` on."""
    w = words[_ranges(starts, np.asarray(counts, dtype=np.int64) * wpv)]
    return w.view(dtype) if len(w) else np.zeros(0, dtype)


class CBFWriter:
    """Writes a CBF file sequence by sequence. ``streams``: ``[(name, 'dense'|'sparse', dim)]``;
    ``precision``: ``'float'`` or ``'double'``. A chunk is closed once it holds at least
    ``chunk_size`` bytes (as CNTK's converter does). Use as a context manager or call ``close()``."""

    def __init__(self, filename, streams, chunk_size=32 << 20, precision="float"):
        if precision not in ("float", "double"):
            raise ValueError("CBFWriter: precision must be 'float' or 'double', got %r" % (precision,))
        self._dtype = np.dtype("<f4" if precision == "float" else "<f8")
        self._elem = 0 if precision == "float" else 1
        self._streams = []
        for name, kind, dim in streams:
            if kind not in ("dense", "sparse"):
                raise ValueError("CBFWriter: stream %r: type must be 'dense' or 'sparse', got %r" % (name, kind))
            try:
                name.encode("ascii")
            except UnicodeEncodeError:
                raise ValueError("CBFWriter: stream names must be ASCII, got %r" % (name,)) from None
            self._streams.append((name, SPARSE if kind == "sparse" else DENSE, int(dim)))
        self.chunk_size = int(chunk_size)
        self._f = open(filename, "wb")
        self._f.write(struct.pack("<QI", MAGIC, VERSION))
        self._table = []
        self._reset()

    def _reset(self):
        self._lengths = []
        self._parts = [[] for _ in self._streams]
        self._bytes = 0

    def add_sequence(self, data):
        """``data``: stream name -> a dense ``(T, dim)`` array, or a ``(T, dim)`` sparse matrix /
        dense array for sparse streams. Streams may differ in length; a missing stream has 0."""
        import scipy.sparse as sp   # optional dependency, needed for sparse streams
        unknown = set(data) - {name for name, _, _ in self._streams}
        if unknown:
            raise ValueError("CBFWriter: unknown stream(s) %s" % ", ".join(sorted(map(repr, unknown))))
        length = 0
        for k, (name, enc, dim) in enumerate(self._streams):
            value = data.get(name)
            if enc == DENSE:
                arr = np.zeros((0, dim)) if value is None else np.asarray(value)
                arr = arr.reshape(1, -1) if arr.ndim == 1 else arr.reshape(arr.shape[0], _width(arr))
                if arr.shape[1] != dim:
                    raise ValueError("CBFWriter: stream %r: samples have %d values, expected %d"
                                     % (name, arr.shape[1], dim))
                blob = struct.pack("<I", arr.shape[0]) + np.ascontiguousarray(arr, self._dtype).tobytes()
                T = arr.shape[0]
            else:
                if not isinstance(value, _SparseRows):
                    m = sp.csr_matrix((0, dim)) if value is None else sp.csr_matrix(value)
                    if m.shape[1] != dim:
                        raise ValueError("CBFWriter: stream %r: sparse samples have dimension %d, expected %d"
                                         % (name, m.shape[1], dim))
                    m = m.copy()
                    m.sort_indices()      # CNTK's sparse matrices expect increasing indices
                    value = _SparseRows(m.data, m.indices, np.diff(m.indptr))
                T, nnz = len(value.counts), len(value.indices)
                blob = (struct.pack("<Ii", T, nnz) + np.asarray(value.values, self._dtype).tobytes()
                        + np.asarray(value.indices, "<i4").tobytes() + np.asarray(value.counts, "<i4").tobytes())
            self._parts[k].append(blob)
            self._bytes += len(blob)
            length = max(length, T)
        self._lengths.append(length)
        self._bytes += 4
        if self._bytes >= self.chunk_size:
            self.flush()

    def flush(self):
        """Closes the current chunk (if it holds any sequence)."""
        if not self._lengths:
            return
        offset = self._f.tell()
        self._f.write(np.asarray(self._lengths, "<u4").tobytes())
        for parts in self._parts:
            self._f.write(b"".join(parts))
        self._table.append((offset, len(self._lengths), sum(self._lengths)))
        self._reset()

    def close(self):
        """Writes the last chunk and the header."""
        if self._f is None:
            return
        self.flush()
        header = self._f.tell()
        out = [struct.pack("<QII", MAGIC, len(self._table), len(self._streams))]
        for name, enc, dim in self._streams:
            raw = name.encode("ascii")
            out.append(struct.pack("<BI", enc, len(raw)) + raw + struct.pack("<BI", self._elem, dim))
        for offset, seqs, samples in self._table:
            out.append(struct.pack("<qII", offset, seqs, samples))
        out.append(struct.pack("<q", header))
        self._f.write(b"".join(out))
        self._f.close()
        self._f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def deserializer_to_cbf(deserializer, cbf_file, chunk_size=32 << 20, precision="float"):
    """Writes everything ``deserializer`` holds, in its order, to a CBF file."""
    infos = deserializer.stream_infos()
    specs = [(si.name, "sparse" if si.is_sparse else "dense", int(np.prod(si.shape))) for si in infos]
    with CBFWriter(cbf_file, specs, chunk_size, precision) as w:
        for c in range(deserializer.num_chunks()):
            chunk = deserializer.get_chunk(c)
            columns = [_sequences(chunk.get(si.name, []), si) for si in infos]
            for row in zip(*columns):
                w.add_sequence({si.name: v for si, v in zip(infos, row)})


class _SparseRows:
    """The samples of one sparse sequence as CBF stores them (indices sorted within samples)."""
    __slots__ = ("values", "indices", "counts")

    def __init__(self, values, indices, counts):
        self.values, self.indices, self.counts = values, indices, counts


def _sequences(value, si):
    """A chunk entry in any of the contract's forms -> a list of per-sequence values."""
    import scipy.sparse as sp
    if isinstance(value, PackedSequences):
        data, offsets = value.data, value.offsets
        if not sp.issparse(data):
            data = np.asarray(data).reshape(data.shape[0], _width(data))
            return [data[offsets[i]:offsets[i + 1]] for i in range(len(value))]
        m = sp.csr_matrix(data)
        if not m.has_sorted_indices:
            m = m.copy()
            m.sort_indices()
        ptr = m.indptr
        out = []
        for i in range(len(value)):
            a, b = offsets[i], offsets[i + 1]
            lo, hi = ptr[a], ptr[b]
            out.append(_SparseRows(m.data[lo:hi], m.indices[lo:hi], np.diff(ptr[a:b + 1])))
        return out
    if isinstance(value, list):
        return [v if sp.issparse(v) else np.asarray(v) for v in value]
    if sp.issparse(value):
        value = sp.csr_matrix(value)
        return [value[i:i + 1] for i in range(value.shape[0])]
    value = np.asarray(value)
    return [value[i:i + 1].reshape(1, -1) for i in range(value.shape[0])]


def _width(arr):
    """Values per sample of a (T, *shape) array (also when T is 0)."""
    return int(np.prod(arr.shape[1:], dtype=np.int64))


def ctf_to_cbf(ctf_file, cbf_file, streams, chunk_size=32 << 20, precision="float"):
    """Converts a CNTK text format file to CNTK binary format (CNTK's ``ctf2bin.py``).

    ``streams``: ``StreamDefs(name=StreamDef(field='name in the CTF file', shape=dim,
    is_sparse=...))``; the CBF streams get the ``StreamDefs`` names. Sequences keep the CTF
    file's order; chunks close once they hold ``chunk_size`` bytes."""
    from .ctf import CTFDeserializer
    deserializer_to_cbf(CTFDeserializer(ctf_file, streams), cbf_file, chunk_size, precision)
