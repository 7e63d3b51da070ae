"""The op registry: each op declares its type rule and how to build its torch computation.

An op's ``infer(node)`` returns one ``Type`` per output (shape/dtype/dynamic axes, any of them
None while an input is still unknown) and raises ``ValueError`` naming the op and the shapes
when its operands cannot work together. ``build(ctx)`` is called once per execution plan and
returns ``fn(inputs, rt)`` computing the output tensor(s) from input tensors that carry
``ctx.in_ndyn[i]`` leading dynamic dimensions.
"""

from collections import namedtuple

from ..axis import Axis
from .graph import FREE

Type = namedtuple("Type", "shape dtype dynamic_axes is_sparse")
Type.__new__.__defaults__ = (None, None, None, False)

BATCH = Axis.default_batch_axis()

OPS = {}


class OpDef:
    """A registered op: its type rule, its builder and flags the plan and serializer read."""

    __slots__ = ("name", "infer", "build", "num_outputs", "differentiable", "is_delay")

    def __init__(self, name, infer, build, num_outputs=1, differentiable=True, is_delay=False):
        self.name = name
        self.infer = infer
        self.build = build
        self.num_outputs = num_outputs
        self.differentiable = differentiable
        self.is_delay = is_delay


def register(name, infer, build, **kw):
    """Declare an op (once per name); returns its OpDef."""
    if name in OPS:
        raise ValueError("op %s registered twice" % name)
    OPS[name] = OpDef(name, infer, build, **kw)
    return OPS[name]


def get(name):
    """The OpDef of a registered op (ValueError for an unknown name)."""
    try:
        return OPS[name]
    except KeyError:
        raise ValueError("unknown op '%s'" % name) from None


class OpError(ValueError):
    """A graph-construction error raised by an op's type rule."""


def fail(node, msg, *args, error=OpError):
    """Raise ``error`` (an OpError) with ``msg % args``, prefixed by a description of ``node``."""
    raise error("%s: %s" % (node.describe() if hasattr(node, "describe") else node, msg % args if args else msg))


# -- shared type helpers ----------------------------------------------------------

