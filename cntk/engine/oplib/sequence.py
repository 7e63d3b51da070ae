"""Ops over the sequence axis: delays (past/future value), first/last, sequence reductions and
softmax, broadcast_as, is_first/is_last, sequence.slice, where/gather/scatter, unpack and
to_sequence(_like)."""

import math

import numpy as np
import torch

from ...axis import Axis
from ..layout import SeqLayout
from ..graph import FREE
from ..registry import Type, register, common_dtype, fail, same_type, BATCH


def _need_sequence(node, v):
    if v._dynamic_axes is not None and v.sequence_axis is None:
        fail(node, "the operand %s has no sequence axis", v._describe())


def expand_init(init, ndyn_init, B, shape, dtype):
    """The initial state as a (B, *shape) tensor (a scalar, a static tensor or per-sequence data)."""
    init = init.to(dtype)
    if ndyn_init and init.shape[1:] == tuple(shape):
        return init
    return init.expand((B,) + tuple(shape))


# -- PastValue / FutureValue -----------------------------------------------------

def infer_delay(node):
    x, init = node.inputs
    _need_sequence(node, x)
    if init._dynamic_axes and init.sequence_axis is not None:
        fail(node, "the initial state %s must not have a sequence axis", init._describe())
    S, I = x._shape, init._shape
    if S is None and I is not None and all(d >= 0 for d in I) and (init._dynamic_axes or int(np.prod(I)) > 1):
        # as CNTK: until the operand's shape is known, a per-sequence or non-scalar initial state
        # gives it (this sizes a loop whose steps are all elementwise, e.g. an UnfoldFrom generator)
        return [Type(tuple(I), common_dtype(node, node.inputs), x._dynamic_axes)]
    if S is not None and I is not None and init._dynamic_axes is not None:
        # a constant state broadcasts to the item shape; a per-sequence one has its rank
        fits = (len(I) == len(S) if init._dynamic_axes else len(I) <= len(S)) and \
            all(i == 1 or i < 0 or s < 0 or i == s for i, s in zip(reversed(I), reversed(S)))
        if not fits:
            fail(node, "the initial state %s does not fit the item shape %s of %s", init._describe(), tuple(S),
                 x._describe())
    return [Type(x._shape, common_dtype(node, node.inputs), x._dynamic_axes)]


def build_delay(ctx):
    """The batched form: shift the whole (B, T, ...) tensor along time in one op."""
    k = ctx.attrs["offset"]
    past = ctx.node.op == "PastValue"
    shape = tuple(ctx.out_shapes[0])
    seq = ctx.out_axes[0][1]
    nd_init = ctx.in_ndyn[1]
    key = ctx.key

    def fn(ins, rt):
        x, init = ins
        B, T = x.shape[0], x.shape[1]
        init_b = expand_init(init, nd_init, B, shape, x.dtype)
        lay = rt.layouts[seq]
        if k >= T:
            # an empty slice of x keeps the (zero) gradient path to x
            out = torch.cat([init_b.unsqueeze(1).expand((B, T) + shape), x[:, :0]], 1)
        elif past:
            out = torch.cat([init_b.unsqueeze(1).expand((B, k) + shape), x[:, :T - k]], 1)
        else:
            out = torch.cat([x[:, k:], init_b.unsqueeze(1).expand((B, k) + shape)], 1)
            valid = (torch.arange(T, device=x.device)[None, :] + k) < lay.lengths[:, None]
            out = torch.where(valid.reshape(valid.shape + (1,) * len(shape)), out, init_b.unsqueeze(1))
        if past:
            out = mask_padding(_continue_sequences(out, x, init_b, k, lay, rt, key), init_b, lay)
        return out
    return fn


def _continue_sequences(out, x, init_b, k, lay, rt, key):
    """Truncated BPTT: a sequence flagged as continuing takes its first k delayed values from the
    end of the same slot in the previous call; afterwards remember this call's last k values."""
    carry = _carry_for(rt, key, lay, out.shape[0])
    if carry is not None:
        n = min(k, out.shape[1])
        head = torch.where(lay.continues.reshape((-1,) + (1,) * (out.dim() - 1)), carry[:, :n], out[:, :n])
        out = torch.cat([head, out[:, n:]], 1)
    if rt.keep_carry:
        remember_carry(rt, key, x, init_b, k, lay, carry)
    return out


