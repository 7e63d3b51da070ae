"""Model persistence in a format of our own: the graph as JSON data plus tensors in an npz.

The file is a zip archive written by ``numpy.savez`` (entries stored, never pickled; the container
is read and written by ``archive``):

* ``__graph__``: a 1-D uint8 array holding the UTF-8 JSON description of the graph;
* one array per Parameter/Constant value, keyed by the variable's uid in the JSON.

JSON layout (``version`` 1)::

    {"format": "cntk-torch-model", "version": 1, "name": null | str,
     "outputs": [var uid, ...],
     "variables": [{"uid", "kind", "shape", "dtype", "dynamic_axes", "is_sparse",
                    "needs_gradient", "name", "dtype_explicit"}, ...],
     "primitives": [{"uid", "op", "name", "attributes", "inputs": [var uid], "outputs": [var uid],
                     "block": null | {"op_name", "outputs": [inner var uid],
                                      "mapping": [[inner placeholder uid, outer var uid], ...]},
                     "user_function": (op "UserFunction" only) {"class", "module", "op_name",
                                                                "state", "version": 1}}]}

Everything is referenced by uid, so recurrent loops (cycles through past/future values) and
block-internal graphs (serialized into the same tables) need no special treatment.

Loading treats the file as untrusted data: numpy's loader runs with ``allow_pickle=False``,
each array's header is checked (numeric dtype, declared shape) before its data is read, every
field of the JSON is validated, op names must be in the registry, and nothing named in the file
is ever imported or executed. Any problem raises ``ValueError('... not a valid CNTK model
file: <reason>')``. A user function (a Python op) is stored as data: its class and module names,
op name and ``serialize()`` state. Loading rebuilds it only through a deserializer the caller
registered (``cntk.ops.functions.register_user_function`` or
``register_udf_deserialize_callback``); without one it raises ``UnregisteredUserFunctionError``.
"""

import math
import os

import numpy as np

from ..axis import Axis
from . import archive
from .graph import Variable, Primitive, Block, walk
from .oplib.user_function import OP as USER_OP, UserPrimitive

FORMAT = "cntk-torch-model"
VERSION = 1
GRAPH_KEY = "__graph__"

_KINDS = ("input", "output", "parameter", "constant", "placeholder")
_LEAF_KINDS = ("input", "parameter", "constant", "placeholder")
_FLOAT_DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64),
                 "float16": np.dtype(np.float16)}
# dtypes an attribute may carry (numpy scalars, dtypes, small arrays): plain numeric ones only
_ATTR_DTYPES = {n: np.dtype(n) for n in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16",
                                         "uint32", "uint64", "float16", "float32", "float64")}
_SPECIAL_AXES = {a.name: a for a in (Axis.default_batch_axis(), Axis.default_dynamic_axis(),
                                     Axis.all_static_axes(), Axis.all_axes(), Axis.new_leading_axis())
                 + tuple(Axis.unknown_dynamic_axes())}
_MAX_ATTR_DEPTH = 32


# a reason why a file is not a valid model (turned into ValueError at the boundary)
_Invalid = archive.Invalid


# ============================================================================== saving

def _outputs_of(function):
    """(output variables, name) of what save_model was given."""
    from ..ops.functions import Function
    if isinstance(function, Function):
        return list(function.outputs), function._name
    if isinstance(function, Variable):
        return [function], None
    if isinstance(function, (list, tuple)):
        outs = []
        for f in function:
            outs += _outputs_of(f)[0]
        return outs, None
    raise TypeError("save_model: expected a Function or Variable, got %s" % type(function).__name__)


