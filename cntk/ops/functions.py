"""The Function object: composition, evaluation, differentiation and graph surgery."""

import enum

import numpy as np
import torch

from ..engine import feed as _feed
from ..engine.clone import clone_graph, replace_placeholders as _replace_placeholders
from ..engine.execute import Executor
from ..axis import Axis
from ..engine.graph import graph_epoch, Variable, walk, leaves, _Operators
from ..engine.layout import SeqLayout
from .. import device as _device


class CloneMethod(enum.Enum):
    """How ``Function.clone`` treats parameters: new copies, shared, or frozen as constants."""
    clone = "clone"
    share = "share"
    freeze = "freeze"


class ModelFormat(enum.Enum):
    """Model file formats (only CNTKv2 is supported)."""
    CNTKv2 = 0
    ONNX = 1


class BackPropState:
    """What ``forward`` keeps so that ``backward`` can run."""

    def __init__(self, function, outputs, tensors, layouts, grad_leaves, kept=None):
        self.function = function
        self.kept = list(outputs if kept is None else kept)  # outputs backward may start from
        self.outputs = outputs        # output Variables
        self.tensors = tensors        # their torch values (with autograd history)
        self.layouts = layouts
        self.grad_leaves = grad_leaves  # {Variable: tensor requiring grad}
        self.released = False


def _as_variable(x):
    if isinstance(x, Variable):
        return x
    if isinstance(x, Function):
        return x.output
    raise TypeError("expected a Variable or Function, got %s" % type(x).__name__)


def _check_root_gradient(var, g, t, layouts):
    """A root gradient must have the shape of the output value it weights."""
    shape = tuple(var._shape)
    seq = var.sequence_axis
    if seq is not None:
        lay = layouts[seq]
        if isinstance(g, np.ndarray) and g.dtype != object and g.ndim == len(shape) + 2:
            seqs = list(g)
            if g.shape[1] != lay.T:
                raise ValueError("the root gradient for %s has shape %s; expected %d sequences of lengths %s"
                                 % (var._describe(), g.shape, lay.B, lay.lengths_list))
            lens = None
        elif isinstance(g, (list, tuple)):
            seqs = list(g)
            lens = lay.lengths_list
        else:
            raise TypeError("the root gradient for the sequence output %s must be a list of per-sequence arrays"
                            % var._describe())
        if len(seqs) != lay.B:
            raise ValueError("the root gradient for %s has %d sequences; the output has %d"
                             % (var._describe(), len(seqs), lay.B))
        for b, s in enumerate(seqs):
            a = np.asarray(s)
            want = ((lens[b],) if lens is not None else a.shape[:1]) + shape
            if a.shape != want and not (a.size == int(np.prod(want)) and a.shape[:1] == want[:1]):
                raise ValueError("the root gradient for sequence %d of %s has shape %s; expected %s"
                                 % (b, var._describe(), a.shape, want))
        return
    a = np.asarray(g)
    want = tuple(t.shape)
    if a.shape != want and a.size != int(np.prod(want)):
        raise ValueError("the root gradient for %s has shape %s; expected %s" % (var._describe(), a.shape, want))


