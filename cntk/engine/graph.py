"""Graph nodes: variables (leaves and op outputs) and primitive functions, plus traversal."""

import contextlib
import itertools
import sys

import numpy as np
import torch

from ..axis import Axis, sequence_axis_of

_counters = {}
# Bumped whenever a graph is mutated in place (placeholders bound, shapes inferred,
# parameters materialised) so that cached execution plans know to rebuild.
_graph_epoch = [0]


def bump_epoch():
    """Mark every cached plan as stale (the graph was mutated in place)."""
    _graph_epoch[0] += 1


def graph_epoch():
    """The current graph epoch (plans remember the one they were built in)."""
    return _graph_epoch[0]


def new_uid(prefix):
    """A process-unique uid such as ``Parameter12``."""
    c = _counters.get(prefix)
    if c is None:
        c = _counters[prefix] = itertools.count()
    return "%s%d" % (prefix, next(c))


INFERRED = -1  # C.InferredDimension
FREE = -3      # C.FreeDimension

_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
           np.dtype(np.float16): torch.float16}


def np_dtype(dtype):
    """Normalise a dtype argument to one of the numpy float types CNTK supports."""
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        for k, v in _DTYPES.items():
            if v == dtype:
                return k
    d = np.dtype(dtype)
    if d not in _DTYPES:
        raise ValueError("unsupported data type %s: CNTK supports float32, float64 and float16" % d)
    return d


def torch_dtype(dtype):
    """The torch dtype of a supported numpy float dtype."""
    return _DTYPES[np.dtype(dtype)]


def sanitize_shape(shape):
    """An int or a sequence of ints as a tuple shape (None stays None: not known yet)."""
    if shape is None:
        return None
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def shape_known(shape, free_ok=False):
    """Whether a shape is known and has no inferred (negative) dimensions; with ``free_ok`` a
    FreeDimension (sized only at run time) counts as known."""
    return shape is not None and all(d >= 0 or (free_ok and d == FREE) for d in shape)


class VariableType:
    """A variable's type record (CNTK's ``Variable._Type``): shape, dtype, dynamic axes,
    sparsity and needs_gradient. Usable with ``update_signature`` and ``**`` unpacking."""

    _fields = ("shape", "dtype", "dynamic_axes", "is_sparse", "needs_gradient")

    def __init__(self, shape=None, dtype=None, dynamic_axes=None, is_sparse=None, needs_gradient=None):
        self.shape = sanitize_shape(shape)
        self.dtype = dtype
        self.dynamic_axes = tuple(dynamic_axes) if dynamic_axes is not None else None
        self.is_sparse = is_sparse
        self.needs_gradient = needs_gradient

    def keys(self):
        return [k for k in self._fields if getattr(self, k) is not None]

    def __getitem__(self, k):
        return getattr(self, k)

    def __eq__(self, other):
        return isinstance(other, VariableType) and all(getattr(self, k) == getattr(other, k) for k in self._fields)

    def __hash__(self):
        return hash(tuple(getattr(self, k) for k in self._fields if k != "dtype"))

    def __repr__(self):
        return "Type(%s)" % ", ".join("%s=%r" % (k, getattr(self, k)) for k in self.keys())


def _axis_names(axes):
    """Dynamic axes as CNTK prints them: '#' for the batch axis, '*' for the default sequence axis."""
    return ", ".join("#" if a == Axis.default_batch_axis() else "*" if a == Axis.default_dynamic_axis() else a.name
                     for a in axes)


