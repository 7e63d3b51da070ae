"""Vectorised parsing of the numbers in a CTF text buffer.

Tokens are given as byte spans ``[start, end)`` of one uint8 buffer. Tokens of equal length are
parsed together as a (length, count) byte matrix, so every step is a numpy operation over all
tokens of that length; no Python code runs per token or per digit.

Grammar of a number (exactly what ``NUMBER_RE`` matches): an optional sign, a mantissa of digits
with at most one ``.`` (at least one digit), and an optional exponent ``e``/``E``, optional sign,
one or more digits. ``inf``/``nan``/hex are not numbers here.
"""

import re

import numpy as np

NUMBER_RE = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
INDEX_RE = re.compile(rb"\d+\Z")

_MAX_WIDTH = 48             # longer tokens (rare) take the per-token path
_BATCH = 1 << 18            # tokens per matrix: keeps the working set in cache
_EXACT = np.array([float("1e%d" % k) for k in range(23)])     # 10**k, exact in float64


def _scale(m, k):
    """m * 10**k, correctly rounded when |k| <= 22 (one rounding), approximately otherwise."""
    out = np.empty_like(m)
    pos = k >= 0
    kk = np.minimum(np.abs(k), 22)
    p = _EXACT[kk]
    np.multiply(m, p, out=out, where=pos)
    np.divide(m, p, out=out, where=~pos)
    rest = np.abs(k) - kk
    big = rest > 0
    if big.any():   # beyond 10**22: the result leaves float32's range or underflows anyway
        r = np.minimum(rest[big], 700).astype(np.float64)
        out[big] = np.where(pos[big], out[big] * 10.0 ** np.minimum(r, 308),
                            out[big] / 10.0 ** np.minimum(r, 308))
    return out


def _or_accumulate(x):
    """Running OR down axis 0 (row by row: numpy's accumulate over axis 0 is slow for this)."""
    out = x.copy()
    for j in range(1, x.shape[0]):
        np.logical_or(out[j - 1], x[j], out=out[j])
    return out


_POW = np.array([float("1e%d" % k) for k in range(16)])


def _horner(Dz):
    """Each column of a (W, n) digit matrix read as one integer (exact while below 2**53)."""
    m = Dz[0].astype(np.float64)
    for j in range(1, Dz.shape[0]):
        m *= 10.0
        m += Dz[j]
    return m


_POW_NEG = np.array([float("1e%d" % k) for k in range(0, 23)])


