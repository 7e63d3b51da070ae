"""Execution plans: flatten blocks, find recurrent loops (Tarjan), order and compile the steps.

A plan is built once per (graph state, requested outputs, device) and reused for every
minibatch, whatever its batch size or sequence lengths.
"""

import torch

from .graph import graph_epoch, shape_known
from . import fuse as _fuse
from .fuse import fuse, FusedNode, match_recurrence, recurrence_node
from .oplib.sequence import expand_init, _carry_for, remember_carry
from .registry import BuildContext, get, ndyn

# Ops whose batched form needs the whole sequence; they cannot run one time step at a time.
# (broadcast_as is allowed in a loop: its operand has no sequence axis, so each step sees all of it)
_WHOLE_SEQUENCE_OPS = {"First", "Last", "SequenceReduceSum", "SequenceReduceMax", "SequenceSlice", "Where",
                       "IsFirst", "IsLast", "SequenceGather", "SequenceScatter", "SequenceSoftmax",
                       "UnpackSequence", "ToSequence", "ToSequenceLike", "OptimizedRNNStack"}


class FNode:
    """A primitive instance in the flattened graph (blocks inlined), addressed by keys."""

    __slots__ = ("prim", "in_keys", "out_keys", "key")

    def __init__(self, prim, key, out_keys):
        self.prim = prim
        self.key = key
        self.out_keys = out_keys
        self.in_keys = []


class CycleError(ValueError):
    """A cycle without a delay, or a recurrent loop that cannot be stepped through time."""


def flatten(outputs, fuse_rnn=False, exclude=()):
    """Inline blocks. Returns (nodes in discovery order, key of each output, {key: Variable}).

    With ``fuse_rnn``, a Recurrence block that ``fuse.match_recurrence`` accepts (and whose
    primitive's id is not in ``exclude``) is not inlined: it becomes one fused node."""
    nodes = {}
    order = []
    var_of = {}
    scope_map = {}      # inner scope -> (outer scope, {id(placeholder): actual Variable})
    alias = {}          # placeholder key -> key of what it is bound to
    pending = []        # (placeholder key, actual Variable, outer scope) not resolved yet
    todo = []           # (node, scope, input Variables) whose inputs are not keyed yet
    matched = {}        # id(block primitive) -> match_recurrence's result

    def _key(var, scope):
        p = var._owner
        if p is None:
            sm = scope_map.get(scope)
            if sm is not None and id(var) in sm[1]:
                k = ("P", scope, id(var))
                if k not in alias:
                    alias[k] = None
                    pending.append((k, sm[1][id(var)], sm[0]))
                return k
            k = ("L", id(var))
            var_of[k] = var
            return k
        if p.block is not None and fuse_rnn and id(p) not in exclude:
            m = matched.get(id(p), False)
            if m is False:
                m = matched[id(p)] = match_recurrence(p)
            if m is not None:
                nk = (scope, id(p))
                n = nodes.get(nk)
                if n is None:
                    n = nodes[nk] = recurrence_node(p, nk, [(scope, id(o)) for o in p.outputs], m)
                    for o, ok in zip(p.outputs, n.out_keys):
                        var_of[ok] = o
                    todo.append((n, scope, [m[2]] + m[3]))
                return n.out_keys[var._index]
        if p.block is not None:
            inner = scope + (id(p),)
            if inner not in scope_map:
                scope_map[inner] = (scope, {id(ph): actual for ph, actual in p.block.mapping})
            return _key(p.block.outputs[var._index], inner)
        nk = (scope, id(p))
        n = nodes.get(nk)
        if n is None:
            n = FNode(p, nk, [(scope, id(o)) for o in p.outputs])
            nodes[nk] = n
            for o, ok in zip(p.outputs, n.out_keys):
                var_of[ok] = o
            todo.append((n, scope, p.inputs))
        return n.out_keys[var._index]

    out_keys = [_key(v, ()) for v in outputs]
    while todo or pending:
        while todo:
            n, scope, ins = todo.pop()
            n.in_keys = [_key(i, scope) for i in ins]
            order.append(n)
        while pending:
            k, actual, outer = pending.pop()
            alias[k] = _key(actual, outer)

    def resolve(k):
        seen = 0
        while k in alias:
            k = alias[k]
            seen += 1
            if seen > 10000:
                raise CycleError("placeholder bound to itself")
        return k
    for n in order:
        n.in_keys = [resolve(k) for k in n.in_keys]
    out_keys = [resolve(k) for k in out_keys]
    return order, out_keys, var_of


