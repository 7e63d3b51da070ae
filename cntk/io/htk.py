"""Speech deserializers: ``HTKFeatureDeserializer`` (HTK feature files listed in SCP files) and
``HTKMLFDeserializer`` (frame labels from HTK master label files), joined by utterance id.

HTK feature files start with a 12-byte header (frames, sample period in 100 ns units, bytes per
frame, parameter kind), big-endian unless the header says otherwise, as CNTK guesses it.
An SCP line is ``path``, ``logical=path`` or ``logical=archive[start,end]`` (inclusive frame
range); the utterance id is the logical name without its extension. MLF entries are
``"id.lab"`` lines followed by ``start end state ...`` lines and a ``.``; times are in 100 ns
units (one frame = 10 ms) unless the numbers are frame indices, as in CNTK.
"""

import os
import struct

import numpy as np

from .deserializer import DataError, Deserializer, PackedSequences
from .streams import StreamInformation

#: utterances are grouped into chunks of about 15 minutes of frames (CNTK's rule)
FRAMES_PER_CHUNK = 15 * 60 * 100
#: MLF times are in 100 ns units; a frame is 10 ms
HTK_TIME_TO_FRAME = 100000.0

_BASE_KINDS = {6: "MFCC", 7: "FBANK", 9: "USER", 11: "PLP", 12: "USER"}
_QUALIFIERS = ((0o100, "_E"), (0o400, "_D"), (0o200, "_N"), (0o1000, "_A"), (0o100000, "_T"),
               (0o4000, "_Z"), (0o20000, "_0"))
_COMPRESSED, _HAS_VQ, _FESTREAM = 0o2000, 0o40000, 12


def _utterance_key(logical):
    """An utterance id: the logical path without the extension of its last component."""
    head, sep, tail = logical.replace("\\", "/").rpartition("/")
    dot = tail.rfind(".")
    return head + sep + (tail[:dot] if dot > 0 else tail)


class HTKHeader:
    """The parsed header of an HTK feature file."""

    __slots__ = ("frames", "period", "frame_bytes", "kind", "dim", "big_endian", "compressed", "data_offset",
                 "scale", "bias")

    @classmethod
    def read(cls, f, path):
        """Reads the header at the start of the open binary file ``f`` (``path`` names it in errors)."""
        raw = f.read(12)
        if len(raw) < 12:
            raise ValueError("HTK file %r is truncated: %d bytes, less than its 12-byte header" % (path, len(raw)))
        h = cls()
        # CNTK's guess: the byte order that reads the sample period as the smaller number
        big = struct.unpack(">I", raw[4:8])[0] < struct.unpack("<I", raw[4:8])[0]
        order = ">" if big else "<"
        nsamples, period, sampsize, kind = struct.unpack(order + "iiHh", raw)
        base = kind & 0o77
        if base not in _BASE_KINDS:
            raise ValueError("HTK file %r: unsupported feature kind %d (supported: MFCC, FBANK, USER, PLP)"
                             % (path, base))
        if kind & _HAS_VQ:
            raise ValueError("HTK file %r: VQ-coded features are not supported" % (path,))
        name = _BASE_KINDS[base] + "".join(q for bit, q in _QUALIFIERS if kind & bit)
        h.big_endian, h.period, h.frame_bytes = big, period, sampsize
        h.compressed = bool(kind & _COMPRESSED)
        width = 2 if h.compressed else 4
        if sampsize == 0 or sampsize % width:
            raise ValueError("HTK file %r: frame size %d bytes is not a multiple of %d" % (path, sampsize, width))
        h.dim = sampsize // width
        h.kind = name
        offset = 12
        if kind == _FESTREAM:       # a 16-byte GUID follows the header
            f.seek(16, 1)
            offset += 16
        h.scale = h.bias = None
        if h.compressed:            # per-dimension A and B vectors, counted as 4 frames
            ab = f.read(8 * h.dim)
            if len(ab) < 8 * h.dim:
                raise ValueError("HTK file %r is truncated inside its compression header" % (path,))
            vals = np.frombuffer(ab, dtype=order + "f4").astype(np.float32)
            h.scale, h.bias = vals[:h.dim], vals[h.dim:]
            nsamples -= 4
            offset += 8 * h.dim
        if nsamples < 0:
            raise ValueError("HTK file %r: negative frame count %d in its header" % (path, nsamples))
        h.frames, h.data_offset = nsamples, offset
        return h

    def decode(self, raw):
        """Frames ``(T, dim)`` float32 from the raw bytes of whole frames."""
        order = ">" if self.big_endian else "<"
        if self.compressed:
            v = np.frombuffer(raw, dtype=order + "i2").reshape(-1, self.dim).astype(np.float32)
            return (v + self.bias) / self.scale
        return np.frombuffer(raw, dtype=order + "f4").reshape(-1, self.dim).astype(np.float32)


