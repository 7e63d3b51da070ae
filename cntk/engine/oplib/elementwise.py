"""Elementwise ops: one table of unary, binary and n-ary functions, one type rule."""

import functools
import math

import torch
import torch.nn.functional as F

from ...axis import sequence_axis_of
from ..registry import Type, register, broadcast_shapes, unify_axes, common_dtype, aligned, fail
from ..sparse import SparseBatch


# -- keeping sequence padding out of gradients -----------------------------------------------

def padding_guard(ctx, fn):
    """Wrap an op's ``fn(ins, rt)`` so the padding cells of variable-length sequences can never
    leak into gradients.

    Padding cells hold arbitrary values (zeros when fed, anything an op computed from zeros:
    log(0), 1/0, NaN, ...). Forward results of per-step ops are unaffected (padding is dropped
    when results are read), but in backward a zero gradient times an infinite local derivative
    is NaN, and that NaN is summed into the gradient of every operand broadcast over the
    sequence (parameters, batch-only inputs), or passed through a matrix product. When
    gradients are being recorded, every input that has a sequence axis is therefore replaced by
    ``where(valid, x, 0)``: the op only ever sees finite padding, and the gradient it sends back
    to padding cells is dropped (``where`` selects; it never multiplies).
    Not applied inside recurrent loops (``ctx.step``), which process one time step at a time,
    nor to sparse inputs (``SparseBatch``), whose padding cells are always zero vectors.
    """
    if ctx.step:
        return fn
    seq_inputs = [(i, sequence_axis_of(axes)) for i, (nd, axes) in enumerate(zip(ctx.in_ndyn, ctx.in_axes))
                  if nd == 2 and sequence_axis_of(axes) is not None]
    if not seq_inputs:
        return fn

    def guarded(ins, rt):
        if not torch.is_grad_enabled() or not any(getattr(t, "requires_grad", False) for t in ins):
            return fn(ins, rt)
        ins = list(ins)
        for i, seq in seq_inputs:
            if type(ins[i]) is not SparseBatch:
                ins[i] = rt.layouts[seq].fill_padding(ins[i])
        return fn(ins, rt)
    return guarded


def _constant_scalar(v):
    """The value of a single-element constant (None for anything else)."""
    data = getattr(v, "_data", None)
    if v._owner is not None or getattr(v, "_kind", None) != "constant" or data is None or data.numel() != 1:
        return None
    return float(data.reshape(()))


def _check_attributes(node):
    """Attribute values the parameterized elementwise ops cannot work with, and constant clip
    bounds that cross."""
    a = node.attributes
    for k in ("alpha", "beta", "scale", "steepness"):
        v = a.get(k)
        if v is not None and not math.isfinite(v):
            fail(node, "%s must be a finite number; got %r", k, v)
    if node.op == "Softplus" and a.get("steepness") == 0:
        fail(node, "steepness must not be 0 (softplus divides by it); got %r", a["steepness"])
    if node.op == "Clip":
        lo, hi = (_constant_scalar(v) for v in node.inputs[1:3])
        if lo is not None and hi is not None and lo > hi:
            fail(node, "min_value %g is greater than max_value %g", lo, hi)


def infer_elementwise(node):
    """numpy broadcasting of the operands' shapes; unified dynamic axes and dtype."""
    ins = node.inputs
    if node.attributes or node.op == "Clip":
        _check_attributes(node)
    shape = broadcast_shapes(node, [v._shape for v in ins])
    if shape == () and any(v._shape is None for v in ins) and \
            all(v._dynamic_axes == () for v in ins if v._shape is not None):
        shape = None    # static scalars and an operand of unknown shape (a Stabilizer's input): unknown
    # Parameters declared with inferred dims take them from the broadcast result.
    if shape is not None and all(d >= 0 for d in shape):
        for v in ins:
            if v._owner is None and v._shape is not None and any(d < 0 for d in v._shape) and hasattr(v, "_set_inferred_shape"):
                r = len(v._shape)
                v._set_inferred_shape(tuple(shape[len(shape) - r + k] if d < 0 else d for k, d in enumerate(v._shape)))
    return [Type(shape, common_dtype(node, ins), unify_axes(node, ins))]


