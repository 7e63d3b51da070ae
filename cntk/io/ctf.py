"""``CTFDeserializer``: CNTK Text Format files, read in chunks by an offset index.

The file is indexed once (one sequential read counting lines, a few lines read around each
chunk boundary); chunks of about ``chunk_size`` bytes hold whole sequences and are parsed on
demand by ``ctf_parse.parse_block``, so files larger than memory can be read.
"""

import math
import os
import threading

import numpy as np

from .deserializer import Deserializer, PackedSequences, emit_warning
from .streams import StreamInformation
from . import ctf_parse

CHUNK_SIZE = 32 * 1024 * 1024      # bytes per chunk, as CNTK's text reader
_READ_BLOCK = 16 * 1024 * 1024
_PIECE = 2 * 1024 * 1024           # bytes parsed at once


def _vstack(arrays, sparse):
    """The rows of several dense arrays, or CSR matrices, one after the other."""
    if len(arrays) == 1:
        return arrays[0]
    if not sparse:
        return np.concatenate(arrays)
    import scipy.sparse
    offsets = np.cumsum([0] + [m.nnz for m in arrays[:-1]])
    indptr = np.concatenate([arrays[0].indptr[:1]] + [m.indptr[1:] + o for m, o in zip(arrays, offsets)])
    out = scipy.sparse.csr_matrix((np.concatenate([m.data for m in arrays]),
                                   np.concatenate([m.indices for m in arrays]), indptr),
                                  shape=(sum(m.shape[0] for m in arrays), arrays[0].shape[1]))
    if all(m.has_canonical_format for m in arrays):
        out.has_sorted_indices = True
        out.has_canonical_format = True
    return out


def _line_id(line):
    """The sequence id text of a line (bytes before the first '|', stripped), or b''."""
    p = line.find(b"|")
    return ctf_parse._strip(line if p < 0 else line[:p])


