"""The layers that are not recurrences: Dense, Embedding, Dropout, Activation, Label, the
convolution family (Convolution(1D/2D/3D), SequentialConvolution, ConvolutionTranspose(1D/2D/3D)),
pooling and unpooling, and the normalizations."""

import numpy as np

from .. import ops as _ops
from ..ops import (times, dropout as _dropout, alias, convolution as _convolution,
                   convolution_transpose as _convolution_transpose, pooling as _pooling, unpooling as _unpooling,
                   batch_normalization as _batch_normalization, reduce_mean as _reduce_mean, sqrt as _sqrt,
                   slice as _slice, reshape as _reshape, MAX_POOLING as _MAX_POOLING, AVG_POOLING as _AVG_POOLING,
                   MAX_UNPOOLING as _MAX_UNPOOLING)
from ..initializer import glorot_uniform, SentinelValueForAutoSelectRandomSeed
from ..variables import Parameter, Constant
from ..ops.functions import Function, _as_variable as _as_var
from ..default_options import default_override_or, get_default_override, is_default_override
from .blocks import identity, Stabilizer, _block, _as_tuple, _initializer_for, _resolved, _INFERRED

__all__ = ["Dense", "Embedding", "Dropout", "Activation", "Label", "Convolution", "Convolution1D", "Convolution2D",
           "Convolution3D", "SequentialConvolution", "ConvolutionTranspose", "ConvolutionTranspose1D",
           "ConvolutionTranspose2D", "ConvolutionTranspose3D", "MaxPooling", "AveragePooling", "GlobalMaxPooling",
           "GlobalAveragePooling", "MaxUnpooling", "BatchNormalization", "LayerNormalization", "Stabilizer",
           # what CNTK's module also exposes (its imports), so that ``from cntk.layers import *`` gives them
           "Parameter", "Constant", "Variable", "Record", "SentinelValueForAutoSelectRandomSeed", "parameter",
           "input", "placeholder", "combine", "times", "element_times", "convolution", "convolution_transpose",
           "pooling", "unpooling", "batch_normalization", "dropout", "splice", "reshape", "softmax", "tanh",
           "reduce_sum", "reduce_mean", "sqrt"]


def _default_dtype():
    """The dtype a ``default_options(dtype=...)`` scope sets (None: none set)."""
    return get_default_override(None, dtype=default_override_or(None))


def Dense(shape, activation=default_override_or(identity), init=default_override_or(glorot_uniform()),
          input_rank=None, map_rank=None, bias=default_override_or(True), init_bias=default_override_or(0),
          name=''):
    """Fully connected layer ``activation(x @ W + b)``. W has shape (input dims...) + shape, the
    input dims inferred at first use: all input axes by default, the last ``input_rank`` ones, or
    all but the first ``map_rank`` ones."""
    activation, init, bias, init_bias = _resolved(Dense, activation=activation, init=init, bias=bias,
                                                  init_bias=init_bias)

    output_shape = _as_tuple(shape)
    if input_rank is not None and map_rank is not None:
        raise ValueError("Dense: input_rank and map_rank cannot be specified at the same time")
    for what, v in (("input_rank", input_rank), ("map_rank", map_rank)):
        if v is not None and (not isinstance(v, (int, np.integer)) or v < 0 or (what == "input_rank" and v == 0)):
            raise ValueError("Dense: %s must be a %s integer; got %r"
                             % (what, "positive" if what == "input_rank" else "non-negative", v))
    output_rank = len(output_shape)
    input_shape = _INFERRED * (input_rank if input_rank is not None else 1)
    if input_rank is not None:
        infer_input_rank_to_map = -1     # input_rank decides
    elif map_rank is None:
        infer_input_rank_to_map = 0      # contract over all input axes
    else:
        infer_input_rank_to_map = int(map_rank)

    W = Parameter(input_shape + output_shape, init=_initializer_for(init, dict(output_rank=output_rank)), name='W')
    b = Parameter(output_shape, init=init_bias, name='b') if bias else None

    def dense(x):
        r = times(x, W, output_rank=output_rank, infer_input_rank_to_map=infer_input_rank_to_map)
        if b is not None:
            r = r + b
        if activation is not None:
            r = activation(r)
        return r
    return _block('Dense', name, dense)