def _carry_for(rt, key, lay, B):
    """The previous call's last k inputs of a delay, if some sequence continues in this call."""
    if lay.starts is None:
        return None
    carry = rt.state.get(key)
    return carry if carry is not None and carry.shape[0] == B else None


def remember_carry(rt, key, x, init_b, k, lay, carry):
    """Store the last k elements of each sequence's whole history (previous calls included, so a
    continuation shorter than k still sees older elements) for the next call."""
    B = x.shape[0]
    prev = init_b.detach().unsqueeze(1).expand((B, k) + tuple(init_b.shape[1:]))
    if carry is not None:
        prev = torch.where(lay.continues.reshape((-1,) + (1,) * (prev.dim() - 1)), carry, prev)
    hist = torch.cat([prev, x.detach()], 1)
    idx = lay.lengths[:, None] + torch.arange(k, device=x.device)[None, :]
    rt.new_state[key] = torch.gather(hist, 1, idx.reshape(idx.shape + (1,) * (x.dim() - 2)).expand((B, k) + x.shape[2:]))


def mask_padding(out, init_b, lay):
    """Padding cells of a past-shifted value read the last valid elements; give them the initial
    state instead so no gradient flows from padding back into real elements."""
    return lay.fill_padding(out, init_b.unsqueeze(1))


register("PastValue", infer_delay, build_delay, is_delay=True)
register("FutureValue", infer_delay, build_delay, is_delay=True)


# -- ops that drop the sequence axis ----------------------------------------------

def _drop_seq(node):
    (x,) = node.inputs[:1]
    if node.attributes.get("if_sequence") and x._dynamic_axes is not None and x.sequence_axis is None:
        return same_type(node)   # (First/Last) an operand without a sequence axis passes through
    _need_sequence(node, x)
    axes = None if x._dynamic_axes is None else tuple(a for a in x._dynamic_axes if a == BATCH)
    return [Type(x._shape, common_dtype(node, node.inputs[:1]), axes)]


def _passes_through(ctx):
    """First/Last with the 'if_sequence' attribute on an operand that is not a sequence (an
    initial state that RecurrenceFrom takes either as it is or from a sequence's end)."""
    return ctx.attrs.get("if_sequence") and len(ctx.in_axes[0] or ()) < 2


def build_first(ctx):
    if _passes_through(ctx):
        return lambda ins, rt: ins[0]
    return lambda ins, rt: ins[0][:, 0]


def build_last(ctx):
    if _passes_through(ctx):
        return lambda ins, rt: ins[0]
    seq = ctx.in_axes[0][1]

    def fn(ins, rt):
        x = ins[0]
        lay = rt.layouts[seq]
        return x[torch.arange(x.shape[0], device=x.device), lay.lengths - 1]
    return fn


def build_seq_reduce(kind):
    def build(ctx):
        seq = ctx.in_axes[0][1]
        if kind == "Sum":
            return lambda ins, rt: rt.layouts[seq].fill_padding(ins[0]).sum(1)
        return lambda ins, rt: rt.layouts[seq].fill_padding(ins[0], -math.inf).amax(1)
    return build


register("First", _drop_seq, build_first)
register("Last", _drop_seq, build_last)
register("SequenceReduceSum", _drop_seq, build_seq_reduce("Sum"))
register("SequenceReduceMax", _drop_seq, build_seq_reduce("Max"))


# -- broadcast_as, is_first, is_last ------------------------------------------------

def infer_broadcast_as(node):
    x, like = node.inputs
    if x._dynamic_axes and x.sequence_axis is not None:
        fail(node, "the operand %s already has a sequence axis", x._describe())
    _need_sequence(node, like)
    return [Type(x._shape, common_dtype(node, [x]), like._dynamic_axes)]


def build_broadcast_as(ctx):
    nd = ctx.in_ndyn[0]
    seq = ctx.out_axes[0][1]

    def fn(ins, rt):
        x = ins[0]
        lay = rt.layouts[seq]
        if nd == 0:
            x = x.expand((lay.B,) + tuple(x.shape))
        if ctx.step:
            # one step of a recurrent loop (e.g. attention over an encoder inside a decoder):
            # the value at every step is the operand itself
            return x
        # the item shape comes from the value: a FreeDimension is only sized at run time
        return x.unsqueeze(1).expand((x.shape[0], lay.T) + tuple(x.shape[1:]))
    return fn


