"""CNTK's op library: every public op builds one primitive (or a small composite) and
returns a Function. Shapes and dynamic axes are checked when the op is created."""

import numbers

import numpy as np

from ..axis import Axis
from ..engine.graph import Variable, Primitive as _Primitive, Block as _Block, INFERRED, FREE, np_dtype as _np_dtype
from ..engine.infer import infer_node as _infer_node, infer_block as _infer_block
from ..engine.oplib import linalg as _linalg, reduce as _reduce, shape as _shape  # noqa: F401 (registers ops)
from ..engine.oplib import elementwise as _elementwise, sequence as _sequence_ops, loss as _loss  # noqa: F401
from ..engine.oplib import rearrange as _rearrange, select as _select  # noqa: F401
from ..engine.oplib.linalg import TIMES_NO_INFERRED_INPUT_RANK, TIMES_REDUCE_SEQUENCE_AXIS_WITHOUT_INFERRED_INPUT_RANK  # noqa: F401
from ..variables import Parameter, Constant
from .functions import Function, CloneMethod, ModelFormat, load_model, _as_variable  # noqa: F401 (re-exported)

InferredDimension = INFERRED
FreeDimension = FREE


# -- building blocks ---------------------------------------------------------------------

def sanitize_input(x, dtype=None):
    """An operand as a Variable: Functions give their output, numbers and arrays a Constant."""
    if isinstance(x, Variable):
        return x
    if isinstance(x, Function):
        return x.output
    if x is None:
        raise ValueError("an op operand is None")
    if isinstance(x, (numbers.Number, np.generic)):
        return Constant(value=np.asarray(x, dtype=dtype or np.float32))
    if isinstance(x, (np.ndarray, list, tuple)):
        a = np.asarray(x)
        return Constant(value=a if a.dtype == np.float64 else a.astype(dtype or np.float32))
    raise TypeError("cannot use an object of type %s as an op operand" % type(x).__name__)


def _op(op, operands, attributes=None, name="", num_outputs=1):
    """One primitive applied to ``operands``, type-checked now; returns its Function."""
    p = _Primitive(op, [sanitize_input(x) for x in operands], attributes, name, num_outputs)
    _infer_node(p)
    return Function(p.outputs)


def _axes_attr(axis, op="ReduceElements"):
    """A reduction's axis argument as the ReduceElements 'axes' attribute."""
    if axis is None or axis == Axis.all_static_axes():
        return _reduce.ALL_STATIC
    if isinstance(axis, Axis):
        if axis == Axis.all_axes():
            return _reduce.ALL
        if axis == Axis.default_batch_axis():
            return _reduce.BATCH_AXIS
        if axis.is_static_axis:
            return [axis.static_axis_index()]
        raise ValueError("cannot reduce over the dynamic axis %s with this op; use the C.sequence reductions" % axis)
    if isinstance(axis, (list, tuple)):
        out = []
        for a in axis:
            r = _axes_attr(a, op)
            if not isinstance(r, list):
                raise ValueError("a list of reduction axes may only contain static axes")
            out += r
        return out
    return [_int_arg(op, "axis", axis)]


def _int_arg(op, what, value, minimum=None):
    """An integer argument of ``op`` (an integral float is accepted, as CNTK does)."""
    ok = not isinstance(value, bool) and (isinstance(value, (numbers.Integral, np.integer)) or
                                          (isinstance(value, (float, np.floating)) and float(value).is_integer()))
    if not ok or (minimum is not None and int(value) < minimum):
        raise ValueError("%s: %s must be an integer%s; got %r"
                         % (op, what, "" if minimum is None else " >= %d" % minimum, value))
    return int(value)