def Embedding(shape=None, init=default_override_or(glorot_uniform()), weights=None, name=''):
    """``x @ E``: a learnable table E of shape (inferred input dim,) + shape, or the fixed
    (Constant) table ``weights``."""
    if not is_default_override(init) and weights is not None:
        raise ValueError("Embedding: init and weights options are mutually exclusive")
    if weights is None:
        if shape is None:
            raise ValueError("Embedding: output shape must be specified")
        init = get_default_override(Embedding, init=init)
        shape = _as_tuple(shape)
        E = Parameter(_INFERRED + shape, init=_initializer_for(init, dict(output_rank=len(shape))), name='E')
    else:
        weights = np.asarray(weights)
        if weights.ndim < 2:
            raise ValueError("Embedding: weights must have at least 2 axes (vocabulary, embedding...); got shape %s"
                             % (weights.shape,))
        if shape is not None and _as_tuple(shape) != weights.shape[1:]:
            raise ValueError("Embedding: shape %s does not match the weights of shape %s"
                             % (_as_tuple(shape), weights.shape))
        E = Constant(weights, dtype=_default_dtype(), name='E')

    def embed(x):
        return times(x, E)
    return _block('Embedding', name, embed)


def Dropout(dropout_rate=None, keep_prob=None, seed=SentinelValueForAutoSelectRandomSeed, name=''):
    """Inverted dropout during training, identity otherwise. Give exactly one of
    ``dropout_rate`` and ``keep_prob`` (keep_prob = 1 - dropout_rate)."""
    if dropout_rate is None and keep_prob is None:
        raise ValueError("Dropout: either dropout_rate or keep_prob must be specified")
    if dropout_rate is not None and keep_prob is not None:
        raise ValueError("Dropout: dropout_rate and keep_prob cannot be specified at the same time")
    if keep_prob is not None:
        if keep_prob < 0.0 or keep_prob >= 1.0:
            raise ValueError("Dropout: keep_prob must be in the interval [0,1); got %r" % (keep_prob,))
        dropout_rate = 1 - keep_prob
    elif not 0.0 <= dropout_rate < 1.0:
        raise ValueError("Dropout: dropout_rate must be in the interval [0,1); got %r" % (dropout_rate,))

    def dropout(x):
        return _dropout(x, dropout_rate=dropout_rate, seed=seed)
    return _block('Dropout', name, dropout)


def Activation(activation=default_override_or(identity), name=''):
    """A layer that applies ``activation``."""
    activation = get_default_override(Activation, activation=activation)

    def activation_f(x):
        return activation(x)
    return _block('Activation', name, activation_f)


def Label(name):
    """A named identity, so that the value can be fetched as ``model.<name>`` (not a block, which
    would hide the name)."""
    if not name:
        raise ValueError("Label: a name is required")

    @Function
    def label(x):
        return alias(x, name=name)
    return label


# -- convolution, pooling and normalization layers ------------------------------------------

def _pad_to_shape(layer, filter_shape, param, what):
    """A per-spatial-axis option: a scalar (or 1-tuple) repeated over the filter's axes."""
    if isinstance(param, (tuple, list)):
        param = tuple(param)
        if len(param) == 1:
            param = param * len(filter_shape)
        elif len(param) != len(filter_shape):
            raise ValueError("%s: %s parameter %r must be a scalar or its length must match the filter shape %r"
                             % (layer, what, param, filter_shape))
        return param
    return (param,) * len(filter_shape)


def _num_filters(layer, num_filters):
    """num_filters as a shape: () (None or ()) for scalar output items, else a 1-tuple."""
    num_filters = _as_tuple(num_filters)
    if len(num_filters) > 1:
        raise ValueError("%s: num_filters must be a single number; got %r" % (layer, num_filters))
    if num_filters and num_filters[0] < 1:
        raise ValueError("%s: num_filters must be positive; got %r" % (layer, num_filters[0]))
    return num_filters


