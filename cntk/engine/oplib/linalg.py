"""Matrix products: Times (CNTK's generalised product) and TransposeTimes."""

import math

import torch

from ..registry import Type, register, unify_axes, common_dtype, fail, BATCH
from ..sparse import SparseBatch, times as sparse_times
from .elementwise import padding_guard

TIMES_NO_INFERRED_INPUT_RANK = -1
TIMES_REDUCE_SEQUENCE_AXIS_WITHOUT_INFERRED_INPUT_RANK = -3


def infer_times(node):
    """CNTK's Times type rule; infers the leading dims of a right operand (parameter) declared
    with -1 from the left operand."""
    left, right = node.inputs
    o = node.attributes["output_rank"]
    m = node.attributes["infer_input_rank_to_map"]
    if m < 0 and m not in (TIMES_NO_INFERRED_INPUT_RANK, TIMES_REDUCE_SEQUENCE_AXIS_WITHOUT_INFERRED_INPUT_RANK):
        fail(node, "infer_input_rank_to_map must be a rank >= 0, TIMES_NO_INFERRED_INPUT_RANK (-1) or "
             "TIMES_REDUCE_SEQUENCE_AXIS_WITHOUT_INFERRED_INPUT_RANK (-3); got %d", m)
    dtype = common_dtype(node, node.inputs)
    reduce_seq = m == TIMES_REDUCE_SEQUENCE_AXIS_WITHOUT_INFERRED_INPUT_RANK
    if reduce_seq:
        if right._dynamic_axes is not None and right.sequence_axis is None:
            fail(node, "reducing over the sequence axis needs both operands to be sequences; %s has no sequence axis",
                 right._describe())
        axes = None if left._dynamic_axes is None and right._dynamic_axes is None else (BATCH,)
    else:
        axes = unify_axes(node, node.inputs)
    R = right._shape
    if R is None:
        return [Type(None, dtype, axes)]
    if o < 0 or o > len(R):
        fail(node, "output_rank %d is out of range for a right operand of shape %s", o, R)
    L = left._shape
    k = len(R) - o
    if L is None:
        if any(d < 0 for d in R[k:]):
            return [Type(None, dtype, axes)]
        return [Type(tuple(R[k:]), dtype, axes)]
    if any(d < 0 for d in R[:k]) and right._owner is None and hasattr(right, "_set_inferred_shape"):
        keep = max(m, 0) if not reduce_seq else 0
        by_map = k == 1 and R[0] < 0 and m != TIMES_NO_INFERRED_INPUT_RANK
        # only the contracted axes must be known (mapped ones may be free, e.g. an unpacked sequence)
        if any(d < 0 for d in (L[keep:] if by_map else L[max(len(L) - k, 0):])):
            return [Type(None, dtype, axes)]
        if by_map:
            if keep > len(L):
                fail(node, "infer_input_rank_to_map=%d exceeds the rank of the left operand %s", m, L)
            new_in = tuple(L[keep:])
        else:
            if k > len(L):
                fail(node, "cannot infer %s from a left operand of shape %s", right._describe(), L)
            new_in = tuple(L[len(L) - k + j] if d < 0 else d for j, d in enumerate(R[:k]))
        right._set_inferred_shape(new_in + tuple(R[k:]))
        R = right._shape
        k = len(R) - o
    if k <= len(L) and any(d < 0 for d in L[len(L) - k:]):
        # sizes of the left operand still to be inferred (e.g. a convolution not bound yet)
        return [Type(tuple(L[:len(L) - k]) + tuple(R[k:]), dtype, axes)]
    if k > len(L) or tuple(L[len(L) - k:]) != tuple(R[:k]):
        fail(node, "the trailing %d axes of the left operand %s must match the leading axes of the right operand %s",
             k, L, R)
    return [Type(tuple(L[:len(L) - k]) + tuple(R[k:]), dtype, axes)]


