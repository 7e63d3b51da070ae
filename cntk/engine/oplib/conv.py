"""The convolution family: Convolution, ConvolutionTranspose, Pooling, Unpooling, ROIPooling.

Values are channel-first per sample, ``(C, *spatial)``, behind their leading dynamic dims.
The geometry is CNTK's: per-axis argument lists (``per_axis``), output sizes and where each
kernel window sits (``axis_geometry``). The computation goes to torch's native convolution and
pooling kernels; an explicit ``F.pad`` is added only on axes where CNTK's padding cannot be
expressed by torch's symmetric ``padding`` argument. A sequential convolution (``sequential=True``)
treats the sequence axis as its first spatial axis, sized per sequence at run time.
"""

import math

import torch
import torch.nn.functional as F

from ...axis import Axis
from ..registry import Type, register, unify_axes, common_dtype, fail, OpError, BATCH, int_attr, DeviceConstant
from .elementwise import padding_guard
from .sequence import register_layout

MAX_POOLING = 0      # CNTK's PoolingType_Max
AVG_POOLING = 1      # CNTK's PoolingType_Average
MAX_UNPOOLING = 0    # unpooling reuses the max pooling type

_CONV = (None, F.conv1d, F.conv2d, F.conv3d)
_CONV_T = (None, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)
_MAX_POOL = (None, F.max_pool1d, F.max_pool2d, F.max_pool3d)
_AVG_POOL = (None, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)


class ConvolutionError(OpError, RuntimeError):
    """A configuration CNTK 2.7 rejects with a RuntimeError (padding over the channel axis,
    an output_shape or unpooling operand that does not match). Being an OpError (ValueError)
    too keeps it catchable like the other op errors."""


# -- attribute checking and CNTK's per-axis lists -------------------------------------------

def _ints(node, name, values, minimum):
    if not isinstance(values, (list, tuple)) or not values or \
            not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        fail(node, "%s must be a non-empty list of integers; got %r", name, values)
    bad = [v for v in values if v < minimum]
    if bad:
        fail(node, "%s must be >= %d; got %s", name, minimum, tuple(values))
    return list(values)


def _bools(node, name, values):
    if not isinstance(values, (list, tuple)) or not values or not all(isinstance(v, bool) for v in values):
        fail(node, "%s must be a non-empty list of booleans; got %r", name, values)
    return list(values)


def per_axis(node, name, values, rank, filter_rank, default):
    """CNTK's rule for a per-axis argument, in Python axis order: a list shorter than the
    kernel's rank repeats its first value for the missing leading axes; leading axes beyond the
    kernel's rank (pooling windows shorter than the operand) get ``default``."""
    if len(values) > rank:
        fail(node, "%s %s has more entries than the operand has axes (%d)", name, tuple(values), rank)
    vals = list(values)
    if len(vals) < filter_rank:
        vals = [vals[0]] * (filter_rank - len(vals)) + vals
    return [default] * (rank - len(vals)) + vals