def _conv_options(layer, filter_shape, num_filters, pad, strides, sharing, dilation, reduction_rank):
    """The checks every convolution layer makes; returns filter_shape, num_filters as a shape
    (() for scalar output items) and pad, strides, sharing, dilation with one entry per filter axis."""
    filter_shape = _as_tuple(filter_shape)
    if not filter_shape:
        raise ValueError("%s: filter_shape must not be empty" % layer)
    if reduction_rank not in (0, 1):
        raise ValueError("%s: reduction_rank must be 0 or 1; got %r" % (layer, reduction_rank))
    num_filters = _num_filters(layer, num_filters)
    pad, strides, sharing, dilation = (_pad_to_shape(layer, filter_shape, v, what) for v, what in
                                       ((pad, 'pad'), (strides, 'strides'), (sharing, 'sharing'),
                                        (dilation, 'dilation')))
    if not all(sharing):
        raise ValueError("%s: sharing=%r: a separate kernel per position (sharing=False) is not supported"
                         % (layer, sharing))
    return filter_shape, num_filters, pad, strides, sharing, dilation


def _kernel_init(layer, init, kernel_layout, filter_shape, rank_params):
    """W's initial value: an initializer gets the kernel's ranks; an array with the kernel's
    values (e.g. num_filters + filter_shape) is reshaped to ``kernel_layout``, whose one -1
    (the inferred input-channel axis) takes what its size leaves."""
    if isinstance(init, (np.ndarray, list)):
        a = np.asarray(init)
        known = int(np.prod([d for d in kernel_layout if d >= 0]))
        if a.shape[a.ndim - len(filter_shape):] != filter_shape or a.size % known:
            raise ValueError("%s: the initial value of W has shape %s; it must end in the filter shape %s and hold "
                             "a whole number of kernels of shape %s" % (layer, a.shape, filter_shape, kernel_layout))
        return a.reshape(kernel_layout)
    return _initializer_for(init, rank_params)


def _conv_parameters(layer, init, kernel_layout, filter_shape, bias, init_bias, bias_shape):
    """A convolution's kernel W (``kernel_layout``, one axis inferred; initialised with the
    kernel's filter rank and output_rank=-1) and bias b (``bias_shape``, or None without bias)."""
    W_init = _kernel_init(layer, init, kernel_layout, filter_shape,
                          dict(filter_rank=len(filter_shape), output_rank=-1))
    W = Parameter(getattr(W_init, 'shape', kernel_layout), init=W_init, name='W')
    b = Parameter(bias_shape, init=init_bias, name='b') if bias else None
    return W, b


def _with_channel_axis(x, reduction_rank):
    """The input with an emulated channel axis of size 1 when its items have none (reduction_rank=0)."""
    return _reshape(x, (1,), begin_axis=0, end_axis=0) if reduction_rank == 0 else x


def _conv_output(r, b, num_filters, activation):
    """A convolution's result plus the bias, without the emulated output channel axis (scalar
    output items), through the activation."""
    if b is not None:
        r = r + b
    if num_filters == ():
        r = _reshape(r, (), begin_axis=0, end_axis=1)
    if activation is not None:
        r = activation(r)
    return r


class _RankCheckedLayer(Function):
    """A layer Function that checks the rank of the input it is applied to."""

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and isinstance(args[0], (Function, _ops.Variable)):
            v = _as_var(args[0])
            shape = v.shape
            if shape is not None and all(d >= 0 for d in shape) and not v.is_placeholder \
                    and len(shape) != self._expected_rank:
                layer = self._layer_name + ("('%s')" % self.name if self.name else "")
                raise ValueError("%s: the input must have rank %d (%s); got shape %s of rank %d"
                                 % (layer, self._expected_rank, self._rank_meaning, tuple(shape), len(shape)))
        return Function.__call__(self, *args, **kwargs)


def _rank_checked(f, layer, reduction_rank, spatial_rank):
    f = _RankCheckedLayer(f.outputs)
    f._layer_name = layer
    f._expected_rank = reduction_rank + spatial_rank
    f._rank_meaning = ("channel axis + " if reduction_rank else "") + "%d spatial axes" % spatial_rank
    return f


def _conv_defaults(factory, activation, init, pad, bias, init_bias):
    """A convolution factory's default_options-overridable arguments, resolved for ``factory``
    (so that default_options_for(Convolution2D, ...) applies to Convolution2D only, as in CNTK)."""
    return _resolved(factory, activation=activation, init=init, pad=pad, bias=bias, init_bias=init_bias)