def _float_arg(op, what, value):
    """A real-number argument of ``op``."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("%s: %s must be a number; got %r" % (op, what, value)) from None


def _static_axis(axis, op="axis argument"):
    """A static axis argument (an int or a static Axis) of ``op`` as an int."""
    if isinstance(axis, Axis):
        if not axis.is_static_axis:
            raise ValueError("%s: only a static axis can be used here; got %s" % (op, axis))
        return axis.static_axis_index()
    return _int_arg(op, "axis", axis)


# -- variables -----------------------------------------------------------------------------

def input_variable(shape, dtype=np.float32, needs_gradient=False, is_sparse=False,
                   dynamic_axes=None, name=""):
    """A data entry point; by default it has only the batch axis."""
    if dynamic_axes is None:
        dynamic_axes = [Axis.default_batch_axis()]
    axes = tuple(dynamic_axes)
    seqs = [a for a in axes if a != Axis.default_batch_axis()]
    if len(seqs) > 1:
        raise ValueError("an input can have at most one sequence axis; got %s" % (axes,))
    ordered = ((Axis.default_batch_axis(),) if Axis.default_batch_axis() in axes else ()) + tuple(seqs)
    if shape is None:
        raise ValueError("input_variable needs a shape")
    v = Variable(shape=shape, dtype=dtype or np.float32, dynamic_axes=ordered, is_sparse=is_sparse,
                 needs_gradient=needs_gradient, name=name, kind="input")
    if any(d < 0 for d in v._shape):
        raise ValueError("input_variable '%s': the shape %s must be fully known" % (name, v._shape))
    return v


def input(shape, dtype=np.float32, needs_gradient=False, is_sparse=False, dynamic_axes=None, name=""):
    """Deprecated alias of input_variable."""
    return input_variable(shape, dtype, needs_gradient, is_sparse, dynamic_axes, name)


def placeholder(shape=None, dynamic_axes=None, name=""):
    """An unbound input, bound later by replace_placeholders or by calling the function."""
    return Variable(shape=shape, dtype=None, dynamic_axes=dynamic_axes, name=name, kind="placeholder",
                    dtype_explicit=False)


def parameter(shape=None, init=None, dtype=None, device=None, name=""):
    """A learnable Parameter; -1 dims of ``shape`` are inferred at first use."""
    return Parameter(shape, init, dtype, device, name)


def constant(value=None, shape=None, dtype=None, device=None, name=""):
    """A Constant holding ``value`` (a scalar is broadcast to ``shape``)."""
    return Constant(value, shape, dtype, device, name)


def output_variable(shape, dtype, dynamic_axes, needs_gradient=True, name=""):
    """A free-standing output variable of the given type."""
    return Variable(shape=shape, dtype=dtype, dynamic_axes=dynamic_axes, needs_gradient=needs_gradient,
                    name=name, kind="output")


# -- elementwise ------------------------------------------------------------------------------

def _unary(op, doc):
    def f(x, name=""):
        return _op(op, [x], name=name)
    f.__doc__ = doc
    return f


negate = _unary("Negate", "Elementwise -x.")
sigmoid = _unary("Sigmoid", "Elementwise logistic function.")
tanh = _unary("Tanh", "Elementwise hyperbolic tangent.")
relu = _unary("ReLU", "Elementwise max(x, 0).")
exp = _unary("Exp", "Elementwise e**x.")
log = _unary("Log", "Elementwise natural logarithm.")
sqrt = _unary("Sqrt", "Elementwise square root.")
square = _unary("Square", "Elementwise x*x.")
abs = _unary("Abs", "Elementwise absolute value.")  # noqa: A001 (CNTK's name)
reciprocal = _unary("Reciprocal", "Elementwise 1/x.")
floor = _unary("Floor", "Elementwise floor.")
ceil = _unary("Ceil", "Elementwise ceiling.")
round = _unary("Round", "Elementwise rounding, halves up.")  # noqa: A001
sin = _unary("Sin", "Elementwise sine.")
cos = _unary("Cos", "Elementwise cosine.")
tan = _unary("Tan", "Elementwise tangent.")
asin = _unary("Asin", "Elementwise arcsine.")
acos = _unary("Acos", "Elementwise arccosine.")
atan = _unary("Atan", "Elementwise arctangent.")
sinh = _unary("Sinh", "Elementwise hyperbolic sine.")
cosh = _unary("Cosh", "Elementwise hyperbolic cosine.")
asinh = _unary("Asinh", "Elementwise inverse hyperbolic sine.")
atanh = _unary("Atanh", "Elementwise inverse hyperbolic tangent.")
element_not = _unary("ElementNot", "Elementwise logical not (1 where x == 0).")
stop_gradient = _unary("StopGradient", "Identity in the forward pass; blocks the gradient.")


def elu(x, alpha=1.0, name=""):
    """Exponential linear unit: x where x > 0, else alpha * (exp(x) - 1)."""
    return _op("ELU", [x], {"alpha": _float_arg("elu", "alpha", alpha)}, name)


def selu(x, scale=1.0507009873554805, alpha=1.6732632423543772, name=""):
    """Scaled exponential linear unit: scale * elu(x, alpha)."""
    return _op("SELU", [x], {"scale": _float_arg("selu", "scale", scale), "alpha": _float_arg("selu", "alpha", alpha)},
               name)


def leaky_relu(x, alpha=0.01, name=""):
    """x where x > 0, else alpha * x."""
    return _op("LeakyReLU", [x], {"alpha": _float_arg("leaky_relu", "alpha", alpha)}, name)


def softplus(x, steepness=1, name=""):
    """log(1 + exp(steepness * x)) / steepness."""
    return _op("Softplus", [x], {"steepness": _float_arg("softplus", "steepness", steepness)}, name)


def softsign(x, steepness=1, name=""):
    """x / (1 + |steepness * x|)."""
    return _op("Softsign", [x], {"steepness": _float_arg("softsign", "steepness", steepness)}, name)


def hard_sigmoid(x, alpha=0.2, beta=0.5, name=""):
    """clip(alpha * x + beta, 0, 1)."""
    return _op("HardSigmoid", [x], {"alpha": _float_arg("hard_sigmoid", "alpha", alpha),
                                       "beta": _float_arg("hard_sigmoid", "beta", beta)}, name)


def param_relu(alpha, x, name=""):
    """Parametric ReLU: x where x >= 0, else alpha * x."""
    return _op("PReLU", [alpha, x], name=name)


def straight_through_impl(x, name=""):
    """1 where x > 0, else -1; the gradient passes through where |x| <= 1."""
    return _op("StraightThrough", [x], name=name)


def _binary(op, doc):
    def f(left, right, name=""):
        return _op(op, [left, right], name=name)
    f.__doc__ = doc
    return f


minus = _binary("Minus", "Elementwise left - right, with broadcasting.")
element_divide = _binary("ElementDivide", "Elementwise left / right, with broadcasting.")
equal = _binary("Equal", "1 where left == right, else 0.")
not_equal = _binary("NotEqual", "1 where left != right, else 0.")
less = _binary("Less", "1 where left < right, else 0.")
less_equal = _binary("LessEqual", "1 where left <= right, else 0.")
greater = _binary("Greater", "1 where left > right, else 0.")
greater_equal = _binary("GreaterEqual", "1 where left >= right, else 0.")
element_and = _binary("ElementAnd", "Elementwise logical and.")
element_or = _binary("ElementOr", "Elementwise logical or.")
element_xor = _binary("ElementXor", "Elementwise logical xor.")


def pow(base, exponent, name=""):  # noqa: A001
    """Elementwise base ** exponent."""
    return _op("Pow", [base, exponent], name=name)


def _nary(op, doc):
    def f(left, right, *more, name=""):
        return _op(op, [left, right] + list(more), name=name)
    f.__doc__ = doc
    return f


plus = _nary("Plus", "Elementwise sum of two or more operands, with broadcasting.")
element_times = _nary("ElementTimes", "Elementwise product of two or more operands, with broadcasting.")
log_add_exp = _nary("LogPlus", "Elementwise log(exp(a) + exp(b) + ...).")
element_max = _nary("ElementMax", "Elementwise maximum of two or more operands.")
element_min = _nary("ElementMin", "Elementwise minimum of two or more operands.")


def sum(*operands, name=""):  # noqa: A001
    """Elementwise sum of the operands."""
    if len(operands) == 1:
        return alias(operands[0], name)
    return _op("Plus", list(operands), name=name)


def mean(*operands, name=""):
    """Elementwise mean of the operands."""
    s = sum(*operands) if len(operands) > 1 else operands[0]
    return element_times(s, 1.0 / len(operands), name=name)


def clip(x, min_value, max_value, name=""):
    """x limited to [min_value, max_value] elementwise."""
    return _op("Clip", [x, min_value, max_value], name=name)


def element_select(flag, value_if_true, value_if_false, name=""):
    """value_if_true where flag != 0, else value_if_false."""
    return _op("Select", [flag, value_if_true, value_if_false], name=name)


def alias(x, name=""):
    """A named identity (a new node that passes its input through)."""
    return _op("Pass", [x], name=name)


# -- linear algebra ---------------------------------------------------------------------------

def times(left, right, output_rank=1, infer_input_rank_to_map=TIMES_NO_INFERRED_INPUT_RANK, name=""):
    """Generalised matrix product: the last rank(right)-output_rank axes of left contract with
    the leading axes of right."""
    return _op("Times", [left, right], {"output_rank": _int_arg("times", "output_rank", output_rank),
                                        "infer_input_rank_to_map": _int_arg("times", "infer_input_rank_to_map",
                                                                            infer_input_rank_to_map)}, name)


def times_transpose(left, right, name=""):
    """left times the transpose of right."""
    return _op("TransposeTimes", [left, right], name=name)


# -- reductions -------------------------------------------------------------------------------

def _reduction(op, doc):
    def f(x, axis=None, keepdims=True, name=""):
        return _op("ReduceElements", [x], {"reduction": op, "axes": _axes_attr(axis), "keepdims": bool(keepdims)}, name)
    f.__doc__ = doc
    return f


reduce_sum = _reduction("Sum", "Sum over the given axes (None: all static axes).")
reduce_mean = _reduction("Mean", "Mean over the given axes.")
reduce_max = _reduction("Max", "Maximum over the given axes.")
reduce_min = _reduction("Min", "Minimum over the given axes.")
reduce_prod = _reduction("Prod", "Product over the given axes.")
reduce_log_sum_exp = _reduction("LogSum", "log(sum(exp(x))) over the given axes.")
reduce_l1 = _reduction("L1", "Sum of absolute values over the given axes.")
reduce_l2 = _reduction("L2", "Euclidean norm over the given axes.")
reduce_sum_square = _reduction("SumSquare", "Sum of squares over the given axes.")


def argmax(x, axis=None, name=""):
    """Index of the maximum along an axis (a flat index when axis is None), as a float."""
    return _op("ReduceElements", [x], {"reduction": "Argmax", "axes": _axes_attr(axis), "keepdims": True}, name)


def argmin(x, axis=None, name=""):
    """Index of the minimum along an axis (a flat index when axis is None), as a float."""
    return _op("ReduceElements", [x], {"reduction": "Argmin", "axes": _axes_attr(axis), "keepdims": True}, name)


# -- softmax family ---------------------------------------------------------------------------

def softmax(x, axis=None, name=""):
    """Softmax over an axis (None: over all static axes together)."""
    return _op("Softmax", [x], {"axis": None if axis is None else _static_axis(axis, "softmax")}, name)


def log_softmax(x, axis=None, name=""):
    """log(softmax(x)) over an axis (None: over all static axes together)."""
    return _op("LogSoftmax", [x], {"axis": None if axis is None else _static_axis(axis, "log_softmax")}, name)


def hardmax(x, name=""):
    """1 at the (first) maximum of the whole item, 0 elsewhere."""
    return _op("Hardmax", [x], {"axis": None}, name)


# -- shape manipulation -----------------------------------------------------------------------

def reshape(x, shape, begin_axis=None, end_axis=None, name=""):
    """Reshape the static axes [begin_axis, end_axis) into ``shape`` (one dim may be -1)."""
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    return _op("Reshape", [x], {"shape": [_int_arg("reshape", "a dimension of the shape", d) for d in shape],
                                "begin_axis": None if begin_axis is None else _static_axis(begin_axis, "reshape"),
                                "end_axis": None if end_axis is None else _static_axis(end_axis, "reshape")}, name)


def slice(x, axis, begin_index, end_index, strides=None, name=""):  # noqa: A001
    """Slice along one or several static axes; end_index 0 means the end of the axis."""
    if isinstance(axis, Axis) and axis.is_sequence_axis:
        return sequence.slice(x, begin_index, end_index, name=name)
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    begins = list(begin_index) if isinstance(begin_index, (list, tuple)) else [begin_index]
    ends = list(end_index) if isinstance(end_index, (list, tuple)) else [end_index]
    if strides is None:
        strides = [1] * len(axes)
    elif not isinstance(strides, (list, tuple)):
        strides = [strides]
    if not (len(axes) == len(begins) == len(ends) == len(strides)):
        raise ValueError("slice: axis, begin_index, end_index and strides must have the same length")
    return _op("Slice", [x], {"axis": [_static_axis(a, "slice") for a in axes],
                              "begin_index": [_int_arg("slice", "begin_index", b) for b in begins],
                              "end_index": [_int_arg("slice", "end_index", e) for e in ends],
                              "strides": [_int_arg("slice", "strides", s) for s in strides]}, name)


def splice(*inputs, axis=-1, name=""):
    """Concatenate along an existing axis, or stack along a new leading one."""
    if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
        inputs = tuple(inputs[0])
    if not inputs:
        raise ValueError("splice: needs at least one operand")
    if isinstance(axis, Axis) and axis == Axis.new_leading_axis():
        a = _shape.NEW_LEADING
    else:
        a = _static_axis(axis, "splice")
    return _op("Splice", list(inputs), {"axis": a}, name)


def transpose(x, perm=None, name=""):
    """Permute the static axes (default: reverse them)."""
    v = sanitize_input(x)
    if perm is None:
        perm = list(range(len(v.shape)))[::-1]
    return _op("TransposeAxes", [v], {"perm": [_static_axis(p, "transpose") for p in perm]}, name)


def swapaxes(x, axis1=0, axis2=1, name=""):
    """Swap two static axes."""
    v = sanitize_input(x)
    r = len(v.shape)
    a1, a2 = _static_axis(axis1, "swapaxes"), _static_axis(axis2, "swapaxes")
    for a in (a1, a2):
        if not -r <= a < r:
            raise ValueError("swapaxes(%s): axis %d is out of range for an operand of rank %d"
                             % (v._describe(), a, r))
    a1, a2 = a1 % r, a2 % r
    perm = list(range(r))
    perm[a1], perm[a2] = perm[a2], perm[a1]
    return _op("TransposeAxes", [v], {"perm": perm}, name)


# -- graph utilities --------------------------------------------------------------------------

def combine(*operands, name=""):
    """A function whose outputs are the outputs of all operands."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    outs = []
    for o in operands:
        vs = o.outputs if isinstance(o, Function) else [sanitize_input(o)]
        for v in vs:
            if any(v is u for u in outs):
                raise ValueError("combine: the output %s is given twice; wrap one of them in alias()" % v._describe())
            outs.append(v)
    f = Function(outs)
    if name:
        f._name = name
    return f