def build_times(ctx):
    L, R = ctx.in_shapes
    o = ctx.attrs["output_rank"]
    k = len(R) - o
    Lmap, Rout = tuple(L[:len(L) - k]), tuple(R[k:])
    K = math.prod(L[len(L) - k:])
    N = math.prod(Rout)
    dl, dr = ctx.in_ndyn
    reduce_seq = ctx.attrs["infer_input_rank_to_map"] == TIMES_REDUCE_SEQUENCE_AXIS_WITHOUT_INFERRED_INPUT_RANK
    if dr == 0 and k == 1 and len(R) == 2:
        # the common case x @ W with W (K, N): a plain matmul, no reshapes
        return lambda ins, rt: torch.matmul(ins[0], ins[1])
    if dr == 0:
        def fn(ins, rt):
            a, w = ins
            lead = a.shape[:dl + len(Lmap)]
            y = torch.matmul(a.reshape(lead + (K,)), w.reshape(K, N))
            return y.reshape(lead + Rout)
        return fn
    seq_axis = ctx.in_axes[0][1] if reduce_seq else None
    D_full = max(dl, dr)
    M = math.prod(Lmap)

    def fn(ins, rt):
        a, w = ins
        a = a.reshape(a.shape[:dl] + (1,) * (D_full - dl) + (M, K))
        w = w.reshape(w.shape[:dr] + (1,) * (D_full - dr) + (K, N))
        y = torch.matmul(a, w)
        y = y.reshape(y.shape[:D_full] + Lmap + Rout)
        if reduce_seq:
            y = rt.layouts[seq_axis].fill_padding(y).sum(1)
        return y
    return fn


def build_times_any(ctx):
    """Times for dense operands, plus the sparse kernel where the left operand can arrive as a
    SparseBatch (a vector input) and the right one is a tensor without dynamic axes."""
    dense = padding_guard(ctx, build_times(ctx))
    L, R = ctx.in_shapes
    o = ctx.attrs["output_rank"]
    if len(L) != 1 or len(R) - o != 1 or ctx.in_ndyn[1] != 0 or \
            ctx.attrs["infer_input_rank_to_map"] == TIMES_REDUCE_SEQUENCE_AXIS_WITHOUT_INFERRED_INPUT_RANK:
        return dense    # a SparseBatch reaching these forms is densified on use
    out_shape = tuple(R[1:])

    def fn(ins, rt):
        a = ins[0]
        if type(a) is SparseBatch:
            # no padding guard needed: empty (padding) cells give zero rows and take no gradient
            return sparse_times(a, ins[1], out_shape)
        return dense(ins, rt)
    return fn


register("Times", infer_times, build_times_any)


def infer_transpose_times(node):
    left, right = node.inputs
    dtype = common_dtype(node, node.inputs)
    axes = unify_axes(node, node.inputs)
    L, R = left._shape, right._shape
    if L is None or R is None:
        return [Type(None, dtype, axes)]
    if len(R) == 1:
        # CNTK accepts this at construction and fails when it runs; keep that behaviour.
        return [Type(tuple(L[:-1]) + (1,), dtype, axes)]
    if len(R) != 2 or L[-1] != R[1]:
        fail(node, "times_transpose needs a right operand of shape (n, %d); got %s", L[-1], R)
    return [Type(tuple(L[:-1]) + (R[0],), dtype, axes)]


def build_transpose_times(ctx):
    L, R = ctx.in_shapes
    if len(R) == 1 and (ctx.in_ndyn[1] > 0 or ctx.node.inputs[0]._is_sparse):
        # CNTK runs these rank-1 forms as left·rowᵀ (CNTK_207's sampled softmax relies on them);
        # only a dense left with a static rank-1 right fails there
        R = (1,) + tuple(R)
    if len(R) == 1:
        def fail_at_run(ins, rt):
            raise ValueError("%s: times_transpose needs a right operand of rank 2; got shape %s"
                             % (ctx.node.describe(), R))
        return fail_at_run
    dl, dr = ctx.in_ndyn
    D = max(dl, dr)
    lead = tuple(L[:-1])
    M, K, Nout = math.prod(lead), L[-1], R[0]

    def fn(ins, rt):
        a, w = ins
        a = a.reshape(a.shape[:dl] + (1,) * (D - dl) + (M, K))
        w = w.reshape(w.shape[:dr] + (1,) * (D - dr) + (Nout, K))
        y = torch.matmul(a, w.transpose(-1, -2))
        return y.reshape(y.shape[:D] + lead + (Nout,))
    return fn


register("TransposeTimes", infer_transpose_times, lambda ctx: padding_guard(ctx, build_transpose_times(ctx)))