def _parse_matrix(MT):
    """Numbers from a (width, count) byte matrix (one token per column). Returns (values, ok)."""
    W, n = MT.shape
    if W > 15:
        return _parse_matrix_long(MT)
    D = MT - np.uint8(48)
    isd = D < 10
    if isd.all():     # plain unsigned integers: the most common case (indices, one-hot values)
        return _horner(D), np.ones(n, dtype=bool)
    isdot = MT == 46
    ise = (MT | np.uint8(32)) == 101
    ism = MT == 45
    issign = ism | (MT == 43)
    ok = (isd | isdot | ise | issign).all(0)
    pos = np.arange(W, dtype=np.int8)[:, None]
    ndot = isdot.sum(0, dtype=np.int8)
    ne = ise.sum(0, dtype=np.int8)
    ok &= (ndot <= 1) & (ne <= 1)
    has_e = ne == 1
    pe = np.where(has_e, (ise * pos).sum(0, dtype=np.int8), np.int8(W))     # e, W if none
    has_dot = ndot == 1
    pdot = np.where(has_dot, (isdot * pos).sum(0, dtype=np.int8), pe)       # dot, pe if none
    s0 = issign[0]
    after_e = issign[1:] & ise[:-1] if W > 1 else np.zeros((0, n), dtype=bool)
    se = after_e.any(0)                                                     # a sign right after e
    ok &= issign.sum(0, dtype=np.int8) == s0.astype(np.int8) + se
    ok &= pdot <= pe                                                        # no dot in the exponent
    ok &= (pe - s0 - ndot) >= 1                                             # mantissa digits
    ok &= ~has_e | (W - 1 - pe - se >= 1)                                   # exponent digits
    # Horner over the mantissa's digits: the dot column and everything from the e on are skipped
    # (multiplier 1, digit 0), so V is the mantissa as an integer and the number is
    # V * 10**(exponent - digits after the dot)
    inmant = isd & (pos < pe)
    Dz = D * inmant
    mul = inmant.view(np.uint8) * np.uint8(9) + np.uint8(1)        # 10 on mantissa digits, else 1
    V = Dz[0].astype(np.float64)
    for j in range(1, W):
        V *= mul[j]
        V += Dz[j]
    nfrac = pe - pdot - has_dot                                             # digits after the dot
    if has_e.any():
        k = -nfrac.astype(np.int64)
        ex = _horner(D * (isd & (pos > pe)))
        ex = np.minimum(ex, 100000.0).astype(np.int64)
        eneg = (ism[1:] & ise[:-1]).any(0) if W > 1 else np.zeros(n, dtype=bool)
        k += np.where(eneg, -ex, ex)
        if (k < -22).any() or (k > 0).any():
            v = _scale(V, k)
        else:
            v = V / _POW_NEG[-k]        # one correctly rounded division
    else:               # 0 <= nfrac < W <= 15 (clip: only malformed tokens could leave that range)
        v = V / _POW_NEG.take(nfrac, mode="clip")
    if ism[0].any():     # negate by flipping the sign bit (much faster than a masked negative)
        v.view(np.uint64)[...] ^= ism[0].astype(np.uint64) << np.uint64(63)
    return v, ok


def _parse_matrix_long(MT):
    """Numbers from a byte matrix of width > 15 (digit by digit)."""
    W, n = MT.shape
    D = MT - np.uint8(48)
    isd = D < 10
    if isd.all():     # plain unsigned integers: the most common case (indices, one-hot values)
        m = D[0].astype(np.float64)
        for j in range(1, W):
            m *= 10.0
            m += D[j]
        return m, np.ones(n, dtype=bool)
    ise = (MT | np.uint8(32)) == 101
    isdot = MT == 46
    ism = MT == 45
    issign = ism | (MT == 43)
    ok = (isd | ise | isdot | issign).all(0)
    if W > 1:
        ok &= ~(issign[1:] & ~ise[:-1]).any(0)          # a sign only first or right after e
    has_e = ise.any(0)
    if has_e.any():
        inexp = _or_accumulate(ise)
        md = isd & ~inexp
        ed = isd & inexp
        if W > 1:
            ok &= ~(ise[1:] & inexp[:-1]).any(0)          # at most one e
        ok &= ~(isdot & inexp).any(0)                     # no dot in the exponent
        ok &= ed.any(0) | ~has_e                          # e needs exponent digits
        e = np.zeros(n, dtype=np.int64)
        for j in range(W):
            dj = ed[j]
            if dj.any():
                e = np.where(dj, np.minimum(e * 10 + D[j], 100000), e)
        eneg = (ism[1:] & ise[:-1]).any(0) if W > 1 else np.zeros(n, dtype=bool)
        e = np.where(eneg, -e, e)
    else:
        md = isd
        e = None
    ok &= md.any(0)                                       # at least one mantissa digit
    m = np.zeros(n, dtype=np.float64)
    for j in range(W):
        dj = md[j]
        if dj.all():
            m *= 10.0
            m += D[j]
        elif dj.any():
            m = np.where(dj, m * 10.0 + D[j], m)
    if isdot.any():
        after = _or_accumulate(isdot)
        if W > 1:
            ok &= ~(isdot[1:] & after[:-1]).any(0)        # at most one dot
        frac = (md & after).sum(0)
    else:
        frac = np.zeros(n, dtype=np.int64)
    k = -frac if e is None else e - frac
    v = _scale(m, k) if (k != 0).any() else m
    neg = ism[0]
    if neg.any():
        np.negative(v, out=v, where=neg)
    return v, ok