register("BroadcastAs", infer_broadcast_as, build_broadcast_as)


def infer_is_first(node):
    (x,) = node.inputs
    _need_sequence(node, x)
    return [Type((), x._dtype, x._dynamic_axes)]


def build_is_first_last(first):
    def build(ctx):
        seq = ctx.in_axes[0][1]

        def fn(ins, rt):
            lay = rt.layouts[seq]
            t = torch.arange(lay.T, device=lay.device)[None, :]
            hit = (t == 0) if first else (t == lay.lengths[:, None] - 1)
            return hit.expand(lay.B, lay.T).to(ins[0].dtype)
        return fn
    return build


register("IsFirst", infer_is_first, build_is_first_last(True), differentiable=False)
register("IsLast", infer_is_first, build_is_first_last(False), differentiable=False)


# -- sequence.slice -------------------------------------------------------------------

def keeps_one_element(b, e):
    """Whether sequence.slice(b, e) keeps exactly one element of every sequence (then the
    sequence axis is dropped, as in CNTK)."""
    return (b >= 0 and e > 0 and e - b == 1) or (b == -1 and e == 0) or (b < 0 and e < 0 and e - b == 1)


def infer_seq_slice(node):
    (x,) = node.inputs
    _need_sequence(node, x)
    b, e = node.attributes["begin_index"], node.attributes["end_index"]
    if (b >= 0 and 0 < e <= b) or (b < 0 and e < 0 and e <= b):
        fail(node, "the slice [%d, %d) is empty for every sequence; sequences must be at least one element long", b, e)
    if x._dynamic_axes is None:
        return [Type(x._shape, x._dtype, None)]
    if keeps_one_element(b, e):
        return [Type(x._shape, x._dtype, (BATCH,))]
    return [Type(x._shape, x._dtype, (BATCH, Axis(node.attributes["new_axis"])))]


def _slice_bounds(lay, b, e):
    """Per sequence, the [begin, end) that sequence.slice(b, e) keeps, clipped to its length."""
    L = lay.lengths
    bb = torch.minimum((L + b if b < 0 else torch.full_like(L, b)).clamp(min=0), L)
    ee = (L + e if e <= 0 else torch.minimum(torch.full_like(L, e), L)).clamp(min=0)
    return bb, ee


def build_seq_slice(ctx):
    seq = ctx.in_axes[0][1]
    b, e = ctx.attrs["begin_index"], ctx.attrs["end_index"]
    single = keeps_one_element(b, e)
    new_axis = None if single else Axis(ctx.attrs["new_axis"])
    where = ctx.node.describe()

    def fn(ins, rt):
        x = ins[0]
        lay = rt.layouts[seq]
        bb, ee = _slice_bounds(lay, b, e)
        n = (ee - bb).clamp(min=0)
        if bool((n <= 0).any()):
            raise RuntimeError("%s: the slice [%d, %d) leaves an empty sequence (lengths %s); "
                             "Sequences must be at least one frame long" % (where, b, e, lay.lengths_list))
        B = x.shape[0]
        if single:
            return x[torch.arange(B, device=x.device), bb]
        Tn = int(n.max())
        idx = (bb[:, None] + torch.arange(Tn, device=x.device)[None, :]).clamp(max=x.shape[1] - 1)
        out = torch.gather(x, 1, idx.reshape(idx.shape + (1,) * (x.dim() - 2)).expand((B, Tn) + x.shape[2:]))
        rt.layouts[new_axis] = SeqLayout(n.tolist(), x.device)
        return out
    return fn


register("SequenceSlice", infer_seq_slice, build_seq_slice)


# -- new sequence axes: where, gather, scatter -----------------------------------------------

WHERE_AXIS_PREFIX = "whereNodeDynamicAxis_conditionVar_"