def _nd_filter_shape(layer, nd, filter_shape, pad, strides, dilation):
    """The filter shape of an xD layer: a scalar (or 1-tuple) repeated over ``nd`` axes, else
    exactly ``nd`` entries; pad, strides and dilation must be scalars or have 1 or ``nd`` entries."""
    filter_shape = _as_tuple(filter_shape)
    if len(filter_shape) == 1 and nd > 1:
        filter_shape = filter_shape * nd
    if len(filter_shape) != nd:
        raise ValueError("%s: filter_shape must be a scalar or a %dD tuple, e.g. 3 or %r; got %r"
                         % (layer, nd, (3,) * nd, filter_shape))
    for what, v in (("pad", pad), ("strides", strides), ("dilation", dilation)):
        if isinstance(v, (tuple, list)) and len(v) not in (1, nd):
            raise ValueError("%s: %s must be a scalar or a %dD tuple; got %r" % (layer, what, nd, v))
    return filter_shape


def _convolution_layer(filter_shape, num_filters, sequential, activation, init, pad, strides, sharing, bias,
                       init_bias, reduction_rank, transpose_weight, dilation, groups, max_temp_mem_size_in_samples,
                       op_name, name):
    """The layer behind Convolution(1D/2D/3D) and SequentialConvolution, with resolved defaults."""
    filter_shape, num_filters, pad, strides, sharing, dilation = _conv_options(
        op_name, filter_shape, num_filters, pad, strides, sharing, dilation, reduction_rank)
    groups = int(groups)
    if groups < 1:
        raise ValueError("%s: groups must be a positive integer; got %r" % (op_name, groups))
    if groups > 1 and reduction_rank == 0:
        raise ValueError("%s: groups > 1 requires an input channel axis (reduction_rank=1)" % op_name)
    if groups > 1 and num_filters and num_filters[0] % groups:
        raise ValueError("%s: num_filters (%r) must be divisible by groups (%d)" % (op_name, num_filters[0], groups))

    out_channels = num_filters or (1,)       # scalar output items: an emulated channel axis
    filter_rank = len(filter_shape)
    # W is (O, C_in/groups, *filter_shape); a sequential filter's first axis runs along time,
    # which the output items do not have, so b has one axis less
    W, b = _conv_parameters(op_name, init, out_channels + _INFERRED + filter_shape, filter_shape, bias, init_bias,
                            out_channels + (1,) * (filter_rank - bool(sequential)))
    flipped = list(range(2, 2 + filter_rank))

    def convolve(x):
        # transpose_weight: a true convolution, i.e. correlation with the kernel reversed along its filter axes
        kernel = _slice(W, flipped, [0] * filter_rank, [0] * filter_rank, [-1] * filter_rank) \
            if transpose_weight else W
        # per-axis options for (C, *spatial): the channel axis is never padded nor strided
        r = _convolution(kernel, _with_channel_axis(x, reduction_rank), strides=(1,) + strides,
                         sharing=(True,) + sharing, auto_padding=(False,) + pad, sequential=sequential,
                         dilation=(1,) + dilation, reduction_rank=1, groups=groups,
                         max_temp_mem_size_in_samples=max_temp_mem_size_in_samples)
        return _conv_output(r, b, num_filters, activation)

    return _rank_checked(_block(op_name, name, convolve), op_name, reduction_rank, filter_rank - bool(sequential))


def Convolution(filter_shape, num_filters=None, sequential=False, activation=default_override_or(identity),
                init=default_override_or(glorot_uniform()), pad=default_override_or(False), strides=1,
                sharing=True, bias=default_override_or(True), init_bias=default_override_or(0), reduction_rank=1,
                transpose_weight=False, dilation=1, groups=1, max_temp_mem_size_in_samples=0,
                op_name='Convolution', name=''):
    """N-d convolution ``activation(conv(W, x) + b)`` over the trailing ``len(filter_shape)`` axes
    of an input (C, *spatial) (or just (*spatial) with ``reduction_rank=0``). W is
    (num_filters, C/groups, *filter_shape); b is (num_filters, 1, ...). ``pad``, ``strides``,
    ``sharing`` and ``dilation`` apply to the spatial axes; the channel axis is never padded.
    Without ``num_filters`` the output has no channel axis. With ``sequential`` the first filter
    axis runs along the sequence axis. ``transpose_weight=True`` convolves with W (the kernel
    reversed along its filter axes) instead of correlating. ``init`` may be an array of the
    kernel's values (e.g. of shape num_filters + filter_shape)."""
    activation, init, pad, bias, init_bias = _conv_defaults(Convolution, activation, init, pad, bias, init_bias)
    return _convolution_layer(filter_shape, num_filters, sequential, activation, init, pad, strides, sharing, bias,
                              init_bias, reduction_rank, transpose_weight, dilation, groups,
                              max_temp_mem_size_in_samples, op_name, name)


