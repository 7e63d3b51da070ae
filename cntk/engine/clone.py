"""Graph surgery: clone with share/clone/freeze and substitutions, and binding placeholders."""

from .graph import Variable, Primitive, Block, walk
from .infer import infer_graph


def _copy_type(src, dst):
    """Give a copied variable the type, flags and name of the original."""
    dst._shape, dst._dtype, dst._dynamic_axes = src._shape, src._dtype, src._dynamic_axes
    dst._dtype_explicit, dst._is_sparse, dst._needs_gradient = src._dtype_explicit, src._is_sparse, src._needs_gradient
    dst._name = src._name


def _under_construction(v):
    """Whether ``v`` is an argument of an enclosing @Function still being traced: such a
    placeholder is shared by the functions defined inside it, never copied."""
    from ..ops.functions import _PLACEHOLDERS_UNDER_CONSTRUCTION
    return any(v is p for p in _PLACEHOLDERS_UNDER_CONSTRUCTION)


def clone_graph(outputs, method, substitutions):
    """Copies of the primitives reachable from ``outputs``; returns the new output variables.

    method: 'clone' (new parameters with the same values), 'share' (same parameters) or
    'freeze' (parameters become constants). Inputs are kept; unbound placeholders are copied.
    """
    from ..variables import Parameter, Constant
    leaf_map = {}
    out_map = {}

    def map_leaf(v):
        if v in substitutions:
            return substitutions[v]
        m = leaf_map.get(v)
        if m is not None:
            return m
        if v.is_parameter:
            m = v if method == "share" else v._new_like(Parameter) if method == "clone" else v._new_like(Constant)
        elif v.is_constant:
            m = v._new_like(Constant) if method == "clone" else v
        elif v.is_placeholder and not _under_construction(v):
            m = Variable(kind="placeholder", name=v._name)
            _copy_type(v, m)
        else:
            m = v
        leaf_map[v] = m
        return m

    def map_var(v):
        if v in substitutions:
            return substitutions[v]
        if v._owner is None:
            return map_leaf(v)
        return out_map[v]

    def clone_prims(outs):
        prims = walk(outs, into_blocks=0)
        new = []
        for p in prims:
            block = None
            if p.block is not None:
                inner_outs = clone_prims(p.block.outputs)
                block = Block(inner_outs, [(map_leaf(ph), None) for ph, _ in p.block.mapping], p.block.op_name)
            q = Primitive(p.op, [], p.attributes, p.name, len(p.outputs), block=block)
            for o, n in zip(p.outputs, q.outputs):
                _copy_type(o, n)
                out_map[o] = n
            new.append((p, q))
        for p, q in new:
            q.inputs = [map_var(i) for i in p.inputs]
            if q.block is not None:
                q.block.mapping = [(ph, map_var(actual)) for (ph, _), (_, actual) in zip(q.block.mapping, p.block.mapping)]
        return [map_var(o) for o in outs]

    new_outputs = clone_prims(outputs)
    infer_graph(new_outputs)
    return new_outputs


def replace_placeholders(outputs, mapping):
    """Bind placeholders in place: every use of a key of ``mapping`` now reads its value."""
    from .plan import check_cycles
    prims = walk(outputs, into_blocks=0)
    found = set()
    undo = []
    for p in prims:
        if any(v in mapping for v in p.inputs) or (
                p.block is not None and any(a in mapping for _, a in p.block.mapping)):
            undo.append((p, list(p.inputs), list(p.block.mapping) if p.block is not None else None))
        for i, v in enumerate(p.inputs):
            if v in mapping:
                p.inputs[i] = mapping[v]
                found.add(v)
        if p.block is not None:
            new_map = []
            for ph, actual in p.block.mapping:
                if actual in mapping:
                    found.add(actual)
                    actual = mapping[actual]
                new_map.append((ph, actual))
            p.block.mapping = new_map
            p.inputs = [a for _, a in new_map]

    def rollback():
        for p, ins, bmap in undo:
            p.inputs = ins
            if bmap is not None:
                p.block.mapping = bmap

    missing = [k for k in mapping if k not in found and not any(o is k for o in outputs)]
    if missing:
        rollback()
        raise ValueError("replace_placeholders: %s is not a placeholder of this function"
                         % ", ".join(k._describe() for k in missing))
    new_outputs = [mapping.get(o, o) for o in outputs]
    # A binding that closes a cycle without a delay, or whose types do not fit, leaves the
    # graph as it was.
    try:
        check_cycles(new_outputs)
        infer_graph(new_outputs)
    except Exception:
        rollback()
        try:
            infer_graph(outputs)
        except Exception:
            pass
        raise
    return new_outputs
