"""Building blocks that are not used in a layered fashion: ``identity``, ``ForwardDeclaration``,
``Stabilizer``, the recurrent step functions ``LSTM``, ``GRU`` and ``RNNStep`` (alias ``RNNUnit``),
plus the block-function, default-option and initializer plumbing the layers share."""

import warnings

import numpy as np

from ..ops import (combine, alias, placeholder, as_block, times, slice as _slice, sigmoid, tanh, relu,
                   softplus as _softplus)
from ..ops.functions import Function, BlockFunction, _as_variable
from ..variables import Parameter, Constant
from .. import initializer as _initializer
from ..initializer import glorot_uniform
from ..default_options import (default_options, default_options_for, default_override_or, get_default_override,
                               is_default_override)

__all__ = ["identity", "ForwardDeclaration", "Stabilizer", "LSTM", "GRU", "RNNStep", "RNNUnit",
           "BlockFunction", "Function", "default_options", "default_options_for", "default_override_or",
           "get_default_override", "is_default_override", "Parameter", "Constant", "glorot_uniform",
           "placeholder", "combine", "alias", "times", "slice", "sigmoid", "tanh", "softplus", "InferredDimension"]

_INFERRED = (-1,)   # a dimension inferred at first use


def _identity(keep):
    return combine([keep])


identity = Function(_identity)
"""identity(x): returns its input unchanged."""


def _as_tuple(x):
    """An int shape as a 1-tuple; a tuple/list as a tuple; None as ()."""
    if x is None:
        return ()
    if isinstance(x, (tuple, list)):
        return tuple(int(d) for d in x)
    return (int(x),)


def _resolved(factory, **options):
    """The values of ``factory``'s ``default_override_or`` options (in the order given), each
    looked up in the enclosing ``default_options`` scopes that apply to ``factory``."""
    return tuple(get_default_override(factory, **{k: v}) for k, v in options.items())


def _initializer_for(init, rank_params=None):
    """``init`` with the output/filter ranks of the parameter it initialises (numbers and arrays
    pass through)."""
    if init is None:
        raise ValueError("an initializer is required")
    if np.isscalar(init) or isinstance(init, (np.ndarray, list)):
        return init
    if rank_params:
        return _initializer.initializer_with_rank(init, **rank_params)
    return init


def _inject_name(f, name):
    """Give ``f`` the instance name ``name`` (an alias node, or a named combine for several outputs)."""
    if not name:
        return f
    if not isinstance(f, Function):
        f = combine([_as_variable(f)])
    if len(f.outputs) == 1:
        return combine([alias(f.output, name=name)])
    return combine(list(f.outputs), name=name)


def _block(op_name, name, body, arg_names=("x",)):
    """The helper the layers use: ``body`` applied to fresh placeholders, packaged with
    ``as_block`` under the layer's op name and instance name. Returns the block Function, whose
    arguments are placeholders named ``arg_names``."""
    phs = [placeholder(name=n) for n in arg_names]
    out = body(*phs)
    if isinstance(out, (tuple, list)):
        out = combine(list(out))
    elif not isinstance(out, Function):
        out = combine([_as_variable(out)])
    used = [p for p in phs if any(p is q for q in out.placeholders)]
    outer = [placeholder(name=p.name) for p in used]
    from ..ops.functions import _bind_outer_placeholders
    out, extra = _bind_outer_placeholders(out)
    return as_block(out, list(zip(used, outer)) + extra, op_name, name or "")


def ForwardDeclaration(name='forward_declaration'):
    """A placeholder with a ``resolve_to(var)`` method that binds it to ``var`` (closing a
    hand-written recurrent loop)."""
    var_fwd = placeholder(name=name)

    def resolve_to(var):
        var = _as_variable(var)
        if var._owner is None:
            raise ValueError("ForwardDeclaration '%s': resolve_to needs the output of a function; got %s"
                             % (name, var._describe()))
        Function(var._owner.outputs).replace_placeholders({var_fwd: var})
    var_fwd.resolve_to = resolve_to
    return var_fwd


def Stabilizer(steepness=4, enable_self_stabilization=default_override_or(True), name=''):
    """Self-stabilization ``beta * x`` with a learnable scalar beta = softplus(alpha, steepness),
    alpha initialised so that beta starts at 1. The identity when disabled."""
    enable_self_stabilization = get_default_override(Stabilizer, enable_self_stabilization=enable_self_stabilization)
    if not enable_self_stabilization:
        return identity
    init_param = np.log(np.exp(steepness) - 1) / steepness
    param = Parameter((), init=init_param, name='alpha')
    beta = _softplus(param, steepness=steepness)

    def stabilize(x):
        return beta * x
    return _block('Stabilizer', name, stabilize)


