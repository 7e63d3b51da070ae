"""Training criteria: cross entropy, squared error, classification error, binary cross entropy
(plain and weighted) and the cosine distances. Ranking, edit distance and NCE live in their own
modules, imported at the end."""

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..registry import (Type, register, common_dtype, unify_axes, fail, normalize_axis, broadcast_shapes, aligned,
                        int_attr, DeviceConstant)
from ...axis import sequence_axis_of
from .elementwise import padding_guard, _log
from .sample_rows import SampleRows
from ..sparse import SparseBatch


def _check_same(node, leading_ones=False):
    z, t = node.inputs[:2]
    if z._shape is None or t._shape is None:
        return
    zs, ts = tuple(z._shape), tuple(t._shape)
    if leading_ones:
        # CNTK checks the two items for elementwise compatibility, so (1, n) against (n,) passes
        # (CNTK_207 feeds a (1, classes) output with a (classes,) target)
        zs, ts = _strip_leading_ones(zs), _strip_leading_ones(ts)
    if zs != ts:
        fail(node, "the output %s and the target %s must have the same shape", z._shape, t._shape)


def _strip_leading_ones(shape):
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape


def _row_pairs_shape(shape):
    """CNTK's primitive treats a rank-2 item as rows and pairs every row of the output with
    every row of the target: (rows, rows); a vector gives (1,)."""
    if len(shape) <= 1:
        return (1,)
    rows = math.prod(shape[:-1])
    return (rows, rows)


def infer_ce(node):
    _check_same(node, leading_ones=True)
    z = node.inputs[0]
    dtype = common_dtype(node, node.inputs)
    axes = unify_axes(node, node.inputs)
    axis = node.attributes.get("axis")
    if z._shape is None:
        return [Type(None, dtype, axes)]
    if axis is None:
        return [Type(_row_pairs_shape(z._shape), dtype, axes)]
    ax = normalize_axis(node, axis, len(z._shape))
    node.attributes["_axis"] = ax
    return [Type(tuple(1 if i == ax else d for i, d in enumerate(z._shape)), dtype, axes)]


def build_ce(ctx):
    nd = ctx.out_ndyn
    shape = ctx.in_shapes[0]
    aligns = [ctx.align(i, nd, len(shape), strict=True) for i in range(2)]
    whole_item = ctx.attrs.get("axis") is None
    if whole_item and len(shape) == 1 and not any(aligns):
        # vectors, the common case: one row against one row
        def fn(ins, rt):
            z, t = ins
            if type(t) is SparseBatch and t.index is not None and type(z) is not SparseBatch:
                return _ce_one_hot(z, t)
            return torch.logsumexp(z, -1, keepdim=True) - (t * z).sum(-1, keepdim=True)
        return fn
    if whole_item:
        C = shape[-1] if shape else 1

        def fn(ins, rt):
            z, t = aligned(aligns, ins)
            z2 = z.reshape(z.shape[:nd] + (-1, C))
            t2 = t.reshape(t.shape[:nd] + (-1, C))
            lse = torch.logsumexp(z2, -1, keepdim=True)            # (..., R, 1)
            out = lse - torch.matmul(z2, t2.transpose(-1, -2))      # (..., R, R)
            return out.reshape(out.shape[:nd] + (1,)) if len(shape) <= 1 else out
        return fn
    dim = nd + ctx.attrs["_axis"]

    def fn(ins, rt):
        z, t = aligned(aligns, ins)
        return torch.logsumexp(z, dim, keepdim=True) - (t * z).sum(dim, keepdim=True)
    return fn


def _ce_one_hot(z, t):
    """Cross entropy against one-hot targets given as class indices: -log_softmax(z)[class],
    torch's fused kernel (no dense one-hot tensor, one pass for the normalizer). Cells without
    a class (``t.valid`` False) are sequence padding; they get 0 and send no gradient."""
    idx = t.index if t.valid is None else t.index.masked_fill(~t.valid, -100)
    out = F.cross_entropy(z.reshape(-1, z.shape[-1]), idx.reshape(-1), reduction="none", ignore_index=-100)
    return out.reshape(idx.shape + (1,))


register("CrossEntropyWithSoftmax", infer_ce, lambda ctx: padding_guard(ctx, build_ce(ctx)))


def infer_squared_error(node):
    z, t = node.inputs
    dtype = common_dtype(node, node.inputs)
    broadcast_shapes(node, [z._shape, t._shape])
    return [Type((), dtype, unify_axes(node, node.inputs))]


def build_squared_error(ctx):
    nd = ctx.out_ndyn
    R = max(len(s) for s in ctx.in_shapes)
    aligns = [ctx.align(i, nd, R, strict=True) for i in range(2)]

    def fn(ins, rt):
        z, t = aligned(aligns, ins)
        d = z - t
        return (d * d).reshape(d.shape[:nd] + (-1,)).sum(-1)
    return fn