def _elementwise_builder(fn, guarded=True):
    def build(ctx):
        aligns = [ctx.align(i) for i in range(len(ctx.in_shapes))]
        f = functools.partial(fn, **ctx.attrs) if ctx.attrs else fn
        if not any(aligns):
            def run(ins, rt):
                return f(*ins)
        else:
            def run(ins, rt):
                return f(*aligned(aligns, ins))
        return padding_guard(ctx, run) if guarded else run
    return build


def _no_grad(fn):
    """Comparisons and the like: results carry no gradient (CNTK defines it as zero)."""
    def f(*xs, **kw):
        with torch.no_grad():
            return fn(*xs, **kw)
    return f


def _softplus(x, steepness=1.0):
    if steepness == 1.0:
        return F.softplus(x, beta=1.0, threshold=1e30)
    return F.softplus(x * steepness, beta=1.0, threshold=1e30) / steepness


def _fold(fn):
    """An n-ary op from a binary one, applied left to right."""
    def f(*xs):
        r = xs[0]
        for x in xs[1:]:
            r = fn(r, x)
        return r
    return f


def _select(flag, a, b):
    return torch.where(flag != 0, a, b)


def _clip(x, lo, hi):
    # CNTK: the gradient reaches x where lo <= x <= hi; the bounds get none.
    lo, hi = lo.detach(), hi.detach()
    return torch.where(x < lo, lo, torch.where(x > hi, hi, x))


# CNTK's guarded numerics (Source/Math/TensorOps.h): log clips tiny/negative arguments, 1/0 is 0,
# a division clips the denominator away from 0, sqrt clips negative arguments to 0, and pow
# is "safe" (0**negative is 0, a negative base needs an integer exponent).
EPS_IN_LOG = 1e-37
LOG_OF_EPS_IN_LOG = -85.1
EPS_IN_INVERSE = 1e-30


def _log(x):
    small = x < EPS_IN_LOG
    return torch.where(small, x.new_tensor(LOG_OF_EPS_IN_LOG), torch.log(torch.where(small, torch.ones_like(x), x)))


def _reciprocal(x):
    zero = x == 0
    return torch.where(zero, torch.zeros_like(x), torch.reciprocal(torch.where(zero, torch.ones_like(x), x)))


def _divide(a, b):
    tiny = b.abs() < EPS_IN_INVERSE
    clipped = torch.where(b > 0, b.new_tensor(EPS_IN_INVERSE), b.new_tensor(-EPS_IN_INVERSE))
    return a / torch.where(tiny, clipped, b)


def _sqrt(x):
    return torch.sqrt(torch.clamp(x, min=0))


def _safepow_values(b, c):
    with torch.no_grad():
        y = torch.pow(torch.where(b == 0, torch.ones_like(b), b), c)
        y = torch.where(b == 0, torch.zeros_like(y), y)
        return torch.where(c == 0, torch.ones_like(y), y)


class _SafePow(torch.autograd.Function):
    """base ** exponent with CNTK's safepow value and gradients:
    d/dbase = g * e * safepow(base, e - 1), d/dexponent = g * y * log(base) (0 where base <= 0)."""

    @staticmethod
    def forward(ctx, b, c):
        y = _safepow_values(b, c)
        ctx.save_for_backward(b, c, y)
        return y

    @staticmethod
    def backward(ctx, g):
        b, c, y = ctx.saved_tensors
        gb = gc = None
        if ctx.needs_input_grad[0]:
            gb = (g * c * _safepow_values(b, c - 1)).sum_to_size(b.shape)
        if ctx.needs_input_grad[1]:
            pos = b > 0
            gc = torch.where(pos, g * y * torch.log(torch.where(pos, b, torch.ones_like(b))), torch.zeros_like(y))
            gc = gc.sum_to_size(c.shape)
        return gb, gc


