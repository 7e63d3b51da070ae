"""Type annotations for ``@Function`` arguments: ``Tensor[13]``, ``Sequence[SparseTensor[V]]``,
``SequenceOver[axis][Tensor[...]]``, ``ParameterTensor[...]``; a leading dtype as in
``Tensor[np.float64, 3]``."""

import numpy as np

from ..axis import Axis
from ..variables import Variable
from ..ops.functions import _type_signature
from ..train.declarative import Record

# Axis, Variable and Record as in CNTK's module, where ``from cntk.layers.typing import *`` gives them
__all__ = ["Tensor", "SparseTensor", "ParameterTensor", "Sequence", "SequenceOver", "Signature",
           "SequenceOverMeta", "tensor", "Axis", "Variable", "Record"]


class _Type:
    """A variable type record: shape, dtype, is_sparse, dynamic_axes, needs_gradient (the fields
    ``Function.update_signature`` reads)."""

    def __init__(self, shape=None, dtype=None, is_sparse=False, dynamic_axes=None, needs_gradient=False):
        self.shape = shape
        self.dtype = dtype
        self.is_sparse = is_sparse
        self.dynamic_axes = dynamic_axes
        self.needs_gradient = needs_gradient

    def _with(self, **kw):
        d = dict(shape=self.shape, dtype=self.dtype, is_sparse=self.is_sparse, dynamic_axes=self.dynamic_axes,
                 needs_gradient=self.needs_gradient)
        d.update(kw)
        return _Type(**d)

    def __str__(self):
        # as CNTK prints types (and function signatures): without the dtype
        return _type_signature(self)

    __repr__ = __str__

    def __call__(self, *args, **kwargs):
        raise TypeError("abstract type %s cannot be instantiated; use 'input(**%s)' instead" % (self, self))


def _parse(kind, key, is_sparse, dynamic_axes, needs_gradient):
    items = list(key) if isinstance(key, tuple) else [key]
    dtype = None
    if items and _is_dtype(items[0]):
        dtype = np.dtype(items.pop(0)).type
    if len(items) == 1 and isinstance(items[0], (tuple, list)):
        items = list(items[0])
    shape = []
    for d in items:
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool):
            raise TypeError("%s[...]: dimensions must be integers; got %r" % (kind, d))
        shape.append(int(d))
    return _Type(tuple(shape), dtype, is_sparse, dynamic_axes, needs_gradient)


def _is_dtype(x):
    if isinstance(x, (int, np.integer, tuple, list)):
        return False
    try:
        return np.dtype(x).kind == "f"
    except TypeError:
        return False


class _TensorFactory:
    def __init__(self, kind, is_sparse, dynamic_axes_fn, needs_gradient=False):
        self._kind = kind
        self._is_sparse = is_sparse
        self._axes = dynamic_axes_fn
        self._needs_gradient = needs_gradient

    def __getitem__(self, key):
        return _parse(self._kind, key, self._is_sparse, self._axes(), self._needs_gradient)

    def __repr__(self):
        return self._kind


Tensor = _TensorFactory("Tensor", False, lambda: [Axis.default_batch_axis()])
SparseTensor = _TensorFactory("SparseTensor", True, lambda: [Axis.default_batch_axis()])
ParameterTensor = _TensorFactory("ParameterTensor", False, lambda: [])
tensor = Tensor[-2]   # a data tensor whose shape is not specified (CNTK's unknown-shape sentinel)


class SequenceOverMeta:
    """``SequenceOver[axis]``: a factory of sequence types over ``axis``."""

    def __init__(self, axis):
        self._axis = axis

    def __getitem__(self, inner):
        if isinstance(inner, _TensorFactory):
            raise TypeError("SequenceOver[...][%s]: give the item type with a shape, e.g. %s[3]"
                            % (inner, inner))
        if not isinstance(inner, _Type):
            inner = Tensor[inner]
        if inner.dynamic_axes is not None and list(inner.dynamic_axes) != [Axis.default_batch_axis()]:
            raise TypeError("Sequence[...]: the item type %s already has a sequence axis" % inner)
        return inner._with(dynamic_axes=[Axis.default_batch_axis(), self._axis])

    def __repr__(self):
        return "SequenceOver[%s]" % self._axis.name


class _SequenceOverFactory:
    def __getitem__(self, axis):
        if not isinstance(axis, Axis):
            raise TypeError("SequenceOver[axis]: expected an Axis, got %r" % (axis,))
        return SequenceOverMeta(axis)


class _SequenceFactory(SequenceOverMeta):
    def __init__(self):
        pass

    @property
    def _axis(self):
        return Axis.default_dynamic_axis()


SequenceOver = _SequenceOverFactory()
Sequence = _SequenceFactory()


def Signature(*args, **kwargs):
    """Decorator (pre-annotation style): ``@Signature(Tensor[3], y=Tensor[2])`` gives the
    decorated Python function's parameters these types (positionally, then by name) as its
    annotations, which ``Function`` then reads. As in CNTK, every parameter needs exactly one
    type and the function must not have annotations already."""
    def add_annotations(f):
        import inspect
        names = list(inspect.signature(f).parameters)
        name = getattr(f, "__name__", repr(f))
        if getattr(f, "__annotations__", None):
            raise ValueError("@Signature cannot be applied to '%s', which already has annotations" % name)
        if len(args) + len(kwargs) != len(names):
            raise TypeError("@Signature: %d types given for '%s', which has %d parameters (%s)"
                            % (len(args) + len(kwargs), name, len(names), ", ".join(names)))
        ann = dict(zip(names, args))
        for k, t in kwargs.items():
            if k not in names:
                raise TypeError("@Signature: '%s' has no parameter '%s' (parameters: %s)" % (name, k, ", ".join(names)))
            if k in ann:
                raise TypeError("@Signature: parameter '%s' of '%s' is given a type twice" % (k, name))
            ann[k] = t
        f.__annotations__ = ann
        return f
    return add_annotations