def read_htk(path, start=0, end=None):
    """Frames ``start..end`` (inclusive; ``end=None``: to the last) of an HTK feature file as
    ``(T, dim)`` float32, and its header."""
    with open(path, "rb") as f:
        h = HTKHeader.read(f, path)
        return _read_frames(f, h, path, start, end), h


def _read_frames(f, h, path, start, end):
    last = h.frames - 1 if end is None else end
    if start > last:
        raise ValueError("frame range [%d,%d] in %r: start frame is after the end frame" % (start, last, path))
    if last >= h.frames:
        raise ValueError("frame range [%d,%d] exceeds the %d frames of %r" % (start, last, h.frames, path))
    count = last - start + 1
    f.seek(h.data_offset + start * h.frame_bytes)
    raw = f.read(count * h.frame_bytes)
    if len(raw) < count * h.frame_bytes:
        have = (len(raw) // h.frame_bytes) + start
        raise ValueError("HTK file %r is truncated: its header announces %d frames of %d bytes, but it holds "
                         "only %d" % (path, h.frames, h.frame_bytes, have))
    return h.decode(raw)


def stack_context(frames, left, right):
    """Row ``t`` becomes frames ``t-left .. t+right`` concatenated, the first and last frames
    standing in beyond the edges (CNTK's context window)."""
    if left == 0 and right == 0:
        return frames
    T = frames.shape[0]
    idx = np.clip(np.arange(T)[:, None] + np.arange(-left, right + 1)[None, :], 0, T - 1)
    return frames[idx].reshape(T, -1)


class _ScpEntry:
    __slots__ = ("key", "path", "start", "end", "frames", "where")

    def __init__(self, key, path, start, end, frames, where):
        self.key, self.path, self.start, self.end, self.frames, self.where = key, path, start, end, frames, where


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _parse_scp(scp_file):
    """``[_ScpEntry]`` of an SCP file; ``...`` in a path stands for the SCP file's folder."""
    try:
        with open(scp_file, "r", encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
    except OSError as e:
        raise DataError("HTKFeatureDeserializer: cannot open SCP file %r: %s" % (scp_file, e.strerror or e)) from None
    folder = os.path.dirname(scp_file) or "."
    entries = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        where = "%s:%d" % (scp_file, number)
        logical, eq, physical = line.partition("=")
        start = end = None
        if not eq:
            physical = logical
        elif physical.endswith("]"):
            physical, bracket, rng = physical[:-1].rpartition("[")
            a, comma, b = rng.partition(",")
            try:
                if not bracket or not comma:
                    raise ValueError
                start, end = int(a), int(b)
            except ValueError:
                raise DataError("HTKFeatureDeserializer: %s: malformed path %r (expected "
                                "logical=archive[start,end])" % (where, line)) from None
            if start < 0 or end < start:
                raise DataError("HTKFeatureDeserializer: %s: invalid frame range [%d,%d] in %r"
                                % (where, start, end, line))
        if "..." in physical:
            i = physical.index("...")
            physical = physical[:i] + folder + physical[i + 3:]
        frames = None if start is None else end - start + 1
        entries.append(_ScpEntry(_utterance_key(logical), physical, start, end, frames, where))
    if not entries:
        raise DataError("HTKFeatureDeserializer: SCP file %r lists no utterances" % (scp_file,))
    return entries


class _FeatureStream:
    """One stream of an HTKFeatureDeserializer: its SCP entries and context window."""

    def __init__(self, name, sd):
        self.name = name
        self.dim = _stream_dim("HTKFeatureDeserializer", name, sd, "scp", "scp files", "feature dimension")
        context = sd.get("context")
        if context is None:
            self.left = self.right = 0
            self._given_context = False
        else:
            if len(context) != 2 or min(int(context[0]), int(context[1])) < 0:
                raise ValueError("HTKFeatureDeserializer: stream %r: context must be (left, right) with "
                                 "non-negative sizes, got %r" % (name, context))
            self.left, self.right = int(context[0]), int(context[1])
            self._given_context = True
        self.broadcast = bool(sd.get("broadcast") or False)
        self.defines_mb_size = bool(sd.get("defines_mb_size", False))
        self.entries = []
        for scp in _as_list(sd["scp"]):
            self.entries.extend(_parse_scp(os.fspath(scp)))
        self.io_dim = None           # the dimension of one frame in the files
        self.kind = None             # (feature kind, period) of the first file, which all must share
        self._header_cache = {}

    def header(self, path):
        """``(header, file size)`` of an HTK file (read once)."""
        hit = self._header_cache.get(path)
        if hit is None:
            try:
                with open(path, "rb") as f:
                    hit = (HTKHeader.read(f, path), os.fstat(f.fileno()).st_size)
            except OSError as e:
                raise ValueError("cannot open HTK file %r: %s" % (path, e.strerror or e)) from None
            self._header_cache[path] = hit
        return hit

    def setup(self):
        """Reads the first file's header and derives the output dimension (CNTK's rules)."""
        first = self.entries[0]
        try:
            h = self.header(first.path)[0]
        except ValueError as e:
            raise DataError("HTKFeatureDeserializer: %s: %s" % (first.where, e)) from None
        self.io_dim, self.kind = h.dim, (h.kind, h.period)
        if self._given_context:
            if self.dim != h.dim:
                raise DataError("HTKFeatureDeserializer: stream %r has shape %d but the features in %r have "
                                "dimension %d" % (self.name, self.dim, first.path, h.dim))
        else:
            # without a context, shape may be an odd multiple of the frame size: a symmetric window
            if self.dim % h.dim:
                raise DataError("HTKFeatureDeserializer: stream %r: shape %d is not a multiple of the feature "
                                "dimension %d of %r" % (self.name, self.dim, h.dim, first.path))
            frames = self.dim // h.dim
            if frames % 2 == 0:
                raise DataError("HTKFeatureDeserializer: stream %r: neighbor expansion of the input features to "
                                "%d frames is not symmetrical" % (self.name, frames))
            self.left = self.right = frames // 2
        self.out_dim = h.dim * (1 + self.left + self.right)

    def check(self, entry):
        """Validates an utterance without reading its frames (header, kind, range, file size);
        sets ``entry.frames``. Raises ``ValueError`` saying what is wrong."""
        h, size = self.header(entry.path)
        if (h.kind, h.period) != self.kind or h.dim != self.io_dim:
            raise ValueError("inconsistent feature kind for %r: %s, %d-dim, period %d, but the stream's first file "
                             "has %s, %d-dim, period %d" % (entry.path, h.kind, h.dim, h.period, self.kind[0],
                                                            self.io_dim, self.kind[1]))
        start = entry.start or 0
        last = h.frames - 1 if entry.end is None else entry.end
        if last >= h.frames:
            raise ValueError("frame range [%d,%d] exceeds the %d frames of %r" % (start, last, h.frames, entry.path))
        if start > last:
            raise ValueError("%r holds no frames" % (entry.path,))
        held = (size - h.data_offset) // h.frame_bytes
        if held <= last:
            raise ValueError("HTK file %r is truncated: its header announces %d frames of %d bytes, but it holds "
                             "only %d" % (entry.path, h.frames, h.frame_bytes, max(held, 0)))
        entry.frames = last - start + 1

    def read(self, entry, length=None):
        """The utterance's frames with the context stacked, ``(T, out_dim)``; ``length`` expands
        a one-frame (broadcast) utterance."""
        h = self.header(entry.path)[0]
        with open(entry.path, "rb") as f:
            frames = _read_frames(f, h, entry.path, entry.start or 0, entry.end)
        if length is not None:
            frames = np.repeat(frames, length, axis=0)
        return np.ascontiguousarray(stack_context(frames, self.left, self.right))


class HTKFeatureDeserializer(Deserializer):
    """Reads speech features (CNTK's ``HTKFeatureDeserializer``).

    ``streams``: ``StreamDefs(name=StreamDef(shape=dim, scp=file_or_files, context=(left, right),
    broadcast=False))``. Each output sample stacks ``left`` previous frames, the frame and
    ``right`` following frames (edges replicated): dimension ``dim * (1 + left + right)``.
    Without ``context``, ``shape`` may be an odd multiple of the file's frame size, which
    implies a symmetric window. A ``broadcast`` stream holds one frame per utterance (e.g.
    i-vectors), repeated over the length of the first non-broadcast stream. Utterances are
    joined across streams by id, and with ``HTKMLFDeserializer`` labels in ``MinibatchSource``.
    Every utterance's file is checked when the deserializer is built; a bad one is reported
    (or skipped within ``max_errors``) when its chunk is read.
    """

    def __init__(self, streams):
        if not streams:
            raise ValueError("HTKFeatureDeserializer: no feature streams found")
        self._streams = [_FeatureStream(name, sd) for name, sd in streams.items()]
        primary = [s for s in self._streams if not s.broadcast]
        if not primary:
            raise ValueError("HTKFeatureDeserializer: cannot expand utterances of the primary stream %r: a broadcast "
                             "stream needs a non-broadcast feature stream in the same deserializer"
                             % (self._streams[0].name,))
        self._primary = primary[0]
        for s in self._streams:
            s.setup()
        by_key = {s.name: {e.key: e for e in s.entries} for s in self._streams if s is not self._primary}
        good, errors = [], []
        for e in self._primary.entries:
            try:
                self._primary.check(e)
                row = {self._primary.name: e}
                for s in self._streams:
                    if s is self._primary:
                        continue
                    other = by_key[s.name].get(e.key)
                    if other is None:
                        raise ValueError("not listed in the SCP file(s) of stream %r" % (s.name,))
                    try:
                        s.check(other)
                    except ValueError as err:
                        raise ValueError("%s (stream %r, %s)" % (err, s.name, other.where)) from None
                    if s.broadcast and other.frames != 1:
                        raise ValueError("the broadcast stream %r needs 1 frame per utterance, %s has %d"
                                         % (s.name, other.where, other.frames))
                    row[s.name] = other
            except ValueError as err:
                errors.append((len(good), "HTKFeatureDeserializer: %s: utterance %r: %s" % (e.where, e.key, err)))
                continue
            good.append(row)
        primary = self._primary.name
        self._chunks, self._errors = _chunked(good, lambda row: row[primary].frames, errors)

    def stream_infos(self):
        return [StreamInformation(s.name, i, "dense", np.float32, (s.out_dim,), s.defines_mb_size)
                for i, s in enumerate(self._streams)]

    def num_chunks(self):
        return len(self._chunks)

    def sequence_keys(self, chunk_id):
        return [row[self._primary.name].key for row in self._chunks[chunk_id]]

    def chunk_sizes(self):
        return [(len(c), sum(row[self._primary.name].frames for row in c)) for c in self._chunks]

    def get_chunk(self, chunk_id):
        for msg in self._errors.get(chunk_id, ()):
            self.report_error(msg)
        out = {s.name: [] for s in self._streams}
        rows = self._chunks[chunk_id]
        for row in rows:
            e = row[self._primary.name]
            try:
                primary = self._primary.read(e)
                values = {self._primary.name: primary}
                for s in self._streams:
                    if s is not self._primary:
                        values[s.name] = s.read(row[s.name], primary.shape[0] if s.broadcast else None)
            except (OSError, ValueError) as err:    # the file changed since it was checked
                raise DataError("HTKFeatureDeserializer: %s: utterance %r: %s" % (e.where, e.key, err)) from None
            for name, value in values.items():
                out[name].append(value)
        return {s.name: PackedSequences(np.concatenate(out[s.name]) if rows else np.zeros((0, s.out_dim), np.float32),
                                        [len(v) for v in out[s.name]]) for s in self._streams}


def _stream_dim(deserializer, name, sd, files_key, files, dim_meaning):
    """The dimension of the stream ``name`` defined by ``sd``, after checking that it has no field
    alias, that its ``files_key`` files are given and that it has a dimension."""
    if sd.get("stream_alias") is not None:
        raise ValueError("%s does not support stream names (field); stream %r has field=%r"
                         % (deserializer, name, sd.get("stream_alias")))
    if sd.get(files_key) is None:
        raise ValueError("%s: no %s specified for stream %r" % (deserializer, files, name))
    dim = sd.get("dim")
    if dim is None:
        raise ValueError("%s: stream %r needs shape=<%s>" % (deserializer, name, dim_meaning))
    return int(np.prod(dim)) if isinstance(dim, (tuple, list)) else int(dim)


def _chunked(items, frames_of, errors):
    """(chunks of consecutive ``items`` with about FRAMES_PER_CHUNK frames each, a single empty
    chunk when there are none; ``{chunk id: [message]}`` for ``errors``, (position in ``items``,
    message) pairs)."""
    chunks, frames, starts = [], 0, []
    for i, item in enumerate(items):
        if not chunks or frames > FRAMES_PER_CHUNK:
            chunks.append([])
            starts.append(i)
            frames = 0
        chunks[-1].append(item)
        frames += frames_of(item)
    if not chunks:
        chunks, starts = [[]], [0]
    return chunks, _errors_by_chunk(errors, starts)


def _errors_by_chunk(errors, starts):
    """``{chunk id: [message]}`` for errors found at positions of the good-utterance list."""
    out = {}
    for pos, msg in errors:
        c = max(0, int(np.searchsorted(starts, pos, side="right")) - 1)
        out.setdefault(c, []).append(msg)
    return out


def read_state_list(path):
    """``{state name: index}`` from a label mapping file (one state per non-empty line)."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            lines = [l.strip() for l in f.read().split("\n")]
    except OSError as e:
        raise DataError("HTKMLFDeserializer: cannot open label mapping file %r: %s" % (path, e.strerror or e)) from None
    table = {}
    for number, name in enumerate(lines, 1):
        if not name:
            continue
        if name in table:
            raise DataError("HTKMLFDeserializer: %s:%d: state %r appears twice in the state list"
                            % (path, number, name))
        table[name] = len(table)
    if not table:
        raise DataError("HTKMLFDeserializer: the state list %r is empty" % (path,))
    return table


def _frame_range(tokens, where):
    try:
        ts, te = float(tokens[0]), float(tokens[1])
    except (ValueError, IndexError):
        raise ValueError("%s: cannot parse the frame range %r" % (where, " ".join(tokens))) from None
    if te - ts >= HTK_TIME_TO_FRAME - 1:       # times in 100 ns units, not frame numbers (CNTK's rule)
        return int(ts / HTK_TIME_TO_FRAME + 0.5), int(te / HTK_TIME_TO_FRAME + 0.5)
    return int(ts), int(te)


class _Utterance:
    __slots__ = ("key", "ids", "starts", "where")

    def __init__(self, key, ids, starts, where):
        self.key, self.ids, self.starts, self.where = key, ids, starts, where


class HTKMLFDeserializer(Deserializer):
    """Reads frame-level labels from HTK master label files (CNTK's ``HTKMLFDeserializer``).

    ``label_mapping_file`` lists the state names, one per line (line i = class i; ``None``:
    the MLF lines carry numeric class ids in a 4th column). ``streams`` holds one
    ``StreamDef(shape=num_classes, mlf=file_or_files)``. Every frame becomes a one-hot sparse
    sample; with ``phoneBoundaries=True`` (also spelled ``phone_boundaries``) the first frame
    of every MLF segment has the value 2 instead of 1, as CTC training in CNTK expects.
    """

    def __init__(self, label_mapping_file, streams, phoneBoundaries=False, phone_boundaries=None):
        if len(streams) != 1:
            raise ValueError("HTKMLFDeserializer only accepts a single stream, got %d" % len(streams))
        (name, sd), = streams.items()
        self._name = name
        self._dim = _stream_dim("HTKMLFDeserializer", name, sd, "mlf", "master label files", "number of classes")
        self._defines_mb_size = bool(sd.get("defines_mb_size", False))
        self._boundaries = bool(phoneBoundaries if phone_boundaries is None else phone_boundaries)
        self._states = None if label_mapping_file is None else read_state_list(os.fspath(label_mapping_file))
        utterances, errors = [], []
        for mlf in _as_list(sd["mlf"]):
            self._parse_mlf(os.fspath(mlf), utterances, errors)
        seen = {}
        kept = []
        for u in utterances:
            if u.key in seen:
                errors.append((len(kept), "HTKMLFDeserializer: %s: utterance %r already appeared at %s"
                               % (u.where, u.key, seen[u.key])))
                continue
            seen[u.key] = u.where
            kept.append(u)
        if not kept and not errors:
            raise DataError("HTKMLFDeserializer: no utterances in %s" % (", ".join(map(repr, _as_list(sd["mlf"]))),))
        # malformed entries are reported (or skipped within max_errors) with the chunk they sit in
        self._chunks, self._errors = _chunked(kept, lambda u: len(u.ids), errors)

    def _parse_mlf(self, path, utterances, errors):
        try:
            with open(path, "r", encoding="utf-8", errors="replace") as f:
                lines = f.read().split("\n")
        except OSError as e:
            raise DataError("HTKMLFDeserializer: cannot open MLF file %r: %s" % (path, e.strerror or e)) from None
        lines = [l.rstrip("\r") for l in lines]
        first = next((i for i, l in enumerate(lines) if l.strip()), None)
        if first is None or lines[first].strip() != "#!MLF!#":
            raise DataError("HTKMLFDeserializer: %s: expected the MLF header '#!MLF!#' at the start" % (path,))
        i, n = first + 1, len(lines)
        while i < n:
            line = lines[i].strip()
            i += 1
            if not line or line == "#!MLF!#":      # concatenated MLFs repeat the header
                continue
            where = "%s:%d" % (path, i)
            body, body_start = [], i
            while i < n and lines[i].strip() != ".":
                body.append(lines[i])
                i += 1
            terminated = i < n
            i += 1
            if not (len(line) > 2 and line[0] == '"' and line[-1] == '"'):
                errors.append((len(utterances), "HTKMLFDeserializer: %s: expected a quoted utterance name, "
                                                "found %r" % (where, line)))
                continue
            key = line[1:-1]
            if key.startswith("*/"):
                key = key[2:]
            key = _utterance_key(key)
            if not terminated:
                errors.append((len(utterances), "HTKMLFDeserializer: %s: utterance %r is not terminated by a "
                                                "'.' line" % (where, key)))
                continue
            try:
                ids, starts = self._parse_body(body, body_start, path, key)
            except ValueError as e:
                errors.append((len(utterances), "HTKMLFDeserializer: %s" % (e,)))
                continue
            utterances.append(_Utterance(key, ids, starts, where))

    def _parse_body(self, body, first_line, path, key):
        ids, starts, expected = [], [], 0
        for offset, text in enumerate(body):
            tokens = text.split()
            if not tokens:
                continue
            where = "%s:%d" % (path, first_line + offset + 1)
            ts, te = _frame_range(tokens, where)
            if te < ts:
                raise ValueError("%s: frame range end %d is before its start %d" % (where, te, ts))
            if ts != expected:
                raise ValueError("%s: utterance %r: labels are not consecutive (segment starts at frame %d, "
                                 "expected %d)" % (where, key, ts, expected))
            if self._states is not None:
                if len(tokens) < 3:
                    raise ValueError("%s: expected 'start end state ...', found %r" % (where, text.strip()))
                cls = self._states.get(tokens[2])
                if cls is None:
                    raise ValueError("%s: state %r is not in the state list" % (where, tokens[2]))
            else:
                if len(tokens) != 4 or not tokens[3].isdigit():
                    raise ValueError("%s: without a state list, lines must be 'start end name class_id', found %r"
                                     % (where, text.strip()))
                cls = int(tokens[3])
            if cls >= self._dim:
                raise ValueError("%s: class id %d exceeds the label dimension %d" % (where, cls, self._dim))
            ids.append(np.full(te - ts, cls, dtype=np.int32))
            starts.append(ts)
            expected = te
        if not ids:
            raise ValueError("%s: utterance %r has no labels" % (path, key))
        return np.concatenate(ids), np.array(starts, dtype=np.int64)

    def stream_infos(self):
        return [StreamInformation(self._name, 0, "sparse", np.float32, (self._dim,), self._defines_mb_size)]

    def num_chunks(self):
        return len(self._chunks)

    def sequence_keys(self, chunk_id):
        return [u.key for u in self._chunks[chunk_id]]

    def chunk_sizes(self):
        return [(len(c), sum(len(u.ids) for u in c)) for c in self._chunks]

    def get_chunk(self, chunk_id):
        import scipy.sparse as sp   # optional dependency, needed for sparse streams
        for msg in self._errors.get(chunk_id, ()):
            self.report_error(msg)
        utts = self._chunks[chunk_id]
        lengths = np.array([len(u.ids) for u in utts], dtype=np.int64)
        total = int(lengths.sum())
        ids = np.concatenate([u.ids for u in utts]) if utts else np.zeros(0, np.int32)
        values = np.ones(total, dtype=np.float32)
        if self._boundaries:
            offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if utts else []
            for u, o in zip(utts, offsets):
                values[o + u.starts[u.starts < len(u.ids)]] = 2.0
        labels = sp.csr_matrix((values, ids, np.arange(total + 1)), shape=(total, self._dim))
        return {self._name: PackedSequences(labels, lengths)}
