"""Parsing a block of CNTK Text Format (CTF) lines into packed sequences.

``parse_block`` works on whole lines with numpy operations over the entire block (finding line
breaks, ``|`` markers, names, tokens and numbers); Python code runs per stream and per distinct
token width, never per line or per value. A line it finds malformed is explained by
``explain_line``, the reference parser of one line (also used by the tests), which gives the
precise message.

Grammar of a line: ``[SeqId] ( '|' Name WS Values | '|#' Comment )+``, where whitespace is any
byte <= 32 (space, tab, CR of CRLF endings, ...). Rules:

* The sequence id is an optional non-negative integer. A file whose first line has no id has
  one sequence per line. In a file with ids, consecutive lines with the same id form one
  sequence, and a line without an id continues the current sequence.
* A comment runs from ``|#`` to the next ``|`` or the end of the line.
* A stream may appear at most once per line and contributes one sample to its sequence.
* A dense sample has at most ``dim`` numbers (fewer are zero-filled, as CNTK does, with a
  warning); a sparse sample is ``index:value`` pairs with ``0 <= index < dim``, possibly none.
* Streams that were not declared are skipped, as CNTK does; a line needs at least one
  declared stream (a blank, comment-only or undeclared-only line is malformed).
"""

import numpy as np

from .ctf_numbers import NUMBER_RE, INDEX_RE, parse_numbers, parse_indices

_PAD = 64                    # zero bytes after the block, so lookahead reads never go out of bounds
_MAX_ID_DIGITS = 18


class LineError(Exception):
    """A malformed line: ``args[0]`` says what is wrong."""


# ---------------------------------------------------------------------------- reference parser

def _ws_split(b):
    """Tokens of ``b`` separated by bytes <= 32."""
    return bytes(c if c > 32 else 32 for c in b).split()


def _strip(b):
    i, j = 0, len(b)
    while i < j and b[i] <= 32:
        i += 1
    while j > i and b[j - 1] <= 32:
        j -= 1
    return b[i:j]


def explain_line(line, streams, has_ids):
    """Parses one line (bytes without its newline) by the grammar.

    ``streams``: ``{name_bytes: (dim, is_sparse)}``. Returns ``(seq_id or None, {name: sample},
    short)`` with a dense sample as a list of floats (zero-filled to ``dim``), a sparse one as a
    list of ``(index, value)``, and ``short`` naming dense samples that were zero-filled.
    Raises ``LineError`` with the reason when the line is malformed.
    """
    if not _strip(line):
        raise LineError("empty line")
    p = line.find(b"|")
    if p < 0:
        raise LineError("no '|' on the line (each stream must be written as '|name values')")
    prefix = _strip(line[:p])
    seq_id = None
    if prefix:
        if not INDEX_RE.match(prefix):
            raise LineError("invalid sequence id %r (expected a non-negative integer before the first '|')"
                            % prefix.decode("latin-1"))
        if len(prefix) > _MAX_ID_DIGITS:
            raise LineError("sequence id %s is too large" % prefix.decode())
        if not has_ids:
            raise LineError("sequence id %s on a line of a file whose first line has no sequence id"
                            % prefix.decode())
        seq_id = int(prefix)
    samples, short, unknown = {}, [], []
    for seg in line[p + 1:].split(b"|"):
        if seg.startswith(b"#"):
            continue
        if not seg or seg[0] <= 32:
            raise LineError("'|' is not followed by a stream name (it must come right after the '|')")
        k = 0
        while k < len(seg) and seg[k] > 32:
            k += 1
        name, rest = seg[:k], seg[k:]
        if name not in streams:        # a stream that was not declared: skipped, as CNTK does
            unknown.append(name)
            continue
        if name in samples:
            raise LineError("stream '%s' appears twice on one line" % name.decode("latin-1"))
        dim, is_sparse = streams[name]
        toks = _ws_split(rest)
        if is_sparse:
            pairs = []
            for t in toks:
                i, sep, v = t.partition(b":")
                if not sep or not INDEX_RE.match(i) or not NUMBER_RE.match(v):
                    raise LineError("malformed sparse entry '%s' in stream '%s' (expected index:value)"
                                    % (t.decode("latin-1"), name.decode("latin-1")))
                idx = int(i)
                if idx >= dim:
                    raise LineError("sparse index %d in stream '%s' is out of range (dimension %d)"
                                    % (idx, name.decode("latin-1"), dim))
                pairs.append((idx, _value(v, name)))
            samples[name] = pairs
        else:
            if len(toks) > dim:
                raise LineError("%d values for stream '%s' of dimension %d" % (len(toks), name.decode("latin-1"), dim))
            vals = []
            for t in toks:
                if not NUMBER_RE.match(t):
                    raise LineError("malformed number '%s' in stream '%s'" % (t.decode("latin-1"), name.decode("latin-1")))
                vals.append(_value(t, name))
            if len(vals) < dim:
                short.append(name)
                vals += [0.0] * (dim - len(vals))
            samples[name] = vals
    if not samples:
        if unknown:
            raise LineError("no declared stream on the line: unknown stream name '%s' (declared: %s)" % (
                unknown[0].decode("latin-1"), ", ".join(sorted(n.decode("latin-1") for n in streams))))
        raise LineError("no stream data on the line (only comments)")
    return seq_id, samples, short


