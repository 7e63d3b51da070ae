"""Layers over sequences (CNTK's ``cntk.layers.sequence``): ``Delay``, ``PastValueWindow``,
``Recurrence``, ``RecurrenceFrom``, ``Fold`` and ``UnfoldFrom``."""

import types

from ..ops import combine, reconcile_dynamic_axes, placeholder, past_value, future_value, splice, \
    sequence as _sequence, _op
from ..ops.functions import Function, _is_python_function
from ..variables import Variable
from ..default_options import default_override_or, get_default_override
from . import blocks as _blocks
from .blocks import *  # noqa: F401,F403  (as CNTK's module: the blocks are part of its namespace)
from .blocks import _block, _get_initial_state_or_default

__all__ = ["Delay", "PastValueWindow", "Recurrence", "RecurrenceFrom", "Fold", "UnfoldFrom",
           # what CNTK's module also exposes (its imports)
           "past_value", "future_value", "splice", "combine"] + _blocks.__all__


def Delay(T=1, initial_state=default_override_or(0), name=''):
    """``sequence.delay`` as a layer: the input delayed by ``T`` steps (negative: from the
    future, 0: unchanged); ``initial_state`` fills the steps that have no source."""
    initial_state = get_default_override(Delay, initial_state=initial_state)
    initial_state = _get_initial_state_or_default(initial_state)

    def delay(x):
        return _sequence.delay(x, initial_state=initial_state, time_step=T)
    return _block('Delay', name, delay)


def PastValueWindow(window_size, axis, go_backwards=default_override_or(False), name=''):
    """The last ``window_size`` items of a sequence (the first ones with ``go_backwards``),
    most recent first, stacked along the static ``axis``, and a validity mask; two outputs
    (value (N, dim), valid (N, 1)) with no sequence axis."""
    go_backwards = get_default_override(PastValueWindow, go_backwards=go_backwards)
    return _sequence.past_value_window(placeholder(name='x'), window_size, axis, go_backwards=go_backwards,
                                       name=name)


def _sanitize_function(f, layer):
    """A step/generator function as a Function (a Python function is traced once)."""
    if isinstance(f, Function):
        return f
    if _is_python_function(f) or isinstance(f, types.LambdaType):
        return Function(f)
    raise TypeError("%s: the step function must be a Function or a Python function; got %r" % (layer, f))


def _describe_args(f):
    return ", ".join("%s: %s" % (a.name or a.uid, a._type_str()) for a in f.arguments)


def _describe_outs(f):
    return ", ".join(o._type_str() for o in f.outputs)


def _state_count(step, layer):
    """N for a step function of N+1 arguments (states..., x) and N outputs (the new states)."""
    n_args, n_outs = len(step.signature), len(step.outputs)
    if n_args < 2 or n_outs != n_args - 1:
        raise TypeError("%s: the step function must take the N previous states and then the input (N+1 "
                        "arguments) and return the N new states; it takes %d argument%s (%s) and returns %d "
                        "output%s (%s)" % (layer, n_args, "" if n_args == 1 else "s", _describe_args(step),
                                           n_outs, "" if n_outs == 1 else "s", _describe_outs(step)))
    return n_args - 1


def _loop(step, n, initial_states, x, go_backwards):
    """The step function applied to its own delayed outputs and ``x``; returns its outputs (the
    state sequences), with the loop closed."""
    fwd = [placeholder(name=a.name) for a in step.signature[:n]]
    t = -1 if go_backwards else 1
    prev = [_sequence.delay(f, initial_state=s, time_step=t) for f, s in zip(fwd, initial_states)]
    out = step(*(prev + [x]))
    outs = list(out.outputs)
    graph = Function(outs)
    present = {id(p) for p in graph.placeholders}
    binding = {f: o for f, o in zip(fwd, outs) if id(f) in present}   # a state the step ignores has no loop
    if binding:
        graph.replace_placeholders(binding)
    return graph.outputs


def _fused_annotation(step, initial_states, go_backwards, return_full_state):
    """The 'fused_rnn' attribute for a standard cell with zero initial state, else None."""
    kind = getattr(step, "_fused_rnn_kind", None)
    if kind is None or return_full_state:
        return None
    for s in initial_states:
        if not (isinstance(s, Variable) and s.is_constant and s.shape == () and float(s.value) == 0.0):
            return None
    return {"kind": kind, "go_backwards": bool(go_backwards)}


def Recurrence(step_function, go_backwards=default_override_or(False), initial_state=default_override_or(0),
               return_full_state=False, name=''):
    """Run ``step_function`` (states..., x) -> states over a sequence; each state is fed back
    delayed by one step (from the end with ``go_backwards``), starting from ``initial_state``
    (one value, or a tuple with one per state). The output is the first state's sequence, or all
    of them with ``return_full_state``."""
    go_backwards = get_default_override(Recurrence, go_backwards=go_backwards)
    initial_state = get_default_override(Recurrence, initial_state=initial_state)
    initial_state = _get_initial_state_or_default(initial_state)
    step = _sanitize_function(step_function, 'Recurrence')
    n = _state_count(step, 'Recurrence')
    if isinstance(initial_state, tuple) and len(initial_state) == 1:
        initial_state = initial_state[0]
    if not isinstance(initial_state, tuple):
        initial_state = (initial_state,) * n
    if len(initial_state) != n:
        raise ValueError("Recurrence: %d initial states given for a step function with %d states"
                         % (len(initial_state), n))

    def recurrence(x):
        outs = _loop(step, n, list(initial_state), x, go_backwards)
        return outs if return_full_state else outs[0]
    f = _block('Recurrence', name, recurrence)
    fused = _fused_annotation(step, initial_state, go_backwards, return_full_state)
    if fused is not None:
        f._root.attributes['fused_rnn'] = fused
    return f