def _get_initial_state_or_default(initial_state):
    """A recurrence's initial state: None is 0; numbers become (untyped) Constants; tuples are
    handled per member; anything else (a Constant, Parameter, Function) is used as is."""
    if isinstance(initial_state, tuple):
        return tuple(_get_initial_state_or_default(s) for s in initial_state)
    if initial_state is None:
        return Constant(0)
    if np.isscalar(initial_state):
        return Constant(initial_state)
    if isinstance(initial_state, (np.ndarray, list)):
        return Constant(np.asarray(initial_state, dtype=np.float32))
    return initial_state


# Gates stacked along the last axis of W, H and b: how many blocks of the cell dimension each
# cell type stacks (for H, GRU stacks only z and r; its candidate uses H1).
_STACK = {'RNNStep': (1, 1), 'GRU': (3, 2), 'LSTM': (4, 4)}


def _RecurrentBlock(kind, shape, cell_shape, activation, use_peepholes, init, init_bias,
                    enable_self_stabilization, name):
    """The step function of an 'LSTM', 'GRU' or 'RNNStep' block, with CNTK's parameters:
    b (G*cell,), W (inferred, G*cell), H (shape, G'*cell), GRU's H1 (shape, cell), peepholes
    Ci/Cf/Co (cell,), projection P (cell, shape); gates stacked as LSTM [i, candidate, f, o],
    GRU [z, r, candidate]."""
    has_projection = cell_shape is not None
    shape = _as_tuple(shape)
    cell_shape = _as_tuple(cell_shape) if cell_shape is not None else shape
    if len(shape) != 1 or len(cell_shape) != 1:
        raise ValueError("%s: shape and cell_shape must be vectors (rank-1 tensors); got shape %s, cell_shape %s"
                         % (kind, shape, cell_shape))
    n = cell_shape[0]
    gw, gh = _STACK[kind]
    b = Parameter((gw * n,), init=init_bias, name='b')
    W = Parameter(_INFERRED + (gw * n,), init=_initializer_for(init), name='W')
    H = Parameter(shape + (gh * n,), init=_initializer_for(init), name='H')
    H1 = Parameter(shape + cell_shape, init=_initializer_for(init), name='H1') if kind == 'GRU' else None
    Ci, Cf, Co = (Parameter(cell_shape, init=_initializer_for(init), name=nm) for nm in ('Ci', 'Cf', 'Co')) \
        if use_peepholes else (None, None, None)
    P = Parameter(cell_shape + shape, init=_initializer_for(init), name='P') if has_projection else None

    # each use of a stabilizer gets its own instance (and parameter)
    Sdh = Stabilizer(enable_self_stabilization=enable_self_stabilization, name='dh_stabilizer')
    Sdc = Stabilizer(enable_self_stabilization=enable_self_stabilization, name='dc_stabilizer')
    Sct = Stabilizer(enable_self_stabilization=enable_self_stabilization, name='c_stabilizer')
    Sht = Stabilizer(enable_self_stabilization=enable_self_stabilization, name='P_stabilizer')

    def gate(v, i):
        return _slice(v, -1, i * n, (i + 1) * n)

    def project(h):
        return times(Sht(h), P) if has_projection else h

    def lstm(dh, dc, x):
        dhs, dcs = Sdh(dh), Sdc(dc)
        proj4 = b + times(x, W) + times(dhs, H)
        it_proj, bit_proj, ft_proj, ot_proj = (gate(proj4, i) for i in range(4))
        if use_peepholes:
            it_proj = it_proj + Ci * dcs
            ft_proj = ft_proj + Cf * dcs
        it = sigmoid(it_proj)
        ft = sigmoid(ft_proj)
        ct = ft * dc + it * activation(bit_proj)      # the unstabilized previous cell, as CNTK
        if use_peepholes:
            ot_proj = ot_proj + Co * Sct(ct)
        ht = sigmoid(ot_proj) * activation(ct)
        return project(ht), ct

    def gru(dh, x):
        dhs = Sdh(dh)
        projx3 = b + times(x, W)
        projh2 = times(dhs, H)
        zt = sigmoid(gate(projx3, 0) + gate(projh2, 0))
        rt = sigmoid(gate(projx3, 1) + gate(projh2, 1))
        # the reset gate scales the previous state before H1 (cuDNN applies it after the product)
        ct = activation(gate(projx3, 2) + times(dhs * rt, H1))
        return project((1 - zt) * ct + zt * dhs)

    def rnn_step(dh, x):
        return project(activation(times(x, W) + times(Sdh(dh), H) + b))

    body, args = {'LSTM': (lstm, ('dh', 'dc', 'x')), 'GRU': (gru, ('dh', 'x')),
                  'RNNStep': (rnn_step, ('dh', 'x'))}[kind]
    f = _block(kind, name, body, arg_names=args)
    # A plain cell (no peepholes, stabilizers or projection; tanh, or relu for RNNStep) can run as
    # one fused recurrent kernel: Recurrence reads this to annotate its block. Any cell_shape, even
    # one equal to shape, makes a projection P (as in CNTK), so it is not plain.
    plain = not use_peepholes and not enable_self_stabilization and not has_projection
    if plain and kind == 'LSTM' and activation is tanh:
        f._fused_rnn_kind = 'lstm'
    elif plain and kind == 'RNNStep' and activation in (tanh, relu):
        f._fused_rnn_kind = 'rnn_tanh' if activation is tanh else 'rnn_relu'
    return f