def new_sequence_axis(node, cond, typeinfo):
    """The sequence axis where/gather put their result on. Without ``typeinfo`` it is named after
    the condition variable, so where/gather/scatter on one condition share it (as in CNTK).
    ``typeinfo`` = (scale, offset) declares lengths scale * (condition length) + offset: the
    condition's own axis for (1, 0), no sequence axis at all for (0, 1), else an axis derived
    from the condition's. Returns None when the result has no sequence axis."""
    if typeinfo is None:
        return Axis(WHERE_AXIS_PREFIX + cond.uid)
    scale, offset = typeinfo
    src = cond.sequence_axis
    if scale == 0 and offset == 1:
        return None
    if scale == 1 and offset == 0:
        return src
    if scale == 0 and offset < 1:
        fail(node, "new_sequence_axis_typeinfo %s gives sequences of length %d; sequences must be at least one "
             "element long", tuple(typeinfo), offset)
    if scale == 0:
        return Axis("%s_fixedSliceOf_%d" % (src.name, offset))
    suffix = "" if offset == 0 else ("_plus_%d" % offset if offset > 0 else "_minus_%d" % -offset)
    return Axis("%s_times_%d%s" % (src.name, scale, suffix))


def register_layout(rt, axis, lengths, device, where):
    """Record the layout of a sequence axis an op creates. Ops that derive the same axis (e.g.
    where and gather on one condition) must agree on its lengths."""
    lay = rt.layouts.get(axis)
    if lay is None:
        lay = rt.layouts[axis] = SeqLayout(lengths, device)
    elif lay.lengths_list != list(lengths):
        raise RuntimeError("%s: the sequences on axis '%s' have lengths %s here but %s elsewhere in this "
                           "minibatch" % (where, axis.name, list(lengths), lay.lengths_list))
    return lay


def where_index(c, lay, where, typeinfo=None):
    """For a condition (B, T[, 1]): the source step of every element of the result, (B, Tn) long,
    and the result's lengths. Condition values are repeat counts; a fractional count rounds up
    and the excess is taken from the following counts. The lengths must be those a (scale,
    offset) ``typeinfo`` declares, when one is given."""
    B, T = c.shape[0], c.shape[1]
    v = lay.fill_padding(c.detach().reshape(B, T).double())
    cum = torch.ceil(torch.cumsum(v, 1) - 1e-6).clamp(min=0)
    counts = torch.diff(cum, dim=1, prepend=cum.new_zeros(B, 1)).clamp(min=0)
    ends = torch.cumsum(counts, 1)
    lengths = [int(n) for n in ends[:, -1].tolist()]
    for b, n in enumerate(lengths):
        if n == 0:
            raise RuntimeError("%s: sequence %d has no non-zero condition element; Sequences must be at least one "
                               "frame long" % (where, b))
    _check_typeinfo_lengths(typeinfo, lengths, lay.lengths_list, where)
    Tn = max(lengths)
    j = torch.arange(Tn, device=c.device, dtype=ends.dtype).expand(B, Tn).contiguous()
    idx = torch.searchsorted(ends.contiguous(), j, right=True).clamp(max=T - 1)
    return idx, lengths


def _check_condition(node, c, role="condition"):
    _need_sequence(node, c)
    if c._shape is not None and tuple(c._shape) not in ((), (1,)):
        fail(node, "the %s must have shape () or (1,); got %s", role, c._shape)


def _check_typeinfo_lengths(typeinfo, lengths, cond_lengths, where):
    """The lengths a (scale, offset) typeinfo declared must be the ones the condition gives."""
    if typeinfo is None:
        return
    scale, offset = typeinfo
    want = [scale * n + offset for n in cond_lengths]
    if list(lengths) != want:
        raise RuntimeError("%s: the condition selects %s elements per sequence, but new_sequence_axis_typeinfo %s "
                           "declares %s" % (where, list(lengths), tuple(typeinfo), want))


def _typeinfo(node):
    t = node.attributes.get("new_sequence_axis_typeinfo")
    return None if t is None else (int(t[0]), int(t[1]))


def infer_where(node):
    (c,) = node.inputs
    _check_condition(node, c)
    axes = None if c._dynamic_axes is None else (BATCH, new_sequence_axis(node, c, None))
    return [Type((), c._dtype, axes)]


def build_where(ctx):
    seq = ctx.in_axes[0][1]
    new_axis = ctx.out_axes[0][1]
    where = ctx.node.describe()

    def fn(ins, rt):
        c = ins[0]
        idx, lengths = where_index(c, rt.layouts[seq], where)
        register_layout(rt, new_axis, lengths, c.device, where)
        return idx.to(c.dtype)
    return fn


register("Where", infer_where, build_where, differentiable=False)