class Function(_Operators):
    """A graph of primitive ops with one or more outputs (CNTK's composite Function); with
    ``_prim`` set it is the view of a single primitive."""

    def __new__(cls, *args, **kwargs):
        # ``Function(pyfunc)`` / ``@Function``: build a graph by running the Python function once
        if args and _is_python_function(args[0]):
            return _to_function(args[0], **kwargs)
        return super().__new__(cls)

    def __init__(self, outputs, name=None, _prim=None, **kwargs):
        if _is_python_function(outputs):
            return  # already built by __new__
        if isinstance(outputs, Variable):
            outputs = [outputs]
        self._outputs = list(outputs)
        self._prim = _prim
        self._name = name

    # -- identity and structure ------------------------------------------------------
    @property
    def root_function(self):
        """The primitive Function at the root of this graph (itself for a combine)."""
        r = self._root
        if r is None:
            return self   # a combine of outputs of several primitives (or of leaves)
        if self._prim is not None:
            return self
        udf = r.attributes.get("_udf")  # a user function is the view of its own primitive
        return udf if udf is not None else Function(r.outputs, _prim=r)

    @property
    def _root(self):
        """The primitive this function is rooted at, or None for a combine of the outputs of
        several primitives (or of leaves)."""
        if self._prim is not None:
            return self._prim
        owner = self._outputs[0]._owner
        if owner is None or any(o._owner is not owner for o in self._outputs[1:]):
            return None
        return owner

    @property
    def name(self):
        """The function's name (its root primitive's, unless set on the composite)."""
        if self._name is not None:
            return self._name
        r = self._root
        if r is not None:
            return r.name
        return self._outputs[0].name if len(self._outputs) == 1 else ""

    @name.setter
    def name(self, value):
        value = value or ""
        r = self._root
        if r is not None and self._name is None:
            r.name = value
        else:
            self._name = value

    @property
    def uid(self):
        """The root primitive's uid (a combine gets one of its own)."""
        r = self._root
        if r is not None:
            return r.uid
        u = self.__dict__.get("_combine_uid")
        if u is None:
            from ..engine.graph import new_uid
            u = self._combine_uid = new_uid("Combine")
        return u

    @property
    def op_name(self):
        """The root primitive's op name ('Combine' for a combine)."""
        r = self._root
        return r.op_name if r is not None else "Combine"

    @property
    def type(self):
        """The type of the single output (shape, dtype, dynamic axes, sparsity, needs_gradient)."""
        return self.output.type

    @property
    def _attribute_holder(self):
        r = self._root
        return r if r is not None else self

    @property
    def custom_attributes(self):
        """A user dictionary saved with the model (kept on the root primitive)."""
        holder = self._attribute_holder
        d = getattr(holder, "_custom_attributes", None)
        if d is None:
            d = {}
            holder._custom_attributes = d
        return d

    @custom_attributes.setter
    def custom_attributes(self, value):
        self._attribute_holder._custom_attributes = dict(value or {})

    @property
    def attributes(self):
        """The root primitive's op attributes."""
        r = self._root
        return {k: v for k, v in r.attributes.items() if not k.startswith("_")} if r is not None else {}

    @property
    def is_primitive(self):
        """Whether this is the view of a single (non-block) primitive."""
        return self._prim is not None and self._prim.block is None

    @property
    def is_composite(self):
        """Whether this is a composite (a graph given by its outputs)."""
        return self._prim is None

    @property
    def is_block(self):
        """Whether this function is a block (``as_block``)."""
        r = self._root
        return r is not None and r.block is not None and (self._prim is not None or len(self._outputs) == len(r.outputs))

    def _block(self):
        r = self._root
        if r is None or r.block is None:
            raise ValueError("%s is not a block function" % self.name)
        return r.block

    @property
    def block_root(self):
        """The root of the composite a block wraps."""
        return Function(self._block().outputs).root_function

    @property
    def block_arguments_mapping(self):
        """[(inner placeholder, actual argument)] of a block."""
        return list(self._block().mapping)

    @property
    def outputs(self):
        """The output variables, as a tuple (as in CNTK: ``f.outputs + (x,)`` works)."""
        return tuple(self._outputs)

    @property
    def output(self):
        """The single output variable (ValueError if there are several)."""
        if len(self._outputs) != 1:
            raise ValueError("the function '%s' has %d outputs; use .outputs" % (self.name, len(self._outputs)))
        return self._outputs[0]

    @property
    def shape(self):
        """The shape of the single output."""
        return self.output.shape

    @property
    def dtype(self):
        """The dtype of the single output."""
        return self.output.dtype

    @property
    def dynamic_axes(self):
        """The dynamic axes of the single output."""
        return self.output.dynamic_axes

    @property
    def inputs(self):
        """A primitive's operands (for a block: its mapped arguments, then the parameters and
        constants inside it); for a composite, every leaf of the graph."""
        if self._prim is not None:
            ins = list(self._prim.inputs)
            if self._prim.block is not None:
                for v in leaves(self._prim.block.outputs):
                    if (v.is_parameter or v.is_constant) and not any(v is u for u in ins):
                        ins.append(v)
            return ins
        return leaves(self._outputs)

    def _leaves(self):
        """The graph's leaves, cached until the graph changes (forward asks for them per call)."""
        cache = self.__dict__.get("_leaf_cache")
        epoch = graph_epoch()
        if cache is None or cache[0] != epoch or cache[1] != [id(o) for o in self._outputs]:
            cache = (epoch, [id(o) for o in self._outputs], leaves(self._outputs))
            self._leaf_cache = cache
        return cache[2]

    @property
    def arguments(self):
        """The inputs and placeholders the function must be given, in graph order."""
        return [v for v in self._leaves() if v.is_input or v.is_placeholder]

    @property
    def signature(self):
        """The arguments, less the placeholders of an enclosing ``@Function`` still being defined
        (a function defined inside another may use the outer one's arguments, as in CNTK)."""
        return [a for a in self.arguments if not any(a is p for p in _PLACEHOLDERS_UNDER_CONSTRUCTION)]

    @property
    def parameters(self):
        """The Parameters of the graph (inside blocks too)."""
        return [v for v in self._leaves() if v.is_parameter]

    @property
    def constants(self):
        """The Constants of the graph (inside blocks too)."""
        return [v for v in self._leaves() if v.is_constant]

    @property
    def placeholders(self):
        """The unbound placeholders of the graph."""
        return [v for v in self._leaves() if v.is_placeholder]

    def __str__(self):
        """CNTK's signature line: ``[name: ]OpName(arg: Type, ...) -> Type``, e.g.
        ``Dense(x: Sequence[Tensor[150]]) -> Sequence[Tensor[300]]``. OpName is the root's op
        name when the root is applied to the graph's leaves, else 'Composite'; several outputs
        give ``Tuple[...]``."""
        if self._prim is not None:
            op_name = self.op_name
        else:
            root_inputs = self.root_function.inputs if self._root is not None else self._outputs
            same = all(a is b for a, b in zip(_preorder_leaves(root_inputs), root_inputs))
            op_name = self.op_name if same else "Composite"

        def spec(v, is_output=False):
            # output names are left out: they would repeat the function's name
            return ("%s: " % v.name if v.name and not is_output else "") + _type_signature(v)
        outs = self._outputs
        out = "Tuple[%s]" % ", ".join(spec(o, True) for o in outs) if len(outs) > 1 else spec(outs[0], True)
        name = self.name
        return "%s%s(%s) -> %s" % (name + ": " if name else "", op_name,
                                   ", ".join(spec(a) for a in self.arguments), out)

    def __repr__(self):
        """CNTK's description of the graph, e.g.
        ``Composite(Dense): Input('x', [#], [784]) -> Output('Block7_Output_0', [#], [10])``."""
        head = "Composite(%s): " % self.op_name if self._prim is None else "%s: " % self.op_name
        return head + ", ".join(_variable_string(a) for a in self.arguments) + " -> " + \
            ", ".join(_variable_string(o) for o in self._outputs)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        found = []
        if self.is_block:
            # a named layer is searched inside itself first, as CNTK does for block functions
            # (``z.classify.b`` is the Dense layer's own bias, not any other layer's 'b')
            found = Function(self._block().outputs).find_all_with_name(name, depth=1)
        if not found:
            found = self.find_all_with_name(name, depth=1)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise AttributeError("several nodes are named '%s'; use find_all_with_name" % name)
        outs = self.__dict__.get("_outputs")
        if outs and len(outs) == 1:
            return getattr(outs[0], name)
        raise AttributeError("'Function' object has no attribute or named node '%s'" % name)

    def __getitem__(self, key):
        if isinstance(key, int) and len(self._outputs) > 1:
            return Function([self._outputs[key]])
        return _Operators.__getitem__(self, key)

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other

    # -- finding nodes ----------------------------------------------------------------
    def find_all_with_name(self, name, depth=0):
        """Every primitive Function and leaf named ``name``; ``depth``: block levels to search (-1: all)."""
        out = []
        for p in walk(self._outputs, into_blocks=depth):
            if p.name == name:
                out.append(Function(p.outputs, _prim=p) if len(p.outputs) > 1 else Function(p.outputs))
        for v in leaves(self._outputs, into_blocks=depth):
            if v.name == name:
                out.append(v)
        return out

    def find_by_name(self, name, depth=0):
        """The one node named ``name``, or None (ValueError if several are)."""
        found = self.find_all_with_name(name, depth)
        if len(found) > 1:
            raise ValueError("%d nodes are named '%s'; use find_all_with_name" % (len(found), name))
        return found[0] if found else None

    # -- composition --------------------------------------------------------------------
    def argument_map(self, *args, **kwargs):
        """{argument: value} from positional values (in ``arguments`` order) and names."""
        params = self.signature
        if len(args) > len(params):
            raise TypeError("the function takes %d arguments (%s) but %d were given"
                            % (len(params), ", ".join(p.name or p.uid for p in params), len(args)))
        m = dict(zip(params, args))
        for k, v in kwargs.items():
            matches = [p for p in params if p.name == k]
            if not matches:
                raise TypeError("the function has no argument named '%s' (arguments: %s)"
                                % (k, ", ".join(p.name or p.uid for p in params)))
            if matches[0] in m:
                raise TypeError("argument '%s' was given twice" % k)
            m[matches[0]] = v
        missing = [p for p in params if p not in m]
        if missing:
            # CNTK functions have no default arguments
            raise TypeError("the function takes %d arguments (%s); no value was given for %s"
                            % (len(params), ", ".join(p.name or p.uid for p in params),
                               ", ".join(p.name or p.uid for p in missing)))
        return m

    def __call__(self, *args, **kwargs):
        """With Variables/Functions: a new composite with the arguments bound to them (parameters
        shared); with data: ``eval``, one value per output."""
        if len(args) == 1 and not kwargs and isinstance(args[0], Function) and len(args[0].outputs) > 1 \
                and len(self.signature) > 1:
            args = tuple(args[0].outputs)
        symbolic = any(isinstance(a, (Variable, Function)) for a in list(args) + list(kwargs.values()))
        m = self.argument_map(*args, **kwargs)
        if symbolic:
            subs = {}
            for k, v in m.items():
                if not isinstance(v, (Variable, Function)):
                    from . import constant
                    v = constant(v)
                subs[k] = _as_variable(v)
                _check_argument_type(k, subs[k])
            try:
                return Function(clone_graph(self._outputs, "share", subs))
            except (ValueError, TypeError) as e:
                if self.is_block and e.args and isinstance(e.args[0], str):
                    # name the layer whose input does not fit
                    layer = (self.__dict__.get("_layer_name") or self.op_name) + \
                        ("('%s')" % self.name if self.name else "")
                    e.args = ("%s applied to %s: %s" % (layer, ", ".join(_as_variable(v)._describe()
                                                                          for v in subs.values()), e.args[0]),) \
                        + e.args[1:]
                raise
        result = self.eval(m)
        if isinstance(result, dict):
            return tuple(result[o] for o in self._outputs)
        return result

    def __rshift__(self, other):
        """``F >> G`` is ``G(F)``; a tuple G applies each member to F (or to F's matching output)
        and combines the results."""
        if isinstance(other, tuple):
            outs = self.outputs
            if len(outs) > 1 and len(outs) == len(other):
                parts = [g(Function([o])) for g, o in zip(other, outs)]
            else:
                parts = [g(self) for g in other]
            return Function([o for p in parts for o in (p.outputs if isinstance(p, Function) else [_as_variable(p)])])
        if not callable(other):
            return NotImplemented
        if not isinstance(other, Function) and len(self._outputs) > 1 and _is_python_function(other):
            # a Python function of several arguments receives the outputs positionally
            import inspect
            try:
                ps = list(inspect.signature(other).parameters.values())
            except (TypeError, ValueError):
                ps = []
            required = [p for p in ps if p.default is inspect.Parameter.empty
                        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            varargs = any(p.kind == p.VAR_POSITIONAL for p in ps)
            if len(required) > 1 or varargs:
                return other(*[Function([o]) for o in self._outputs])
        return other(self)

    def __rrshift__(self, other):
        if isinstance(other, tuple):
            return self(*other)
        return self(other)

    def __lshift__(self, other):
        return self(other)

    def __rlshift__(self, other):
        if not callable(other):
            return NotImplemented
        return other(self)

    def update_signature(self, *arg_types, **kwarg_types):
        """Bind the placeholders in place to inputs of the given types (an int or tuple shape, or
        a type record with shape/dtype/dynamic_axes/is_sparse/needs_gradient)."""
        from . import input_variable
        args = self.arguments
        if len(arg_types) > len(args):
            raise TypeError("update_signature: %d types given for a function with %d arguments"
                            % (len(arg_types), len(args)))
        typed = list(zip(args, arg_types))
        for k, t in kwarg_types.items():
            match = [a for a in args if a.name == k]
            if not match:
                raise TypeError("update_signature: the function has no argument named '%s'" % k)
            typed.append((match[0], t))
        mapping = {}
        for a, t in typed:
            if not a.is_placeholder:
                raise TypeError("update_signature: argument %s is not a placeholder" % a._describe())
            if t is None:
                continue
            if t is float or t in (np.float32, np.float64):   # a scalar of that type (float: float32)
                t = Variable._Type(shape=(), dtype=np.float32 if t is float else t)
            if isinstance(t, (int, np.integer, tuple, list)):
                v = input_variable(tuple(t) if isinstance(t, (tuple, list)) else int(t), name=a.name)
            elif isinstance(t, Variable):
                v = input_variable(t.shape, dtype=t.dtype, needs_gradient=t.needs_gradient, is_sparse=t.is_sparse,
                                   dynamic_axes=list(t.dynamic_axes), name=a.name)
            else:
                kw = {k: getattr(t, k) for k in ("shape", "dtype", "needs_gradient", "is_sparse", "dynamic_axes")
                      if getattr(t, k, None) is not None}
                if "shape" not in kw:
                    raise TypeError("update_signature: cannot use %r as an argument type" % (t,))
                if "dynamic_axes" in kw:
                    kw["dynamic_axes"] = list(kw["dynamic_axes"])
                v = input_variable(name=a.name, **kw)
            mapping[a] = v
        if mapping:
            self.replace_placeholders(mapping)
        return self

    declare_args = update_signature

    @staticmethod
    def with_signature(*arg_types, **kwarg_types):
        """Decorator: ``@Function.with_signature(Tensor[3])`` builds a Function whose arguments
        have the given types (as if annotated)."""
        def decorate(f):
            return _to_function(f, signature=(arg_types, kwarg_types))
        return decorate

    def clone(self, method=CloneMethod.clone, substitutions=None):
        """A copy of the graph; ``substitutions`` {old: new} replaces leaves or outputs."""
        method = CloneMethod(method) if not isinstance(method, CloneMethod) else method
        subs = {}
        for k, v in (substitutions or {}).items():
            subs[_as_variable(k)] = _as_variable(v)
        return Function(clone_graph(self._outputs, method.value, subs))

    def replace_placeholders(self, substitutions):
        """Bind placeholders {placeholder: Variable/Function} in place; returns self."""
        subs = {_as_variable(k): _as_variable(v) for k, v in substitutions.items()}
        self._outputs = _replace_placeholders(self._outputs, subs)
        return self

    def replace_placeholder(self, substitution):
        """Bind the function's only placeholder; returns self."""
        phs = self.placeholders
        if len(phs) != 1:
            raise ValueError("replace_placeholder needs exactly one placeholder; the function has %d" % len(phs))
        return self.replace_placeholders({phs[0]: substitution})

    # -- evaluation ------------------------------------------------------------------------
    def _executor(self):
        owner = self._outputs[0]._owner
        holder = owner if owner is not None else self
        ex = getattr(holder, "_cntk_executor", None)
        if ex is None:
            ex = Executor()
            holder._cntk_executor = ex
        return ex

    def _feeds(self, arguments, device, needed, grad_inputs=()):
        """Convert user data for the arguments the plan needs into tensors and layouts."""
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            args = self.arguments
            if len(args) != 1:
                raise ValueError("data without a {variable: data} map needs a function with exactly one argument; "
                                 "this one has %d (%s)" % (len(args), ", ".join(a.name or a.uid for a in args)))
            arguments = {args[0]: arguments}
        by_name = None
        feeds, layouts = {}, {}
        lengths_of = {}
        batch = None
        keep_carry = False
        seen = set()
        for k, data in arguments.items():
            if isinstance(k, str):
                if by_name is None:
                    by_name = {}
                    for a in self.arguments:
                        by_name.setdefault(a.name, []).append(a)
                cands = by_name.get(k, [])
                if len(cands) != 1:
                    raise ValueError("'%s' does not name exactly one argument of the function (arguments: %s)"
                                     % (k, ", ".join(a.name or a.uid for a in self.arguments)))
                k = cands[0]
            elif isinstance(k, Function):
                k = k.output
            if not isinstance(k, Variable):
                raise TypeError("argument map keys must be Variables or names, got %s" % type(k).__name__)
            if not k.is_input:
                raise ValueError("%s is not an input of the function" % k._describe())
            if k in seen:
                raise ValueError("data for %s was given twice (by variable and by name?)" % k._describe())
            seen.add(k)
            if k not in needed:
                # data for an argument the requested outputs do not depend on is ignored
                if k not in self.arguments:
                    raise ValueError("%s is not an argument of this function (arguments: %s)"
                                     % (k._describe(), ", ".join(a.name or a.uid for a in self.arguments)))
                continue
            t, lengths, starts = _feed.convert(k, data, device)
            if grad_inputs and k in grad_inputs:
                t = t.clone().requires_grad_(True)
            feeds[k] = t
            n = t.shape[0]
            if batch is None:
                batch = (n, k)
            elif batch[0] != n:
                raise ValueError("inputs have different numbers of samples: %d for %s and %d for %s"
                                 % (batch[0], batch[1]._describe(), n, k._describe()))
            if lengths is not None:
                ax = k.sequence_axis
                prev = lengths_of.get(ax)
                if prev is not None and prev[0] != lengths:
                    raise ValueError("sequences of %s and %s share a sequence axis but have different lengths "
                                     "(%s vs %s)" % (prev[1]._describe(), k._describe(), prev[0], lengths))
                if prev is None:
                    lengths_of[ax] = (lengths, k)
                    layouts[ax] = SeqLayout(lengths, device, starts)
                if starts is not None:
                    keep_carry = True
        missing = [v for v in needed if v not in feeds]
        if missing:
            raise ValueError("no data was given for %s" % ", ".join(v._describe() for v in missing))
        return feeds, layouts, keep_carry

    def _run(self, arguments, outputs, device, training, grad_inputs=()):
        dev = _device.to_torch_device(device)
        outs = [_as_variable(o) for o in (outputs if outputs is not None else self._outputs)]
        ex = self._executor()
        plan = ex.plan(outs, dev)
        feeds, layouts, keep_carry = self._feeds(arguments, dev, plan.input_vars, set(grad_inputs))
        values, rt = ex.run(plan, feeds, layouts, training=training, keep_carry=keep_carry)
        return outs, values, rt.layouts, feeds

    def eval(self, arguments=None, outputs=None, device=None, as_numpy=True):
        """Evaluate (inference mode). One output: its value; several: {output: value}."""
        with torch.no_grad():
            outs, values, layouts, _ = self._run(arguments, outputs, device, training=False)
        res = {o: self._convert(o, t, layouts, as_numpy) for o, t in zip(outs, values)}
        if len(outs) == 1:
            return res[outs[0]]
        return res

    @staticmethod
    def _convert(var, t, layouts, as_numpy):
        if as_numpy:
            return _feed.to_numpy(var, t, layouts)
        from ..core import Value
        return Value._from_tensor(var, t, layouts)

    def forward(self, arguments, outputs=None, keep_for_backward=None, device=None, as_numpy=True):
        """Evaluate ``outputs``; keep what ``backward`` needs for those in ``keep_for_backward``."""
        outs = [_as_variable(o) for o in (outputs if outputs is not None else self._outputs)]
        keep = [_as_variable(o) for o in (keep_for_backward or [])]
        run_outs = outs + [k for k in keep if k not in outs]
        if keep:
            grad_inputs = [a for a in self.arguments if a.is_input and a.needs_gradient]
            with torch.enable_grad():
                _, values, layouts, feeds = self._run(arguments, run_outs, device, training=True, grad_inputs=grad_inputs)
            leaves_ = {v: v._tensor() for v in self.parameters}
            leaves_.update({v: feeds[v] for v in grad_inputs if v in feeds})
            state = BackPropState(self, run_outs, values, layouts, leaves_, kept=keep)
        else:
            with torch.no_grad():
                _, values, layouts, _ = self._run(arguments, run_outs, device, training=False)
            state = None
        res = {o: self._convert(o, t, layouts, as_numpy) for o, t in zip(run_outs, values) if o in outs}
        return state, res

    def backward(self, state, root_gradients, variables, as_numpy=True):
        """Gradients of the kept outputs, weighted by ``root_gradients``, for ``variables``."""
        if state is None:
            raise ValueError("backward needs the state of a forward call with keep_for_backward")
        roots, grads_out = [], []
        for o, g in root_gradients.items():
            o = _as_variable(o)
            if o not in state.kept:
                raise ValueError("%s was not kept for backward in the forward call" % o._describe())
            t = state.tensors[state.outputs.index(o)]
            if not t.requires_grad:
                raise ValueError("%s does not depend on anything differentiable" % o._describe())
            roots.append(t)
            _check_root_gradient(o, g, t, state.layouts)
            gp = _feed.to_padded(o, g, state.layouts, t.device, o._dtype or np.float32).to(t.dtype)
            if o.sequence_axis is not None:   # padding cells get no gradient
                gp = gp * state.layouts[o.sequence_axis].mask_like(gp).to(gp.dtype)
            grads_out.append(gp)
        variables = [_as_variable(v) for v in variables]
        targets = []
        for v in variables:
            if v not in state.grad_leaves:
                raise ValueError("cannot compute the gradient for %s: it is not a parameter or an input with "
                                 "needs_gradient=True of this function" % v._describe())
            targets.append(state.grad_leaves[v])
        if state.released:
            raise ValueError("this state has already been backpropagated from all the outputs it kept; "
                             "call forward again")
        # Backpropagating from a subset of the kept outputs keeps the graph for later calls; a call
        # covering all of them releases it, so activations are freed while gradients are computed
        # (as in a training step) instead of holding both at once.
        covered = {id(_as_variable(o)) for o in root_gradients}
        keep_graph = any(id(k) not in covered for k in state.kept)
        gs = torch.autograd.grad(roots, targets, grads_out, retain_graph=keep_graph, allow_unused=True)
        state.released = not keep_graph
        res = {}
        for v, t, g in zip(variables, targets, gs):
            if g is None:
                g = torch.zeros_like(t)
            if v.is_input and v.sequence_axis is not None:
                g = g * state.layouts[v.sequence_axis].mask_like(g).to(g.dtype)
            res[v] = self._convert(v, g, state.layouts, as_numpy) if v.is_input else \
                (g.detach().cpu().numpy() if as_numpy else g.detach())
        return res

    def grad(self, at, wrt=None, outputs=None, device=None, as_numpy=True, grad_root=None):
        """Gradient of the (single) output summed over the minibatch, w.r.t. ``wrt``."""
        root = _as_variable(grad_root) if grad_root is not None else self.output
        if wrt is None:
            wrt = [a for a in self.arguments if a.needs_gradient]
            if not wrt:
                raise ValueError("grad: no argument has needs_gradient=True; pass wrt=")
        single = isinstance(wrt, (Variable, Function))
        wrt_list = [wrt] if single else list(wrt)
        extra = [_as_variable(o) for o in (outputs or [])]
        state, vals = self.forward(at, [root] + [o for o in extra if o is not root], keep_for_backward=[root],
                                   device=device, as_numpy=as_numpy)
        t = state.tensors[0]
        ones = torch.ones_like(t)
        if root.sequence_axis is not None:
            ones = ones * state.layouts[root.sequence_axis].mask_like(ones).to(ones.dtype)
        roots = {root: _feed.to_numpy(root, ones, state.layouts)}
        grads = self.backward(state, roots, wrt_list, as_numpy=as_numpy)
        # as CNTK: a dict with a single entry comes back as its bare value
        g = grads[_as_variable(wrt_list[0])] if len(grads) == 1 else grads
        if extra:
            ov = {o: vals[o] for o in extra}
            return g, (ov[extra[0]] if len(ov) == 1 else ov)
        return g

    # -- declarative training (cntk.train) -----------------------------------------------------
    def train(self, minibatch_source, minibatch_size=32, streams=None, model_inputs_to_streams=None,
              parameter_learners=[], callbacks=[], progress_frequency=None, max_epochs=None, epoch_size=None,
              max_samples=None):
        """Train the parameters of this criterion function (loss, or loss and metric) on
        ``minibatch_source`` (a reader, with ``streams`` in argument order, or a tuple of arrays)
        with ``parameter_learners``; ``callbacks`` are progress writers and at most one each of
        CheckpointConfig, CrossValidationConfig and TestConfig. Returns a Record with the
        ``updates`` and ``epoch_summaries`` (loss, metric, samples) and, with a TestConfig,
        ``test_summary``."""
        from ..train.declarative import train
        return train(self, minibatch_source, minibatch_size, streams, model_inputs_to_streams, parameter_learners,
                     callbacks, progress_frequency, max_epochs, epoch_size, max_samples)

    def test(self, minibatch_source, minibatch_size=32, streams=None, model_inputs_to_streams=None, callbacks=None):
        """The average metric (the loss, for a single output) of this criterion function over all
        of ``minibatch_source``: a Record with ``metric`` and ``samples``."""
        from ..train.declarative import test
        return test(self, minibatch_source, minibatch_size, streams, model_inputs_to_streams, callbacks)

    # -- persistence --------------------------------------------------------------------------
    def save(self, filename, format=ModelFormat.CNTKv2, use_external_files_to_store_parameters=False):
        """Save the model (graph and parameter values) to ``filename``."""
        from ..engine.serialize import save_model
        if format != ModelFormat.CNTKv2:
            raise ValueError("only the CNTKv2 model format is supported for saving")
        save_model(self, filename)

    @staticmethod
    def load(model, device=None, format=ModelFormat.CNTKv2):
        """Load a model saved with ``save`` (a file name, bytes or a binary file object)."""
        from ..engine.serialize import load_model as _load
        if format != ModelFormat.CNTKv2:
            raise ValueError("only the CNTKv2 model format is supported for loading")
        return _load(model, device)

    def restore(self, filename):
        """Load parameter values saved from a function of the same structure, in place."""
        other = Function.load(filename)
        mine, theirs = self.parameters, other.parameters
        if len(mine) != len(theirs) or any(a.shape != b.shape for a, b in zip(mine, theirs)):
            raise ValueError("restore: the model in %s does not have the same parameters as this function" % filename)
        for a, b in zip(mine, theirs):
            a.value = b.value
        for a, b in zip(self.constants, other.constants):
            if a.shape == b.shape:
                a.value = b.value


def load_model(model, device=None, format=ModelFormat.CNTKv2):
    """Load a model saved with ``Function.save``."""
    return Function.load(model, device, format)


# user-defined functions live in their own module; CNTK exposes them here
from .userfunction import (UserFunction, user_function, register_udf_deserialize_callback,  # noqa: E402,F401
                           register_user_function)

Function.register_udf_deserialize_callback = staticmethod(register_udf_deserialize_callback)


def _check_argument_type(param, value):
    """A typed argument (an input, e.g. from ``x: Tensor[13]``) only takes Variables of its shape."""
    if param.is_input and value._shape is not None and param._shape is not None \
            and all(d >= 0 for d in value._shape) and all(d >= 0 for d in param._shape) \
            and tuple(value._shape) != tuple(param._shape):
        raise TypeError("argument %s's type %s is incompatible with the type %s of the passed Variable"
                        % (param.name or param.uid, _type_signature(param), _type_signature(value)))


def _variable_rshift(x, other):
    """``x >> f`` for a Variable ``x``: ``f(x)``, with the tuple rules of ``Function >> f``."""
    return Function([x]) >> other


# (the engine's Variable knows nothing of Function, so the operator is attached here)
Variable.__rshift__ = _variable_rshift


# -- printing ----------------------------------------------------------------------------------

def _preorder_leaves(root_inputs):
    """The leaves of the graph under a root with inputs ``root_inputs``, in the order CNTK lists
    a composite's inputs: each function's own leaf operands first, then those of the functions
    feeding it (pre-order, each once; a block counts as one function)."""
    out, seen, visited = [], set(), set()
    stack = [list(root_inputs)]
    while stack:
        ins = stack.pop()
        for v in ins:
            if v._owner is None and id(v) not in seen:
                seen.add(id(v))
                out.append(v)
        children = []
        for v in ins:
            p = v._owner
            if p is not None and id(p) not in visited:
                visited.add(id(p))
                children.append(Function(p.outputs, _prim=p).inputs)
        stack.extend(reversed(children))
    return out


def _type_signature(t):
    """The type of a Variable (or of a type record with shape, is_sparse and dynamic_axes) as
    CNTK prints it, in ``cntk.layers.typing`` syntax: ``Tensor[3,4]``, ``SparseTensor[9000]``,
    ``ParameterTensor[3]`` (no dynamic axes), ``float`` (a scalar), ``tensor`` (shape not known
    yet), wrapped in ``Sequence[...]`` or ``SequenceOver[axis][...]`` for a sequence axis (an
    unbound placeholder's unknown axes print as ``Sequence``). The dtype is not shown."""
    if isinstance(t, Variable):
        shape, axes = t._shape, t._dynamic_axes
    else:
        shape, axes = t.shape, t.dynamic_axes
    axes = None if axes is None else list(axes)
    if shape is None or tuple(shape) == (-2,):     # (-2,): CNTK's unknown shape (typing.tensor)
        s = "tensor"
    elif tuple(shape) == ():
        s = "float"
    else:
        s = "Tensor[%s]" % ",".join(str(d) for d in shape)
        if t.is_sparse:
            s = "Sparse" + s
        elif axes == []:
            s = "Parameter" + s
    if axes is None:
        return "Sequence[%s]" % s
    for a in reversed(axes):
        if a == Axis.default_batch_axis():
            continue
        s = ("Sequence[%s]" if a == Axis.default_dynamic_axis() else "SequenceOver[%s][%%s]" % a.name) % s
    return s


# CNTK's description of a variable, e.g. ``Input('x', [#, *], [3 x 4])`` (what ``repr`` gives)
_variable_string = Variable.__repr__


# -- Python functions as graphs (``@Function``, ``@BlockFunction``) -----------------------------

def _is_python_function(f):
    import types
    return isinstance(f, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)) \
        and not isinstance(f, Function)


