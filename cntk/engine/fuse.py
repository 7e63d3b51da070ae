"""Plan rewrites that replace a group of primitives by one fused torch kernel.

A rewrite must give the same numbers as the nodes it replaces; it only applies where the
intermediate values are not visible (not requested as outputs, not read by anything else).
Two rewrites exist: ``times(x, W) + b`` as one affine kernel, and a ``Recurrence`` block over a
standard cell as one fused recurrent kernel (``FUSED_RNN``).
"""

import contextlib

import torch
import torch.nn.functional as F

from .graph import leaves
from .registry import BuildContext, ndyn
from .oplib.elementwise import padding_guard
from .oplib.linalg import TIMES_REDUCE_SEQUENCE_AXIS_WITHOUT_INFERRED_INPUT_RANK
from .oplib.rnn import GATES, cell_params, run_recurrence

# Run Recurrence blocks over standard cells with torch's fused recurrent kernels (else they are
# inlined and stepped through time like any other loop). Plans are cached per value of this.
FUSED_RNN = True


@contextlib.contextmanager
def fused_rnn(enabled):
    """Within the block, set ``FUSED_RNN`` to ``enabled`` (e.g. ``False`` to run the stepped loop)."""
    global FUSED_RNN
    old, FUSED_RNN = FUSED_RNN, bool(enabled)
    try:
        yield
    finally:
        FUSED_RNN = old


class FusedNode:
    """Stands in the plan for the nodes it replaces; ``build`` makes its step function;
    ``kind`` says which rewrite made it ('affine', or the recurrent cell's kind)."""

    __slots__ = ("prim", "in_keys", "out_keys", "key", "build", "kind")

    def __init__(self, prim, in_keys, out_keys, key, build, kind):
        self.prim, self.in_keys, self.out_keys, self.key, self.build = prim, in_keys, out_keys, key, build
        self.kind = kind


# -- Recurrence over a standard cell -> one fused recurrent kernel ------------------------------

def match_recurrence(prim):
    """For a block that the layers library marked ``fused_rnn`` (a Recurrence over a plain LSTM
    or tanh/relu RNNStep, zero initial state, output h only) whose leaves are still exactly the
    cell's W, H and b and zero initial states: (kind, go_backwards, x, [W, H, b]). Else None."""
    spec = prim.attributes.get("fused_rnn") if prim.block is not None else None
    if not isinstance(spec, dict) or spec.get("kind") not in ("lstm", "rnn_tanh", "rnn_relu"):
        return None
    if len(prim.outputs) != 1 or len(prim.inputs) != 1:
        return None
    x, y = prim.inputs[0], prim.outputs[0]
    if x._is_sparse or x._shape is None or len(x._shape) != 1 or x.sequence_axis is None \
            or y._shape is None or len(y._shape) != 1 or y._dynamic_axes != x._dynamic_axes:
        return None
    inner = [v for v in leaves(prim.block.outputs) if v.is_parameter or v.is_constant]
    cell = [v for v in inner if v.name in ("W", "H", "b")]      # Constants after clone(freeze)
    params = {v.name: v for v in cell}
    if len(cell) != 3 or len(params) != 3:
        return None
    # everything else: the initial states, zero scalars (a clone may have replaced them)
    if any(v.is_parameter or v.shape != () or float(v.value) != 0.0 for v in inner if v not in cell):
        return None
    W, H, b = params["W"], params["H"], params["b"]
    n, G = y._shape[0], GATES[spec["kind"]]
    if tuple(W._shape) != (x._shape[0], G * n) or tuple(H._shape) != (n, G * n) or tuple(b._shape) != (G * n,):
        return None
    if not (x._dtype == W._dtype == H._dtype == b._dtype == y._dtype) or x._dtype.itemsize < 4:
        return None     # (torch's CPU kernels have no float16 recurrences)
    return spec["kind"], bool(spec.get("go_backwards", False)), x, [W, H, b]