def as_composite(root_function, name=""):
    """A composite Function with the outputs of ``root_function``."""
    f = Function(root_function.outputs)
    if name:
        f._name = name
    return f


def as_block(composite, block_arguments_map, block_op_name, block_instance_name=""):
    """Package ``composite`` as one opaque node; its placeholders are bound to actual inputs."""
    mapping = [(_as_variable(ph), _as_variable(actual)) for ph, actual in
               (block_arguments_map.items() if isinstance(block_arguments_map, dict) else block_arguments_map)]
    for ph, _ in mapping:
        if not ph.is_placeholder:
            raise ValueError("as_block: %s in the argument map is not a placeholder" % ph._describe())
    unmapped = [p for p in composite.placeholders if not any(p is m for m, _ in mapping)]
    if unmapped:
        raise ValueError("as_block: the placeholders %s are not mapped" % ", ".join(p._describe() for p in unmapped))
    p = _Primitive("Block", [a for _, a in mapping], {}, block_instance_name, len(composite.outputs),
                   block=_Block(composite.outputs, mapping, block_op_name))
    _infer_block(p)
    return Function(p.outputs)


# ===========================================================================================
# shape, selection and value ops (pad ... assign)
# ===========================================================================================

CONSTANT_PAD = _rearrange.CONSTANT_PAD
REFLECT_PAD = _rearrange.REFLECT_PAD
SYMMETRIC_PAD = _rearrange.SYMMETRIC_PAD