class CTFDeserializer(Deserializer):
    """Reads a CTF file. ``streams``: ``StreamDefs(name=StreamDef(field=<name in the file>,
    shape=<dim>, is_sparse=...))`` (or a list of ``StreamConfiguration``). Malformed lines raise ``DataError`` naming the file, the
    line number and the problem (or are skipped within the source's ``max_errors``).

    ``chunk_size`` (bytes, default 32 MB as CNTK) sets the unit of randomization and of
    distribution across workers.
    """

    def __init__(self, filename, streams, chunk_size=CHUNK_SIZE):
        filename = os.fspath(filename)
        if isinstance(streams, (list, tuple)):      # StreamConfiguration objects (CNTK's older form)
            streams = {sc["name"]: sc for sc in streams}
        if not streams:
            raise ValueError("CTFDeserializer(%r): no streams declared" % filename)
        self.filename = filename
        self._defs = []
        seen = {}
        for i, (key, sd) in enumerate(streams.items()):
            field = sd.get("stream_alias", sd.get("field"))
            if field is None:
                raise ValueError("CTFDeserializer(%r): stream '%s' has no field (the name used in the file)"
                                 % (filename, key))
            shape = sd.get("dim", sd.get("shape"))
            if shape is None:
                raise ValueError("CTFDeserializer(%r): stream '%s' has no shape" % (filename, key))
            shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
            dim = math.prod(shape)
            if dim <= 0:
                raise ValueError("CTFDeserializer(%r): stream '%s' has shape %s" % (filename, key, shape))
            is_sparse = bool(sd.get("is_sparse", False))
            if is_sparse and len(shape) != 1:
                raise ValueError("CTFDeserializer(%r): sparse stream '%s' must have a 1-D shape, got %s"
                                 % (filename, key, shape))
            fb = str(field).encode("utf-8")
            if not fb or any(c <= 32 or c in b"|#" for c in fb):
                raise ValueError("CTFDeserializer(%r): invalid field name %r for stream '%s'" % (filename, field, key))
            if fb in seen:
                raise ValueError("CTFDeserializer(%r): streams '%s' and '%s' both read field '%s'"
                                 % (filename, seen[fb], key, field))
            seen[fb] = key
            self._defs.append((key, fb, shape, dim, is_sparse, bool(sd.get("defines_mb_size", False))))
        self._parse_streams = [(fb, dim, sp) for _, fb, _, dim, sp, _ in self._defs]
        self._explain_streams = {fb: (dim, sp) for _, fb, _, dim, sp, _ in self._defs}
        self._chunk_size = max(int(chunk_size), 1)
        self._lock = threading.Lock()
        self._last = None
        self._index()

    # -- contract ---------------------------------------------------------------------------------
    def stream_infos(self):
        return [StreamInformation(key, i, "sparse" if sp else "dense", np.float32, shape, mb)
                for i, (key, _, shape, _, sp, mb) in enumerate(self._defs)]

    def num_chunks(self):
        return len(self._chunks)

    def get_chunk(self, chunk_id):
        return self._parse(chunk_id)[0]

    def sequence_keys(self, chunk_id):
        return self._parse(chunk_id)[1]

    # -- index ------------------------------------------------------------------------------------
    def _open(self):
        try:
            return open(self.filename, "rb")
        except OSError as e:
            raise type(e)(e.errno, "CTFDeserializer: cannot read '%s': %s" % (self.filename, e.strerror),
                          self.filename) from None

    def _index(self):
        with self._open() as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            self._size = size
            fh.seek(0)
            self._has_ids = self._detect_ids(fh)
            chunks = []
            pos, line = 0, 0
            while pos < size:
                end = self._boundary(fh, pos + self._chunk_size) if pos + self._chunk_size < size else size
                chunks.append((pos, end, line))
                line += self._count_lines(fh, pos, end)
                pos = end
        self._chunks = chunks

    @staticmethod
    def _detect_ids(fh):
        """Whether the file uses sequence ids: its first non-blank line starts with one."""
        for line in fh:
            if ctf_parse._strip(line):
                return bool(_line_id(line))
        return False

    @staticmethod
    def _count_lines(fh, a, b):
        fh.seek(a)
        n, left = 0, b - a
        while left > 0:
            buf = fh.read(min(_READ_BLOCK, left))
            if not buf:
                break
            n += buf.count(b"\n")
            left -= len(buf)
        return n

    def _boundary(self, fh, target):
        """The first line start at or after ``target`` where a new sequence begins (the file
        size if there is none)."""
        fh.seek(target - 1)
        if fh.read(1) != b"\n":
            fh.readline()               # finish the line that contains target
        if not self._has_ids:
            return min(fh.tell(), self._size)
        prev = self._last_id_before(fh, fh.tell())
        while True:
            pos = fh.tell()
            line = fh.readline()
            if not line:
                return self._size
            lid = _line_id(line)
            if lid and lid != prev:
                return pos
            if lid:
                prev = lid

    @staticmethod
    def _last_id_before(fh, pos):
        """The id of the last line before ``pos`` that has one (b'' if none)."""
        here, span = fh.tell(), 65536
        while True:
            start = max(0, pos - span)
            fh.seek(start)
            lines = fh.read(pos - start).split(b"\n")
            if start > 0:
                lines = lines[1:]       # the first piece may be a partial line
            for line in reversed(lines):
                lid = _line_id(line)
                if lid:
                    fh.seek(here)
                    return lid
            if start == 0:
                fh.seek(here)
                return b""
            span *= 4

    # -- parsing ----------------------------------------------------------------------------------
    def _read(self, chunk_id):
        a, b, _ = self._chunks[chunk_id]
        with self._open() as fh:
            fh.seek(a)
            return fh.read(b - a)

    def _parse(self, chunk_id):
        with self._lock:
            if self._last is not None and self._last[0] == chunk_id:
                return self._last[1]
        if not 0 <= chunk_id < len(self._chunks):
            raise IndexError("CTFDeserializer(%r): chunk %d of %d" % (self.filename, chunk_id, len(self._chunks)))
        data = self._read(chunk_id)
        line = first_line = self._chunks[chunk_id][2]
        blocks, short, short_at, unknown_at = [], 0, None, None
        # parse in pieces of whole sequences: numpy's temporaries then stay small enough to be
        # reused from the heap instead of being mapped (and page-faulted) afresh every time
        for a, b in self._pieces(data):
            piece = data[a:b]
            blk = ctf_parse.parse_block(piece, self._parse_streams, self._has_ids, line)
            if len(blk.bad_lines):
                blk = self._skip_bad(piece, blk, line)
            if len(blk.short_lines):
                short += len(blk.short_lines)
                short_at = short_at if short_at is not None else line + int(blk.short_lines[0])
            if len(blk.unknown_lines) and unknown_at is None:
                i = int(blk.unknown_lines[0])
                unknown_at = piece[blk.line_starts[i]:blk.line_ends[i]]
            blocks.append(blk)
            line += piece.count(b"\n")
        if short:
            emit_warning("%s: %d dense sample(s) have fewer values than the stream dimension and are zero-filled "
                         "(first at line %d)" % (self.filename, short, short_at + 1))
        out = {}
        for key, fb, shape, dim, sp, _ in self._defs:
            parts = [blk.streams[fb] for blk in blocks]
            arr = _vstack([p[0] for p in parts], sp)
            lengths = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
            if not sp and len(shape) > 1:
                arr = arr.reshape((arr.shape[0],) + shape)
            out[key] = PackedSequences(arr, lengths)
        keys = np.concatenate([blk.keys for blk in blocks]) if len(blocks) > 1 else blocks[0].keys
        if unknown_at is not None:
            missing = [key for key, *_ in self._defs if out[key].data.shape[0] == 0]
            if missing:
                fields = sorted({seg.split()[0].decode("latin-1") for seg in unknown_at.split(b"|")[1:]
                                 if seg[:1] > b" " and not seg.startswith(b"#")})
                emit_warning("%s: stream(s) %s have no samples in lines %d-%d, which hold fields %s; check the field "
                             "names of the StreamDefs" % (self.filename, ", ".join(repr(m) for m in missing),
                                                         first_line + 1, line, ", ".join(fields)))
        res = (out, keys)
        with self._lock:
            self._last = (chunk_id, res)
        return res

    def _pieces(self, data):
        """(start, end) byte ranges of about ``_PIECE`` bytes, each holding whole sequences."""
        n = len(data)
        cuts, pos = [0], 0
        while n - pos > _PIECE * 3 // 2:
            c = self._next_start(data, pos + _PIECE)
            if c >= n:
                break
            cuts.append(c)
            pos = c
        cuts.append(n)
        return list(zip(cuts[:-1], cuts[1:]))

    def _next_start(self, data, target):
        """The first line start at or after ``target`` that begins a new sequence (or len(data))."""
        c = data.find(b"\n", target - 1)
        if c < 0:
            return len(data)
        c += 1
        if not self._has_ids:
            return c
        prev, e = b"", c - 1
        while e > 0 and not prev:          # the id in effect before c
            s = data.rfind(b"\n", 0, e) + 1
            prev = _line_id(data[s:e])
            e = s - 1
        while c < len(data):
            e = data.find(b"\n", c)
            e = len(data) if e < 0 else e
            lid = _line_id(data[c:e])
            if lid and lid != prev:
                return c
            if lid:
                prev = lid
            c = e + 1
        return len(data)

    def _message(self, line_no, line):
        try:
            ctf_parse.explain_line(line, self._explain_streams, self._has_ids)
            why = "malformed line"
        except ctf_parse.LineError as e:
            why = e.args[0]
        return "%s:%d: %s" % (self.filename, line_no + 1, why)

    def _skip_bad(self, data, blk, first_line):
        """Reports the malformed lines (raising unless ``max_errors`` allows skipping them), then
        parses the block again without them: a blank line is dropped alone, any other malformed
        line takes its whole sequence with it."""
        ls, le = blk.line_starts, blk.line_ends
        seq = blk.seq_of_line
        blank = np.zeros(len(ls), dtype=bool)
        blank[blk.blank_lines] = True
        drop = np.zeros(len(ls), dtype=bool)
        reported = set()
        for i in blk.bad_lines.tolist():
            line = data[ls[i]:le[i]]
            if blank[i]:
                self.report_error("%s:%d: empty line" % (self.filename, first_line + i + 1))
                drop[i] = True
                continue
            s = seq[i]
            if s in reported:
                continue
            reported.add(s)
            self.report_error(self._message(first_line + i, line))
            drop |= seq == s
        keep = np.flatnonzero(~drop)
        pieces = [data[ls[i]:le[i]] for i in keep.tolist()]
        sub = b"\n".join(pieces) + b"\n" if pieces else b""
        nblk = ctf_parse.parse_block(sub, self._parse_streams, self._has_ids, 0)
        if len(nblk.bad_lines):      # cannot happen: every malformed line was removed
            i = int(nblk.bad_lines[0])
            raise ctf_parse.LineError(self._message(first_line + int(keep[i]), pieces[i]))
        if not self._has_ids:
            nblk.keys = first_line + keep[nblk.keys]
        return nblk

    def __repr__(self):
        return "CTFDeserializer(%r, streams=%s)" % (self.filename, [d[0] for d in self._defs])