def infer_gather(node):
    x, c = node.inputs
    _need_sequence(node, x)
    _check_condition(node, c)
    if x.sequence_axis is not None and c.sequence_axis is not None and x.sequence_axis != c.sequence_axis:
        fail(node, "the operand and the condition are on different sequence axes (%s and %s)",
             x.sequence_axis.name, c.sequence_axis.name)
    if x._dynamic_axes is None or c._dynamic_axes is None:
        axes = None
    else:
        new = new_sequence_axis(node, c, _typeinfo(node))
        axes = (BATCH,) if new is None else (BATCH, new)
    return [Type(x._shape, common_dtype(node, [x]), axes, x._is_sparse)]


def build_gather(ctx):
    seq = ctx.in_axes[1][1]
    out_axes = ctx.out_axes[0]
    new_axis = out_axes[1] if len(out_axes) > 1 else None
    typeinfo = _typeinfo(ctx.node)
    where = ctx.node.describe()

    def fn(ins, rt):
        x, c = ins
        lay = rt.layouts[seq]
        idx, lengths = where_index(c, lay, where, typeinfo)
        B = x.shape[0]
        if new_axis is None:   # exactly one element per sequence: no sequence axis
            return x[torch.arange(B, device=x.device), idx[:, 0]]
        out = torch.gather(x, 1, idx.reshape(idx.shape + (1,) * (x.dim() - 2)).expand(idx.shape + x.shape[2:]))
        # padding cells point at real elements: cut their (arbitrary) gradient off
        return register_layout(rt, new_axis, lengths, x.device, where).fill_padding(out)
    return fn


register("SequenceGather", infer_gather, build_gather)


def infer_scatter(node):
    x, c = node.inputs
    _check_condition(node, c)
    if x._dynamic_axes is not None and BATCH not in x._dynamic_axes:
        fail(node, "the operand %s must have dynamic axes (a sequence, or one value per sequence)", x._describe())
    return [Type(x._shape, common_dtype(node, [x]), c._dynamic_axes, x._is_sparse)]


def build_scatter(ctx):
    seq = ctx.in_axes[1][1]
    x_seq = ctx.in_axes[0][1] if ctx.in_ndyn[0] == 2 else None
    typeinfo = _typeinfo(ctx.node)
    where = ctx.node.describe()

    def fn(ins, rt):
        x, c = ins
        lay = rt.layouts[seq]
        idx, lengths = where_index(c, lay, where, typeinfo)
        B, T = c.shape[0], c.shape[1]
        if x_seq is not None:
            xl = rt.layouts[x_seq]
            if xl.lengths_list != lengths:
                raise RuntimeError("%s: the operand's sequences have lengths %s, but the condition selects %s "
                                   "elements" % (where, xl.lengths_list, lengths))
            src = x
            # padding elements go to an extra step that is cut off afterwards
            tgt = idx if xl.uniform else torch.where(xl.mask, idx, T)
        else:
            if any(n != 1 for n in lengths):
                raise RuntimeError("%s: the operand has one element per sequence, but the condition selects %s "
                                   "elements" % (where, lengths))
            src = x.unsqueeze(1)
            tgt = idx[:, :1]
        out = x.new_zeros((B, T + 1) + tuple(src.shape[2:]))
        out = out.scatter_add(1, tgt.reshape(tgt.shape + (1,) * (src.dim() - 2)).expand(src.shape), src)
        return out[:, :T]
    return fn


register("SequenceScatter", infer_scatter, build_scatter)


# -- softmax over the sequence axis ---------------------------------------------------------

def infer_seq_softmax(node):
    (x,) = node.inputs
    _need_sequence(node, x)
    return [Type(x._shape, common_dtype(node, [x]), x._dynamic_axes)]


def build_seq_softmax(ctx):
    seq = ctx.in_axes[0][1]
    # padding cells get -inf: no probability mass, and no gradient from them
    return lambda ins, rt: torch.softmax(rt.layouts[seq].fill_padding(ins[0], -math.inf), 1)


register("SequenceSoftmax", infer_seq_softmax, build_seq_softmax)


# -- unpack, to_sequence, to_sequence_like -----------------------------------------------------