def _trunc_half(v):
    # C++ integer division truncates toward zero (v may be negative)
    return -((-v) // 2) if v < 0 else v // 2


def axis_geometry(node, axis, n, k, s, d, auto, lo, hi, ceil_out=False):
    """(output size, cells padded before, cells padded after) of one axis of size ``n`` for a
    kernel of size ``k``, stride ``s`` and dilation ``d``.

    With auto padding the output size is ceil(n/s) and the first kernel centre sits at
    extra//2 (extra: the cells left over by the centres); a kernel spans [c-(k-1)//2, c+k//2]
    (in dilated cells). Without it, explicit pads ``lo``/``hi`` are added and the output size is
    floor (or, with ``ceil_out``, ceil) of (n+lo+hi-ke)/s + 1. The returned paddings (negative:
    cropped) make the windows cover exactly the padded input.
    """
    ke = (k - 1) * d + 1
    if auto:
        if k > n:
            fail(node, "the kernel (%d) is larger than the size %d of axis %d (CNTK requires kernel dim <= "
                 "input dim)", k, n, axis)
        out = (-(-(n - 1) // s) if ceil_out else (n - 1) // s) + 1
        extra = n - ((out - 1) * s + 1)
        lo = (ke - 1) // 2 - _trunc_half(extra)
    else:
        if lo >= ke or hi >= ke:
            fail(node, "the pads (%d, %d) on axis %d are not smaller than the kernel (%d): a window would lie entirely "
                 "in the padding", lo, hi, axis, ke)
        dim = n + lo + hi
        if ke > dim:
            fail(node, "the kernel (%d%s) is larger than the padded operand (%d) on axis %d (CNTK requires kernel dim "
                 "<= input dim)", ke, " dilated" if d > 1 else "", dim, axis)
        q = dim - ke
        out = (-(-q // s) if ceil_out else q // s) + 1
        if (lo > 0 or hi > 0) and (out - 1) * s + k < dim - hi:
            fail(node, "Convolution requires that kernel fills the entire space if auto-padding is disabled "
                 "(axis %d: size %d, pads (%d, %d), kernel %d, stride %d)", axis, n, lo, hi, k, s)
    return out, lo, (out - 1) * s + ke - n - lo


def split_padding(sizes, kernels, strides, dilations, pads, outs, limit=None):
    """How to apply CNTK's per-axis paddings with torch: (torch's symmetric ``padding`` per axis,
    the ``F.pad`` list for what remains, or None when nothing remains).

    torch pads ``lo`` on both sides; that is exact when the windows it yields are CNTK's (same
    start, same count). When CNTK pads more after than before, ``F.pad`` adds the difference at
    the end; otherwise all of CNTK's padding (negative: cropping) goes to ``F.pad``.
    ``limit(k, d)``: the largest padding torch accepts (pooling).
    """
    torch_pad, extra = [], []
    for n, k, s, d, (lo, hi), out in zip(sizes, kernels, strides, dilations, pads, outs):
        ke = (k - 1) * d + 1
        if lo >= 0 and (limit is None or lo <= limit(k, d)) and \
                ((n + 2 * lo - ke) // s + 1 == out or hi > lo):
            torch_pad.append(lo)
            extra.append((0, 0) if (n + 2 * lo - ke) // s + 1 == out else (0, hi - lo))
        else:
            torch_pad.append(0)
            extra.append((lo, hi))
    flat = [v for lo_hi in reversed(extra) for v in lo_hi]   # F.pad lists the last axis first
    return torch_pad, (flat if any(flat) else None)


def _window_counts(size, k, s, lo, out):
    """How many cells of each window along one axis lie inside the operand."""
    return [max(0, min(j * s - lo + k, size) - max(j * s - lo, 0)) for j in range(out)]


def _as_batch(x, nd):
    """``x`` with its ``nd`` leading dynamic dims flattened into one batch dim."""
    lead = x.shape[:nd]
    if nd == 1:   # already (B, C, ...): no view, no extra autograd node
        return x, lead
    return x.reshape((math.prod(lead),) + x.shape[nd:]), lead


def _channel_check(node, channels, kc, maps, stride, auto):
    """Outputs per map along the channel axis, and CNTK's error for auto padding that would
    pad it. CNTK reports "padding over channel axis" when its lower pad of the channel axis is
    positive and the channel stride is below the channel count; any other channel geometry
    that slides the kernel over channels is refused as well (CNTK computes it; we never do)."""
    if not auto or channels == 1:
        return 1, None
    per_map = (channels - 1) // stride + 1
    out = per_map * maps
    lo = (kc - 1) // 2 - _trunc_half(channels - ((out - 1) * stride + 1))
    if lo > 0 and stride < channels:
        return per_map, ("%s Convolution operation: detected padding over channel axis. This is not supported in "
                         "cuDnn. Please try setting autoPadding to false for channel axis." % node.describe())
    if per_map != 1:
        return per_map, ("%s: auto padding on the channel axis (%d channels, stride %d) would convolve over channels; "
                         "set auto_padding to False for the channel axis" % (node.describe(), channels, stride))
    return 1, None


def _lists(node, rank, virtual_channel):
    """The validated per-axis lists of a convolution over an operand of ``rank`` axes (counting
    the size-1 channel axis added for reduction_rank=0)."""
    a = node.attributes
    raw = {"strides": _ints(node, "strides", a["strides"], 1),
           "auto_padding": _bools(node, "auto_padding", a["auto_padding"]),
           "sharing": _bools(node, "sharing", a["sharing"]),
           "dilation": _ints(node, "dilation", a["dilation"], 1),
           "lower_pad": _ints(node, "lower_pad", a.get("lower_pad", [0]), 0),
           "upper_pad": _ints(node, "upper_pad", a.get("upper_pad", [0]), 0)}
    defaults = {"strides": 1, "auto_padding": False, "sharing": True, "dilation": 1, "lower_pad": 0, "upper_pad": 0}
    out = {}
    for name, vals in raw.items():
        if virtual_channel and len(vals) == rank - 1 and len(vals) > 1:
            # reduction_rank=0: a full list for the operand's axes leaves the added channel axis alone
            vals = [defaults[name]] + vals
        out[name] = per_axis(node, name, vals, rank, rank, defaults[name])
    if not all(out["sharing"]):
        fail(node, "sharing=%s: a separate kernel per position (sharing=False) is not supported", raw["sharing"])
    return out


def _check_common(node, W):
    a = node.attributes
    if W._dynamic_axes:
        fail(node, "the convolution map %s must not have dynamic axes", W._describe())
    rr = a.get("reduction_rank", 1)
    if rr not in (0, 1):
        fail(node, "reduction_rank must be 0 or 1; got %r", rr)
    groups = int_attr(node, "groups", 1, default=1)
    if rr == 0 and groups != 1:
        fail(node, "groups=%d needs reduction_rank=1", groups)
    return rr, groups


def _kernel_leaf(W, index=None):
    """The parameter behind a kernel computed from it by slices (a layer's kernel reversed for
    transpose_weight) that leave axis ``index`` whole; the kernel itself otherwise."""
    while W._owner is not None and W._owner.op == "Slice" and W._owner.attributes.get("_norm") is not None \
            and index not in [a for a, *_ in W._owner.attributes["_norm"]]:
        W = W._owner.inputs[0]
    return W


def _adopt_kernel_dtype(W, dtype):
    """A kernel sliced from a parameter without an explicit dtype: the parameter takes the dtype
    of the convolution (as it would as the kernel itself)."""
    leaf = _kernel_leaf(W)
    if leaf is not W and dtype is not None and hasattr(leaf, "_adopt_dtype"):
        leaf._adopt_dtype(dtype)


def _infer_leaf_dim(W, index, value):
    """Fill an inferred (-1) dim of a parameter declared with one (e.g. the input channels)."""
    W = _kernel_leaf(W, index)
    if W._owner is None and hasattr(W, "_set_inferred_shape"):
        s = list(W._shape)
        s[index] = value
        W._set_inferred_shape(tuple(s))


# -- Convolution ---------------------------------------------------------------------------------

def _sequential_axes(node, x, axes):
    """sequential=True: the operand must be a sequence (its sequence axis is convolved over)."""
    if x._dynamic_axes is not None and x.sequence_axis is None:
        fail(node, "sequential=True convolves over the sequence axis, but the operand %s has none", x._describe())
    return axes


def _time_geometry(node, k, s, d, auto, lo, hi):
    """The sequence axis of a sequential convolution: validated now, sized per sequence at run
    time (see ``_time_windows``)."""
    ke = (k - 1) * d + 1
    if not auto and (lo >= ke or hi >= ke):
        fail(node, "the pads (%d, %d) on the sequence axis are not smaller than the kernel (%d): a window would lie "
             "entirely in the padding", lo, hi, ke)
    return {"kernel": k, "stride": s, "dilation": d, "auto": auto, "lo": lo, "hi": hi}


def _keeps_length(t):
    """Whether every sequence keeps its length (then the output stays on the operand's axis)."""
    ke = (t["kernel"] - 1) * t["dilation"] + 1
    return t["stride"] == 1 and (t["auto"] or t["lo"] + t["hi"] == ke - 1)


def _time_windows(t, lengths):
    """Per sequence of ``lengths``: (outputs along time, cells padded before its first window).
    Each sequence gets the windows it would get alone (CNTK's output-length rule: ceil(L/s) with
    auto padding, floor((L+lo+hi-ke)/s)+1 without; with auto padding the first centre sits at
    extra//2 of the sequence's own extra cells); 0 outputs: shorter than the kernel."""
    k, s, d = t["kernel"], t["stride"], t["dilation"]
    ke = (k - 1) * d + 1
    out = []
    for n in lengths:
        if t["auto"]:
            out.append(((n - 1) // s + 1, (ke - 1) // 2 - ((n - 1) % s) // 2))
        else:
            q = n + t["lo"] + t["hi"] - ke
            out.append((q // s + 1 if q >= 0 else 0, t["lo"]))
    return out


def infer_convolution(node):
    """Output (O, *spatial_out): W is (O, C/groups, *k) (or without O: one output map) and the
    operand (C, *spatial); with reduction_rank=0 the operand has no channel axis and W is (O, *k).
    With sequential=True the sequence axis is convolved over as the first spatial axis: the
    operand (C, *spatial) on a sequence axis acts as (C, T, *spatial), W is (O, C/groups, kT, *k),
    and the result, (O, *spatial_out) per step, is on a new sequence axis unless every sequence
    keeps its length (stride 1 along time with auto padding, or pads summing to the kernel - 1)."""
    W, x = node.inputs
    dtype = common_dtype(node, node.inputs)
    _adopt_kernel_dtype(W, dtype)
    axes = unify_axes(node, node.inputs)
    rr, groups = _check_common(node, W)
    sequential = bool(node.attributes.get("sequential", False))
    if sequential:
        axes = _sequential_axes(node, x, axes)
    X, WS = x._shape, W._shape
    if WS is not None and not sequential and rr == 1 and len(WS) >= 3 and WS[0] > 0 and (
            (X is None and WS[1] < 0) or (X is not None and len(X) == len(WS) - 1 and any(d < 0 for d in X))):
        # A layer's map (O, C, *kernel) on an operand not bound yet, or whose sizes are not known
        # yet (the output of another such layer): the rank of the result is already known, so
        # what follows (bias, pooling) can wait for the sizes.
        return [Type((WS[0],) + (-1,) * (len(WS) - 2), dtype, axes)]
    if X is None or WS is None or any(d < 0 for d in X):
        return [Type(None, dtype, None if sequential else axes)]
    r = len(X)
    if rr == 1 and r == 0:
        fail(node, "the operand %s needs a channel axis (or use reduction_rank=0)", x._describe())
    if sequential:
        # the sequence axis becomes the first spatial axis: (C, T, *spatial) / (T, *spatial)
        X = (X[0], None) + tuple(X[1:]) if rr == 1 else (None,) + tuple(X)
        r += 1
    if len(WS) not in (r, r + 1):
        fail(node, "the convolution map %s must have rank %d or %d for an operand of shape %s (reduction_rank=%d%s)",
             W._describe(), r, r + 1, x._shape, rr, ", sequential: the sequence axis counts" if sequential else "")
    O = WS[0] if len(WS) == r + 1 else 1
    K = tuple(WS[len(WS) - r:])
    if rr == 0:
        X, K = (1,) + X, (1,) + K                  # a size-1 channel axis
    elif K[0] < 0:
        if X[0] % groups:
            fail(node, "the %d channels of the operand %s are not divisible by groups=%d", X[0], x._describe(), groups)
        _infer_leaf_dim(W, len(WS) - r, X[0] // groups)
        K = (X[0] // groups,) + K[1:]
    if O < 0 or any(k < 0 for k in K):
        return [Type(None, dtype, None if sequential else axes)]
    C, kc = X[0], K[0]
    if kc * groups != C:
        fail(node, "the convolution map %s expects %d input channels (%d per group, groups=%d); the operand %s has %d",
             W._describe(), kc * groups, kc, groups, x._describe(), C)
    if O % groups:
        fail(node, "the %d output channels of %s are not divisible by groups=%d", O, W._describe(), groups)
    if len(K) - 1 > 3:
        fail(node, "convolution over %d spatial axes is not supported (at most 3)", len(K) - 1)
    L = _lists(node, len(X), rr == 0)
    if L["lower_pad"][0] or L["upper_pad"][0]:
        fail(node, "explicit padding of the channel axis is not supported")
    per_map, channel_error = _channel_check(node, C, kc, O, L["strides"][0], L["auto_padding"][0])
    outs, pads, time = [], [], None
    for i in range(1, len(X)):
        if X[i] is None:   # the sequence axis
            time = _time_geometry(node, K[i], L["strides"][i], L["dilation"][i], L["auto_padding"][i],
                                  L["lower_pad"][i], L["upper_pad"][i])
            outs.append(None)
            pads.append(None)
            continue
        # the channel axis has no dilation: a dilation list applies to the spatial axes
        o, lo, hi = axis_geometry(node, i - (rr == 0), X[i], K[i], L["strides"][i], L["dilation"][i],
                                  L["auto_padding"][i], L["lower_pad"][i], L["upper_pad"][i])
        outs.append(o)
        pads.append([lo, hi])
    node.attributes["_geometry"] = {
        "in": list(X[1:]), "kernel": list(K[1:]), "strides": L["strides"][1:], "dilation": L["dilation"][1:],
        "pads": pads, "out": outs, "virtual_channel": rr == 0, "has_maps": len(WS) == r + 1,
        "channel_error": channel_error, "time": time}
    if time is not None:
        outs = outs[1:]
        if axes is not None and not _keeps_length(time):
            if not node.attributes.get("new_axis"):
                node.attributes["new_axis"] = Axis.new_unique_dynamic_axis("ConvOverSequenceAxis").name
            axes = (BATCH, Axis(node.attributes["new_axis"]))
    return [Type((O * per_map,) + tuple(outs), dtype, axes)]


def build_convolution(ctx):
    g = ctx.attrs["_geometry"]
    if g["channel_error"]:
        raise ConvolutionError(g["channel_error"])
    if g.get("time") is not None:
        return _build_sequential_convolution(ctx, g)
    nd = ctx.in_ndyn[1]
    groups = ctx.attrs.get("groups", 1)
    kernel, strides, dil = g["kernel"], g["strides"], g["dilation"]
    n = len(kernel)
    if n == 0:   # no spatial axis: one 1-wide position
        kernel, strides, dil, sizes, pads, outs = [1], [1], [1], [1], [[0, 0]], [1]
    else:
        sizes, pads, outs = g["in"], g["pads"], g["out"]
    torch_pad, extra = split_padding(sizes, kernel, strides, dil, pads, outs)
    conv = _CONV[len(kernel)]
    virtual, has_maps = g["virtual_channel"], g["has_maps"]

    def fn(ins, rt):
        w, x = ins
        x, lead = _as_batch(x, nd)
        if virtual:
            x = x.unsqueeze(1)
            w = w.unsqueeze(1) if has_maps else w.reshape((1, 1) + w.shape)
        elif not has_maps:
            w = w.unsqueeze(0)
        if n == 0:
            x, w = x.unsqueeze(-1), w.unsqueeze(-1)
        if extra is not None:
            x = F.pad(x, extra)
        y = conv(x, w, None, strides, torch_pad, dil, groups)
        if n == 0:
            y = y.squeeze(-1)
        return y if nd == 1 else y.reshape(lead + y.shape[1:])
    return padding_guard(ctx, fn)


def _build_sequential_convolution(ctx, g):
    """Convolution over (B, T, ...) sequences with time as the first spatial axis. Padding cells
    are zeroed, so each sequence sees zeros past its end, as when it is alone; sequences whose
    windows start at different offsets (auto padding with stride >= 3) are convolved in groups
    of equal offset. The result's padding cells are zero."""
    where = ctx.node.describe()
    if ctx.step:
        raise ValueError("%s: a sequential convolution cannot be used inside a recurrent loop" % where)
    t = g["time"]
    seq_in = ctx.in_axes[1][1]
    seq_out = ctx.out_axes[0][1]
    new_axis = seq_out != seq_in
    groups = ctx.attrs.get("groups", 1)
    kernel, strides, dil = g["kernel"], g["strides"], g["dilation"]
    # the static spatial axes: torch's padding plus an F.pad list (last axis first) as usual
    torch_pad, extra = split_padding(g["in"][1:], kernel[1:], strides[1:], dil[1:], g["pads"][1:], g["out"][1:])
    torch_pad = [0] + torch_pad
    static_pad = list(extra) if extra is not None else [0] * (2 * (len(kernel) - 1))
    conv = _CONV[len(kernel)]
    virtual, has_maps = g["virtual_channel"], g["has_maps"]
    ke = (t["kernel"] - 1) * t["dilation"] + 1
    s = t["stride"]

    def fn(ins, rt):
        w, x = ins
        lay = rt.layouts[seq_in]
        x = lay.fill_padding(x)
        T = x.shape[1]
        if virtual:
            x = x.unsqueeze(2)
            w = w.unsqueeze(1) if has_maps else w.reshape((1, 1) + w.shape)
        elif not has_maps:
            w = w.unsqueeze(0)
        x = x.movedim(1, 2)                                   # (B, C, T, *spatial)
        win = _time_windows(t, lay.lengths_list)
        short = [(b, n) for b, ((o, _), n) in enumerate(zip(win, lay.lengths_list)) if o < 1]
        if short:
            raise RuntimeError("%s: sequence %d has %d elements, fewer than the kernel spans along the sequence axis "
                               "(%d, pads (%d, %d)); sequences must be at least one element long"
                               % ((where,) + short[0] + (ke, t["lo"], t["hi"])))
        lengths = [o for o, _ in win]
        Tout = max(lengths) if lengths else 0
        full = (Tout - 1) * s + ke                            # the padded length giving Tout windows
        by_pad = {}
        for b, (_, lo) in enumerate(win):
            by_pad.setdefault(lo, []).append(b)
        parts, order = [], []
        for lo, rows in by_pad.items():
            xs = x if len(by_pad) == 1 else x[torch.tensor(rows, device=x.device)]
            xs = F.pad(xs, static_pad + [lo, full - T - lo])
            parts.append(conv(xs, w, None, strides, torch_pad, dil, groups))
            order += rows
        if len(parts) == 1:
            y = parts[0]
        else:
            y = torch.cat(parts)[torch.tensor(order, device=x.device).argsort()]
        out_lay = register_layout(rt, seq_out, lengths, x.device, where) if new_axis else lay
        return out_lay.fill_padding(y.movedim(2, 1))          # (B, Tout, O, *spatial_out)
    return fn


register("Convolution", infer_convolution, build_convolution)


# -- ConvolutionTranspose ------------------------------------------------------------------------

def infer_convolution_transpose(node):
    """Output (O, *spatial_out) from W (I, O, *k) and an operand (I, *spatial): the adjoint of
    the convolution whose geometry maps the output back to the operand. Without output_shape a
    spatial size is (n-1)*s+1 with auto padding, (n-1)*s+ke-lo-hi without."""
    W, x = node.inputs
    dtype = common_dtype(node, node.inputs)
    axes = unify_axes(node, node.inputs)
    rr, groups = _check_common(node, W)
    if groups != 1:
        fail(node, "groups=%d is not supported by convolution_transpose", groups)
    X, WS = x._shape, W._shape
    if X is None or WS is None or any(d < 0 for d in X):
        return [Type(None, dtype, axes)]
    r = len(X)
    if rr == 1 and r == 0:
        fail(node, "the operand %s needs a channel axis (or use reduction_rank=0)", x._describe())
    if rr == 1:
        if len(WS) == r + 1:
            if WS[0] < 0:
                _infer_leaf_dim(W, 0, X[0])
            I, O, K = X[0] if WS[0] < 0 else WS[0], WS[1], tuple(WS[2:])
        elif len(WS) == r:
            I, O, K = 1, WS[0], tuple(WS[1:])
        else:
            fail(node, "the convolution map %s must have rank %d (I, O, *kernel) for an operand of shape %s",
                 W._describe(), r + 1, X)
    else:
        X = (1,) + X
        if len(WS) == r + 1:
            I, O, K = WS[0], 1, tuple(WS[1:])
        elif len(WS) == r:
            I, O, K = 1, 1, tuple(WS)
        else:
            fail(node, "the convolution map %s must have rank %d or %d for an operand of shape %s (reduction_rank=0)",
                 W._describe(), r, r + 1, X[1:])
    if O < 0 or any(k < 0 for k in K):
        return [Type(None, dtype, axes)]
    if I != X[0]:
        fail(node, "the convolution map %s expects %d input channels; the operand %s has %d",
             W._describe(), I, x._describe(), X[0])
    if len(K) > 3:
        fail(node, "convolution over %d spatial axes is not supported (at most 3)", len(K))
    L = _lists(node, len(X), rr == 0)
    if L["lower_pad"][0] or L["upper_pad"][0]:
        fail(node, "explicit padding of the channel axis is not supported")
    _, channel_error = _channel_check(node, O, O, I, L["strides"][0], L["auto_padding"][0])
    requested = _requested_output(node, O, len(K))
    outs, pads = [], []
    for j in range(len(K)):
        i = j + 1
        n, k, s, d = X[i], K[j], L["strides"][i], L["dilation"][i]
        auto, lo, hi = L["auto_padding"][i], L["lower_pad"][i], L["upper_pad"][i]
        # (CNTK's own size rule ignores dilation; the dilated kernel's extent is what maps back to n)
        m = requested[j] if requested else ((n - 1) * s + 1 if auto else (n - 1) * s + (k - 1) * d + 1 - lo - hi)
        if m < 1:
            fail(node, "the output size on axis %d would be %d", i, m)
        back, plo, _ = axis_geometry(node, i - (rr == 0), m, k, s, d, auto, lo, hi)
        if back != n:
            raise ConvolutionError(
                "%s: Convolution transpose: the operand's size %d on axis %d is not what convolving the output size %d "
                "gives (%d) with these options" % (node.describe(), n, i, m, back))
        outs.append(m)
        pads.append(plo)
    node.attributes["_geometry"] = {
        "in": list(X[1:]), "kernel": list(K), "strides": L["strides"][1:], "dilation": L["dilation"][1:],
        "lower": pads, "out": outs, "virtual_channel": rr == 0, "layout": len(WS) - r,
        "channel_error": channel_error}
    return [Type((O,) + tuple(outs), dtype, axes)]


def _requested_output(node, O, nspatial):
    """The spatial sizes of output_shape (None when not given); it may include the channel axis."""
    req = node.attributes.get("output_shape")
    if req is None:
        return None
    req = _ints(node, "output_shape", req, 0) if req else []
    if not req or all(v == 0 for v in req):
        return None
    if len(req) == nspatial + 1:
        if req[0] != O:
            fail(node, "output_shape %s has %d channels; the convolution map gives %d", tuple(req), req[0], O)
        req = req[1:]
    if len(req) != nspatial or any(v < 1 for v in req):
        fail(node, "output_shape %s does not fit an output of %d spatial axes", tuple(req), nspatial)
    return req


def build_convolution_transpose(ctx):
    g = ctx.attrs["_geometry"]
    if g["channel_error"]:
        raise ConvolutionError(g["channel_error"])
    nd = ctx.in_ndyn[1]
    kernel, strides, dil = g["kernel"], g["strides"], g["dilation"]
    n = len(kernel)
    if n == 0:
        kernel, strides, dil, sizes, lower, outs = [1], [1], [1], [1], [0], [1]
    else:
        sizes, lower, outs = g["in"], g["lower"], g["out"]
    # torch crops `padding` cells from both ends of the full result and adds `output_padding`
    # at the end; where CNTK's crop cannot be said that way, crop/extend with F.pad afterwards
    torch_pad, out_pad, crop = [], [], []
    for size, k, s, d, lo, m in zip(sizes, kernel, strides, dil, lower, outs):
        full = (size - 1) * s + (k - 1) * d + 1
        op = m - full + 2 * lo
        if lo >= 0 and 0 <= op < max(s, d):
            torch_pad.append(lo)
            out_pad.append(op)
            crop.append((0, 0))
        else:
            torch_pad.append(0)
            out_pad.append(0)
            crop.append((-lo, m - full + lo))
    crop = [v for c in reversed(crop) for v in c]
    crop = crop if any(crop) else None
    conv_t = _CONV_T[len(kernel)]
    virtual, layout = g["virtual_channel"], g["layout"]

    def fn(ins, rt):
        w, x = ins
        x, lead = _as_batch(x, nd)
        if virtual:
            x = x.unsqueeze(1)
            w = w.reshape((1, 1) + w.shape[layout:])
        elif layout == 0:
            w = w.unsqueeze(0)
        if n == 0:
            x, w = x.unsqueeze(-1), w.unsqueeze(-1)
        y = conv_t(x, w, None, strides, torch_pad, out_pad, 1, dil)
        if crop is not None:
            y = F.pad(y, crop)
        if n == 0:
            y = y.squeeze(-1)
        return y if nd == 1 else y.reshape(lead + y.shape[1:])
    return padding_guard(ctx, fn)


register("ConvolutionTranspose", infer_convolution_transpose, build_convolution_transpose)


# -- Pooling --------------------------------------------------------------------------------------

def pooling_geometry(node, X):
    """Per-axis (kernel, stride, pad before, pad after, output size) of a pooling window over
    an operand of shape ``X``; the window and its lists line up with the trailing axes."""
    a = node.attributes
    r = len(X)
    window = a.get("window")
    autos = _bools(node, "auto_padding", a["auto_padding"])
    lower = _ints(node, "lower_pad", a.get("lower_pad", [0]), 0)
    upper = _ints(node, "upper_pad", a.get("upper_pad", [0]), 0)
    if window is None:
        # global pooling: the window is every axis but the channel axis
        if any(autos) or any(lower) or any(upper):
            fail(node, "padding is not allowed with a global pooling window")
        window = list(X[1:]) or [1]
    window = _ints(node, "pooling window", window, 1)
    f = len(window)
    if f > r:
        fail(node, "the pooling window %s has more axes than the operand %s", tuple(window), tuple(X))
    kernel = [1] * (r - f) + window
    strides = per_axis(node, "strides", _ints(node, "strides", a["strides"], 1), r, f, 1)
    autos = per_axis(node, "auto_padding", autos, r, f, False)
    lower = per_axis(node, "lower_pad", lower, r, f, 0)
    upper = per_axis(node, "upper_pad", upper, r, f, 0)
    ceil_out = a.get("ceil_out_dim", False)
    geo = []
    for i in range(r):
        o, lo, hi = axis_geometry(node, i, X[i], kernel[i], strides[i], 1, autos[i], lower[i], upper[i], ceil_out)
        geo.append((kernel[i], strides[i], lo, hi, o))
    pooled = [i for i, (k, s, lo, hi, o) in enumerate(geo) if (k, s, lo, hi) != (1, 1, 0, 0)]
    if pooled and r - pooled[0] > 3:
        fail(node, "pooling over %d axes is not supported (at most 3)", r - pooled[0])
    return geo


def _pooling_type(node, allowed):
    t = node.attributes.get("pooling_type")
    if t not in allowed:
        fail(node, "pooling type %r is not supported here (use %s)", t,
             " or ".join({MAX_POOLING: "MAX_POOLING", AVG_POOLING: "AVG_POOLING"}[v] for v in allowed))
    return t


def infer_pooling(node):
    (x,) = node.inputs
    _pooling_type(node, (MAX_POOLING, AVG_POOLING))
    X = x._shape
    if X is None or any(d < 0 for d in X):
        return [Type(None, x._dtype, x._dynamic_axes)]
    if not X:
        fail(node, "the operand %s has no axes to pool over", x._describe())
    geo = pooling_geometry(node, X)
    node.attributes["_geometry"] = [list(g) for g in geo]
    return [Type(tuple(g[4] for g in geo), x._dtype, x._dynamic_axes)]


class _PoolPlan:
    """The static plan of one pooling: the operand as (batch, maps, *pooled axes), and torch's
    padding plus the explicit F.pad around it."""

    def __init__(self, X, geo):
        pooled = [i for i, (k, s, lo, hi, o) in enumerate(geo) if (k, s, lo, hi) != (1, 1, 0, 0)]
        self.identity = not pooled
        p0 = pooled[0] if pooled else len(X)
        self.maps = math.prod(X[:p0])
        self.sizes = list(X[p0:])
        g = geo[p0:]
        self.kernel = [k for k, _, _, _, _ in g]
        self.strides = [s for _, s, _, _, _ in g]
        self.pads = [(lo, hi) for _, _, lo, hi, _ in g]
        self.outs = [o for _, _, _, _, o in g]
        self.counts = [_window_counts(n, k, s, lo, o) for n, (k, s, lo, _, o) in zip(self.sizes, g)]
        self.out_shape = tuple(o for _, _, _, _, o in geo)
        self.torch_pad, self.extra = split_padding(self.sizes, self.kernel, self.strides, [1] * len(self.kernel),
                                                   self.pads, self.outs, limit=lambda k, d: k // 2)
        empty = any(c == 0 for cs in self.counts for c in cs)
        self.empty = DeviceConstant(lambda: self.count_tensor() == 0) if empty else None

    def count_tensor(self):
        """Number of cells of each window inside the operand (outer product over axes)."""
        t = torch.ones(())
        for c in self.counts:
            t = t.unsqueeze(-1) * torch.tensor(c, dtype=torch.float64)
        return t

    def flat(self, x, nd):
        """(batch, maps, *pooled axes) view of ``x`` and the shape to restore afterwards."""
        lead = x.shape[:nd]
        return x.reshape((math.prod(lead), self.maps) + tuple(self.sizes)), lead


def max_pool(plan, x):
    """Max pooling of a (batch, maps, *axes) tensor with CNTK's windows; cells outside the
    operand never win (a window with no cell inside gives 0)."""
    if plan.extra is not None:
        x = F.pad(x, plan.extra, value=-math.inf)
    y = _MAX_POOL[len(plan.kernel)](x, plan.kernel, plan.strides, plan.torch_pad)
    if plan.empty is not None:
        y = torch.where(plan.empty.get(y), y.new_zeros(()), y)
    return y


def build_pooling(ctx):
    X = ctx.in_shapes[0]
    plan = _PoolPlan(X, ctx.attrs["_geometry"])
    nd = ctx.in_ndyn[0]
    if plan.identity:
        return lambda ins, rt: ins[0]
    out_shape = plan.out_shape
    kind = ctx.attrs["pooling_type"]
    include_pad = ctx.attrs.get("include_pad", False)
    if kind == MAX_POOLING:
        def fn(ins, rt):
            x, lead = plan.flat(ins[0], nd)
            return max_pool(plan, x).reshape(lead + out_shape)
        return fn
    torch_pad, extra = plan.torch_pad, plan.extra
    avg = _AVG_POOL[len(plan.kernel)]
    window = math.prod(plan.kernel)
    if extra is None:
        # torch's own padding: its divisor is the window (include_pad) or the cells inside
        # the operand, as CNTK's, because every window lies within the padded operand
        def fn(ins, rt):
            x, lead = plan.flat(ins[0], nd)
            y = avg(x, plan.kernel, plan.strides, torch_pad, False, include_pad)
            return y.reshape(lead + out_shape)
        return fn
    if include_pad:
        scale = None
    else:
        counts = plan.count_tensor()
        scale = DeviceConstant(lambda: torch.where(counts > 0, window / counts.clamp(min=1), torch.zeros(())))

    def fn(ins, rt):
        x, lead = plan.flat(ins[0], nd)
        y = avg(F.pad(x, extra), plan.kernel, plan.strides, torch_pad, False, True)
        if scale is not None:
            y = y * scale.get(y)
        return y.reshape(lead + out_shape)
    return fn


register("Pooling", infer_pooling, build_pooling)


# -- Unpooling ------------------------------------------------------------------------------------

def infer_unpooling(node):
    """The shape of ``pooling_input``; the operand must be what pooling it gives."""
    operand, pin = node.inputs
    _pooling_type(node, (MAX_POOLING,))
    dtype = common_dtype(node, node.inputs)
    axes = unify_axes(node, node.inputs)
    X, P = pin._shape, operand._shape
    if X is None or P is None or any(d < 0 for d in X):
        return [Type(None, dtype, axes)]
    if not X:
        fail(node, "the pooling input %s has no axes", pin._describe())
    geo = pooling_geometry(node, X)
    pooled = tuple(g[4] for g in geo)
    if tuple(P) != pooled:
        raise ConvolutionError("%s: Unpooling: the shape %s of the operand %s differs from the shape %s of pooling "
                               "the input %s with these options" % (node.describe(), tuple(P), operand._describe(),
                                                                   pooled, pin._describe()))
    node.attributes["_geometry"] = [list(g) for g in geo]
    return [Type(tuple(X), dtype, axes)]


class _MaxUnpool(torch.autograd.Function):
    """Each pooled value goes to where its window's maximum of the pooling input is (windows
    sharing a maximum write the same cell). Backward is CNTK's: the operand's gradient is the
    max pooling of the output gradient (not the adjoint of the forward); the pooling input
    gets none."""

    @staticmethod
    def forward(ctx, values, pin, plan):
        extra = plan.extra
        padded = F.pad(pin, extra, value=-math.inf) if extra is not None else pin
        _, idx = _MAX_POOL[len(plan.kernel)](padded, plan.kernel, plan.strides, plan.torch_pad, return_indices=True)
        # indices count cells of `padded`, torch's own padding excluded
        out = values.new_zeros(padded.shape[:2] + (math.prod(padded.shape[2:]),))
        out.scatter_(2, idx.flatten(2), values.flatten(2))
        out = out.reshape(padded.shape)
        if extra is not None:
            out = F.pad(out, [-v for v in extra])
        ctx.plan = plan
        return out

    @staticmethod
    def backward(ctx, g):
        return max_pool(ctx.plan, g), None, None


def build_unpooling(ctx):
    X = ctx.in_shapes[1]
    plan = _PoolPlan(X, ctx.attrs["_geometry"])
    nd = ctx.out_ndyn
    aligns = [ctx.align(i, nd, len(X), strict=True) for i in range(2)]

    def fn(ins, rt):
        v, p = [t if a is None else a(t) for a, t in zip(aligns, ins)]
        if v.shape[:nd] != p.shape[:nd]:
            lead = torch.broadcast_shapes(v.shape[:nd], p.shape[:nd])
            v, p = v.expand(lead + v.shape[nd:]), p.expand(lead + p.shape[nd:])
        if plan.identity:
            return v
        pf, lead = plan.flat(p, nd)
        vf = v.reshape((pf.shape[0], plan.maps) + tuple(plan.outs))
        y = _MaxUnpool.apply(vf, pf, plan)
        return y.reshape(lead + tuple(X))
    return fn


register("Unpooling", infer_unpooling, build_unpooling)


# -- ROIPooling -----------------------------------------------------------------------------------

def infer_roipooling(node):
    """(R, C, oh, ow) from a (C, H, W) map and (R, 4) boxes (x1, y1, x2, y2) per sample."""
    x, rois = node.inputs
    _pooling_type(node, (MAX_POOLING, AVG_POOLING))
    out_hw = _ints(node, "roi_output_shape", node.attributes["roi_output_shape"], 1)
    if len(out_hw) != 2:
        fail(node, "roi_output_shape must be (height, width); got %s", tuple(out_hw))
    scale = node.attributes["spatial_scale"]
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale > 0:
        fail(node, "spatial_scale must be a positive number; got %r", scale)
    dtype = common_dtype(node, node.inputs)
    axes = unify_axes(node, node.inputs)
    X, R = x._shape, rois._shape
    if X is None or R is None:
        return [Type(None, dtype, axes)]
    if len(X) != 3:
        fail(node, "the operand %s must have shape (C, H, W)", x._describe())
    if len(R) not in (1, 2) or R[-1] != 4:
        fail(node, "the ROIs %s must have shape (num_rois, 4)", rois._describe())
    nrois = R[0] if len(R) == 2 else 1
    return [Type((nrois, X[0]) + tuple(out_hw), dtype, axes)]


def _round_half_away(v):
    return torch.sign(v) * torch.floor(v.abs() + 0.5)


def _roi_bins(start, end, bins, limit):
    """Integer bin bounds [lo, hi) of every box along one axis, clipped to [0, limit):
    bin p covers floor(p*size/bins) .. ceil((p+1)*size/bins) of the box (in exact integer
    arithmetic, where CNTK multiplies a float bin size)."""
    size = (end - start + 1).clamp(min=1).unsqueeze(-1)
    p = torch.arange(bins, device=start.device)
    lo = torch.div(p * size, bins, rounding_mode="floor") + start.unsqueeze(-1)
    hi = -torch.div(-(p + 1) * size, bins, rounding_mode="floor") + start.unsqueeze(-1)
    return lo.clamp(0, limit), hi.clamp(0, limit)


def build_roipooling(ctx):
    oh, ow = ctx.attrs["roi_output_shape"]
    scale = float(ctx.attrs["spatial_scale"])
    is_max = ctx.attrs["pooling_type"] == MAX_POOLING
    nd = ctx.out_ndyn
    R = ctx.out_shapes[0][0]
    aligns = [ctx.align(i, nd, rank, strict=True) for i, rank in ((0, 3), (1, len(ctx.in_shapes[1])))]

    def fn(ins, rt):
        x, rois = [t if a is None else a(t) for a, t in zip(aligns, ins)]
        lead = torch.broadcast_shapes(x.shape[:nd], rois.shape[:nd])
        M = math.prod(lead)
        x = x.expand(lead + x.shape[nd:]).reshape((M,) + x.shape[nd:])
        boxes = rois.expand(lead + rois.shape[nd:]).reshape(M, R, 4)
        C, H, W = x.shape[1:]
        with torch.no_grad():
            c = _round_half_away(boxes * scale).long()
            hs, he = _roi_bins(c[..., 1], c[..., 3], oh, H)           # (M, R, oh)
            ws, we = _roi_bins(c[..., 0], c[..., 2], ow, W)           # (M, R, ow)
            mh = int((he - hs).max()) if M * R else 0
            mw = int((we - ws).max()) if M * R else 0
        if mh <= 0 or mw <= 0:
            return x.new_zeros(lead + (R, C, oh, ow)) + 0 * x.sum()
        with torch.no_grad():
            ih = hs.unsqueeze(-1) + torch.arange(mh, device=x.device)   # (M, R, oh, mh)
            iw = ws.unsqueeze(-1) + torch.arange(mw, device=x.device)   # (M, R, ow, mw)
            vh, vw = ih < he.unsqueeze(-1), iw < we.unsqueeze(-1)
            ih, iw = ih.clamp(max=H - 1), iw.clamp(max=W - 1)
            valid = vh[:, :, :, None, :, None] & vw[:, :, None, :, None, :]   # (M, R, oh, ow, mh, mw)
            m = torch.arange(M, device=x.device).reshape(M, 1, 1, 1, 1, 1)
        cells = x[m, :, ih[:, :, :, None, :, None], iw[:, :, None, :, None, :]]   # (M, R, oh, ow, mh, mw, C)
        cells = cells.reshape(M, R, oh, ow, mh * mw, C)
        valid = valid.reshape(M, R, oh, ow, mh * mw, 1)
        nonempty = valid.any(4)
        if is_max:
            y = torch.where(valid, cells, cells.new_tensor(-math.inf)).max(4).values
            y = torch.where(nonempty, y, y.new_zeros(()))
        else:
            count = valid.sum(4).clamp(min=1).to(cells.dtype)
            y = torch.where(valid, cells, cells.new_zeros(())).sum(4) / count
        return y.permute(0, 1, 4, 2, 3).reshape(lead + (R, C, oh, ow))
    return fn


register("ROIPooling", infer_roipooling, build_roipooling)