def SequentialConvolution(filter_shape, num_filters=None, activation=default_override_or(identity),
                          init=default_override_or(glorot_uniform()), pad=default_override_or(False), strides=1,
                          sharing=True, bias=default_override_or(True), init_bias=default_override_or(0),
                          reduction_rank=1, transpose_weight=False, dilation=1, groups=1,
                          max_temp_mem_size_in_samples=0, op_name='SequentialConvolution', name=''):
    """Convolution over the sequence axis and the trailing static axes of a sequence of items
    (C, *spatial) (or (*spatial) with ``reduction_rank=0``): ``filter_shape[0]`` (and the first
    entries of ``pad``, ``strides``, ``dilation``) run along the sequence axis. W is
    (num_filters, C/groups, *filter_shape); b is (num_filters, 1, ...) with one 1 per static
    axis. Every sequence gets what it would get alone: cells past its end are zeros. When the
    lengths change (no padding along time, or a time stride > 1), the result is on a new
    sequence axis."""
    activation, init, pad, bias, init_bias = _conv_defaults(SequentialConvolution, activation, init, pad, bias,
                                                            init_bias)
    return _convolution_layer(filter_shape, num_filters, True, activation, init, pad, strides, sharing, bias,
                              init_bias, reduction_rank, transpose_weight, dilation, groups,
                              max_temp_mem_size_in_samples, op_name, name)


def _ConvolutionND(factory, nd, filter_shape, num_filters, activation, init, pad, strides, bias, init_bias,
                   reduction_rank, dilation, groups, name):
    layer = factory.__name__
    activation, init, pad, bias, init_bias = _conv_defaults(factory, activation, init, pad, bias, init_bias)
    filter_shape = _nd_filter_shape(layer, nd, filter_shape, pad, strides, dilation)
    return _convolution_layer(filter_shape, num_filters, False, activation, init, pad, strides, True, bias, init_bias,
                              reduction_rank, False, dilation, groups, 0, layer, name)


def Convolution1D(filter_shape, num_filters=None, activation=default_override_or(identity),
                  init=default_override_or(glorot_uniform()), pad=default_override_or(False), strides=1,
                  bias=default_override_or(True), init_bias=default_override_or(0), reduction_rank=1, dilation=1,
                  name=''):
    """1-D convolution over an input (C, W) (or (W,) with ``reduction_rank=0``)."""
    return _ConvolutionND(Convolution1D, 1, filter_shape, num_filters, activation, init, pad, strides, bias,
                          init_bias, reduction_rank, dilation, 1, name)


def Convolution2D(filter_shape, num_filters=None, activation=default_override_or(identity),
                  init=default_override_or(glorot_uniform()), pad=default_override_or(False), strides=1,
                  bias=default_override_or(True), init_bias=default_override_or(0), reduction_rank=1, dilation=1,
                  groups=1, name=''):
    """2-D convolution over an input (C, H, W) (or (H, W) with ``reduction_rank=0``)."""
    return _ConvolutionND(Convolution2D, 2, filter_shape, num_filters, activation, init, pad, strides, bias,
                          init_bias, reduction_rank, dilation, groups, name)


def Convolution3D(filter_shape, num_filters=None, activation=default_override_or(identity),
                  init=default_override_or(glorot_uniform()), pad=default_override_or(False), strides=1,
                  bias=default_override_or(True), init_bias=default_override_or(0), reduction_rank=1, dilation=1,
                  groups=1, name=''):
    """3-D convolution over an input (C, D, H, W) (or (D, H, W) with ``reduction_rank=0``)."""
    return _ConvolutionND(Convolution3D, 3, filter_shape, num_filters, activation, init, pad, strides, bias,
                          init_bias, reduction_rank, dilation, groups, name)