# ---------------------------------------------------------------------------- writing

def _num_to_str(x):
    if isinstance(x, (np.floating, float)):
        if float(x).is_integer() and abs(float(x)) < 1e15:
            return str(int(x))
        return repr(float(x)) if isinstance(x, (float, np.float64)) else str(x)
    return str(x)


def _dense_to_str(v):
    return " ".join(_num_to_str(x) for x in np.asarray(v).ravel())


def _sparse_to_str(d):
    return " ".join("%d:%s" % (int(k), _num_to_str(d[k])) for k in sorted(d))


def sequence_to_cntk_text_format(seq_idx, alias_tensor_map):
    """CTF lines for one sequence: ``alias_tensor_map`` maps each stream name (alias) to its
    samples, a dense array (length, ...) or a list of ``{index: value}`` dicts (sparse).
    Streams may have different lengths; lines are written as long as any stream has samples.
    Returns the lines joined by newlines (no trailing newline)."""
    if not alias_tensor_map:
        return ""
    conv = {}
    for alias, tensor in alias_tensor_map.items():
        if isinstance(tensor, (list, tuple)) and tensor and all(isinstance(t, dict) for t in tensor):
            conv[alias] = (list(tensor), _sparse_to_str)
        elif isinstance(tensor, (list, tuple)) and not tensor:
            conv[alias] = ([], _dense_to_str)
        else:
            a = np.asarray(tensor)
            if a.dtype == object or a.dtype.kind not in "biuf":
                raise ValueError("sequence_to_cntk_text_format: stream '%s' must be a numeric array or a list of "
                                 "{index: value} dicts, got %s" % (alias, type(tensor).__name__))
            if a.ndim == 0:
                raise ValueError("sequence_to_cntk_text_format: stream '%s' has no sequence axis" % alias)
            conv[alias] = (a, _dense_to_str)
    length = max(len(t) for t, _ in conv.values())
    lines = []
    for i in range(length):
        parts = ["%s %s" % (alias, f(t[i])) for alias, (t, f) in sorted(conv.items()) if i < len(t)]
        lines.append("%d\t|" % seq_idx + " |".join(parts))
    return "\n".join(lines)