def _value(tok, name):
    with np.errstate(over="ignore"):
        v = np.float32(float(tok))
    if not np.isfinite(v):
        raise LineError("value %s in stream '%s' is out of float32 range" % (tok.decode(), name.decode("latin-1")))
    return float(v)


# ---------------------------------------------------------------------------- vectorised parser

class Block:
    """The parse of a block of lines.

    ``keys``: int64 sequence ids (the id, or the global line number without ids), one per
    sequence; ``streams``: ``{name: (data, lengths)}``, data a float32 (total, dim) array or a
    CSR matrix, lengths per sequence; ``bad_lines``: sorted local indices of malformed lines;
    ``blank_lines``: the subset that is blank; ``seq_of_line``: the sequence index of each line
    (-1 for blank lines); ``short_lines``: lines with zero-filled dense samples;
    ``unknown_lines``: lines with streams that were not declared (skipped).
    """

    __slots__ = ("keys", "streams", "bad_lines", "blank_lines", "seq_of_line", "short_lines", "line_starts",
                 "line_ends", "unknown_lines")


def parse_block(data, streams, has_ids, first_line=0):
    """Parses ``data`` (bytes of whole lines) with ``streams`` a list of ``(name_bytes, dim,
    is_sparse)``. ``first_line`` is the global 0-based number of the first line (the sequence
    key of lines without ids). Returns a ``Block``; malformed lines are listed in
    ``bad_lines``, and the returned data is only meaningful when there are none."""
    n = len(data)
    if n == 0:
        return _empty_block(streams)
    with np.errstate(over="ignore", invalid="ignore"):
        return _parse(data, n, streams, has_ids, first_line)


def _empty_block(streams):
    import scipy.sparse
    res = Block()
    z = np.zeros(0, dtype=np.int64)
    res.keys, res.bad_lines, res.blank_lines, res.seq_of_line, res.short_lines = z, z, z, z, z
    res.line_starts, res.line_ends, res.unknown_lines = z, z, z
    res.streams = {name: (scipy.sparse.csr_matrix((0, dim), dtype=np.float32) if sp else
                          np.zeros((0, dim), dtype=np.float32), z) for name, dim, sp in streams}
    return res