def _recurrent_step(factory, kind, shape, cell_shape, activation, use_peepholes, init, init_bias,
                    enable_self_stabilization, name):
    """The block of an LSTM/GRU/RNNStep factory, its options resolved against ``factory``'s scopes."""
    activation, use_peepholes, init, init_bias, enable_self_stabilization = _resolved(
        factory, activation=activation, use_peepholes=use_peepholes, init=init, init_bias=init_bias,
        enable_self_stabilization=enable_self_stabilization)
    return _RecurrentBlock(kind, shape, cell_shape, activation, use_peepholes, init, init_bias,
                           enable_self_stabilization, name)


def LSTM(shape, cell_shape=None, activation=default_override_or(tanh), use_peepholes=default_override_or(False),
         init=default_override_or(glorot_uniform()), init_bias=default_override_or(0),
         enable_self_stabilization=default_override_or(False), name=''):
    """One LSTM step ``(dh, dc, x) -> (h, c)`` for use inside ``Recurrence``. With ``cell_shape``
    the cell has that dimension and h is projected to ``shape``; ``use_peepholes`` adds the
    peephole connections; ``enable_self_stabilization`` stabilizes the recurrent inputs."""
    return _recurrent_step(LSTM, 'LSTM', shape, cell_shape, activation, use_peepholes, init, init_bias,
                           enable_self_stabilization, name)


def GRU(shape, cell_shape=None, activation=default_override_or(tanh), init=default_override_or(glorot_uniform()),
        init_bias=default_override_or(0), enable_self_stabilization=default_override_or(False), name=''):
    """One GRU step ``(dh, x) -> h`` for use inside ``Recurrence``."""
    return _recurrent_step(GRU, 'GRU', shape, cell_shape, activation, False, init, init_bias,
                           enable_self_stabilization, name)


def RNNStep(shape, cell_shape=None, activation=default_override_or(sigmoid),
            init=default_override_or(glorot_uniform()), init_bias=default_override_or(0),
            enable_self_stabilization=default_override_or(False), name=''):
    """One plain RNN step ``(dh, x) -> activation(x @ W + dh @ H + b)`` (sigmoid by default)."""
    return _recurrent_step(RNNStep, 'RNNStep', shape, cell_shape, activation, False, init, init_bias,
                           enable_self_stabilization, name)


def RNNUnit(shape, cell_shape=None, activation=default_override_or(sigmoid),
            init=default_override_or(glorot_uniform()), init_bias=default_override_or(0),
            enable_self_stabilization=default_override_or(False), name=''):
    """Deprecated name of ``RNNStep`` (same block; warns)."""
    warnings.warn("RNNUnit is deprecated; use RNNStep, which is identical except for its name",
                  DeprecationWarning, stacklevel=2)
    return _recurrent_step(RNNUnit, 'RNNStep', shape, cell_shape, activation, False, init, init_bias,
                           enable_self_stabilization, name)


# Names CNTK's blocks module also exposes (through its imports), so ``from cntk.layers import *``
# gives them. ``slice`` shadows Python's here, which this module does not use.
from ..ops import slice, softplus, InferredDimension  # noqa: E402,F401
