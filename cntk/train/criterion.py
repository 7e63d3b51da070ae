"""How CNTK 2.7 turns a loss or metric output into a minibatch total and a sample count.

A criterion with dynamic axes is summed over its valid cells (sequence padding excluded), and
its sample count is the number of those cells. A criterion without dynamic axes (already
reduced over the minibatch) is taken as the total itself; its sample count comes from another
variable of the graph: for a Trainer's loss, the first variable with dynamic axes found below
the loss (depth first, outputs before inputs), for an evaluation function, its root's first
input, as CNTK does.
"""

from ..engine.graph import Variable
from ..ops.functions import Function

__all__ = ["as_function", "criterion_output", "training_count_variable", "test_count_variable", "total",
           "sample_count"]


def as_function(f, what):
    """A Function from a Function or Variable (None stays None)."""
    if f is None or isinstance(f, Function):
        return f
    if isinstance(f, Variable):
        from ..ops import combine
        return combine([f], name=f.name)
    raise TypeError("%s must be a Function or Variable, got %s" % (what, type(f).__name__))


def criterion_output(f, what):
    """The single output of a loss or metric function."""
    outs = f.outputs
    if len(outs) != 1:
        raise ValueError("the %s function must have one output; it has %d" % (what, len(outs)))
    return outs[0]


def training_count_variable(f):
    """The variable whose valid cells count a Trainer's loss's samples."""
    out = criterion_output(f, "loss")
    if out._dynamic_axes:
        return out
    seen = set()

    def search(prim):
        if prim is None or id(prim) in seen:
            return None
        seen.add(id(prim))
        for o in prim.outputs:
            if o._dynamic_axes:
                return o
        for v in prim.inputs:
            if v._dynamic_axes:
                return v
            if v._owner is not None:
                found = search(v._owner)
                if found is not None:
                    return found
        return None
    found = search(out._owner)
    if found is None:
        raise ValueError("Trainer: the loss %s has no dynamic axes and no variable with a batch axis was found "
                         "below it from which to count the training samples" % out._describe())
    return found


def test_count_variable(f):
    """The variable whose valid cells count an evaluation function's samples."""
    out = criterion_output(f, "evaluation")
    if out._dynamic_axes or out._owner is None or not out._owner.inputs:
        return out
    return out._owner.inputs[0]


def total(var, t, layouts):
    """The sum of a criterion value over all its cells, padding excluded (a 0-d tensor)."""
    seq = var.sequence_axis
    if seq is not None:
        t = layouts[seq].fill_padding(t, 0.0)
    return t.sum()


def sample_count(var, t, layouts):
    """The number of valid cells along ``var``'s dynamic axes (1 without dynamic axes)."""
    if not var._dynamic_axes:
        return 1
    seq = var.sequence_axis
    if seq is not None:
        return sum(layouts[seq].lengths_list)
    return int(t.shape[0])