def tarjan(nodes, producer):
    """Strongly connected components over dependency edges, dependencies first."""
    index = {}
    low = {}
    on_stack = set()
    stack = []
    comps = []
    counter = [0]
    deps = {n.key: [producer[k] for k in n.in_keys if k in producer] for n in nodes}
    for root in nodes:
        if root.key in index:
            continue
        work = [(root, 0)]
        while work:
            n, i = work.pop()
            if i == 0:
                index[n.key] = low[n.key] = counter[0]
                counter[0] += 1
                stack.append(n)
                on_stack.add(n.key)
            d = deps[n.key]
            recursed = False
            while i < len(d):
                m = d[i]
                i += 1
                if m.key not in index:
                    work.append((n, i))
                    work.append((m, 0))
                    recursed = True
                    break
                if m.key in on_stack:
                    low[n.key] = min(low[n.key], index[m.key])
            if recursed:
                continue
            if low[n.key] == index[n.key]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m.key)
                    comp.append(m)
                    if m is n:
                        break
                comps.append(comp)
            if work:
                parent = work[-1][0]
                low[parent.key] = min(low[parent.key], low[n.key])
    return comps


def _is_loop(comp, producer):
    """Whether a strongly connected component is a recurrent loop (not a lone acyclic node)."""
    if len(comp) > 1:
        return True
    n = comp[0]
    return any(producer.get(k) is n for k in n.in_keys)


def _loop_order(comp, producer):
    """Order a loop's nodes for one time step: delays read the past, so their edge from inside
    the loop is cut; what remains must be acyclic."""
    members = {n.key for n in comp}
    delays = [n for n in comp if get(n.prim.op).is_delay]
    if not delays:
        names = ", ".join(n.prim.describe() for n in comp[:4])
        raise CycleError("the graph has a cycle without a past_value/future_value delay: %s" % names)
    kinds = {n.prim.op for n in delays}
    if len(kinds) > 1:
        raise CycleError("a recurrent loop mixes past_value and future_value: %s"
                         % ", ".join(n.prim.describe() for n in delays))
    for n in delays:
        if n.prim.attributes["offset"] <= 0:
            raise CycleError("%s: a delay inside a loop needs time_step >= 1" % n.prim.describe())
    rest = [n for n in comp if not get(n.prim.op).is_delay]
    deps = {n.key: {producer[k].key for k in n.in_keys if k in producer and producer[k].key in members}
            for n in rest}
    done = {n.key for n in delays}
    ordered = list(delays)
    remaining = list(rest)
    while remaining:
        ready = [n for n in remaining if deps[n.key] <= done]
        if not ready:
            raise CycleError("the graph has a cycle without a past_value/future_value delay: %s"
                             % ", ".join(n.prim.describe() for n in remaining[:4]))
        for n in ready:
            done.add(n.key)
            ordered.append(n)
        remaining = [n for n in remaining if n.key not in done]
    for n in rest:
        if n.prim.op in _WHOLE_SEQUENCE_OPS:
            raise CycleError("%s cannot be used inside a recurrent loop" % n.prim.describe())
    return ordered, kinds.pop() == "PastValue"


def check_cycles(outputs):
    """Raise if the graph has a cycle without a delay (called when placeholders are bound)."""
    nodes, _, _ = flatten(outputs)
    producer = {k: n for n in nodes for k in n.out_keys}
    for comp in tarjan(nodes, producer):
        if _is_loop(comp, producer):
            _loop_order(comp, producer)


def _flatten_fused(outputs):
    """flatten with the fused recurrences that ``fuse.FUSED_RNN`` allows, except those that end
    up inside an enclosing recurrent loop (a loop is stepped; they are inlined into it). Returns
    (nodes, output keys, var_of, producer)."""
    exclude = set()
    while True:
        nodes, out_keys, var_of = flatten(outputs, fuse_rnn=_fuse.FUSED_RNN, exclude=exclude)
        producer = {k: n for n in nodes for k in n.out_keys}
        if not any(isinstance(n, FusedNode) for n in nodes):
            return nodes, out_keys, var_of, producer
        looped = {id(n.prim) for comp in tarjan(nodes, producer) if _is_loop(comp, producer)
                  for n in comp if isinstance(n, FusedNode)}
        if not looped:
            return nodes, out_keys, var_of, producer
        exclude |= looped