def infer_unpack(node):
    (x,) = node.inputs
    if x._dynamic_axes is not None and x.sequence_axis is None:
        fail(node, "the operand %s must be a sequence (have a sequence axis)", x._describe())
    axes = None if x._dynamic_axes is None else (BATCH,)
    shape = None if x._shape is None else (FREE,) + tuple(x._shape)
    dtype = common_dtype(node, [x])
    return [Type(shape, dtype, axes), Type((FREE,), dtype, axes)]


def build_unpack(ctx):
    seq = ctx.in_axes[0][1]
    pad = float(ctx.attrs["padding_value"])

    def fn(ins, rt):
        x = ins[0]
        lay = rt.layouts[seq]
        return lay.fill_padding(x, pad), lay.mask.to(x.dtype)
    return fn


register("UnpackSequence", infer_unpack, build_unpack, num_outputs=2)


def _check_unpacked(node, x):
    """to_sequence(_like) turn static axis 0 of a batch-only value into a sequence axis."""
    if x._dynamic_axes is not None and (not x._dynamic_axes or x.sequence_axis is not None):
        fail(node, "the operand %s must have the batch axis and no sequence axis", x._describe())
    if x._shape is not None and len(x._shape) < 2:
        fail(node, "the operand %s must have rank >= 2: its axis 0 becomes the sequence axis", x._describe())


def infer_to_sequence(node):
    x = node.inputs[0]
    _check_unpacked(node, x)
    if len(node.inputs) > 1:
        n = node.inputs[1]
        if n._shape is not None and int(np.prod(n._shape)) != 1:
            fail(node, "sequence_lengths %s must hold one number per sample", n._describe())
        if n._dynamic_axes is not None and x._dynamic_axes is not None and n._dynamic_axes != x._dynamic_axes:
            fail(node, "sequence_lengths %s must have the dynamic axes of the operand (one length per sample)",
                 n._describe())
    shape = None if x._shape is None else tuple(x._shape[1:])
    axes = None if x._dynamic_axes is None else (BATCH, Axis(node.attributes["sequence_axis_name_prefix"] + x.uid))
    return [Type(shape, common_dtype(node, [x]), axes, x._is_sparse)]


def _cut_to_layout(x, lay):
    """(B, L, ...) data as the padded value of ``lay`` (L >= T); padding cells get no gradient."""
    return lay.fill_padding(x[:, :lay.T])


def build_to_sequence(ctx):
    axis = ctx.out_axes[0][1]
    has_lengths = len(ctx.in_shapes) > 1
    where = ctx.node.describe()

    def fn(ins, rt):
        x = ins[0]
        B, L = x.shape[0], x.shape[1]
        if has_lengths:
            raw = ins[1].detach().reshape(B, -1)[:, 0]
            lengths = [int(n) for n in torch.round(raw).tolist()]
            bad = [n for n in lengths if not 1 <= n <= L]
            if bad:
                raise ValueError("%s: sequence_lengths %s must be between 1 and the operand's axis-0 size %d"
                                 % (where, lengths, L))
        else:
            if L < 1:
                raise ValueError("%s: the operand's axis 0 is empty; sequences must be at least one element long"
                                 % where)
            lengths = [L] * B
        return _cut_to_layout(x, register_layout(rt, axis, lengths, x.device, where))
    return fn


register("ToSequence", infer_to_sequence, build_to_sequence)


def infer_to_sequence_like(node):
    x, like = node.inputs
    _check_unpacked(node, x)
    if like._dynamic_axes is not None and like.sequence_axis is None:
        fail(node, "dynamic_axes_like %s must be a sequence (have a sequence axis)", like._describe())
    shape = None if x._shape is None else tuple(x._shape[1:])
    return [Type(shape, common_dtype(node, [x]), like._dynamic_axes, x._is_sparse)]


def build_to_sequence_like(ctx):
    seq = ctx.in_axes[1][1]
    where = ctx.node.describe()

    def fn(ins, rt):
        x = ins[0]
        lay = rt.layouts[seq]
        if x.shape[0] != lay.B or x.shape[1] != lay.T:
            raise ValueError("%s: the operand holds %d samples with %d elements along axis 0; the sequences of "
                             "dynamic_axes_like are %d with at most %d elements (lengths %s)"
                             % (where, x.shape[0], x.shape[1], lay.B, lay.T, lay.lengths_list))
        return _cut_to_layout(x, lay)
    return fn


register("ToSequenceLike", infer_to_sequence_like, build_to_sequence_like)