_STATE_ARG_NAMES = ('h', 'c', 'a')


def RecurrenceFrom(step_function, go_backwards=default_override_or(False), return_full_state=False, name=''):
    """Like ``Recurrence``, but the initial states are data: returns a function of
    (initial_state_1, ..., initial_state_N, x). An initial state that is a sequence contributes
    its last item (its first with ``go_backwards``)."""
    go_backwards = get_default_override(RecurrenceFrom, go_backwards=go_backwards)
    step = _sanitize_function(step_function, 'RecurrenceFrom')
    n = _state_count(step, 'RecurrenceFrom')
    names = [_STATE_ARG_NAMES[i] if i < len(_STATE_ARG_NAMES) else 's%d' % i for i in range(n)] + ['x']

    # the item a sequence-valued initial state contributes: the one next to where the loop starts
    pick = "First" if go_backwards else "Last"

    def recurrence_from(*args):
        # whatever binds the initial states (a call, replace_placeholders, a typed signature), a
        # sequence gives its last (first) item, and anything else is used as it is
        initial_states = [_op(pick, [s], {"if_sequence": True}) for s in args[:n]]
        outs = _loop(step, n, initial_states, args[n], go_backwards)
        return outs if return_full_state else outs[0]
    return _block('RecurrenceFrom', name, recurrence_from, arg_names=names)


def Fold(folder_function, go_backwards=default_override_or(False), initial_state=default_override_or(0),
         return_full_state=False, name=''):
    """``Recurrence`` followed by the last state (the first with ``go_backwards``): the final
    value of the state(s), without the sequence axis."""
    go_backwards = get_default_override(Fold, go_backwards=go_backwards)
    initial_state = get_default_override(Fold, initial_state=initial_state)
    folder_function = _sanitize_function(folder_function, 'Fold')
    _state_count(folder_function, 'Fold')
    recurrence = Recurrence(folder_function, go_backwards=go_backwards, initial_state=initial_state,
                            return_full_state=return_full_state)
    get_final = _sequence.first if go_backwards else _sequence.last

    def fold(x):
        return [get_final(o) for o in recurrence(x).outputs]
    return _block('Fold', name, fold)


def UnfoldFrom(generator_function, until_predicate=None, length_increase=1, name=''):
    """A generator: returns a function of (initial_state, dynamic_axes_like) that applies
    ``generator_function`` repeatedly to its own (delayed) state, emitting one item per step
    along the sequence axis of ``dynamic_axes_like`` (``length_increase`` times as many steps).
    The generator takes the state and returns the new state, or (emitted value, new state).
    With ``until_predicate`` (a function of the emitted value that is 1 at the last item) each
    sequence ends at the first item where it fires."""
    gen = _sanitize_function(generator_function, 'UnfoldFrom')
    # as CNTK, a Python predicate is applied to the emitted value itself (its shape is known there)
    pred = until_predicate if until_predicate is None or not isinstance(until_predicate, Function) \
        else _sanitize_function(until_predicate, 'UnfoldFrom')
    if not callable(until_predicate) and until_predicate is not None:
        raise TypeError("UnfoldFrom: until_predicate must be a Function or a Python function; got %r"
                        % (until_predicate,))
    if pred is not None and not isinstance(pred, Function):
        from ..ops.functions import _python_params
        n = len(_python_params(pred))
        if n != 1:
            raise TypeError("UnfoldFrom: until_predicate must take 1 argument (the emitted value); it takes %d" % n)
    if len(gen.signature) != 1 or not 1 <= len(gen.outputs) <= 2:
        raise TypeError("UnfoldFrom: generator_function must take 1 argument (the state) and return the new state "
                        "or a tuple (output, new state); it takes %d (%s) and returns %d outputs (%s)"
                        % (len(gen.signature), _describe_args(gen), len(gen.outputs), _describe_outs(gen)))
    if isinstance(pred, Function) and len(pred.signature) != 1:
        raise TypeError("UnfoldFrom: until_predicate must take 1 argument (the emitted value); it takes %d (%s)"
                        % (len(pred.arguments), _describe_args(pred)))
    try:
        length_increase = float(length_increase)
    except (TypeError, ValueError):
        raise ValueError("UnfoldFrom: length_increase must be a number; got %r" % (length_increase,)) from None
    if not length_increase > 0:
        raise ValueError("UnfoldFrom: length_increase must be positive; got %r" % (length_increase,))

    def unfold_from(initial_state, dynamic_axes_like):
        out_axis = dynamic_axes_like
        if length_increase != 1:
            # a new axis with length_increase items per item of the reference (the values do not matter)
            out_axis = _sequence.where(_sequence.broadcast_as(length_increase, out_axis))
        state_fwd = placeholder(name='unfold_state_fwd')
        prev_state = _sequence.delay(state_fwd, initial_state=initial_state, name='unfold_prev_state')
        z = gen(prev_state)
        output = z.outputs[0]
        new_state = z.outputs[1] if len(z.outputs) > 1 else output
        # the loop runs along the reference's axis: the state takes its dynamic axes
        new_state = reconcile_dynamic_axes(new_state, out_axis, name='unfold_new_state')
        prev_state.replace_placeholders({state_fwd: new_state.output})
        output = combine([output])
        if pred is not None:
            # 1 up to and including the first item where the predicate fires, 0 after it
            valid_frames = Recurrence(lambda h, x: (1 - _sequence.past_value(x)) * h, initial_state=1)(pred(output))
            output = _sequence.gather(output, valid_frames, name='valid_output')
        return output
    return _block('UnfoldFrom', name, unfold_from, arg_names=('initial_state', 'dynamic_axes_like'))