class Plan:
    """Compiled steps plus what is needed to load leaves and read outputs."""

    def __init__(self, outputs, device):
        self.epoch = graph_epoch()
        self.device = device
        nodes, out_keys, var_of, producer = _flatten_fused(outputs)
        # the recurrences run as fused kernels ('lstm', 'rnn_tanh', 'rnn_relu'), for inspection
        self.fused_recurrences = [n for n in nodes if isinstance(n, FusedNode)]
        slot = {}

        def slot_of(k):
            s = slot.get(k)
            if s is None:
                s = slot[k] = len(slot)
            return s
        self.leaves = []  # (slot, Variable)
        for k, v in var_of.items():
            if k[0] == "L":
                self.leaves.append((slot_of(k), v))
        for _, v in self.leaves:
            if v.is_placeholder:
                raise ValueError("the function has an unbound placeholder %s; bind it with replace_placeholders "
                                 "or by calling the function" % v._describe())
        self.steps = []
        comps = tarjan(nodes, producer)
        loop_members = {n.key for comp in comps if _is_loop(comp, producer) for n in comp}
        fused = fuse(nodes, out_keys, var_of, loop_members)
        if len(fused) != len(nodes):
            nodes = fused
            producer = {k: n for n in nodes for k in n.out_keys}
            comps = tarjan(nodes, producer)
        # keys read by other components or returned: only these leave a loop as (B, T, ...) values
        comp_of = {n.key: i for i, comp in enumerate(comps) for n in comp}
        used_outside = set(out_keys)
        for n in nodes:
            for k in n.in_keys:
                if k in producer and comp_of[producer[k].key] != comp_of[n.key]:
                    used_outside.add(k)
        last_use = {}
        for i, comp in enumerate(comps):
            if _is_loop(comp, producer):
                self.steps.append(_LoopStep(comp, producer, var_of, slot_of, used_outside).run)
            else:
                (n,) = comp
                self.steps.append(_make_step(n, var_of, slot_of))
            for n in comp:
                for k in n.in_keys:
                    last_use[k] = i
        self.out_slots = [slot_of(k) for k in out_keys]
        # Drop each intermediate value after the last step that reads it, so memory that
        # autograd does not need is released during the forward pass, not at its end.
        keep = set(out_keys) | {k for k in var_of if k[0] == "L"}
        self.frees = [[] for _ in comps]
        for k, i in last_use.items():
            if k not in keep and k in slot:
                self.frees[i].append(slot[k])
        self.nslots = len(slot)
        self.inputs = [(s, v) for s, v in self.leaves if v.is_input]
        self.input_vars = frozenset(v for _, v in self.inputs)  # the inputs a call must feed
        self.values = [(s, v) for s, v in self.leaves if not v.is_input]


def _build(n, var_of, step):
    """The op's step function for node ``n``; ``step``: for one time step of a loop, where a
    sequence value has lost its time dimension (only the batch one is left)."""
    ins = [var_of[k] for k in n.in_keys]
    outs = [var_of[k] for k in n.out_keys]
    for v in ins + outs:
        if v._dynamic_axes is None or not shape_known(v._shape, free_ok=True):
            raise ValueError("%s: the type of %s could not be inferred; is an input or placeholder unbound?"
                             % (n.prim.describe(), v._describe()))

    def nd(v):
        d = ndyn(v._dynamic_axes)
        return min(d, 1) if step else d
    ctx = BuildContext(n.prim, [nd(v) for v in ins], nd(outs[0]) if outs else 0, step, n.key)
    return get(n.prim.op).build(ctx)


def _make_step(n, var_of, slot_of):
    fn = n.build() if isinstance(n, FusedNode) else _build(n, var_of, False)
    ins = [slot_of(k) for k in n.in_keys]
    outs = [slot_of(k) for k in n.out_keys]
    if len(outs) == 1:
        o = outs[0]

        def step(vals, rt):
            vals[o] = fn([vals[i] for i in ins], rt)
    else:
        def step(vals, rt):
            for o, v in zip(outs, fn([vals[i] for i in ins], rt)):
                vals[o] = v
    return step