register("SquaredError", infer_squared_error, lambda ctx: padding_guard(ctx, build_squared_error(ctx)))


def infer_classification_error(node):
    _check_same(node)
    z = node.inputs[0]
    dtype = common_dtype(node, node.inputs)
    axes = unify_axes(node, node.inputs)
    topN = int_attr(node, "topN", 1, default=1)
    axis = node.attributes.get("axis")
    if topN != 1:
        if axis is not None:
            fail(node, "topN > 1 is not supported together with an axis")
        classes = z._shape[-1] if z._shape else 1
        if z._shape is not None and classes >= 0 and topN > classes:
            fail(node, "topN=%d is larger than the number of classes %d of %s", topN, classes, z._describe())
        return [Type((), dtype, ())]
    if z._shape is None:
        return [Type(None, dtype, axes)]
    if axis is None:
        return [Type(_row_pairs_shape(z._shape), dtype, axes)]
    node.attributes["_axis"] = normalize_axis(node, axis, len(z._shape))
    return [Type((), dtype, axes)]


def build_classification_error(ctx):
    shape = ctx.in_shapes[0]
    topN = ctx.attrs.get("topN", 1)
    C = shape[-1] if shape else 1
    nd = max(ctx.in_ndyn)
    seq = next((sequence_axis_of(a) for a, d in zip(ctx.in_axes, ctx.in_ndyn) if d == 2), None)
    aligns = [ctx.align(i, nd, len(shape), strict=True) for i in range(2)]

    def operands(ins):
        z, t = aligned(aligns, ins)
        return torch.broadcast_tensors(z, t) if z.shape != t.shape else (z, t)

    if topN != 1:
        def fn(ins, rt):
            z, t = operands(ins)
            z2, t2 = z.reshape(-1, C), t.reshape(-1, C)
            top = torch.topk(z2, topN, dim=-1).indices
            hit = torch.gather(t2, 1, top).sum(-1) > 0
            miss = (~hit).to(z.dtype)
            if seq is not None:
                miss = miss.reshape(z.shape[:2] + (-1,))[rt.layouts[seq].mask].reshape(-1)
            return miss.sum()
        return fn
    if ctx.attrs.get("axis") is None:
        def fn(ins, rt):
            z, t = operands(ins)
            lead = z.shape[:nd]
            # CNTK: 1 - TransposeTimes(Hardmax(z), t) where Hardmax is over the whole item, so
            # for rank-2 items only the row holding the overall maximum can score a hit.
            zf = z.reshape(lead + (-1,))
            hard = torch.zeros_like(zf).scatter_(-1, torch.argmax(zf, -1, keepdim=True), 1.0)
            z2 = hard.reshape(lead + (-1, C))
            t2 = t.reshape(lead + (-1, C))
            out = 1.0 - torch.matmul(z2, t2.transpose(-1, -2))
            return out.reshape(lead + (1,)) if len(shape) <= 1 else out
        return fn
    dim = nd + ctx.attrs["_axis"]

    def fn(ins, rt):
        z, t = operands(ins)
        hard = torch.zeros_like(z).scatter_(dim, torch.argmax(z, dim, keepdim=True), 1.0)
        err = (1.0 - (hard * t).sum(dim)).clamp(0.0, 1.0)
        return err.reshape(err.shape[:nd] + (-1,)).mean(-1)
    return fn


register("ClassificationError", infer_classification_error, build_classification_error, differentiable=False)


# -- binary cross entropy ----------------------------------------------------------------

# CNTK builds the loss from float32 constants, so float64 graphs see the same rounded values.
_BCE_EPS = float(np.float32(1e-6))
_BCE_ONE_PLUS_EPS = float(np.float32(1.0) + np.float32(1e-6))


def infer_elementwise_loss(node):
    """Elementwise losses: numpy broadcasting of the operands, unified dynamic axes."""
    shape = broadcast_shapes(node, [v._shape for v in node.inputs])
    return [Type(shape, common_dtype(node, node.inputs), unify_axes(node, node.inputs))]


def build_bce(ctx):
    aligns = [ctx.align(i) for i in range(2)]

    def fn(ins, rt):
        p, t = aligned(aligns, ins)
        return -(t * _log(_BCE_EPS + p) + (1.0 - t) * _log(_BCE_ONE_PLUS_EPS - p))
    return fn


register("BinaryCrossEntropy", infer_elementwise_loss, lambda ctx: padding_guard(ctx, build_bce(ctx)))


# -- weighted binary cross entropy (CNTK's Logistic criterion) -------------------------------