def _convolution_transpose_layer(layer, filter_shape, num_filters, activation, init, pad, strides, sharing, bias,
                                 init_bias, output_shape, reduction_rank, dilation, max_temp_mem_size_in_samples,
                                 name):
    """The layer behind ConvolutionTranspose(1D/2D/3D), with resolved defaults."""
    filter_shape, num_filters, pad, strides, sharing, dilation = _conv_options(
        layer, filter_shape, num_filters, pad, strides, sharing, dilation, reduction_rank)
    out_channels = num_filters or (1,)       # scalar output items: an emulated channel axis
    filter_rank = len(filter_shape)
    full_output_shape = None
    if output_shape is not None:
        output_shape = _as_tuple(output_shape)
        if len(output_shape) == filter_rank + 1 and output_shape[:1] == out_channels:
            output_shape = output_shape[1:]          # given with the output channel axis
        if len(output_shape) != filter_rank or any(d < 1 for d in output_shape):
            raise ValueError("%s: output_shape %r must give one positive size per filter axis (filter shape %r)"
                             % (layer, output_shape, filter_shape))
        full_output_shape = out_channels + output_shape
    # W is (C_in, O, *filter_shape)
    W, b = _conv_parameters(layer, init, _INFERRED + out_channels + filter_shape, filter_shape, bias, init_bias,
                            out_channels + (1,) * filter_rank)

    def convolve_transposed(x):
        # per-axis options for (C_in, *spatial): the channel axis is never padded nor strided
        r = _convolution_transpose(W, _with_channel_axis(x, reduction_rank), strides=(1,) + strides,
                                   sharing=(True,) + sharing, auto_padding=(False,) + pad,
                                   output_shape=full_output_shape, dilation=(1,) + dilation, reduction_rank=1,
                                   max_temp_mem_size_in_samples=max_temp_mem_size_in_samples)
        return _conv_output(r, b, num_filters, activation)

    return _rank_checked(_block('ConvolutionTranspose', name, convolve_transposed), layer, reduction_rank, filter_rank)


def ConvolutionTranspose(filter_shape, num_filters, activation=default_override_or(identity),
                         init=default_override_or(glorot_uniform()), pad=default_override_or(False), strides=1,
                         sharing=True, bias=default_override_or(True), init_bias=default_override_or(0),
                         output_shape=default_override_or(None), reduction_rank=1, dilation=1,
                         max_temp_mem_size_in_samples=0, name=''):
    """Transposed convolution ("deconvolution") ``activation(conv_transpose(W, x) + b)`` of an
    input (C, *spatial) (or (*spatial) with ``reduction_rank=0``): each input cell spreads
    ``W[c]`` (num_filters, *filter_shape) into the output, which is (num_filters, *spatial_out)
    (no channel axis for ``num_filters=()``/None). W is (C, num_filters, *filter_shape) with C
    inferred; b is (num_filters, 1, ...). Without padding a spatial size n becomes
    (n-1)*stride + (k-1)*dilation + 1; with ``pad`` it becomes (n-1)*stride + 1 unless
    ``output_shape`` (the spatial sizes) says otherwise."""
    activation, init, pad, bias, init_bias = _conv_defaults(ConvolutionTranspose, activation, init, pad, bias,
                                                            init_bias)
    output_shape = get_default_override(ConvolutionTranspose, output_shape=output_shape)
    return _convolution_transpose_layer('ConvolutionTranspose', filter_shape, num_filters, activation, init, pad,
                                        strides, sharing, bias, init_bias, output_shape, reduction_rank, dilation,
                                        max_temp_mem_size_in_samples, name)


def _ConvolutionTransposeND(factory, nd, filter_shape, num_filters, activation, init, pad, strides, bias, init_bias,
                            output_shape, reduction_rank, dilation, name):
    layer = factory.__name__
    activation, init, pad, bias, init_bias = _conv_defaults(factory, activation, init, pad, bias, init_bias)
    output_shape = get_default_override(factory, output_shape=output_shape)
    filter_shape = _nd_filter_shape(layer, nd, filter_shape, pad, strides, dilation)
    return _convolution_transpose_layer(layer, filter_shape, num_filters, activation, init, pad, strides, True, bias,
                                        init_bias, output_shape, reduction_rank, dilation, 0, name)


