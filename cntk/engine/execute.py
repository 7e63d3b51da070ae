"""Running a plan: load leaves, feed inputs, execute the steps, read outputs."""

from . import fuse as _fuse
from .graph import graph_epoch
from .plan import Plan


class Runtime:
    """Per-call state shared by the steps of a plan."""

    __slots__ = ("layouts", "training", "state", "new_state", "keep_carry", "device", "pending_writes")

    def __init__(self, layouts, training, state, keep_carry, device):
        self.layouts = layouts
        self.training = training
        self.state = state
        self.new_state = {}
        self.keep_carry = keep_carry
        self.device = device
        self.pending_writes = []  # assign: (ref tensor, write) applied once the whole pass has run


class Executor:
    """Caches plans for a set of output variables and runs them."""

    def __init__(self):
        self._plans = {}
        self.state = {}  # per-node state carried between calls (truncated BPTT delays)

    def plan(self, outputs, device):
        """The plan computing ``outputs`` on ``device``, rebuilt when the graph has changed."""
        key = (tuple(id(o) for o in outputs), str(device), _fuse.FUSED_RNN)
        p = self._plans.get(key)
        if p is None or p.epoch != graph_epoch():
            p = self._plans[key] = Plan(outputs, device)
        return p

    def run(self, plan, feeds, layouts, training=False, keep_carry=False):
        """``feeds``: {input Variable: tensor}. Returns (output values, runtime)."""
        vals = [None] * plan.nslots
        for s, v in plan.values:
            vals[s] = v._tensor()
        for s, v in plan.inputs:
            t = feeds.get(v)
            if t is None:
                raise ValueError("no data was given for the input %s" % v._describe())
            vals[s] = t
        rt = Runtime(layouts, training, self.state, keep_carry, plan.device)
        for step, free in zip(plan.steps, plan.frees):
            step(vals, rt)
            for s in free:
                vals[s] = None
        outs = [vals[s] for s in plan.out_slots]
        if rt.pending_writes:
            # an output that is a ref itself keeps the value this pass saw
            refs = {id(ref) for ref, _ in rt.pending_writes}
            outs = [o.clone() if id(o) in refs else o for o in outs]
            for _, write in rt.pending_writes:
                write()
        if rt.new_state:
            self.state.update(rt.new_state)
        return outs, rt