def _encode_attr(value, depth=0):
    """A JSON-safe form of an attribute value; raises TypeError for what cannot be stored."""
    if depth > _MAX_ATTR_DEPTH:
        raise TypeError("attribute nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isfinite(f):
            return f
        return {"__float__": "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")}
    if isinstance(value, Axis):
        return {"__axis__": value._index if value._index is not None else value._name,
                "ordered": value.is_ordered}
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        d = np.dtype(value)
        if d.name not in _ATTR_DTYPES:
            raise TypeError("attribute dtype %s cannot be stored" % d)
        return {"__dtype__": d.name}
    if isinstance(value, np.ndarray):
        if value.dtype.name not in _ATTR_DTYPES:
            raise TypeError("attribute array of dtype %s cannot be stored" % value.dtype)
        return {"__ndarray__": _encode_attr(value.tolist(), depth + 1), "dtype": value.dtype.name,
                "shape": list(value.shape)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode_attr(v, depth + 1) for v in value]}
    if isinstance(value, list):
        return [_encode_attr(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("attribute dictionaries need string keys")
        return {"__dict__": {k: _encode_attr(v, depth + 1) for k, v in value.items()}}
    raise TypeError("attribute value of type %s cannot be stored" % type(value).__name__)


def _encode_attributes(prim):
    out = {}
    for k, v in prim.attributes.items():
        if not isinstance(k, str):
            continue
        try:
            out[k] = _encode_attr(v)
        except TypeError as e:
            if k.startswith("_"):
                # Derived caches: the type rules recompute them on load, so one that is not plain
                # data can be dropped. Those that are plain data are kept (a few ops keep
                # construction-time flags under '_' names); infer overwrites them, so a stale
                # value cannot matter.
                continue
            raise ValueError("save_model: attribute '%s' of %s: %s" % (k, prim.describe(), e)) from None
    return out


def _user_function_entry(prim):
    """What identifies a user function and its state, as data."""
    from ..ops.userfunction import SERIALIZATION_VERSION
    udf = prim.attributes.get("_udf")
    cls = type(udf)
    try:
        state = _encode_attr(udf.serialize())
    except TypeError as e:
        raise ValueError("save_model: the state returned by %s.serialize() cannot be stored: %s"
                         % (cls.__name__, e)) from None
    return {"class": cls.__name__, "module": cls.__module__, "op_name": str(udf.op_name), "state": state,
            "version": SERIALIZATION_VERSION}


def _graph_data(outputs, name):
    """(the JSON graph description, {uid: value array}) of the graph computing ``outputs``."""
    prims = walk(outputs, into_blocks=-1)
    keys = {}       # id(var) -> uid used in the file
    used = set()
    table = []
    arrays = {}

    def ref(v):
        k = keys.get(id(v))
        if k is not None:
            return k
        k = v._uid
        n = 1
        while k in used or k == GRAPH_KEY:
            k = "%s_%d" % (v._uid, n)
            n += 1
        used.add(k)
        keys[id(v)] = k
        if v._kind not in _KINDS:
            raise ValueError("save_model: %s has an unsupported kind '%s'" % (v._describe(), v._kind))
        if v._kind == "output" and v._owner is None:
            raise ValueError("save_model: the output variable %s has no producing function" % v._describe())
        entry = {
            "uid": k,
            "kind": v._kind,
            "shape": None if v._shape is None else [int(d) for d in v._shape],
            "dtype": None if v._dtype is None else np.dtype(v._dtype).name,
            "dynamic_axes": None if v._dynamic_axes is None else [a.name for a in v._dynamic_axes],
            "is_sparse": bool(v._is_sparse),
            "needs_gradient": bool(v._needs_gradient),
            "name": v._name or "",
            "dtype_explicit": bool(v._dtype_explicit),
        }
        table.append(entry)
        if v._kind in ("parameter", "constant"):
            if getattr(v, "_data", None) is None:
                raise ValueError("save_model: %s has the unresolved shape %s; connect the model to its inputs "
                                 "(so that the shape is inferred) before saving" % (v._describe(), v._shape))
            arrays[k] = np.array(v.value, order="C", copy=True)
        return k

    out_refs = [ref(o) for o in outputs]
    prim_entries = []
    for p in prims:
        entry = {
            "uid": p.uid,
            "op": p.op,
            "name": p.name or "",
            "attributes": _encode_attributes(p),
            "inputs": [ref(v) for v in p.inputs],
            "outputs": [ref(v) for v in p.outputs],
            "block": None,
        }
        if p.block is not None:
            entry["block"] = {
                "op_name": p.block.op_name,
                "outputs": [ref(v) for v in p.block.outputs],
                "mapping": [[ref(ph), ref(actual)] for ph, actual in p.block.mapping],
            }
        if p.op == USER_OP:
            entry["user_function"] = _user_function_entry(p)
        prim_entries.append(entry)
    graph = {"format": FORMAT, "version": VERSION, "name": name if isinstance(name, str) else None,
             "outputs": out_refs, "variables": table, "primitives": prim_entries}
    return graph, arrays


def save_model(function, filename):
    """Write ``function`` (its graph and parameter values) to ``filename`` atomically."""
    outputs, name = _outputs_of(function)
    if not outputs:
        raise ValueError("save_model: the function has no outputs")
    graph, arrays = _graph_data(outputs, name)
    archive.atomic_write(filename, archive.pack(graph, GRAPH_KEY, arrays))


# ============================================================================== loading

def _read_source(model):
    """(bytes, description) of what ``model`` names."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), "the given data"
    if hasattr(model, "read"):
        data = model.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("load_model: the file object must be opened in binary mode")
        return bytes(data), "the given file object"
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        with open(path, "rb") as f:
            return f.read(), "'%s'" % path
    raise TypeError("load_model: expected a file name, bytes or a binary file object, got %s" % type(model).__name__)


# -- field checks --------------------------------------------------------------------

def _field(d, key, types, where, optional=False, default=None):
    """``d[key]``, checked to be one of ``types`` (``int`` excludes bool)."""
    if not isinstance(d, dict):
        raise _Invalid("%s must be an object" % where)
    if key not in d:
        if optional:
            return default
        raise _Invalid("%s has no '%s'" % (where, key))
    v = d[key]
    if types is int:
        ok = isinstance(v, int) and not isinstance(v, bool)
    else:
        ok = isinstance(v, types)
    if not ok:
        raise _Invalid("%s: '%s' has the wrong type (%s)" % (where, key, type(v).__name__))
    return v


def _entry_uid(e, i, noun, seen):
    """The uid of the i-th variable or function entry (a string not used before), and how
    error messages name the entry."""
    uid = _field(e, "uid", str, "%s #%d" % (noun, i))
    if uid in seen:
        raise _Invalid("the %s uid '%s' is used twice" % (noun, uid))
    return uid, "%s '%s'" % (noun, uid)


def _str_list(v, where):
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise _Invalid("%s must be a list of strings" % where)
    return v


def _shape(v, where, known):
    if v is None:
        if known:
            raise _Invalid("%s: the shape is missing" % where)
        return None
    if not isinstance(v, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in v):
        raise _Invalid("%s: the shape must be a list of ints" % where)
    for d in v:
        if known and d < 0:
            raise _Invalid("%s: the shape %s must be fully known" % (where, v))
        if d < 0 and d not in (-1, -3):
            raise _Invalid("%s: bad dimension %d in the shape" % (where, d))
        if d > 2 ** 62:
            raise _Invalid("%s: dimension %d is too large" % (where, d))
    return tuple(v)


def _axis_from_name(name, cache):
    a = cache.get(name)
    if a is None:
        a = _SPECIAL_AXES.get(name) or Axis(name)
        cache[name] = a
    return a


def _decode_attr(v, axes, where, depth=0):
    """The attribute value ``_encode_attr`` stored as ``v`` (validated). ``axes`` is not read:
    axis attributes compare by name, so they need no shared instances."""
    if depth > _MAX_ATTR_DEPTH:
        raise _Invalid("%s: attribute nested too deeply" % where)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, list):
        return [_decode_attr(x, axes, where, depth + 1) for x in v]
    if not isinstance(v, dict):
        raise _Invalid("%s: bad attribute value" % where)
    if "__tuple__" in v and len(v) == 1:
        items = v["__tuple__"]
        if not isinstance(items, list):
            raise _Invalid("%s: bad tuple attribute" % where)
        return tuple(_decode_attr(x, axes, where, depth + 1) for x in items)
    if "__axis__" in v and set(v) <= {"__axis__", "ordered"}:
        a = v["__axis__"]
        ordered = v.get("ordered", True)
        if not isinstance(ordered, bool):
            raise _Invalid("%s: bad axis attribute" % where)
        if isinstance(a, int) and not isinstance(a, bool):
            return Axis(a)
        if isinstance(a, str):
            if a in _SPECIAL_AXES:
                return _SPECIAL_AXES[a]
            return Axis(a, is_ordered=ordered)
        raise _Invalid("%s: bad axis attribute" % where)
    if "__float__" in v and len(v) == 1:
        f = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(v["__float__"]) \
            if isinstance(v["__float__"], str) else None
        if f is None:
            raise _Invalid("%s: bad float attribute" % where)
        return f
    if "__dtype__" in v and len(v) == 1:
        d = _ATTR_DTYPES.get(v["__dtype__"]) if isinstance(v["__dtype__"], str) else None
        if d is None:
            raise _Invalid("%s: unsupported dtype attribute %r" % (where, v["__dtype__"]))
        return d
    if "__ndarray__" in v and set(v) == {"__ndarray__", "dtype", "shape"}:
        d = _ATTR_DTYPES.get(v["dtype"]) if isinstance(v["dtype"], str) else None
        if d is None:
            raise _Invalid("%s: unsupported array attribute dtype %r" % (where, v["dtype"]))
        shape = _shape(v["shape"], where, known=True)
        try:
            arr = np.array(_decode_attr(v["__ndarray__"], axes, where, depth + 1), dtype=d)
            return arr.reshape(shape)
        except _Invalid:
            raise
        except Exception as e:
            raise _Invalid("%s: bad array attribute (%s)" % (where, e)) from None
    if "__dict__" in v and len(v) == 1 and isinstance(v["__dict__"], dict):
        return {k: _decode_attr(x, axes, where, depth + 1) for k, x in v["__dict__"].items()}
    raise _Invalid("%s: unknown attribute encoding %s" % (where, sorted(v)[:4]))


def _validate(graph, headers):
    """Check the JSON structure; returns (model name, variables by uid, primitive entries, output uids)."""
    from .registry import OPS
    if not isinstance(graph, dict):
        raise _Invalid("the graph description must be a JSON object")
    if graph.get("format") != FORMAT:
        raise _Invalid("unknown format %r (expected %r)" % (graph.get("format"), FORMAT))
    version = _field(graph, "version", int, "the model")
    if version != VERSION:
        raise _Invalid("format version %d is not supported (this reader reads version %d)" % (version, VERSION))
    name = _field(graph, "name", (str, type(None)), "the model", optional=True)
    outputs = _str_list(_field(graph, "outputs", list, "the model"), "the model's outputs")
    if not outputs:
        raise _Invalid("the model has no outputs")
    var_list = _field(graph, "variables", list, "the model")
    prim_list = _field(graph, "primitives", list, "the model")

    variables = {}
    for i, e in enumerate(var_list):
        uid, where = _entry_uid(e, i, "variable", variables)
        if uid == GRAPH_KEY:
            raise _Invalid("reserved variable uid '%s'" % uid)
        kind = _field(e, "kind", str, where)
        if kind not in _KINDS:
            raise _Invalid("%s has the unknown kind %r" % (where, kind))
        holds_value = kind in ("parameter", "constant")
        shape = _shape(_field(e, "shape", (list, type(None)), where), where, known=holds_value)
        dtype = _field(e, "dtype", (str, type(None)), where)
        if dtype is not None and dtype not in _FLOAT_DTYPES:
            raise _Invalid("%s has the unsupported dtype %r (float32, float64 or float16)" % (where, dtype))
        if dtype is None and kind in ("input", "parameter", "constant"):
            raise _Invalid("%s has no dtype" % where)
        axes = _field(e, "dynamic_axes", (list, type(None)), where)
        if axes is not None:
            _str_list(axes, where + ": dynamic_axes")
            if len(set(axes)) != len(axes):
                raise _Invalid("%s lists a dynamic axis twice" % where)
            if holds_value and axes:
                raise _Invalid("%s: a %s has no dynamic axes" % (where, kind))
        elif kind == "input":
            raise _Invalid("%s has no dynamic axes" % where)
        if kind == "input" and shape is None:
            raise _Invalid("%s has no shape" % where)
        for flag in ("is_sparse", "needs_gradient", "dtype_explicit"):
            _field(e, flag, bool, where)
        _field(e, "name", str, where)
        if holds_value:
            h = headers.get(uid)
            if h is None:
                raise _Invalid("the value of %s is missing" % where)
            if h[0] != shape:
                raise _Invalid("the value of %s has the shape %s, but the variable declares %s"
                               % (where, h[0], shape))
            if h[1] != _FLOAT_DTYPES[dtype]:
                raise _Invalid("the value of %s is %s, but the variable declares %s" % (where, h[1], dtype))
        variables[uid] = e
    extra = set(headers) - {GRAPH_KEY} - {u for u, e in variables.items() if e["kind"] in ("parameter", "constant")}
    if extra:
        raise _Invalid("the archive has arrays that no variable uses: %s" % ", ".join(sorted(extra)[:5]))

    def known(uid, where):
        if not isinstance(uid, str) or uid not in variables:
            raise _Invalid("%s refers to the unknown variable %r" % (where, uid))
        return uid

    for o in outputs:
        known(o, "the model's outputs")

    producer = {}
    seen_prims = set()
    for i, e in enumerate(prim_list):
        puid, where = _entry_uid(e, i, "function", seen_prims)
        seen_prims.add(puid)
        op = _field(e, "op", str, where)
        _field(e, "name", str, where)
        attrs = _field(e, "attributes", dict, where)
        ins = _str_list(_field(e, "inputs", list, where), where + ": inputs")
        outs = _str_list(_field(e, "outputs", list, where), where + ": outputs")
        block = _field(e, "block", (dict, type(None)), where)
        for u in ins:
            known(u, where)
        if not outs:
            raise _Invalid("%s has no outputs" % where)
        for u in outs:
            known(u, where)
            if variables[u]["kind"] != "output":
                raise _Invalid("%s lists the %s '%s' as an output" % (where, variables[u]["kind"], u))
            if u in producer:
                raise _Invalid("the variable '%s' is the output of two functions" % u)
            producer[u] = i
        if block is None:
            opdef = OPS.get(op)
            if opdef is None:
                raise _Invalid("%s uses the unknown op %r" % (where, op))
            if op == USER_OP:
                _validate_user_function(e, where)
            elif len(outs) != opdef.num_outputs:
                raise _Invalid("%s: op %s has %d outputs, not %d" % (where, op, opdef.num_outputs, len(outs)))
        else:
            if op != "Block":
                raise _Invalid("%s has a block but the op %r" % (where, op))
            _field(block, "op_name", str, where + ": block")
            bouts = _str_list(_field(block, "outputs", list, where + ": block"), where + ": block outputs")
            if len(bouts) != len(outs):
                raise _Invalid("%s: the block has %d inner outputs for %d outputs" % (where, len(bouts), len(outs)))
            for u in bouts:
                known(u, where + ": block")
            mapping = _field(block, "mapping", list, where + ": block")
            phs = set()
            for pair in mapping:
                if not isinstance(pair, list) or len(pair) != 2:
                    raise _Invalid("%s: the block mapping must hold [placeholder, actual] pairs" % where)
                ph = known(pair[0], where + ": block")
                known(pair[1], where + ": block")
                if variables[ph]["kind"] != "placeholder":
                    raise _Invalid("%s: the block maps the %s '%s', not a placeholder"
                                   % (where, variables[ph]["kind"], ph))
                if ph in phs:
                    raise _Invalid("%s: the block maps the placeholder '%s' twice" % (where, ph))
                phs.add(ph)
            if [a for _, a in mapping] != ins:
                raise _Invalid("%s: the block's inputs do not match its argument mapping" % where)
        for k in attrs:
            if not isinstance(k, str):
                raise _Invalid("%s: bad attribute name" % where)
    orphans = [u for u, e in variables.items() if e["kind"] == "output" and u not in producer]
    if orphans:
        raise _Invalid("the output variable '%s' has no producing function" % orphans[0])
    return name, variables, prim_list, outputs


def _validate_user_function(e, where):
    """Check a user function's description (its state is checked when decoded)."""
    from ..ops.userfunction import SERIALIZATION_VERSION
    where = where + ": user_function"
    u = _field(e, "user_function", dict, where)
    for key in ("class", "module", "op_name"):
        if not _field(u, key, str, where):
            raise _Invalid("%s: '%s' is empty" % (where, key))
    if _field(u, "version", int, where) != SERIALIZATION_VERSION:
        raise _Invalid("%s: version %r is not supported" % (where, u["version"]))
    if "state" not in u:
        raise _Invalid("%s has no 'state'" % where)


# -- rebuilding -----------------------------------------------------------------------

def _set_type(v, e, axes_cache):
    v._shape = None if e["shape"] is None else tuple(e["shape"])
    v._dtype = None if e["dtype"] is None else _FLOAT_DTYPES[e["dtype"]]
    v._dynamic_axes = None if e["dynamic_axes"] is None else \
        tuple(_axis_from_name(a, axes_cache) for a in e["dynamic_axes"])
    v._is_sparse = e["is_sparse"]
    v._dtype_explicit = e["dtype_explicit"] and v._dtype is not None
    v._name = e["name"]


def _make_leaf(e, npz, device, axes_cache):
    from ..variables import Parameter, Constant
    kind = e["kind"]
    if kind in ("parameter", "constant"):
        value = archive.read_array(npz, e["uid"])
        dtype = _FLOAT_DTYPES[e["dtype"]]
        shape = tuple(e["shape"])
        if value.shape != shape or value.dtype != dtype:
            raise _Invalid("the value of '%s' does not match its declaration" % e["uid"])
        if kind == "parameter":
            v = Parameter(shape=shape, init=value, dtype=dtype, device=device, name=e["name"])
        else:
            v = Constant(value=value, shape=shape, dtype=dtype, device=device, name=e["name"])
        v._dtype_explicit = e["dtype_explicit"]
        return v
    v = Variable(kind=kind, name=e["name"])
    _set_type(v, e, axes_cache)
    v._needs_gradient = e["needs_gradient"]
    return v


def _check_block_nesting(prims):
    """A block must not contain itself (directly or through nested blocks)."""
    contains = {}
    for p in prims:
        if p.block is not None:
            contains[id(p)] = [q for q in walk(p.block.outputs, into_blocks=0) if q.block is not None]
    state = {}

    for start in prims:
        if start.block is None or id(start) in state:
            continue
        stack = [(start, iter(contains[id(start)]))]
        state[id(start)] = 1
        while stack:
            p, it = stack[-1]
            q = next(it, None)
            if q is None:
                state[id(p)] = 2
                stack.pop()
                continue
            s = state.get(id(q))
            if s == 1:
                raise _Invalid("the block '%s' contains itself" % (q.block.op_name,))
            if s is None:
                state[id(q)] = 1
                stack.append((q, iter(contains[id(q)])))


def _build(graph, npz, headers, device):
    """The Function described by a validated file, type-checked and cycle-checked."""
    from ..ops.functions import Function
    from .infer import infer_graph
    from .plan import check_cycles
    from ..ops.userfunction import deserializer_for, rebuild

    name, variables, prim_list, out_uids = _validate(graph, headers)
    axes_cache = {}
    # Decode every attribute first (pure data, no graph objects yet).
    attrs = []
    users = {}      # index of a user function entry -> (deserializer, decoded state)
    for i, e in enumerate(prim_list):
        where = "function '%s'" % e["uid"]
        attrs.append({k: _decode_attr(v, axes_cache, where) for k, v in e["attributes"].items()})
        if e["op"] == USER_OP:
            u = e["user_function"]
            # raises (outside the file-error path) unless the caller registered this function
            cb = deserializer_for(u["op_name"], u["module"], u["class"])
            users[i] = (cb, _decode_attr(u["state"], axes_cache, where + ": user_function state"))

    vars_ = {}
    for uid, e in variables.items():
        if e["kind"] in _LEAF_KINDS:
            vars_[uid] = _make_leaf(e, npz, device, axes_cache)
    # All primitives and their output variables first, so that cycles can be connected after.
    prims = []
    for e, a in zip(prim_list, attrs):
        p = (UserPrimitive if e["op"] == USER_OP else Primitive)(e["op"], [], a, e["name"], len(e["outputs"]))
        if e["block"] is not None:
            p.block = Block([], [], e["block"]["op_name"])
        for o, u in zip(p.outputs, e["outputs"]):
            ve = variables[u]
            _set_type(o, ve, axes_cache)
            o._needs_gradient = ve["needs_gradient"]
            vars_[u] = o
        prims.append(p)
    for p, e in zip(prims, prim_list):
        p.inputs = [vars_[u] for u in e["inputs"]]
        if p.block is not None:
            p.block.outputs = [vars_[u] for u in e["block"]["outputs"]]
            p.block.mapping = [(vars_[ph], vars_[actual]) for ph, actual in e["block"]["mapping"]]
    outputs = [vars_[u] for u in out_uids]
    for i, (cb, state) in users.items():
        p = prims[i]
        try:
            rebuild(p, p.inputs, p.name, state, cb)
        except Exception as e:
            raise _Invalid("the user function '%s' could not be rebuilt by its registered deserializer (%s: %s)"
                           % (prim_list[i]["user_function"]["op_name"], type(e).__name__, e)) from None

    everything = walk(outputs, into_blocks=-1)
    _check_block_nesting(everything)
    try:
        # Inner graphs first (walk lists nested blocks before the blocks containing them), so
        # that every type rule runs and recomputes its derived attributes.
        for p in everything:
            if p.block is not None:
                infer_graph(p.block.outputs)
        infer_graph(outputs)
        check_cycles(outputs)
    except RecursionError:
        raise _Invalid("the graph is nested too deeply") from None
    except Exception as e:
        raise _Invalid("the graph does not type-check (%s)" % e) from None
    f = Function(outputs)
    if name is not None:
        f._name = name
    return f


def load_model(model, device=None):
    """Load a model written by ``save_model`` from a file name, bytes or a binary file object."""
    from .. import device as _device
    from ..ops.userfunction import UnregisteredUserFunctionError
    _device.to_torch_device(device)  # a bad device is the caller's error, not the file's
    data, source = _read_source(model)
    try:
        npz, headers = archive.open_archive(data, "model", GRAPH_KEY)
        try:
            graph = archive.read_description(npz, headers, GRAPH_KEY, "the graph description")
            return _build(graph, npz, headers, device)
        finally:
            npz.close()
    except UnregisteredUserFunctionError:
        raise
    except _Invalid as e:
        reason = str(e)
    except RecursionError:
        reason = "the graph is nested too deeply"
    except Exception as e:  # anything the checks above did not anticipate is still the file's fault
        reason = "%s: %s" % (type(e).__name__, e)
    raise ValueError("%s is not a valid CNTK model file: %s" % (source, reason))
