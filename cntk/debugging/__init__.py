"""Debugging aids (CNTK's ``cntk.debugging``): deterministic runs, printing a graph's signature
and nodes, and the performance profiler."""

from .. import cntk_py as _cntk_py
from ..engine.graph import walk, leaves
from ..ops.functions import Function, _type_signature
from .profiler import start_profiler, stop_profiler, enable_profiler, disable_profiler

__all__ = ["force_deterministic", "dump_signature", "dump_function",
           "start_profiler", "stop_profiler", "enable_profiler", "disable_profiler"]


def force_deterministic(seed):
    """Make runs repeatable: fix the random seed (``cntk_py.set_fixed_random_seed``: parameter
    initialization, random ops, dropout) and force deterministic algorithms
    (``cntk_py.force_deterministic_algorithms``)."""
    _cntk_py.set_fixed_random_seed(seed)
    _cntk_py.force_deterministic_algorithms()


def _as_function(root, op):
    if isinstance(root, Function):
        return root
    if hasattr(root, "_owner"):     # a Variable
        return Function([root])
    raise TypeError("%s: expected a Function or Variable; got %s" % (op, type(root).__name__))


def _signature_line(f, tag):
    name = f.name or tag or "Function"

    def spec(v):
        return ("%s: " % v.name if v.name else "") + _type_signature(v)
    outs = f.outputs
    out = "Tuple[%s]" % ", ".join(spec(o) for o in outs) if len(outs) > 1 else spec(outs[0])
    return "%s(%s) -> %s" % (name, ", ".join(spec(a) for a in f.arguments), out)


def dump_signature(root, tag=None):
    """Print the signature of ``root``: ``name(arg: Type, ...) -> Type`` (the name is ``tag``,
    else 'Function', when ``root`` has none)."""
    print(_signature_line(_as_function(root, "dump_signature"), tag))


def dump_function(root, tag=None):
    """Print the signature of ``root`` and then every node of its graph, blocks included, one per
    line: the operation (or the leaf's kind), its name (a letter where it has none; leaves also
    show their uid), its inputs and its outputs as ``name:[dynamic axes](shape)``. The batch axis
    prints as ``b*``, each other dynamic axis as a letter from the second half of the alphabet
    (``n*``, ...), announced by an ``Axis <name> == <letter>*`` line."""
    f = _as_function(root, "dump_function")
    names, axis_names = {}, {}

    def letters(n):
        return chr(ord("a") + n) if n < 26 else letters(n // 26) + letters(n % 26)

    def name_of(item):
        if item.name:
            return item.name
        if id(item) not in names:
            names[id(item)] = letters(len(names))
        return names[id(item)]

    def axis_name(axis):
        if axis.name not in axis_names:
            if axis.name == "defaultBatchAxis":
                axis_names[axis.name] = "b*"
            else:
                axis_names[axis.name] = letters(len(axis_names) + 12) + "*"
                print("  Axis", axis.name, "==", axis_names[axis.name])
        return axis_names[axis.name]

    def type_spec(v):
        axes = v._dynamic_axes
        s = "[%s]" % ",".join(axis_name(a) for a in axes) if axes else ""
        return s + ("?" if v._shape is None else str(tuple(v._shape)))

    def kind(v):
        for k in ("parameter", "constant", "placeholder", "input"):
            if getattr(v, "is_" + k):
                return k.capitalize()
        return "Variable"

    print(_signature_line(f, tag))
    # root first, as CNTK's depth-first search lists them
    for p in reversed(walk(f.outputs, into_blocks=-1)):
        ins = "(%s)" % ", ".join(name_of(v) + ":" + type_spec(v) for v in p.inputs)
        outs = "(%s)" % ", ".join(name_of(v) + ":" + type_spec(v) for v in p.outputs)
        print("  {:20} {:30} {} -> {}".format(p.op_name, name_of(p), ins, outs))
    for v in leaves(f.outputs, into_blocks=-1):
        print("  {:20} {:30} {}".format(kind(v), name_of(v) + " " + v.uid, type_spec(v)))
