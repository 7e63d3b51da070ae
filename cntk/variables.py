"""Parameter and Constant: leaf variables that hold a value."""

import numbers

import numpy as np
import torch

from .engine.graph import Variable, np_dtype, sanitize_shape, shape_known, torch_dtype, bump_epoch
from . import device as _device
from .default_options import default_override_or, get_default_override

__all__ = ["Variable", "Parameter", "Constant"]


class _ValueHolder(Variable):
    """A leaf whose value is a torch tensor, created as soon as its shape is fully known."""

    def __init__(self, shape, init, dtype, device, name, kind, requires_grad):
        self._init = init
        self._requires_grad = requires_grad
        self._torch_device = _device.to_torch_device(device)
        self._data = None
        value = None        # an initial value given as data (else ``init`` describes it)
        dtype_from_value = None
        if isinstance(init, (np.ndarray, list, tuple)) or torch.is_tensor(init):
            value = init.detach().cpu().numpy() if torch.is_tensor(init) else np.asarray(init)
            # float64 data makes a float64 leaf unless a dtype is given; anything else float32
            if dtype is None and value.dtype == np.float64:
                dtype_from_value = np.float64
            if shape is None or (isinstance(shape, tuple) and len(shape) == 0 and value.ndim > 0):
                shape = value.shape
            shape = sanitize_shape(shape)
            if value.shape != shape:
                try:
                    value = np.broadcast_to(value, shape)
                except ValueError:
                    raise ValueError("%s '%s': initial value of shape %s does not match the shape %s"
                                     % (kind, name, value.shape, shape)) from None
        super().__init__(shape=() if shape is None else shape, dtype=dtype or dtype_from_value or np.float32,
                         dynamic_axes=(), name=name, kind=kind, needs_gradient=requires_grad)
        self._dtype_explicit = dtype is not None
        self._init_value = value
        self._materialize()

    # -- value management -----------------------------------------------------
    def _materialize(self):
        """Create the tensor once the shape has no inferred dimensions left."""
        if self._data is not None or not shape_known(self._shape):
            return
        shape, dt = self._shape, self._dtype
        init = self._init
        if self._init_value is not None:
            arr = np.asarray(self._init_value, dtype=dt)
        elif init is None:
            arr = np.zeros(shape, dtype=dt)
        elif isinstance(init, numbers.Number):
            arr = np.full(shape, init, dtype=dt)
        elif hasattr(init, "generate"):
            arr = np.asarray(init.generate(shape, dt), dtype=dt)
        elif callable(init):
            arr = np.asarray(init(shape), dtype=dt)
        else:
            raise TypeError("%s '%s': unsupported init %r" % (self._kind, self._name, init))
        t = torch.tensor(np.ascontiguousarray(arr).reshape(shape), dtype=torch_dtype(dt), device=self._torch_device)
        if self._requires_grad:
            t.requires_grad_(True)
        self._data = t

    def _set_inferred_shape(self, shape):
        """Resolve -1 dims (called by shape inference), then create the value."""
        self._shape = tuple(shape)
        self._materialize()
        bump_epoch()

    def _adopt_dtype(self, dtype):
        """Take the dtype of the computation a leaf without explicit dtype is used in."""
        dtype = np_dtype(dtype)
        if self._dtype_explicit or dtype == self._dtype:
            return
        self._dtype = dtype
        if self._data is not None:
            with torch.no_grad():
                t = self._data.detach().to(torch_dtype(dtype))
            if self._requires_grad:
                t.requires_grad_(True)
            self._data = t
        bump_epoch()

    def _tensor(self):
        if self._data is None:
            raise ValueError("%s '%s' has an unresolved shape %s; connect it to an input first"
                             % (self._kind, self._name or self._uid, self._shape))
        return self._data

    @property
    def value(self):
        """The current value as a numpy array (a copy)."""
        return self._tensor().detach().cpu().numpy().copy()

    @value.setter
    def value(self, v):
        self.set_value(v)

    def set_value(self, v):
        """Overwrite the value in place (broadcast to the shape)."""
        if hasattr(v, "asarray"):
            v = v.asarray()
        arr = np.asarray(v, dtype=self._dtype)
        t = self._tensor()
        if arr.shape != tuple(t.shape):
            try:
                arr = np.broadcast_to(arr, t.shape)
            except ValueError:
                raise ValueError("cannot set the value of %s '%s' of shape %s from an array of shape %s"
                                 % (self._kind, self._name or self._uid, tuple(t.shape), arr.shape)) from None
        with torch.no_grad():
            t.copy_(torch.from_numpy(np.ascontiguousarray(arr)).reshape(t.shape))  # (0-d arrays come back 1-d)

    def asarray(self):
        """The current value as a numpy array (a copy)."""
        return self.value

    @property
    def data(self):
        """The value as an NDArrayView (sharing the storage)."""
        from .core import NDArrayView
        return NDArrayView._wrap(self._tensor())

    def _new_like(self, kind_cls, value=None, name=None):
        """A new leaf of class ``kind_cls`` holding this leaf's value (or ``value``). A leaf whose
        shape is still being inferred gives a leaf with the same pending shape and initializer."""
        name = self._name if name is None else name
        dtype = self._dtype if self._dtype_explicit else None
        if value is None and self._data is None:
            obj = kind_cls.__new__(kind_cls)
            _ValueHolder.__init__(obj, self._shape, self._init, dtype, self._torch_device, name,
                                  "parameter" if kind_cls is Parameter else "constant", kind_cls is Parameter)
            if not self._dtype_explicit:
                obj._dtype = self._dtype
            return obj
        v = self.value if value is None else value
        if kind_cls is Parameter:
            obj = kind_cls(shape=self._shape, init=v, dtype=dtype, device=self._torch_device, name=name)
        else:
            obj = kind_cls(value=v, shape=self._shape, dtype=dtype, device=self._torch_device, name=name)
        if not self._dtype_explicit and obj._dtype != self._dtype:
            obj._adopt_dtype(self._dtype)
        return obj


class Parameter(_ValueHolder):
    """A learnable tensor. ``init`` is a scalar, an array or an initializer (None: zeros).
    Without ``dtype`` it takes that of an enclosing ``default_options(dtype=...)`` scope, else
    that of the computation it is used in; ``dtype=None`` given explicitly ignores the scope."""

    _uid_prefix = "Parameter"

    def __init__(self, shape=None, init=None, dtype=default_override_or(None), device=None, name=""):
        super().__init__(shape, init, get_default_override(Parameter, dtype=dtype), device, name, "parameter", True)


class Constant(_ValueHolder):
    """A fixed tensor; a scalar ``value`` is broadcast to ``shape``."""

    _uid_prefix = "Constant"

    def __init__(self, value=None, shape=None, dtype=None, device=None, name=""):
        if value is None:
            value = 0.0
        if isinstance(value, numbers.Number) and shape is not None:
            super().__init__(shape, float(value), dtype, device, name, "constant", False)
            return
        if isinstance(value, numbers.Number):
            value = np.asarray(value, dtype=np.float32 if dtype is None else dtype)
        super().__init__(shape, value, dtype, device, name, "constant", False)