def infer_logistic(node):
    p, t, _ = node.inputs
    if p._shape is not None and t._shape is not None and tuple(p._shape) != tuple(t._shape):
        fail(node, "the prediction %s and the target %s must have the same shape", p._shape, t._shape)
    return [Type((), common_dtype(node, node.inputs), ())]


class _WeightedLogistic(torch.autograd.Function):
    """-N * sum(w * log(y*p + (1-y)*(1-p))) / sum(w) over the N samples. The gradient reaches the
    prediction only and, as in CNTK, leaves out the N / sum(w) normalization of the value."""

    @staticmethod
    def forward(ctx, p, t, w):
        r = 2.0 * t * p + (1.0 - t) - p
        ctx.save_for_backward(t, w, r)
        return -(w * torch.log(r)).sum() / w.sum() * p.shape[0]

    @staticmethod
    def backward(ctx, g):
        t, w, r = ctx.saved_tensors
        return -g * (2.0 * t - 1.0) * w / r, None, None


def build_logistic(ctx):
    where = ctx.node.describe()
    if not ctx.in_axes[2]:
        # CNTK reads the weight column by column; a value without a batch axis has none
        raise RuntimeError("%s: the weight %s has no batch axis; weighted_binary_cross_entropy needs one weight per "
                           "sample" % (where, ctx.node.inputs[2]._describe()))
    sizes = [math.prod(s) for s in ctx.in_shapes]
    if any(n != 1 for n in sizes):
        raise ValueError("%s: the input matrix dimensions do not match: prediction, target and weight must hold one "
                         "value per sample (shapes %s)" % (where, ", ".join(str(tuple(s)) for s in ctx.in_shapes)))
    samples = SampleRows(ctx, range(3))

    def fn(ins, rt):
        (p, t, w), _ = samples.rows(ins, rt)
        return _WeightedLogistic.apply(p[:, 0], t[:, 0], w[:, 0])
    return fn


# (no padding guard: only valid cells are read, by indexing)
register("Logistic", infer_logistic, build_logistic)


# -- cosine distance ---------------------------------------------------------------------------

def _inverse_norm(x, dim):
    """1 / ||x|| over ``dim`` (0 for a zero vector), with finite gradients everywhere."""
    ss = (x * x).sum(dim)
    nz = ss > 0
    return torch.where(nz, torch.rsqrt(torch.where(nz, ss, torch.ones_like(ss))), torch.zeros_like(ss))


def infer_cosine(node):
    shape = broadcast_shapes(node, [v._shape for v in node.inputs])
    return [Type(None if shape is None else (), common_dtype(node, node.inputs), unify_axes(node, node.inputs))]


def build_cosine(ctx):
    nd = ctx.out_ndyn
    R = max(len(s) for s in ctx.in_shapes)
    aligns = [ctx.align(i, nd, R, strict=True) for i in range(2)]
    dims = tuple(range(nd, nd + R))

    def fn(ins, rt):
        x, y = aligned(aligns, ins)
        if not dims:
            x, y = x.unsqueeze(-1), y.unsqueeze(-1)
        d = dims or (nd,)
        return (x * y).sum(d) * _inverse_norm(x, d) * _inverse_norm(y, d)
    return fn


register("CosineDistance", infer_cosine, lambda ctx: padding_guard(ctx, build_cosine(ctx)))


def infer_cosine_negative(node):
    x, y = node.inputs
    for key in ("shift", "num_negative_samples"):
        int_attr(node, key, 0)
    if x._shape is not None and y._shape is not None and tuple(x._shape) != tuple(y._shape):
        fail(node, "the operands must have the same shape; got %s and %s", x._shape, y._shape)
    k = 1 + node.attributes["num_negative_samples"]
    return [Type((k,), common_dtype(node, node.inputs), unify_axes(node, node.inputs))]


def build_cosine_negative(ctx):
    samples = SampleRows(ctx, range(2))
    shift, neg = ctx.attrs["shift"], ctx.attrs["num_negative_samples"]
    # column j is compared with y[j] and with the negatives y[(j + shift + i - 1) mod n], i = 1..neg
    offsets = DeviceConstant(lambda: torch.tensor([0] + [shift + i - 1 for i in range(1, neg + 1)], dtype=torch.long))

    def fn(ins, rt):
        (x, y), lead = samples.rows(ins, rt)
        n = x.shape[0]
        idx = (torch.arange(n, device=x.device)[:, None] + offsets.get(x)[None, :]) % n
        dots = (x[:, None, :] * y[idx]).sum(-1)
        cos = dots * _inverse_norm(x, -1)[:, None] * _inverse_norm(y, -1)[idx]
        return samples.scatter(cos, lead, rt)
    return fn


register("CosineDistanceWithNegativeSamples", infer_cosine_negative, build_cosine_negative)


from . import ranking, edit_distance, nce  # noqa: E402,F401 (register the remaining criteria)