class Variable:
    """A symbolic value in a graph: input, output, parameter, constant or placeholder."""

    _Type = VariableType

    _kind = "variable"
    _uid_prefix = "Variable"
    # kinds that get their own uid prefix; others (parameters, constants) use _uid_prefix
    _KIND_UID_PREFIX = {"input": "Input", "output": "Output", "placeholder": "Placeholder"}

    def __init__(self, shape=None, dtype=None, dynamic_axes=None, is_sparse=False,
                 needs_gradient=False, name="", owner=None, kind=None, dtype_explicit=True):
        self._shape = sanitize_shape(shape)
        self._dtype = np_dtype(dtype)
        self._dtype_explicit = dtype_explicit and dtype is not None
        self._dynamic_axes = tuple(dynamic_axes) if dynamic_axes is not None else None
        self._is_sparse = bool(is_sparse)
        self._needs_gradient = bool(needs_gradient)
        self._name = name or ""
        self._owner = owner
        if kind is not None:
            self._kind = kind
        self._uid = new_uid(self._KIND_UID_PREFIX.get(self._kind, self._uid_prefix))

    # -- properties as CNTK exposes them --------------------------------------
    @property
    def shape(self):
        """The static shape (() while it is not inferred yet)."""
        return self._shape if self._shape is not None else ()

    @property
    def dtype(self):
        """The numpy scalar type (float32 while it is not inferred yet)."""
        return (self._dtype or np.dtype(np.float32)).type

    @property
    def dynamic_axes(self):
        """The dynamic axes: batch, then the sequence axis if any."""
        return self._dynamic_axes if self._dynamic_axes is not None else ()

    @property
    def is_sparse(self):
        return self._is_sparse

    @property
    def type(self):
        """The type record (shape, dtype, dynamic axes, sparsity, needs_gradient)."""
        return VariableType(self._shape, self.dtype, self._dynamic_axes, self._is_sparse, self._needs_gradient)

    @property
    def needs_gradient(self):
        return self._needs_gradient

    @property
    def name(self):
        return self._name

    @property
    def uid(self):
        return self._uid

    @property
    def owner(self):
        """The primitive Function that produces this output (None for leaves)."""
        p = self._owner
        if p is None:
            return None
        from ..ops.functions import Function
        return Function(p.outputs, _prim=p)

    @property
    def kind(self):
        return self._kind

    @property
    def is_input(self):
        return self._kind == "input"

    @property
    def is_output(self):
        return self._kind == "output"

    @property
    def is_parameter(self):
        return self._kind == "parameter"

    @property
    def is_constant(self):
        return self._kind == "constant"

    @property
    def is_placeholder(self):
        return self._kind == "placeholder"

    @property
    def sequence_axis(self):
        """The sequence axis among the dynamic axes, or None."""
        return sequence_axis_of(self._dynamic_axes)

    @property
    def has_sequence_axis(self):
        return self.sequence_axis is not None

    def as_parameter(self):
        """This variable, if it is a Parameter (else TypeError)."""
        if not self.is_parameter:
            raise TypeError("cannot convert %s to a Parameter" % self)
        return self

    def as_constant(self):
        """This variable, if it is a Constant (else TypeError)."""
        if not self.is_constant:
            raise TypeError("cannot convert %s to a Constant" % self)
        return self

    def _type_str(self):
        shape = "?" if self._shape is None else "(" + ", ".join(str(d) for d in self._shape) + (",)" if len(self._shape) == 1 else ")")
        axes = "?" if self._dynamic_axes is None else "[%s]" % _axis_names(self._dynamic_axes)
        return "%s, %s" % (shape, axes)

    def __repr__(self):
        """CNTK's description of a variable: ``Input('x', [#, *], [3 x 4])``: kind, name (or uid),
        dynamic axes (# the batch axis, * the default sequence axis, [???] not known yet) and shape
        in Python order (? an inferred dimension, * a free one, [???] not known yet)."""
        axes = "[%s]" % ("???" if self._dynamic_axes is None else _axis_names(self._dynamic_axes))
        if self._shape is None:
            shape = "[???]"
        else:
            shape = "[%s]" % " x ".join("?" if d == INFERRED else "*" if d == FREE else str(d) for d in self._shape)
        return "%s('%s', %s, %s)" % (self._kind.capitalize(), self._name or self._uid, axes, shape)

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other

    def _describe(self):
        return "%s '%s' %s" % (self._kind, self._name or self._uid, self._type_str())