def ConvolutionTranspose1D(filter_shape, num_filters, activation=default_override_or(identity),
                           init=default_override_or(glorot_uniform()), pad=default_override_or(False), strides=1,
                           bias=default_override_or(True), init_bias=default_override_or(0),
                           output_shape=default_override_or(None), reduction_rank=1, dilation=1, name=''):
    """1-D transposed convolution of an input (C, W) (or (W,) with ``reduction_rank=0``)."""
    return _ConvolutionTransposeND(ConvolutionTranspose1D, 1, filter_shape, num_filters, activation, init, pad,
                                   strides, bias, init_bias, output_shape, reduction_rank, dilation, name)


def ConvolutionTranspose2D(filter_shape, num_filters, activation=default_override_or(identity),
                           init=default_override_or(glorot_uniform()), pad=default_override_or(False), strides=1,
                           bias=default_override_or(True), init_bias=default_override_or(0),
                           output_shape=default_override_or(None), reduction_rank=1, dilation=1, name=''):
    """2-D transposed convolution of an input (C, H, W) (or (H, W) with ``reduction_rank=0``)."""
    return _ConvolutionTransposeND(ConvolutionTranspose2D, 2, filter_shape, num_filters, activation, init, pad,
                                   strides, bias, init_bias, output_shape, reduction_rank, dilation, name)


def ConvolutionTranspose3D(filter_shape, num_filters, activation=default_override_or(identity),
                           init=default_override_or(glorot_uniform()), pad=default_override_or(False), strides=1,
                           bias=default_override_or(True), init_bias=default_override_or(0),
                           output_shape=default_override_or(None), reduction_rank=1, dilation=1, name=''):
    """3-D transposed convolution of an input (C, D, H, W) (or (D, H, W) with ``reduction_rank=0``)."""
    return _ConvolutionTransposeND(ConvolutionTranspose3D, 3, filter_shape, num_filters, activation, init, pad,
                                   strides, bias, init_bias, output_shape, reduction_rank, dilation, name)


def _pool_window(layer, filter_shape, strides, pad):
    """A pooling window and its strides and padding, one entry per window axis."""
    window = _as_tuple(filter_shape)
    if not window:
        raise ValueError("%s: filter_shape must not be empty" % layer)
    return window, _pad_to_shape(layer, window, strides, 'strides'), _pad_to_shape(layer, window, pad, 'pad')


def _Pooling(pooling_type, filter_shape, strides, pad, op_name, name):
    if filter_shape is None:             # global pooling: all spatial axes
        window, strides, pad = (-1,), (1,), (False,)
    else:
        window, strides, pad = _pool_window(op_name, filter_shape, strides, pad)

    def pool(x):
        return _pooling(x, pooling_type, window, strides=strides, auto_padding=pad)
    return _block(op_name, name, pool)


def MaxPooling(filter_shape, strides=1, pad=default_override_or(False), name=''):
    """Max pooling over windows of ``filter_shape`` on the trailing (spatial) axes."""
    pad = get_default_override(MaxPooling, pad=pad)
    return _Pooling(_MAX_POOLING, filter_shape, strides, pad, 'MaxPooling', name)


def AveragePooling(filter_shape, strides=1, pad=default_override_or(False), name=''):
    """Average pooling over windows of ``filter_shape`` (padding cells are not counted)."""
    pad = get_default_override(AveragePooling, pad=pad)
    return _Pooling(_AVG_POOLING, filter_shape, strides, pad, 'AveragePooling', name)


def GlobalMaxPooling(name=''):
    """Max over all spatial axes (every axis but the channel axis), which are kept with size 1."""
    return _Pooling(_MAX_POOLING, None, 1, False, 'GlobalMaxPooling', name)


def GlobalAveragePooling(name=''):
    """Average over all spatial axes (every axis but the channel axis), which are kept with size 1."""
    return _Pooling(_AVG_POOLING, None, 1, False, 'GlobalAveragePooling', name)


def MaxUnpooling(filter_shape, strides=1, pad=default_override_or(False), name=''):
    """Max unpooling, applied as ``f(x, pooling_input)``: each value of ``x`` (the max pooling of
    ``pooling_input`` with these options) goes where its window's maximum of ``pooling_input``
    is; zeros elsewhere. The result has the shape of ``pooling_input``."""
    pad = get_default_override(MaxUnpooling, pad=pad)
    window, strides, pad = _pool_window('MaxUnpooling', filter_shape, strides, pad)

    def maxunpool(x, y):
        return _unpooling(x, y, _MAX_UNPOOLING, window, strides=strides, auto_padding=pad)
    return _block('MaxUnpooling', name, maxunpool, arg_names=('x', 'y'))