def _parse(data, n, streams, has_ids, first_line):
    B = np.zeros(n + 1 + _PAD, dtype=np.uint8)
    B[:n] = np.frombuffer(data, dtype=np.uint8)
    m = n
    if B[n - 1] != 10:
        B[n] = 10
        m = n + 1
    Bm = B[:m]
    res = Block()

    # line breaks and '|' markers, in one ordered list
    marks = np.flatnonzero((Bm == 10) | (Bm == 124))
    is_nl = B[marks] == 10
    nl = marks[is_nl]
    nlines = len(nl)
    ls = np.empty(nlines, dtype=np.int64)
    ls[:1] = 0
    ls[1:] = nl[:-1] + 1
    res.line_starts, res.line_ends = ls, nl
    line_of_mark = np.cumsum(is_nl) - is_nl            # line index of every mark
    bars = marks[~is_nl]
    bar_line = line_of_mark[~is_nl]
    nxt = B[bars + 1]
    is_cmt = nxt == 35
    bad = np.zeros(nlines, dtype=bool)

    # first '|' of each line; lines without one are blank or malformed
    first_bar = ~is_nl[1:] & is_nl[:-1]
    fb = np.full(nlines, -1, dtype=np.int64)
    if len(marks) and not is_nl[0]:
        fb[0] = marks[0]
    fidx = np.flatnonzero(first_bar) + 1
    fb[line_of_mark[fidx]] = marks[fidx]
    nobar = fb < 0
    blank = np.zeros(nlines, dtype=bool)
    for i in np.flatnonzero(nobar).tolist():            # malformed or blank lines only
        blank[i] = not _strip(bytes(Bm[ls[i]:nl[i]]))
    bad |= nobar

    # sequence ids: the text before the first '|'
    seq_id, has_id, id_bad = _parse_ids(B, ls, np.where(nobar, ls, fb))
    bad |= id_bad & ~nobar
    if not has_ids:
        bad |= has_id

    # the stream each '|' names (-1: a comment or an unknown name). Names hold no '|', '#' or
    # byte <= 32, so matching the name's bytes and a terminator after it also rules out
    # comments and fields shorter than the name; the bytes after the bars are read once for
    # all names
    kdt = np.int8 if len(streams) < 127 else np.int32
    bar_stream = np.full(len(bars), -1, dtype=kdt)
    bad[bar_line[~is_cmt & ((nxt <= 32) | (nxt == 124))]] = True
    after_bar = {0: nxt}

    def byte_after(j):
        if j not in after_bar:
            after_bar[j] = B.take(bars + (1 + j), mode="clip")
        return after_bar[j]

    fks = []
    has_data = np.zeros(nlines, dtype=bool)        # a line needs a declared stream
    for k, (name, dim, is_sparse) in enumerate(streams):
        L = len(name)
        match = byte_after(0) == name[0]
        for j in range(1, L):
            match &= byte_after(j) == name[j]
        term = byte_after(L)
        match &= (term <= 32) | (term == 124)
        fk = np.flatnonzero(match)                      # this stream's fields, in line order
        bar_stream[fk] = k
        fks.append(fk)
        lk = bar_line[fk]
        has_data[lk] = True
        if len(lk) > 1:                                 # twice on one line
            dup = lk[1:] == lk[:-1]
            bad[lk[1:][dup]] = True
    bad |= ~nobar & ~has_data                       # undeclared streams are skipped
    res.unknown_lines = np.unique(bar_line[~is_cmt & (bar_stream < 0)])

    # blank the ids (already parsed) and lines without '|', so that every token lies in a field
    pre_e = np.where(nobar, nl, fb)
    plen = pre_e - ls
    total = int(plen.sum())
    if total:
        B[np.arange(total, dtype=np.int64) + np.repeat(ls - (np.cumsum(plen) - plen), plen)] = 32

    # tokens: runs of bytes > 32; '|' and ':' always start a new token, so a field's first
    # token is its '|name' and a sparse entry 'i:v' is the two tokens 'i' and ':v'
    sep = Bm <= 32
    brk = (Bm == 124) | (Bm == 58)
    tok_s = np.flatnonzero(~sep[1:] & (sep[:-1] | brk[1:])) + 1
    if not sep[0]:
        tok_s = np.concatenate(([0], tok_s))
    tok_e = np.flatnonzero((sep[1:] | brk[1:]) & ~sep[:-1]) + 1
    c0 = B[tok_s]
    is_bar_tok = c0 == 124
    # the field (bar) of each token
    tok_f = np.cumsum(is_bar_tok, dtype=np.int32 if len(c0) < 2 ** 31 else np.int64) - 1
    # 1 + the stream of each value token; 0 for '|name' tokens, comments and undeclared streams
    tok_k = (bar_stream + 1).astype(np.uint8 if kdt == np.int8 else np.int32)[tok_f]
    tok_k *= ~is_bar_tok
    if len(tok_f) and tok_f[0] < 0:                      # tokens before the first '|' (none: blanked)
        tok_k[tok_f < 0] = 0
    # the number of value tokens of each field: the tokens up to the next '|name' token
    bar_tok = np.flatnonzero(is_bar_tok)
    field_ntok = np.diff(bar_tok, append=len(tok_s)) - 1

    short_fields = np.zeros(len(bars), dtype=bool)
    out = {}
    for k, (name, dim, is_sparse) in enumerate(streams):
        fk = fks[k]
        sel = np.flatnonzero(tok_k == k + 1)
        ntok = field_ntok[fk]
        if is_sparse:
            ck = c0[sel]
            gi, gv = sel[0::2], sel[1::2]
            if len(sel) % 2 == 0 and (ck[1::2] == 58).all() and not (ck[0::2] == 58).any():
                # tokens alternate index, ':value' (the common case): an entry is well formed
                # when its value starts right where its index ends
                ie, vs = tok_e[gi], tok_s[gv]
                paired = ie == vs
                idx, ok_i = parse_indices(B, tok_s[gi], ie)
                val, ok_v = parse_numbers(B, vs + 1, tok_e[gv])
                val32 = val.astype(np.float32)
                ok_pair = paired & ok_i & ok_v & (idx < dim) & np.isfinite(val32)
                if not ok_pair.all():
                    bad[bar_line[tok_f[gi[~ok_pair]]]] = True
                out[k] = ("sparse", fk, None, ntok // 2, idx, val32)
                continue
            s_, e_, tf = tok_s[sel], tok_e[sel], tok_f[sel]
            # some entry is not 'index:value': find the tokens out of step
            colon = ck == 58
            ii = np.flatnonzero(~colon)                   # index tokens
            nxt = ii + 1
            nxt_c = np.zeros(len(ii), dtype=bool)
            inr = nxt < len(sel)
            nxt_c[inr] = colon[nxt[inr]]
            paired = nxt_c & (tf[ii] == tf[np.minimum(nxt, len(sel) - 1)]) & \
                (e_[ii] == s_[np.minimum(nxt, len(sel) - 1)])
            okt = np.ones(len(sel), dtype=bool)
            okt[ii] = paired
            prev_ok = np.zeros(len(sel), dtype=bool)
            prev_ok[ii[paired] + 1] = True
            okt[colon & ~prev_ok] = False             # a ':value' without its index
            iv = np.minimum(ii + 1, max(len(sel) - 1, 0))
            idx, ok_i = parse_indices(B, s_[ii], e_[ii])
            val, ok_v = parse_numbers(B, s_[iv] + 1, e_[iv])
            val32 = val.astype(np.float32)
            ok_pair = paired & ok_i & ok_v & (idx < dim) & np.isfinite(val32)
            okt[ii[~ok_pair]] = False
            out[k] = ("sparse", fk, None, None, idx, val32)
        else:
            # a ':' token is no number, so parse_numbers rejects it
            val, okt = parse_numbers(B, tok_s[sel], tok_e[sel])
            val32 = val.astype(np.float32)
            okt &= np.isfinite(val32)
            over = ntok > dim
            bad[bar_line[fk[over]]] = True
            short_fields[fk[ntok < dim]] = True
            out[k] = ("dense", fk, None, ntok, None, val32)
        if not okt.all():
            bad[bar_line[tok_f[sel[~okt]]]] = True

    res.bad_lines = np.flatnonzero(bad)
    res.blank_lines = np.flatnonzero(blank)
    res.short_lines = np.unique(bar_line[short_fields])
    seq_of_line = _sequences(seq_id, has_id, has_ids, blank)
    res.seq_of_line = seq_of_line
    if len(res.bad_lines):
        res.keys, res.streams = None, None
        return res

    # sequences
    nseq = int(seq_of_line.max()) + 1 if nlines else 0
    starts = np.flatnonzero(np.diff(seq_of_line, prepend=-1) != 0) if nlines else np.zeros(0, np.int64)
    res.keys = seq_id[starts] if has_ids else first_line + starts
    res.streams = {}
    for k, (name, dim, is_sparse) in enumerate(streams):
        kind, fk, row, counts, idx, val = out[k]
        lengths = np.bincount(seq_of_line[bar_line[fk]], minlength=nseq) if len(fk) else np.zeros(nseq, np.int64)
        if kind == "dense":
            nf = len(fk)
            if len(val) == nf * dim:          # every sample complete: values are already in row order
                arr = val.reshape(nf, dim)
            else:
                arr = np.zeros((nf, dim), dtype=np.float32)
                row = np.repeat(np.arange(nf), counts)
                first_tok = np.concatenate(([0], np.cumsum(counts)[:-1]))
                col = np.arange(len(val)) - np.repeat(first_tok, counts)
                arr[row, col] = val
            res.streams[name] = (arr, lengths)
        else:
            import scipy.sparse
            indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
            mat = scipy.sparse.csr_matrix((val, idx, indptr), shape=(len(fk), dim))
            r = np.repeat(np.arange(len(fk)), counts)
            if ((r[1:] == r[:-1]) & (idx[1:] <= idx[:-1])).any():   # unsorted or repeated indices
                mat.sum_duplicates()
            else:
                mat.has_sorted_indices = True
                mat.has_canonical_format = True
            res.streams[name] = (mat, lengths)
    return res


def _parse_ids(B, ls, fb):
    """Sequence ids from the bytes [ls, fb) of each line: (ids, has_id, malformed)."""
    nlines = len(ls)
    ids = np.zeros(nlines, dtype=np.int64)
    has = np.zeros(nlines, dtype=bool)
    badm = np.zeros(nlines, dtype=bool)
    if nlines == 0:
        return ids, has, badm
    pl = fb - ls
    W = int(pl.max())
    if W == 0:
        return ids, has, badm
    longl = pl > 32
    Wc = min(W, 32)
    P = np.empty((Wc, nlines), dtype=np.uint8)
    for j in range(Wc):
        P[j] = B[ls + j]
    inpre = np.arange(Wc)[:, None] < pl[None, :]
    D = P - np.uint8(48)
    isd = (D < 10) & inpre
    isw = (P <= 32) & inpre
    badm = (inpre & ~isd & ~isw).any(0)
    runs = isd.copy()
    runs[1:] &= ~isd[:-1]
    badm |= runs.sum(0) > 1
    nd = isd.sum(0)
    badm |= nd > _MAX_ID_DIGITS
    has = nd > 0
    v = np.zeros(nlines, dtype=np.int64)
    for j in range(Wc):
        dj = isd[j]
        if dj.any():
            v = np.where(dj, v * 10 + D[j], v)
    ids = v
    for i in np.flatnonzero(longl):      # long prefixes (rare): read them one by one
        t = _strip(bytes(B[ls[i]:fb[i]]))
        has[i] = bool(t)
        badm[i] = bool(t) and (not INDEX_RE.match(t) or len(t) > _MAX_ID_DIGITS)
        ids[i] = int(t) if has[i] and not badm[i] else 0
    return ids, has, badm


def _sequences(seq_id, has_id, has_ids, blank):
    """The sequence index of each line (blank lines: -1, they belong to no sequence)."""
    nlines = len(seq_id)
    keep = ~blank
    new = np.zeros(nlines, dtype=bool)
    if has_ids:
        idx = np.flatnonzero(keep)
        hid = has_id[idx]
        # effective id: the line's own, else the last one seen (lines without an id continue)
        last = np.where(hid, np.arange(len(idx)), 0)
        np.maximum.accumulate(last, out=last)
        eff = seq_id[idx][last]
        nw = np.ones(len(idx), dtype=bool)
        nw[1:] = hid[1:] & (eff[1:] != eff[:-1])
        new[idx] = nw
    else:
        new = keep.copy()
    seq = np.cumsum(new) - 1
    seq[blank] = -1
    return seq