class _LoopStep:
    """A strongly connected component stepped through time; everything feeding it from outside
    was computed, batched, before it runs."""

    def __init__(self, comp, producer, var_of, slot_of, used_outside):
        ordered, forward = _loop_order(comp, producer)
        self.forward = forward
        local = {}      # key of a value computed in the loop -> its local index
        for n in ordered:
            for k in n.out_keys:
                local[k] = len(local)
        self.seq_axis = var_of[ordered[0].out_keys[0]].sequence_axis   # ordered starts with the delays
        self.plan = []
        self.seq_ext = set()
        for n in ordered:
            srcs = []
            for k in n.in_keys:
                if k in local:
                    srcs.append((0, local[k]))
                else:
                    v = var_of[k]
                    if v.sequence_axis is not None:
                        if v.sequence_axis != self.seq_axis:
                            raise ValueError("%s: operand %s is on another sequence axis than its recurrent loop"
                                             % (n.prim.describe(), v._describe()))
                        s = slot_of(k)
                        self.seq_ext.add(s)
                        srcs.append((1, s))
                    else:
                        srcs.append((2, slot_of(k)))
            outs = [local[k] for k in n.out_keys]
            if get(n.prim.op).is_delay:
                init_v = var_of[n.in_keys[1]]
                shape = tuple(var_of[n.out_keys[0]]._shape)
                self.plan.append(("delay", srcs, outs[0], (n.prim.attributes["offset"], ndyn(init_v._dynamic_axes),
                                                           shape, n.key)))
            else:
                self.plan.append(("op", srcs, outs, _build(n, var_of, True)))
        self.out_slots = [(local[k], slot_of(k)) for n in ordered for k in n.out_keys if k in used_outside]
        self._compile_body()

    def _compile_body(self):
        """Generate one Python function for a time step: each node's value is a local variable,
        and only values read by a delay or used after the loop are kept per step. This removes
        the per-node dispatch of an interpreter loop (the body runs T times per call)."""
        kept = {loc for loc, _ in self.out_slots}
        for kind, srcs, _, _ in self.plan:
            if kind == "delay":
                kept.add(srcs[0][1])
        self.kept = sorted(kept)
        src = ["def body(t, H, X, V, D, F, rt):"]
        fns = []
        ndelay = 0
        for kind, srcs, outs, fn in self.plan:
            if kind == "delay":
                src.append("    v%d = D[%d](t)" % (outs, ndelay))
                ndelay += 1
                outs = [outs]
            else:
                args = ", ".join("v%d" % i if c == 0 else "X[%d][t]" % i if c == 1 else "V[%d]" % i for c, i in srcs)
                target = "v%d" % outs[0] if len(outs) == 1 else ", ".join("v%d" % o for o in outs) + ","
                src.append("    %s = F[%d]([%s], rt)" % (target, len(fns), args))
                fns.append(fn)
            for o in outs:
                if o in kept:
                    src.append("    H[%d][t] = v%d" % (o, o))
        ns = {}
        exec(compile("\n".join(src), "<cntk loop body>", "exec"), ns)  # generated from our own plan only
        self.body = ns["body"]
        self.fns = fns
        self.delays = [(srcs, out, info) for kind, srcs, out, info in self.plan if kind == "delay"]

    def _delay_reader(self, src_hist, k, init_b, carry, cont, lay, T, bshape):
        """Step t's value of one delay: an earlier (past) or later (future) step of its input,
        or the initial state where there is none. A sequence whose step is padding (past) or
        whose source step is past its end (future) reads the initial state, so padding never
        feeds real elements."""
        uniform = lay.uniform
        if self.forward:
            def read(t):
                j = t - k
                if j >= 0:
                    v = src_hist[j]
                    return v if uniform else torch.where(lay.time_valid(t).reshape(bshape), v, init_b)
                return init_b if carry is None else torch.where(cont, carry[:, k + j], init_b)
        else:
            def read(t):
                j = t + k
                if j < T:
                    v = src_hist[j]
                    return v if uniform else torch.where(lay.time_valid(j).reshape(bshape), v, init_b)
                return init_b
        return read

    def run(self, vals, rt):
        lay = rt.layouts[self.seq_axis]
        T, B = lay.T, lay.B
        X = {s: vals[s].unbind(1) for s in self.seq_ext}
        H = {loc: [None] * T for loc in self.kept}
        dtype = next((vals[s].dtype for s in self.seq_ext), None)
        readers, carries = [], []
        for srcs, out, (k, nd_init, shape, key) in self.delays:
            init = vals[srcs[1][1]]
            init_b = expand_init(init, nd_init, B, shape, dtype or init.dtype)
            carry = _carry_for(rt, key, lay, B) if self.forward else None
            bshape = (B,) + (1,) * len(shape)
            cont = None if carry is None else lay.continues.reshape(bshape)
            readers.append(self._delay_reader(H[srcs[0][1]], k, init_b, carry, cont, lay, T, bshape))
            carries.append((key, srcs[0][1], k, init_b, carry))
        body, fns = self.body, self.fns
        for t in (range(T) if self.forward else range(T - 1, -1, -1)):
            body(t, H, X, vals, readers, fns, rt)
        for loc, s in self.out_slots:
            vals[s] = torch.stack(H[loc], 1)
        if self.forward and rt.keep_carry:
            for key, loc, k, init_b, carry in carries:
                remember_carry(rt, key, torch.stack(H[loc], 1), init_b, k, lay, carry)