def _python_params(f):
    import inspect
    sig = inspect.signature(f)
    names, kinds = [], (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    for p in sig.parameters.values():
        # as CNTK: optional parameters keep their defaults, so ``plus(left, right, *more, name='')``
        # is a function of two arguments
        if p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.kind not in kinds:
            raise TypeError("Function: '%s' may only have plain positional parameters; '%s' is not one"
                            % (getattr(f, "__name__", f), p.name))
        names.append(p.name)
    return names


def _annotations(f, names):
    ann = dict(getattr(f, "__annotations__", None) or {})
    out = {}
    for n in names:
        t = ann.get(n)
        if isinstance(t, str):  # postponed evaluation of annotations
            t = eval(t, getattr(f, "__globals__", {}))
        if t is not None:
            out[n] = t
    return out


_PLACEHOLDERS_UNDER_CONSTRUCTION = []   # the arguments of the @Function definitions being traced


def _bind_outer_placeholders(out):
    """``out`` with the placeholders of enclosing @Function definitions still being traced
    replaced by fresh ones, and the (fresh, outer) pairs: a block built inside such a definition
    keeps them as inputs (bound by the outer call), as CNTK does."""
    outer = [p for p in out.placeholders if any(p is q for q in _PLACEHOLDERS_UNDER_CONSTRUCTION)]
    if not outer:
        return out, []
    from . import placeholder
    inner = {p: placeholder(name=p.name) for p in outer}
    keep = {p: p for p in out.placeholders if p not in inner}   # the block's own arguments stay
    return Function(clone_graph(out.outputs, "share", {**keep, **inner})), [(inner[p], p) for p in outer]


def _to_function(f, make_block=False, op_name=None, name=None, signature=None):
    """Run ``f`` once on placeholders named after its parameters and wrap the result: a tuple
    result becomes a multi-output Function; ``make_block`` packages it with ``as_block``."""
    from . import placeholder, combine, as_block, alias
    names = _python_params(f)
    types = _annotations(f, names)
    if signature is not None:
        arg_types, kwarg_types = signature
        if len(arg_types) > len(names):
            raise TypeError("Function.with_signature: %d types given for '%s', which takes %d arguments"
                            % (len(arg_types), getattr(f, "__name__", f), len(names)))
        types.update({n: t for n, t in zip(names, arg_types) if t is not None})
        for k, t in kwarg_types.items():
            if k not in names:
                raise TypeError("Function.with_signature: '%s' has no parameter '%s'" % (getattr(f, "__name__", f), k))
            types[k] = t
    args = [placeholder(name=n) for n in names]
    _PLACEHOLDERS_UNDER_CONSTRUCTION.extend(args)
    try:
        out = f(*args)
    finally:
        if args:
            del _PLACEHOLDERS_UNDER_CONSTRUCTION[-len(args):]
    if isinstance(out, (tuple, list)):
        parts = []
        for o in out:
            for v in (o.outputs if isinstance(o, Function) else [_as_variable(o)]):
                parts.append(alias(v) if any(v is u for u in parts) else v)
        out = combine(parts)
    elif not isinstance(out, Function):
        out = combine([_as_variable(out)])
    used = [a for a in args if any(a is p for p in out.placeholders)]
    if make_block:
        inner = [placeholder(name=a.name) for a in used]
        out, extra = _bind_outer_placeholders(out)
        out = as_block(out, list(zip(used, inner)) + extra, op_name or getattr(f, "__name__", "Block"), name or "")
    elif [id(a) for a in out.signature if a.is_placeholder] != [id(a) for a in used]:
        # the graph lists its arguments in another order than the Python parameters: package it
        # so that the positional order is the Python one
        inner = [placeholder(name=a.name) for a in used]
        out = as_block(out, list(zip(used, inner)), getattr(f, "__name__", "Composite"), "")
    if name and not make_block:
        if len(out.outputs) == 1:
            out = combine([alias(out.output, name=name)])
        else:
            out = combine(list(out.outputs), name=name)
    if types:
        out.update_signature(**{n: t for n, t in types.items() if any(a.name == n for a in out.arguments)})
    return out


def BlockFunction(op_name, name):
    """Decorator: ``@BlockFunction('Dense', name)`` turns a Python function of its arguments into
    a block Function with that op name and instance name."""
    def decorate(f):
        return _to_function(f, make_block=True, op_name=op_name, name=name)
    return decorate