def recurrence_node(prim, key, out_keys, match):
    """The fused node computing a matched Recurrence block; its inputs are (x, W, H, b)."""
    kind, backwards, x, _ = match
    seq = x.sequence_axis
    carries = not backwards   # a forward recurrence continues sequences across calls (truncated BPTT)
    hkey, ckey = (key, "h"), (key, "c")

    def build():
        def fn(ins, rt):
            xv, W, H, b = ins
            lay = rt.layouts[seq]
            h0 = c0 = None
            if carries and lay.starts is not None:
                h0 = _initial_state(rt, hkey, lay, xv, H.shape[0])
                c0 = _initial_state(rt, ckey, lay, xv, H.shape[0]) if kind == "lstm" else None
            keep = carries and rt.keep_carry
            y, h_n, c_n = run_recurrence(kind, xv, lay, cell_params(kind, W, H, b), H.shape[0],
                                         go_backwards=backwards, h0=h0, c0=c0, final_states=keep)
            if keep:
                rt.new_state[hkey] = h_n[0].detach().unsqueeze(1)
                if c_n is not None:
                    rt.new_state[ckey] = c_n[0].detach().unsqueeze(1)
            return y
        return fn
    return FusedNode(prim, [], out_keys, key, build, kind)


def _initial_state(rt, key, lay, x, n):
    """(1, B, n): the previous call's last state for sequences that continue, else zeros."""
    B = x.shape[0]
    carry = rt.state.get(key)
    zeros = x.new_zeros((B, n))
    if carry is None or carry.shape[0] != B:
        return zeros.unsqueeze(0)
    return torch.where(lay.continues.reshape(B, 1), carry[:, 0], zeros).unsqueeze(0)


def _linear(times, plus, x_key, w_key, b_key, var_of):
    """times(x, W) + b with W (K, N) and b (N,) as one affine kernel (addmm)."""
    x = var_of[x_key]
    ctx = BuildContext(times.prim, [ndyn(x._dynamic_axes), 0], ndyn(x._dynamic_axes), False, times.key)

    def build():
        return padding_guard(ctx, lambda ins, rt: F.linear(ins[0], ins[1].t(), ins[2]))
    return FusedNode(plus.prim, [x_key, w_key, b_key], plus.out_keys, plus.key, build, "affine")


def _match_linear(n, producer, consumers, protected, var_of):
    """For ``n`` = plus(times(x, W), b) whose product nobody else sees: (the Times node, the
    fused node); else None."""
    if n.prim.op != "Plus" or len(n.in_keys) != 2:
        return None
    for ti, bi in ((0, 1), (1, 0)):
        tk = n.in_keys[ti]
        m = producer.get(tk)
        if m is None or m.prim.op != "Times":
            continue
        if tk in protected or consumers.get(tk, 0) != 1:
            continue
        x_key, w_key = m.in_keys
        W, b, x, out = var_of[w_key], var_of[n.in_keys[bi]], var_of[x_key], var_of[n.out_keys[0]]
        if m.prim.attributes.get("output_rank", 1) != 1 or \
                m.prim.attributes.get("infer_input_rank_to_map") == TIMES_REDUCE_SEQUENCE_AXIS_WITHOUT_INFERRED_INPUT_RANK:
            continue
        if W._dynamic_axes or len(W._shape) != 2 or b._dynamic_axes or tuple(b._shape) != (W._shape[1],):
            continue
        if x._is_sparse or x._dtype != W._dtype or b._dtype != W._dtype or tuple(out._shape) != tuple(var_of[tk]._shape):
            continue
        return m, _linear(m, n, x_key, w_key, n.in_keys[bi], var_of)
    return None


def fuse(nodes, out_keys, var_of, loop_members):
    """Rewrite ``nodes`` (a flattened graph); nodes inside recurrent loops are left alone."""
    producer = {k: n for n in nodes for k in n.out_keys}
    consumers = {}
    for n in nodes:
        for k in n.in_keys:
            consumers[k] = consumers.get(k, 0) + 1
    protected = set(out_keys)
    removed = set()
    replaced = {}
    for n in nodes:
        if n.key in loop_members:
            continue
        hit = _match_linear(n, producer, consumers, protected, var_of)
        if hit is not None and hit[0].key not in loop_members and hit[0].key not in removed:
            removed.add(hit[0].key)
            replaced[n.key] = hit[1]
    return [replaced.get(n.key, n) for n in nodes if n.key not in removed]