def pad(x, pattern, mode=CONSTANT_PAD, constant_value=0, name=""):
    """Pad every static axis by ``pattern[i] = (before, after)`` cells: with ``constant_value``
    (CONSTANT_PAD), mirrored without repeating the edge (REFLECT_PAD) or with it (SYMMETRIC_PAD)."""
    pattern = list(pattern)
    if any(not isinstance(p, (list, tuple, np.ndarray)) or len(p) != 2 for p in pattern):
        raise ValueError("pad: the pattern must be a list of (before, after) pairs; got %r" % (pattern,))
    head = [_int_arg("pad", "a padding size", p[0], 0) for p in pattern]
    foot = [_int_arg("pad", "a padding size", p[1], 0) for p in pattern]
    return _op("Pad", [x], {"head": head, "foot": foot, "mode": _int_arg("pad", "mode", mode),
                            "constant_value": _float_arg("pad", "constant_value", constant_value)}, name)


def squeeze(x, axes=None, name=""):
    """Remove axes of size 1: all of them, or those in ``axes`` (which must have size 1)."""
    if axes is not None:
        axes = [_static_axis(a, "squeeze") for a in (axes if isinstance(axes, (list, tuple)) else [axes])]
    return _op("Squeeze", [x], {"axes": axes}, name)