class Primitive:
    """One op application: op name, attributes, input and output variables.

    A block primitive also carries the composite it wraps (``block_root`` outputs) and the
    mapping of the composite's placeholders to the block's actual inputs.
    """

    def __init__(self, op, inputs, attributes=None, name="", num_outputs=1, block=None):
        self.op = op
        self.inputs = list(inputs)
        self.attributes = dict(attributes or {})
        self.name = name or ""
        self.uid = new_uid(op if block is None else "Block")
        self.block = block  # None or Block
        self.outputs = [Variable(owner=self, kind="output") for _ in range(num_outputs)]
        for i, o in enumerate(self.outputs):
            o._index = i

    @property
    def op_name(self):
        return self.block.op_name if self.block is not None else self.op

    def __repr__(self):
        return "Primitive(%s%s)" % (self.op_name, " '%s'" % self.name if self.name else "")

    def describe(self):
        ins = ", ".join(v._describe() for v in self.inputs)
        return "%s%s(%s)" % (self.op_name, " '%s'" % self.name if self.name else "", ins)


class Block:
    """What a block primitive wraps: the inner outputs and placeholder→actual mapping."""

    def __init__(self, outputs, mapping, op_name):
        self.outputs = list(outputs)          # inner Variables
        self.mapping = list(mapping)          # [(inner placeholder, outer Variable)]
        self.op_name = op_name


@contextlib.contextmanager
def _deep_recursion(limit=20000):
    """Raise the recursion limit for a recursive traversal of a deep graph (a long chain of
    ops), restoring it afterwards."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def walk(outputs, into_blocks=0):
    """All primitives reachable from ``outputs``, each once, in DFS post-order (inputs first).

    Cycles (through bound placeholders) are followed once. ``into_blocks`` is how many block
    levels to descend into (-1: all); the block primitive itself is always listed.
    """
    seen = set()
    order = []

    def visit(var, depth):
        p = var._owner
        if p is None or id(p) in seen:
            return
        seen.add(id(p))
        for i in p.inputs:
            visit(i, depth)
        if p.block is not None and depth != 0:
            for o in p.block.outputs:
                visit(o, depth - 1)
        order.append(p)
    with _deep_recursion():
        for v in outputs:
            visit(v, into_blocks)
    return order


def leaves(outputs, into_blocks=-1):
    """Leaf variables (inputs, placeholders, parameters, constants) in first-visit DFS order.

    Placeholders that are a block's internal arguments are not reported.
    """
    seen = set()
    out = []
    visited = set()

    def visit(var, depth, hidden):
        p = var._owner
        if p is None:
            if id(var) not in seen and id(var) not in hidden:
                seen.add(id(var))
                out.append(var)
            return
        if id(p) in visited:
            return
        visited.add(id(p))
        for i in p.inputs:
            visit(i, depth, hidden)
        if p.block is not None and depth != 0:
            inner_hidden = hidden | {id(ph) for ph, _ in p.block.mapping}
            for o in p.block.outputs:
                visit(o, depth - 1, inner_hidden)
    with _deep_recursion():
        for v in outputs:
            visit(v, into_blocks, frozenset())
    return out


def _binary_operator(op, reflected=False):
    """An operator method calling ``cntk.ops.<op>`` (imported late: ops depends on this module)."""
    def method(self, other):
        from .. import ops
        fn = getattr(ops, op)
        return fn(other, self) if reflected else fn(self, other)
    return method


class _Operators:
    """CNTK's operator overloads, shared by Variable and Function."""

    # numpy defers to our reflected operators (``np_array * x`` builds a graph node instead of
    # an object array of graph nodes)
    __array_ufunc__ = None
    __array_priority__ = 100

    __add__, __radd__ = _binary_operator("plus"), _binary_operator("plus", True)
    __sub__, __rsub__ = _binary_operator("minus"), _binary_operator("minus", True)
    __mul__, __rmul__ = _binary_operator("element_times"), _binary_operator("element_times", True)
    __truediv__, __rtruediv__ = _binary_operator("element_divide"), _binary_operator("element_divide", True)
    __matmul__, __rmatmul__ = _binary_operator("times"), _binary_operator("times", True)

    def __neg__(self):
        from .. import ops
        return ops.negate(self)

    def __pos__(self):
        return self

    def __abs__(self):
        from .. import ops
        return ops.abs(self)

    def __getitem__(self, key):
        from ..ops.indexing import getitem
        return getitem(self, key)


for _k, _v in list(vars(_Operators).items()):
    if _k.startswith("__") and (callable(_v) or _k in ("__array_ufunc__", "__array_priority__")):
        setattr(Variable, _k, _v)
