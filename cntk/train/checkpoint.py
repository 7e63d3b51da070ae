"""Trainer checkpoints: everything needed to continue training exactly where it stopped.

``save_checkpoint(filename)`` writes two files, as CNTK does: the model (the Trainer's combined
model + loss + metric function, loadable with ``C.load_model``) to ``filename``, and the
trainer state to ``filename + '.ckp'``. The state file is self-contained: a zip archive written
by ``numpy.savez`` (never pickled) with

* ``__state__``: a 1-D uint8 array holding the UTF-8 JSON description::

    {"format": "cntk-torch-trainer-checkpoint", "version": 1,
     "parameters": [{"name", "shape", "dtype", "value": <ref>}, ...],   # in model order
     "constants": [...same...],                                        # e.g. batch-norm statistics
     "learners": [<state>, ...],                                       # learner.create_checkpoint()
     "trainer": {"samples", "minibatches", "sweeps"},
     "random": {"initializer": <numpy bit-generator state>,
                "generators": [{"node", "op", "key", "device", "state": <ref>}, ...]},
     "external_state": <state>}

* one array per ``<ref>`` (``{"$array": key}``).

Nested states are JSON with a few tagged forms: ``{"$array": key}``, ``{"$tuple": [...]}``,
``{"$float": "inf"}`` and ``{"$dict": [[key, value], ...]}`` (dicts with keys that are not plain
strings). Random generators are identified by their node's position in the model's graph
(depth-first order, blocks included), so a checkpoint restores into the same model built again
in another process.

Writing is atomic: the state is serialized in memory first, then written to ``<file>.tmp``,
flushed to disk and renamed over the previous file; a failure at any point leaves the previous
checkpoint untouched. Restoring takes parameter values from the state file (so a crash between
the model's and the state's renames cannot mix two checkpoints) and validates the whole file
against the model before changing anything.
"""

import math
import os

import numpy as np
import torch

from ..engine import archive
from ..engine.graph import walk
from ..engine import serialize as _serialize

__all__ = ["save_checkpoint", "restore_checkpoint", "state_path", "encode_state", "decode_state"]

FORMAT = "cntk-torch-trainer-checkpoint"
VERSION = 1
STATE_KEY = "__state__"
_TAGS = ("$array", "$tuple", "$float", "$dict")


# why a file is not a valid checkpoint (becomes a ValueError naming the file)
_Invalid = archive.Invalid


def state_path(filename):
    """The trainer-state file belonging to the checkpoint ``filename``."""
    return os.fspath(filename) + ".ckp"


# ============================================================================ nested states