def BatchNormalization(map_rank=default_override_or(None), init_scale=1,
                       normalization_time_constant=default_override_or(5000), blend_time_constant=0,
                       epsilon=default_override_or(0.00001), use_cntk_engine=default_override_or(False),
                       disable_regularization=default_override_or(False), name=''):
    """Batch normalization: per element (``map_rank=None``) or per channel, i.e. with statistics
    shared over the spatial axes (``map_rank=1``). Learnable ``.scale``/``.bias``; running
    statistics in the Constants ``.aggregate_mean``, ``.aggregate_variance``, ``.aggregate_count``."""
    map_rank, normalization_time_constant, epsilon, use_cntk_engine, disable_regularization = _resolved(
        BatchNormalization, map_rank=map_rank, normalization_time_constant=normalization_time_constant,
        epsilon=epsilon, use_cntk_engine=use_cntk_engine, disable_regularization=disable_regularization)
    if map_rank is not None and map_rank != 1:
        raise ValueError("BatchNormalization: map_rank can only be 1 or None for now; got %r" % (map_rank,))

    # one entry per channel (map_rank=1) or per element of the item, flattened (CNTK infers a rank-1 shape)
    norm_shape = _INFERRED
    dtype = _default_dtype()
    scale = Parameter(norm_shape, init=init_scale, dtype=dtype, name='scale')
    bias = Parameter(norm_shape, init=0, dtype=dtype, name='bias')
    run_mean = Constant(0, shape=norm_shape, dtype=dtype, name='aggregate_mean')
    run_variance = Constant(0, shape=norm_shape, dtype=dtype, name='aggregate_variance')
    run_count = Constant(0, shape=(), dtype=dtype, name='aggregate_count')

    def batch_normalize(x):
        return _batch_normalization(x, scale, bias, run_mean, run_variance, spatial=map_rank == 1,
                                    normalization_time_constant=normalization_time_constant,
                                    blend_time_constant=blend_time_constant, epsilon=epsilon,
                                    use_cudnn_engine=not use_cntk_engine,
                                    disable_regularization=disable_regularization, running_count=run_count)
    return _block('BatchNormalization', name, batch_normalize)


def LayerNormalization(initial_scale=1, initial_bias=0, epsilon=default_override_or(0.00001), name=''):
    """``(x - mu) / sigma * scale + bias`` with mu and sigma = sqrt(mean((x - mu)^2)) + epsilon
    over all static elements of a sample (epsilon is added to sigma, not to the variance);
    scalar ``.scale`` and ``.bias``."""
    epsilon = get_default_override(LayerNormalization, epsilon=epsilon)
    scale = Parameter((), init=initial_scale, name='scale')
    bias = Parameter((), init=initial_bias, name='bias')

    def layer_normalize(x):
        mean = _reduce_mean(x)
        x0 = x - mean
        std = _sqrt(_reduce_mean(x0 * x0))
        if epsilon != 0:
            std = std + epsilon
        return x0 / std * scale + bias
    return _block('LayerNormalization', name, layer_normalize)


# Names CNTK's layers module also exposes (through its imports). They shadow Python's ``input``
# and ``slice`` here, which this module does not use.
from ..ops import (parameter, input, placeholder, combine, element_times, convolution,  # noqa: E402,F401
                   convolution_transpose, pooling, unpooling, batch_normalization, dropout, splice, reshape,
                   softmax, tanh, reduce_sum, reduce_mean, sqrt)
from ..variables import Variable  # noqa: E402,F401
from ..train.declarative import Record  # noqa: E402,F401
# and, through its star imports, the blocks, the higher-order and sequence layers and the types
from . import blocks as _blocks, higher_order_layers as _higher_order, sequence as _seq, typing as _typing  # noqa
from .blocks import *  # noqa: E402,F401,F403
from .higher_order_layers import *  # noqa: E402,F401,F403
from .sequence import *  # noqa: E402,F401,F403
from .typing import *  # noqa: E402,F401,F403

__all__ += [n for m in (_blocks, _higher_order, _seq, _typing) for n in m.__all__ if n not in __all__]