def int_attr(node, name, minimum, default=None):
    """The integer attribute ``name`` of ``node`` (``default`` when absent), at least ``minimum``."""
    v = node.attributes.get(name, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        fail(node, "%s must be an integer >= %d; got %r", name, minimum, v)
    return v


def same_type(node):
    """The type of an op that keeps its (first) operand's shape and dynamic axes; the dtype is
    that of all its operands."""
    x = node.inputs[0]
    return [Type(x._shape, common_dtype(node, node.inputs), x._dynamic_axes)]


def broadcast_shapes(node, shapes):
    """numpy broadcasting of static shapes; -1 dims are wildcards; None shapes are ignored."""
    shapes = [s for s in shapes if s is not None]
    if not shapes:
        return None
    rank = max(len(s) for s in shapes)
    out = []
    for k in range(rank):
        dims = [s[len(s) - rank + k] for s in shapes if len(s) - rank + k >= 0]
        known = {d for d in dims if d >= 0 and d != 1}
        if len(known) > 1:
            fail(node, "operand shapes %s are not broadcast-compatible", " and ".join(str(tuple(s)) for s in shapes))
        if known:
            out.append(known.pop())
        elif FREE in dims and all(d in (FREE, 1) for d in dims):
            out.append(FREE)   # sized at run time, like the operand it comes from
        elif any(d == 1 for d in dims):
            out.append(-1 if any(d < 0 for d in dims) else 1)
        else:
            out.append(-1)
    return tuple(out)


def unify_axes(node, inputs):
    """Dynamic axes of an elementwise combination: batch if any operand has it, plus the one
    sequence axis shared by the sequence operands (two different sequence axes are an error)."""
    known = [v._dynamic_axes for v in inputs if v._dynamic_axes is not None]
    if not known:
        return None
    seq = None
    batch = False
    for axes in known:
        for a in axes:
            if a == BATCH:
                batch = True
            elif seq is None:
                seq = a
            elif seq != a:
                fail(node, "operands have different sequence axes (%s and %s); use sequence.broadcast_as or "
                     "reconcile_dynamic_axes", seq.name, a.name)
    if seq is not None:
        return (BATCH, seq)
    return (BATCH,) if batch else ()


def common_dtype(node, inputs):
    """The dtype of a computation: that of explicitly typed operands (which must agree)."""
    explicit = {v._dtype for v in inputs if v._dtype is not None and v._dtype_explicit}
    if len(explicit) > 1:
        fail(node, "operands have different data types (%s)", ", ".join(sorted(str(d) for d in explicit)))
    if explicit:
        d = explicit.pop()
    else:
        ds = [v._dtype for v in inputs if v._dtype is not None]
        d = max(ds, key=lambda x: x.itemsize) if ds else None
    if d is not None:
        seen = set()
        for v in inputs:
            if v._dtype != d:
                _adopt_upstream(v, d, seen)
    return d


def _adopt_upstream(v, d, seen):
    """Give a computation without explicit dtype, and the untyped leaves it is made of, dtype
    ``d``: a parameter used through other ops (e.g. a Stabilizer's softplus(alpha)) takes the
    dtype of the computation it ends up in, as a directly used one does."""
    stack = [v]
    while stack:
        v = stack.pop()
        if v._dtype_explicit or id(v) in seen:
            continue
        seen.add(id(v))
        if hasattr(v, "_adopt_dtype"):
            v._adopt_dtype(d)
            continue
        p = v._owner
        if p is None:
            continue
        v._dtype = d
        stack.extend(p.inputs)


def normalize_axis(node, axis, rank, allow_new=False):
    """A Python static axis index (possibly negative) into 0..rank-1."""
    if isinstance(axis, Axis):
        axis = axis.static_axis_index()
    a = axis + rank if axis < 0 else axis
    if not (0 <= a < rank + (1 if allow_new else 0)):
        fail(node, "axis %d is out of range for an operand of rank %d", axis, rank)
    return a


def ndyn(axes):
    """How many leading dynamic dimensions a value with these dynamic axes carries."""
    return len(axes) if axes else 0


class BuildContext:
    """What an op's ``build`` may know about one node of a plan."""

    __slots__ = ("node", "attrs", "in_shapes", "in_ndyn", "in_axes", "out_shapes", "out_ndyn", "out_axes",
                 "step", "key")

    def __init__(self, node, in_ndyn, out_ndyn, step, key):
        self.node = node
        self.attrs = node.attributes
        self.in_shapes = [v._shape for v in node.inputs]
        self.in_axes = [v._dynamic_axes for v in node.inputs]
        self.out_shapes = [v._shape for v in node.outputs]
        self.out_axes = [v._dynamic_axes for v in node.outputs]
        self.in_ndyn = in_ndyn
        self.out_ndyn = out_ndyn
        self.step = step  # True when built for one time step inside a recurrent loop
        self.key = key    # identifies this node instance (for per-node runtime state)

    def align(self, i, out_ndyn=None, out_rank=None, strict=False):
        """A function reshaping input i so it broadcasts against the output by torch's rules:
        missing dynamic dims become size-1 dims after the existing ones, and the static shape
        is left-padded with 1s to the output's rank."""
        D = self.out_ndyn if out_ndyn is None else out_ndyn
        R = len(self.out_shapes[0]) if out_rank is None else out_rank
        d = self.in_ndyn[i]
        r = len(self.in_shapes[i])
        if d == D and r == R:
            return None
        if d == 0 and not strict and R >= r:
            # torch right-aligns; a leaf with no dynamic dims only needs static padding,
            # which right alignment already gives as long as ranks line up from the right.
            return None
        pad = (1,) * (D - d) + (1,) * (R - r)

        def f(t, d=d, pad=pad):
            s = t.shape
            return t.reshape(s[:d] + pad + s[d:])
        return f


class DeviceConstant:
    """A tensor an op makes once from static data (``make()``, on the CPU) and keeps a copy of
    for each device it is used on, converted to the dtype of the computation if it is
    floating-point."""

    __slots__ = ("make", "cache")

    def __init__(self, make):
        self.make, self.cache = make, {}

    def get(self, like):
        """The tensor on the device of the tensor ``like`` (in its dtype when floating-point)."""
        key = (like.device, like.dtype)
        t = self.cache.get(key)
        if t is None:
            t = self.make()
            t = self.cache[key] = t.to(device=like.device, dtype=like.dtype if t.is_floating_point() else t.dtype)
        return t


def aligned(aligns, ins):
    """Input tensors reshaped by the functions ``BuildContext.align`` returned (None: as is)."""
    return [x if a is None else a(x) for a, x in zip(aligns, ins)]