def encode_state(obj, arrays, where="state"):
    """``obj`` (dicts, lists, tuples, numbers, strings, None, numpy arrays, tensors) as JSON data;
    arrays are stored in ``arrays`` and referenced."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else {"$float": repr(v)}
    if torch.is_tensor(obj):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf" or obj.dtype.fields is not None:
            raise TypeError("checkpoint: %s is an array of type %s; only numeric arrays can be stored"
                            % (where, obj.dtype))
        key = "a%d" % len(arrays)
        arrays[key] = np.array(obj, order="C", copy=True)
        return {"$array": key}
    if isinstance(obj, tuple):
        return {"$tuple": [encode_state(v, arrays, "%s[%d]" % (where, i)) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, arrays, "%s[%d]" % (where, i)) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):
            return {k: encode_state(v, arrays, "%s[%r]" % (where, k)) for k, v in obj.items()}
        return {"$dict": [[encode_state(k, arrays, "%s key" % where), encode_state(v, arrays, "%s[%r]" % (where, k))]
                          for k, v in obj.items()]}
    raise TypeError("checkpoint: cannot store %s, a %s (states hold numbers, strings, lists, tuples, dicts "
                    "and numeric arrays)" % (where, type(obj).__name__))


def decode_state(data, arrays, where="state"):
    """The inverse of ``encode_state``; ``arrays`` maps array keys to numpy arrays."""
    if isinstance(data, list):
        return [decode_state(v, arrays, where) for v in data]
    if not isinstance(data, dict):
        if data is not None and not isinstance(data, (bool, int, float, str)):
            raise _Invalid("%s holds a value of type %s" % (where, type(data).__name__))
        return data
    tags = [k for k in data if k in _TAGS]
    if tags:
        if len(data) != 1:
            raise _Invalid("%s: a tagged value %s has extra fields" % (where, tags[0]))
        tag, v = tags[0], data[tags[0]]
        if tag == "$array":
            if not isinstance(v, str) or v not in arrays:
                raise _Invalid("%s refers to a missing array %r" % (where, v))
            return arrays[v]
        if tag == "$tuple":
            if not isinstance(v, list):
                raise _Invalid("%s: $tuple must hold a list" % where)
            return tuple(decode_state(x, arrays, where) for x in v)
        if tag == "$float":
            if v not in ("inf", "-inf", "nan"):
                raise _Invalid("%s: bad $float %r" % (where, v))
            return float(v)
        if not isinstance(v, list) or not all(isinstance(kv, list) and len(kv) == 2 for kv in v):
            raise _Invalid("%s: $dict must hold [key, value] pairs" % where)
        out = {}
        for k, x in v:
            k = decode_state(k, arrays, where)
            if isinstance(k, list):
                raise _Invalid("%s: a dict key is a list" % where)
            out[k] = decode_state(x, arrays, where)
        return out
    return {k: decode_state(v, arrays, "%s[%r]" % (where, k)) for k, v in data.items()}


def _array_refs(data, out):
    """Every array key referenced in encoded data."""
    if isinstance(data, list):
        for v in data:
            _array_refs(v, out)
    elif isinstance(data, dict):
        if "$array" in data and isinstance(data["$array"], str):
            out.add(data["$array"])
        else:
            for v in data.values():
                _array_refs(v, out)
    return out


# ============================================================================ random generators

def _generator_key(key, index):
    """A plan's per-instance key (nested tuples of node ids, or None) with the node ids replaced
    by graph positions; None when it names a node outside this graph."""
    if key is None:
        return [None]
    if isinstance(key, tuple):
        out = []
        for k in key:
            e = _generator_key(k, index)
            if e is None:
                return None
            out.append(e)
        return ["T", out]
    if isinstance(key, int) and key in index:
        return ["N", index[key]]
    return None


def _runtime_key(data, prims, where):
    if not isinstance(data, list) or not data:
        raise _Invalid("%s: bad generator key" % where)
    if data == [None]:
        return None
    if data[0] == "T" and len(data) == 2 and isinstance(data[1], list):
        return tuple(_runtime_key(k, prims, where) for k in data[1])
    if data[0] == "N" and len(data) == 2 and isinstance(data[1], int) and 0 <= data[1] < len(prims):
        return id(prims[data[1]])
    raise _Invalid("%s: bad generator key %r" % (where, data))


def _collect_random(prims, arrays):
    index = {id(p): i for i, p in enumerate(prims)}
    gens = []
    for i, p in enumerate(prims):
        streams = p.__dict__.get("_cntk_generators")
        for (key, device), g in (streams or {}).items():
            skey = _generator_key(key, index)
            if skey is None:     # the node's instance in another model sharing it
                continue
            ref = encode_state(g.get_state().cpu().numpy(), arrays)
            gens.append({"node": i, "op": p.op, "key": skey, "device": str(device), "state": ref})
    from .. import initializer
    return {"initializer": initializer._global_rng.bit_generator.state, "generators": gens}


def _restore_random(entries, prims, arrays):
    """Validated (node, key, device, state) for every generator that can live on this machine."""
    out = []
    if not isinstance(entries, list):
        raise _Invalid("random.generators must be a list")
    for n, e in enumerate(entries):
        where = "random generator %d" % n
        if not isinstance(e, dict) or not isinstance(e.get("node"), int) or not isinstance(e.get("device"), str):
            raise _Invalid("%s is malformed" % where)
        i = e["node"]
        if not 0 <= i < len(prims) or prims[i].op != e.get("op"):
            raise _ModelMismatch("its random op #%d is %r; this model's is %s" % (
                i, e.get("op"), repr(prims[i].op) if 0 <= i < len(prims) else "missing"))
        key = _runtime_key(e.get("key"), prims, where)
        state = decode_state(e.get("state"), arrays, where)
        if not isinstance(state, np.ndarray) or state.dtype != np.uint8 or state.ndim != 1:
            raise _Invalid("%s: the state must be a 1-D uint8 array" % where)
        try:
            device = torch.device(e["device"])
        except (RuntimeError, ValueError):
            raise _Invalid("%s: bad device %r" % (where, e["device"])) from None
        if device.type != "cpu" and not _device_available(device):
            continue     # trained on a device this machine lacks: that stream starts afresh
        out.append((prims[i], key, e["device"], device, state))
    return out


def _device_available(device):
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    mod = getattr(torch, device.type, None)
    return bool(mod is not None and getattr(mod, "is_available", lambda: False)())


def _apply_random(validated):
    for prim, key, dev_str, device, state in validated:
        streams = prim.__dict__.setdefault("_cntk_generators", {})
        g = streams.get((key, dev_str))
        if g is None:
            g = streams[(key, dev_str)] = torch.Generator(device=device)
        # in place: plans hold on to the generator object itself
        g.set_state(torch.from_numpy(state.copy()))


class _ModelMismatch(Exception):
    """The checkpoint is valid but was saved from a different model."""


# ============================================================================ saving

def _leaf_entries(leaves, arrays):
    out = []
    for v in leaves:
        t = v._tensor().detach()
        out.append({"name": v.name or "", "shape": [int(d) for d in t.shape], "dtype": np.dtype(v.dtype).name,
                    "value": encode_state(t.cpu().numpy(), arrays)})
    return out


# the writer of the state file, looked up when saving (tests put a failing disk here)
_write_file = archive.write_file


def save_checkpoint(trainer, filename, external_state):
    """Write ``trainer``'s model to ``filename`` and its state to ``filename + '.ckp'``."""
    filename = os.fspath(filename)
    combined = trainer._combined
    arrays = {}
    learners = []
    for i, learner in enumerate(trainer.parameter_learners):
        learners.append(encode_state(learner.create_checkpoint(), arrays, "learner %d's checkpoint" % i))
    state = {
        "format": FORMAT, "version": VERSION,
        "parameters": _leaf_entries(combined.parameters, arrays),
        "constants": _leaf_entries(combined.constants, arrays),
        "learners": learners,
        "trainer": trainer._counters_state(),
        "random": _collect_random(walk(combined.outputs, into_blocks=-1), arrays),
        "external_state": encode_state(external_state if external_state is not None else {}, arrays,
                                       "external_state"),
    }
    data = archive.pack(state, STATE_KEY, arrays)   # everything that can fail on content fails before writing
    _serialize.save_model(combined, filename)
    archive.atomic_write(state_path(filename), data, _write_file)