def _columns(buf, starts, w):
    """The (w, len(starts)) byte matrix whose column i is buf[starts[i]:starts[i] + w]."""
    MT = np.empty((w, len(starts)), dtype=np.uint8)
    idx = starts.astype(np.int32 if len(buf) < 2 ** 31 - 64 else np.int64)
    for j in range(w):
        np.take(buf, idx, out=MT[j])
        idx += 1
    return MT


def _slow(buf, s, e, pattern, conv):
    tok = bytes(buf[s:e])
    if pattern.match(tok):
        try:
            return conv(tok), True
        except (ValueError, OverflowError):
            pass
    return 0.0, False


def _parse_spans(buf, starts, ends, matrix_fn, pattern, conv):
    n = len(starts)
    vals = np.zeros(n, dtype=np.float64)
    ok = np.zeros(n, dtype=bool)
    if n == 0:
        return vals, ok
    L = ends - starts
    Lc = np.minimum(L, _MAX_WIDTH + 1).astype(np.uint8)
    counts = np.bincount(Lc, minlength=_MAX_WIDTH + 2)
    widths = np.flatnonzero(counts)
    if len(widths) == 1:
        groups = [(int(widths[0]), None)]
    else:
        order = np.argsort(Lc, kind="stable")
        bounds = np.concatenate(([0], np.cumsum(counts[widths])))
        groups = [(int(w), order[bounds[i]:bounds[i + 1]]) for i, w in enumerate(widths)]
    for w, idx in groups:
        s = starts if idx is None else starts[idx]
        if w == 0:
            continue    # empty token: not a number (ok stays False)
        if w > _MAX_WIDTH:
            e = ends if idx is None else ends[idx]
            res = [_slow(buf, a, b, pattern, conv) for a, b in zip(s.tolist(), e.tolist())]
            v = np.array([r[0] for r in res], dtype=np.float64)
            o = np.array([r[1] for r in res], dtype=bool)
        else:
            vs, os_ = [], []
            for b in range(0, len(s), _BATCH):
                v_, o_ = matrix_fn(_columns(buf, s[b:b + _BATCH], w))
                vs.append(v_)
                os_.append(o_)
            v = np.concatenate(vs) if len(vs) > 1 else vs[0]
            o = np.concatenate(os_) if len(os_) > 1 else os_[0]
        if idx is None:
            vals, ok = v, o
        else:
            vals[idx] = v
            ok[idx] = o
    return vals, ok


def parse_numbers(buf, starts, ends):
    """Numbers in the byte spans ``[starts, ends)`` of ``buf`` (uint8). Returns (float64 values,
    ok mask); a token that is not a number per the grammar has ok False."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _parse_spans(buf, starts, ends, _parse_matrix, NUMBER_RE, float)


def _parse_index_matrix(MT):
    W, n = MT.shape
    D = MT - np.uint8(48)
    ok = (D < 10).all(0)
    m = np.zeros(n, dtype=np.float64)
    for j in range(W):
        m *= 10.0
        m += D[j]
    return m, ok


def parse_indices(buf, starts, ends):
    """Non-negative integers (digits only) in the spans. Returns (int64 values, ok mask)."""
    n = len(starts)
    L = ends - starts
    W = int(L.max()) if n else 0
    if W > 18:      # too long for int64: the general path (which rejects them)
        v, ok = _parse_spans(buf, starts, ends, _parse_index_matrix, INDEX_RE, int)
        ok &= v < 2.0 ** 62
        return np.where(ok, v, 0).astype(np.int64), ok
    # right-aligned: digit j counted from the end weighs 10**j; bytes before a token's start
    # are zeroed (narrow integer types while the sum cannot overflow)
    ok = L > 0
    dt = np.int32 if W <= 9 else np.int64
    v = np.zeros(n, dtype=dt)
    for j in range(W):
        d = buf.take(ends - (j + 1), mode="clip") - np.uint8(48)
        if j:
            d *= L > j
        ok &= d < 10
        v += d * dt(10 ** j)
    v *= ok
    return v.astype(np.int64, copy=False), ok