def _pow(b, c):
    b, c = torch.broadcast_tensors(b, c) if b.shape != c.shape else (b, c)
    return _SafePow.apply(b, c)


def _straight_through(x):
    # CNTK: forward 1 where x > 0 else -1; backward passes the gradient where |x| <= 1.
    sign = torch.where(x > 0, torch.ones_like(x), -torch.ones_like(x))
    return sign + (x - x.detach()) * (x.abs() <= 1).to(x.dtype)


def _cmp(fn):
    return _no_grad(lambda a, b: fn(a, b).to(torch.result_type(a, b)))


def _logical(fn):
    return _no_grad(lambda a, b: fn(a != 0, b != 0).to(torch.result_type(a, b)))


def _round(x):
    # CNTK rounds halves up (floor(x + 0.5)), unlike torch's round-half-to-even.
    return torch.floor(x + 0.5)


UNARY = {
    "Negate": torch.neg, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "ReLU": torch.relu,
    "Exp": torch.exp, "Log": _log, "Sqrt": _sqrt, "Square": torch.square, "Abs": torch.abs,
    "Reciprocal": _reciprocal, "Floor": torch.floor, "Ceil": torch.ceil, "Round": _round,
    "Sin": torch.sin, "Cos": torch.cos, "Tan": torch.tan, "Asin": torch.asin, "Acos": torch.acos,
    "Atan": torch.atan, "Sinh": torch.sinh, "Cosh": torch.cosh, "Asinh": torch.asinh, "Atanh": torch.atanh,
    "ELU": lambda x, alpha=1.0: F.elu(x, alpha),
    "SELU": lambda x, scale=1.0507009873554805, alpha=1.6732632423543772: scale * F.elu(x, alpha),
    "LeakyReLU": lambda x, alpha=0.01: F.leaky_relu(x, alpha),
    "Softplus": _softplus,
    "Softsign": lambda x, steepness=1.0: x / (1 + torch.abs(steepness * x)),
    "HardSigmoid": lambda x, alpha=0.2, beta=0.5: torch.clamp(alpha * x + beta, 0.0, 1.0),
    "Pass": lambda x: x,
    "StopGradient": lambda x: x.detach(),
    "ElementNot": _no_grad(lambda x: (x == 0).to(x.dtype)),
    "StraightThrough": _straight_through,
}

BINARY = {
    "Minus": torch.sub, "ElementDivide": _divide, "Pow": _pow,
    "Equal": _cmp(torch.eq), "NotEqual": _cmp(torch.ne), "Less": _cmp(torch.lt),
    "LessEqual": _cmp(torch.le), "Greater": _cmp(torch.gt), "GreaterEqual": _cmp(torch.ge),
    "ElementAnd": _logical(torch.logical_and), "ElementOr": _logical(torch.logical_or),
    "ElementXor": _logical(torch.logical_xor),
    "PReLU": lambda alpha, x: torch.where(x >= 0, x, alpha * x),
}

NARY = {
    "Plus": _fold(torch.add), "ElementTimes": _fold(torch.mul), "LogPlus": _fold(torch.logaddexp),
    "ElementMax": _fold(torch.maximum), "ElementMin": _fold(torch.minimum),
    "Select": _select, "Clip": _clip,
}

_NOT_DIFFERENTIABLE = ("Equal", "NotEqual", "Less", "LessEqual", "Greater", "GreaterEqual",
                       "ElementAnd", "ElementOr", "ElementXor", "ElementNot", "StopGradient")
for _name, _fn in list(UNARY.items()) + list(BINARY.items()) + list(NARY.items()):
    _diff = _name not in _NOT_DIFFERENTIABLE
    # the identity cannot turn padding into NaN/inf, so it needs no padding guard
    register(_name, infer_elementwise, _elementwise_builder(_fn, _diff and _name != "Pass"), differentiable=_diff)