# ============================================================================ restoring

def _read_archive(data):
    """(state dict, {key: array}) of a checkpoint file's bytes."""
    npz, headers = archive.open_archive(data, "checkpoint", STATE_KEY)
    with npz:
        state = archive.read_description(npz, headers, STATE_KEY, "the state")
        arrays = {k: archive.read_array(npz, k) for k in headers if k != STATE_KEY}
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise _Invalid("it is not a trainer checkpoint (format %r)" % (state.get("format") if isinstance(state, dict)
                                                                        else None,))
    if state.get("version") != VERSION:
        raise _Invalid("unsupported checkpoint version %r (this library reads version %d)"
                       % (state.get("version"), VERSION))
    for k, t in (("parameters", list), ("constants", list), ("learners", list), ("trainer", dict),
                 ("random", dict)):
        if not isinstance(state.get(k), t):
            raise _Invalid("the field %r is missing or malformed" % k)
    missing = _array_refs(state, set()) - set(arrays)
    if missing:
        raise _Invalid("it refers to missing arrays %s" % sorted(missing))
    return state, arrays


def _match_leaves(entries, leaves, kind, arrays):
    """[(leaf, value array)] after checking that the checkpoint's leaves are the model's."""
    if len(entries) != len(leaves):
        raise _ModelMismatch("it has %d %s, this model has %d" % (len(entries), kind, len(leaves)))
    out = []
    for i, (e, v) in enumerate(zip(entries, leaves)):
        where = "%s %d" % (kind[:-1], i)
        if not isinstance(e, dict) or not isinstance(e.get("shape"), list) or not isinstance(e.get("name"), str):
            raise _Invalid("%s is malformed" % where)
        mine = tuple(int(d) for d in v._tensor().shape)
        theirs = tuple(e["shape"])
        if e["name"] != (v.name or "") or theirs != mine:
            raise _ModelMismatch("%s is '%s' of shape %s there but '%s' of shape %s in this model"
                                 % (where, e["name"], theirs, v.name or "", mine))
        value = decode_state(e.get("value"), arrays, where)
        if not isinstance(value, np.ndarray) or value.shape != mine or value.dtype.kind != "f":
            raise _Invalid("%s: the stored value is not a float array of shape %s" % (where, mine))
        if e.get("dtype") != np.dtype(v.dtype).name:
            raise _ModelMismatch("%s '%s' is %s there but %s in this model"
                                 % (where, e["name"], e.get("dtype"), np.dtype(v.dtype).name))
        out.append((v, value))
    return out