def expand_dims(x, axis, name=""):
    """Insert an axis of size 1. As in CNTK 2.7, a non-negative ``axis`` a inserts it after
    axis a (``expand_dims(x, 0)`` on (2, 3) gives (2, 1, 3)); a negative one counts positions
    from the end (-1 appends it)."""
    return _op("ExpandDims", [x], {"axis": _static_axis(axis, "expand_dims")}, name)


def flatten(x, axis=None, name=""):
    """Reshape into 2D: the axes before ``axis`` (default 0) form the first dimension, the rest
    the second; a negative axis counts positions from the end (-1: after the last axis)."""
    if axis is None or (isinstance(axis, Axis) and axis == Axis.default_batch_axis()):
        a = None if axis is None else "batch"
    else:
        a = _static_axis(axis, "flatten")
    return _op("Flatten", [x], {"axis": a}, name)


def depth_to_space(operand, block_size, name=""):
    """Move channel blocks of a (C*b*b, H, W) item to b x b spatial blocks: (C, H*b, W*b);
    channel (i*b + j)*C + c goes to pixel (h*b + i, w*b + j) of channel c."""
    return _op("DepthToSpace", [operand], {"block_size": _int_arg("depth_to_space", "block_size", block_size, 1)},
               name)


def space_to_depth(operand, block_size, name=""):
    """The inverse of depth_to_space: (C, H, W) items become (C*b*b, H/b, W/b)."""
    return _op("SpaceToDepth", [operand], {"block_size": _int_arg("space_to_depth", "block_size", block_size, 1)},
               name)


def crop_manual(node_input, node_referent, offset_x, offset_y, name=""):
    """Crop the last two axes (height, width) of ``node_input`` to the size of
    ``node_referent``'s, starting at (offset_y, offset_x)."""
    return _op("Crop", [node_input, node_referent],
               {"offset_x": _int_arg("crop_manual", "offset_x", offset_x, 0),
                "offset_y": _int_arg("crop_manual", "offset_y", offset_y, 0)}, name)


def crop_automatic(node_input, node_referent, name=""):
    """Crop like crop_manual, with the offsets found from the spatial transforms (convolution,
    pooling, elementwise ops) between the two inputs and their common ancestor."""
    return _op("Crop", [node_input, node_referent], {"offset_x": None, "offset_y": None}, name)


def crop_automatic_with_ancestors(node_input, node_referent, ancestor_input, ancestor_referent, name=""):
    """crop_automatic for inputs without a common ancestor: ``ancestor_input`` (of the input)
    and ``ancestor_referent`` (of the referent) count as the same node."""
    return _op("Crop", [node_input, node_referent, ancestor_input, ancestor_referent],
               {"offset_x": None, "offset_y": None}, name)


def to_batch(x, name=""):
    """Turn the first static axis of ``x`` (which has no dynamic axes) into the batch axis."""
    return _op("ToBatch", [x], name=name)