def restore_checkpoint(trainer, filename):
    """Restore ``trainer`` from the checkpoint ``filename``; returns its external state."""
    path = state_path(filename)
    if not os.path.exists(path):
        raise FileNotFoundError("restore_from_checkpoint: the trainer state file '%s' does not exist "
                                "(save_checkpoint('%s') writes it next to the model)" % (path, os.fspath(filename)))
    with open(path, "rb") as f:
        data = f.read()
    combined = trainer._combined
    try:
        state, arrays = _read_archive(data)
        params = _match_leaves(state["parameters"], combined.parameters, "parameters", arrays)
        consts = _match_leaves(state["constants"], combined.constants, "constants", arrays)
        learners = trainer.parameter_learners
        if len(state["learners"]) != len(learners):
            raise _ModelMismatch("it holds the state of %d learners, this trainer has %d"
                                 % (len(state["learners"]), len(learners)))
        learner_states = [decode_state(s, arrays, "learner %d" % i) for i, s in enumerate(state["learners"])]
        counters = state["trainer"]
        for k in ("samples", "minibatches", "sweeps"):
            if not isinstance(counters.get(k), int) or counters[k] < 0:
                raise _Invalid("the trainer counter %r is missing or invalid" % k)
        prims = walk(combined.outputs, into_blocks=-1)
        generators = _restore_random(state["random"].get("generators"), prims, arrays)
        init_rng = state["random"].get("initializer")
        external = decode_state(state.get("external_state", {}), arrays, "external_state")
    except _Invalid as e:
        raise ValueError("'%s' is not a valid checkpoint file: %s" % (path, e)) from None
    except _ModelMismatch as e:
        raise ValueError("the checkpoint '%s' was saved from a different model: %s" % (path, e)) from None
    # everything is validated: now change the trainer
    for i, (learner, s) in enumerate(zip(learners, learner_states)):
        learner.restore_from_checkpoint(s)
    with torch.no_grad():
        for v, value in params + consts:
            t = v._tensor()
            t.copy_(torch.from_numpy(np.array(value, order="C")).reshape(t.shape).to(dtype=t.dtype, device=t.device))
    trainer._restore_counters(counters)
    _apply_random(generators)
    _restore_initializer_rng(init_rng)
    return external


def _restore_initializer_rng(st):
    from .. import initializer
    rng = initializer._global_rng
    if isinstance(st, dict) and st.get("bit_generator") == rng.bit_generator.state.get("bit_generator"):
        try:
            rng.bit_generator.state = st
        except (TypeError, ValueError, KeyError):
            pass   # a state this numpy cannot take only affects seeds of parameters created later