def unpack_batch(x, name=""):
    """Turn the batch axis into a leading static axis (of free size); no dynamic axes remain."""
    return _op("UnpackBatch", [x], name=name)


def gather(reference, indices, axis=None, name=""):
    """Pick slices of ``reference`` (no dynamic axes) along a static axis (default the first):
    the result is ``reference.shape[:axis] + indices.shape + reference.shape[axis+1:]``.
    Indices are integers, possibly stored as floats."""
    a = None if axis is None else _static_axis(axis, "gather")
    return _op("Gather", [reference, indices], {"axis": a}, name)


def one_hot(x, num_classes, sparse_output=False, axis=-1, name=""):
    """One-hot vectors of length ``num_classes`` for the integer values of ``x``, along a new
    axis at position ``axis`` of the result; an index outside [0, num_classes) gives zeros."""
    return _op("OneHot", [x], {"num_classes": _int_arg("one_hot", "num_classes", num_classes, 1),
                               "sparse_output": bool(sparse_output), "axis": _static_axis(axis, "one_hot")}, name)


def top_k(x, k, axis=-1, name=""):
    """The ``k`` largest values along ``axis``, sorted (output 0), and their indices as floats
    (output 1); the gradient of the values goes back to where they were taken from."""
    return _op("TopK", [x], {"k": _int_arg("top_k", "k", k, 1), "axis": _static_axis(axis, "top_k")}, name,
               num_outputs=2)


def eye_like(x, sparse_output=True, name=""):
    """An identity matrix of the shape of ``x``, which must have exactly two axes counting the
    batch axis (with it, row n of sample n is 1)."""
    return _op("EyeLikeOp", [x], {"sparse_output": bool(sparse_output)}, name)


def ones_like(x, name=""):
    """Ones with the shape and dynamic axes of ``x``."""
    return _op("ConstantOp", [x], {"fill_value": 1.0}, name)


def zeros_like(x, name=""):
    """Zeros with the shape and dynamic axes of ``x``."""
    return _op("ConstantOp", [x], {"fill_value": 0.0}, name)


def cast(node_input, dtype, name=""):
    """``node_input`` converted to ``dtype`` (float32, float64 or float16); forward only, as in
    CNTK 2.7: no gradient flows back through it."""
    try:
        dt = np.dtype(_np_dtype(dtype)).name
    except (TypeError, ValueError) as e:
        raise ValueError("cast: %s (got dtype %r)" % (e, dtype)) from None
    return _op("Cast", [node_input], {"dtype": dt}, name)


def reconcile_dynamic_axes(x, dynamic_axes_as, name=""):
    """``x`` with the dynamic axes of ``dynamic_axes_as``: broadcast over the axes it lacks, or
    relabelled to another sequence axis of the same lengths."""
    return _op("ReconcileDynamicAxis", [x, dynamic_axes_as], name=name)


def assign(ref, input, name=""):  # noqa: A002 (CNTK's name)
    """Write ``input`` into ``ref`` (a Parameter or Constant, same shape, no dynamic axes) once
    the whole pass is done: every reader in the pass sees the old value. The output is the new
    value."""
    return _op("Assign", [ref, input], name=name)


from . import sequence  # noqa: E402
from .sequence import past_value, future_value, to_sequence, to_sequence_like  # noqa: E402,F401
from .sampling import *  # noqa: E402,F401,F403
from .convolution import *  # noqa: E402,F401,F403
from .normalization import *  # noqa: E402,F401,F403
from .ctc import *  # noqa: E402,F401,F403
from .rnn import *  # noqa: E402,F401,F403
