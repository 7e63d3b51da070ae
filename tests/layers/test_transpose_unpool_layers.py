"""ConvolutionTranspose(1D/2D/3D), SequentialConvolution, MaxUnpooling, transpose_weight, array
initial values, BatchNormalization's parameter shapes, default_options and dtype scoping, and the
errors these layers raise for bad input."""

import itertools

import numpy as np
import pytest

import cntk as C
from cntk.layers import (Convolution, Convolution1D, Convolution2D, ConvolutionTranspose, ConvolutionTranspose1D,
                         ConvolutionTranspose2D, ConvolutionTranspose3D, SequentialConvolution, MaxPooling,
                         MaxUnpooling, BatchNormalization, Dense, Dropout, Sequential, default_options,
                         default_options_for)
from finite_differences import numeric_gradient, parameter_gradient, sequence_gradients


# -- numpy references ---------------------------------------------------------------------------

def _conv_transpose_ref(X, W, strides, dilation=None, lower=None, out=None):
    """Scatter-add: input cell q spreads W[c, :, t] into output cell q*s + t*d, then the output
    is cropped to [lower, lower + out) per axis. X (N, C, *n), W (C, O, *k)."""
    n, k = X.shape[2:], W.shape[2:]
    nd = len(n)
    dilation = dilation or (1,) * nd
    full = tuple((ni - 1) * s + (ki - 1) * d + 1 for ni, ki, s, d in zip(n, k, strides, dilation))
    Y = np.zeros((X.shape[0], W.shape[1]) + full)
    for q in itertools.product(*[range(v) for v in n]):
        for t in itertools.product(*[range(v) for v in k]):
            p = tuple(qi * s + ti * d for qi, ti, s, d in zip(q, t, strides, dilation))
            Y[(slice(None), slice(None)) + p] += X[(slice(None), slice(None)) + q] @ W[(slice(None), slice(None)) + t]
    lower = lower or (0,) * nd
    out = out or tuple(f - lo for f, lo in zip(full, lower))
    return Y[(slice(None), slice(None)) + tuple(slice(lo, lo + m) for lo, m in zip(lower, out))]


def _corr_ref(X, W, lo, out):
    """Correlation of X (N, C, *n) with W (O, C, *k), zero padding ``lo`` cells before each axis."""
    nd = X.ndim - 2
    k = W.shape[2:]
    pad = [(0, 0), (0, 0)] + [(l, max(0, o + kk - 1 - l - n)) for l, o, kk, n in zip(lo, out, k, X.shape[2:])]
    Xp = np.pad(X, pad)
    Y = np.zeros((X.shape[0], W.shape[0]) + tuple(out))
    for p in itertools.product(*[range(v) for v in out]):
        patch = Xp[(slice(None), slice(None)) + tuple(slice(pi, pi + kk) for pi, kk in zip(p, k))]
        Y[(slice(None), slice(None)) + p] = np.tensordot(patch, W, axes=(list(range(1, nd + 2)),
                                                                          list(range(1, nd + 2))))
    return Y


def _seq_conv_ref(x, W, pad):
    """A sequence x (L, C) convolved over time with W (O, C, k), stride 1; CNTK's centring."""
    k = W.shape[2]
    L = x.shape[0]
    lo = (k - 1) // 2 if pad else 0
    out = L if pad else L - k + 1
    xp = np.concatenate([np.zeros((lo, x.shape[1])), x, np.zeros((k, x.shape[1]))])
    return np.stack([np.einsum('tc,oct->o', xp[t:t + k], W) for t in range(out)])


def _total(v):
    return sum(np.sum(a) for a in v) if isinstance(v, list) else np.sum(v)


# -- ConvolutionTranspose -----------------------------------------------------------------------

def test_convolution_transpose_parameters_and_shapes():
    t = ConvolutionTranspose((3, 4), 8, activation=C.relu, name='up')
    assert t.is_block and t.op_name == 'ConvolutionTranspose' and t.name == 'up'
    assert t.W.name == 'W' and t.b.name == 'b'
    assert t.W.shape == (-1, 8, 3, 4) and t.b.shape == (8, 1, 1)
    x = C.input_variable((3, 6, 7))
    assert t(x).shape == (8, 8, 10) and t.W.shape == (3, 8, 3, 4)
    assert ConvolutionTranspose((3, 3), 2, strides=2)(x).shape == (2, 13, 15)
    assert ConvolutionTranspose((3, 3), 2, strides=2, pad=True)(x).shape == (2, 11, 13)
    assert ConvolutionTranspose((3, 3), 2, strides=2, pad=True, output_shape=(12, 14))(x).shape == (2, 12, 14)
    assert ConvolutionTranspose((3, 3), 2, dilation=2)(x).shape == (2, 10, 11)
    assert ConvolutionTranspose((3, 3), 2, bias=False).find_by_name('b', depth=1) is None
    # scalar output items, and inputs without a channel axis
    t = ConvolutionTranspose((3, 3), None)
    assert t(x).shape == (8, 9) and t.W.shape == (3, 1, 3, 3) and t.b.shape == (1, 1, 1)
    t = ConvolutionTranspose((3, 3), 4, reduction_rank=0)
    assert t(C.input_variable((5, 6))).shape == (4, 7, 8) and t.W.shape == (1, 4, 3, 3)
    # the xD forms: scalar filter shapes are repeated
    assert ConvolutionTranspose1D(3, 5)(C.input_variable((2, 9))).shape == (5, 11)
    t2 = ConvolutionTranspose2D(3, 5, name='t2')
    assert t2(x).shape == (5, 8, 9) and t2.W.shape == (3, 5, 3, 3) and t2.op_name == 'ConvolutionTranspose'
    assert ConvolutionTranspose3D(2, 3, strides=2)(C.input_variable((1, 2, 3, 4))).shape == (3, 4, 6, 8)


def test_convolution_transpose_forward_reference():
    rng = np.random.RandomState(0)
    x = C.input_variable((3, 4, 5))
    X = rng.randn(2, 3, 4, 5).astype(np.float32)
    cases = [dict(kw=dict(strides=1), ref=dict(strides=(1, 1))),
             dict(kw=dict(strides=(2, 3)), ref=dict(strides=(2, 3))),
             dict(kw=dict(dilation=2), ref=dict(strides=(1, 1), dilation=(2, 2))),
             # auto padding, stride 1, odd kernel: the same size, one cell cropped on each side
             dict(kw=dict(pad=True), ref=dict(strides=(1, 1), lower=(1, 1), out=(4, 5))),
             # auto padding, stride 2: CNTK's geometry puts the first window centre at 0, so one
             # leading cell is cropped, and output_shape picks the size
             dict(kw=dict(pad=True, strides=2, output_shape=(8, 10)), ref=dict(strides=(2, 2), lower=(1, 1),
                                                                                out=(8, 10)))]
    for case in cases:
        t = ConvolutionTranspose((3, 3), 2, init=C.glorot_uniform(seed=1), **case['kw'])
        y = t(x)
        t.b.value = np.array([0.5, -0.25], np.float32).reshape(2, 1, 1)
        ref = _conv_transpose_ref(X.astype(np.float64), t.W.value.astype(np.float64), **case['ref']) \
            + t.b.value.reshape(1, 2, 1, 1)
        assert y.shape == ref.shape[1:], case
        np.testing.assert_allclose(y.eval({x: X}), ref, rtol=1e-4, atol=1e-5, err_msg=str(case))


def test_convolution_transpose_1d_3d_forward_reference():
    rng = np.random.RandomState(1)
    x1 = C.input_variable((2, 6))
    t1 = ConvolutionTranspose1D(3, 4, strides=2, activation=C.tanh, init=C.glorot_uniform(seed=2))
    y1 = t1(x1)
    X1 = rng.randn(3, 2, 6).astype(np.float32)
    ref = np.tanh(_conv_transpose_ref(X1.astype(np.float64), t1.W.value.astype(np.float64), strides=(2,)))
    np.testing.assert_allclose(y1.eval({x1: X1}), ref, rtol=1e-4, atol=1e-5)
    x3 = C.input_variable((2, 2, 3, 2))
    t3 = ConvolutionTranspose3D((2, 2, 3), 3, bias=False, init=C.glorot_uniform(seed=3))
    y3 = t3(x3)
    X3 = rng.randn(2, 2, 2, 3, 2).astype(np.float32)
    ref = _conv_transpose_ref(X3.astype(np.float64), t3.W.value.astype(np.float64), strides=(1, 1, 1))
    np.testing.assert_allclose(y3.eval({x3: X3}), ref, rtol=1e-4, atol=1e-5)


def test_convolution_transpose_gradients_float64():
    x = C.input_variable((2, 3, 3), dtype=np.float64, needs_gradient=True)
    t = ConvolutionTranspose2D(2, 3, strides=2, pad=True, output_shape=(6, 5), activation=C.tanh,
                               init=C.glorot_uniform(seed=4))
    y = t(x)
    X = np.random.RandomState(5).randn(2, 2, 3, 3)
    g = y.grad({x: X}, wrt=[x, t.W, t.b])

    def loss(v=X):
        return _total(y.eval({x: v}))
    np.testing.assert_allclose(g[x], numeric_gradient(loss, X), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g[t.W], parameter_gradient(loss, t.W), rtol=1e-5, atol=1e-7)
    assert g[t.b].shape == (3, 1, 1)


# -- SequentialConvolution ----------------------------------------------------------------------

def test_sequential_convolution_parameters_and_forward():
    s = C.sequence.input_variable(2)
    c = SequentialConvolution(3, 4, pad=True, name='sc')
    y = c(s)
    assert c.is_block and c.op_name == 'SequentialConvolution' and c.name == 'sc'
    assert c.W.shape == (4, 2, 3) and c.b.shape == (4,) and y.shape == (4,)
    c.b.value = np.array([0.1, 0.2, -0.3, 0.4], np.float32)
    rng = np.random.RandomState(0)
    seqs = [rng.randn(n, 2).astype(np.float32) for n in (5, 1, 3)]     # variable lengths
    out = y.eval({s: seqs})
    W = c.W.value.astype(np.float64)
    for a, o in zip(seqs, out):
        np.testing.assert_allclose(o, _seq_conv_ref(a.astype(np.float64), W, True) + c.b.value, rtol=1e-5,
                                   atol=1e-6)
    # without padding every sequence loses k-1 steps (so the result is on a new sequence axis)
    c = SequentialConvolution(2, 3, bias=False)
    y = c(s)
    out = y.eval({s: [seqs[0], seqs[2]]})
    assert [len(o) for o in out] == [4, 2]
    for a, o in zip([seqs[0], seqs[2]], out):
        np.testing.assert_allclose(o, _seq_conv_ref(a.astype(np.float64), c.W.value.astype(np.float64), False),
                                   rtol=1e-5, atol=1e-6)
    # a time stride of 2 with padding: ceil(L / 2) steps per sequence
    y = SequentialConvolution(3, 2, pad=True, strides=2)(s)
    assert [len(o) for o in y.eval({s: seqs})] == [3, 1, 2]


def test_sequential_convolution_scalar_items_and_array_init():
    s = C.sequence.input_variable(())
    data = [np.array([2., 6., 4., 8., 6.], np.float32), np.array([1., 3.], np.float32)]
    for pad, want in ((True, [[10, 24, 40, 38, 44], [5, 10]]), (False, [[24, 40, 38], None])):
        c = SequentialConvolution(3, init=np.array([4., 2., 1.], np.float32), pad=pad, reduction_rank=0, bias=False)
        y = c(s)
        assert c.W.shape == (1, 1, 3) and y.shape == ()
        if want[1] is None:
            out = y.eval({s: data[:1]})
        else:
            out = y.eval({s: data})
        for o, w in zip(out, want):
            np.testing.assert_allclose(o, w, rtol=1e-6)
    # a 2-D filter: time x one static axis, over items without a channel axis
    s2 = C.sequence.input_variable(5)
    c = SequentialConvolution((3, 2), 4, pad=(True, False), reduction_rank=0)
    assert c(s2).shape == (4, 4) and c.W.shape == (4, 1, 3, 2) and c.b.shape == (4, 1)


def test_sequential_convolution_gradient_float64():
    s = C.sequence.input_variable((2, 4), dtype=np.float64, needs_gradient=True)
    c = SequentialConvolution((2, 3), 3, pad=True, activation=C.tanh, init=C.glorot_uniform(seed=6))
    y = c(s)
    assert y.shape == (3, 4) and c.b.shape == (3, 1)
    rng = np.random.RandomState(7)
    seqs = [rng.randn(3, 2, 4), rng.randn(1, 2, 4)]
    g = y.grad({s: seqs}, wrt=[s])
    for i, num in enumerate(sequence_gradients(lambda data: _total(y.eval({s: data})), seqs)):
        np.testing.assert_allclose(g[i], num, rtol=1e-5, atol=1e-7)


def test_convolution_sequential_bias_keeps_the_item_rank():
    s = C.sequence.input_variable(2)
    c = Convolution(3, 4, sequential=True, pad=True)
    y = c(s)
    assert y.shape == (4,) and c.b.shape == (4,)
    s = C.sequence.input_variable((2, 5))
    c = Convolution((3, 3), 4, sequential=True, pad=True)
    assert c(s).shape == (4, 5) and c.b.shape == (4, 1)


# -- transpose_weight and array initial values ---------------------------------------------------

def test_transpose_weight_is_a_true_convolution():
    x = C.input_variable((2, 5, 6))
    X = np.random.RandomState(0).randn(3, 2, 5, 6).astype(np.float32)
    c = Convolution((3, 2), 4, transpose_weight=True, init=C.glorot_uniform(seed=1))
    y = c(x)
    assert c.W.shape == (4, 2, 3, 2) and y.shape == (4, 3, 5)
    W = c.W.value.astype(np.float64)
    ref = _corr_ref(X.astype(np.float64), W[:, :, ::-1, ::-1], (0, 0), (3, 5))
    np.testing.assert_allclose(y.eval({x: X}), ref, rtol=1e-4, atol=1e-5)
    plain = _corr_ref(X.astype(np.float64), W, (0, 0), (3, 5))
    assert not np.allclose(ref, plain)
    # inside a Sequential built before its input is known: W's input channels are still inferred
    m = Sequential([Convolution((3, 3), 2, transpose_weight=True, pad=True), Dense(3)])
    z = m(x)
    assert z.shape == (3,) and z.eval({x: X}).shape == (3, 3)
    # gradient through the reversed kernel (float64)
    xd = C.input_variable((1, 4, 4), dtype=np.float64)
    c = Convolution((2, 2), 1, transpose_weight=True, bias=False, init=C.glorot_uniform(seed=2))
    yd = c(xd)
    Xd = np.random.RandomState(3).randn(1, 1, 4, 4)
    g = yd.grad({xd: Xd}, wrt=[c.W])
    num = parameter_gradient(lambda: _total(yd.eval({xd: Xd})), c.W)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-7)


def test_convolution_array_init():
    k = np.arange(6, dtype=np.float32).reshape(2, 3)
    c = Convolution((3,), 2, init=k, reduction_rank=0, bias=False)     # num_filters + filter_shape
    assert c.W.shape == (2, 1, 3)
    x = C.input_variable(5)
    X = np.arange(5, dtype=np.float32)[None]
    want = np.array([[X[0, i:i + 3] @ k[o] for i in range(3)] for o in range(2)])
    np.testing.assert_allclose(c(x).eval({x: X})[0], want, rtol=1e-6)
    full = np.ones((3, 2, 2, 2), np.float32)                             # the full kernel shape
    assert Convolution((2, 2), 3, init=full).W.shape == (3, 2, 2, 2)
    with pytest.raises(ValueError, match=r"Convolution: the initial value of W has shape \(2, 2\)"):
        Convolution((3, 3), 2, init=np.ones((2, 2), np.float32))


# -- MaxUnpooling ---------------------------------------------------------------------------------

def test_max_unpooling_forward_and_gradient():
    u = MaxUnpooling((2, 2), strides=2, name='unpool')
    assert u.is_block and u.op_name == 'MaxUnpooling' and u.name == 'unpool'
    assert [a.name for a in u.arguments] == ['x', 'y']
    rng = np.random.RandomState(0)
    pin = C.input_variable((2, 4, 6))
    v = C.input_variable((2, 2, 3), needs_gradient=True)
    z = u(v, pin)
    assert z.shape == (2, 4, 6)
    P = rng.randn(3, 2, 4, 6).astype(np.float32)
    V = rng.randn(3, 2, 2, 3).astype(np.float32)
    windows = P.reshape(3, 2, 2, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5).reshape(3, 2, 2, 3, 4)
    hot = np.eye(4, dtype=bool)[windows.argmax(-1)]                     # where each window's maximum is
    ref = (hot * V[..., None]).reshape(3, 2, 2, 3, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(3, 2, 4, 6)
    np.testing.assert_allclose(z.eval({v: V, pin: P}), ref, rtol=1e-6)
    # max pooling then unpooling keeps each window's maximum in place and zeroes the rest
    at_max = (hot * np.ones_like(V)[..., None]).reshape(3, 2, 2, 3, 2, 2).transpose(0, 1, 2, 4, 3, 5) \
        .reshape(3, 2, 4, 6) > 0
    roundtrip = u(MaxPooling((2, 2), strides=2)(pin), pin)
    np.testing.assert_allclose(roundtrip.eval({pin: P}), np.where(at_max, P, 0), rtol=1e-6)
    # CNTK's backward: the operand's gradient is the max pooling of the output gradient
    G = rng.randn(3, 2, 4, 6).astype(np.float32)
    state, _ = z.forward({v: V, pin: P}, [z.output], keep_for_backward={z.output})
    g = z.backward(state, {z.output: G}, {v})[v]
    np.testing.assert_allclose(g, G.reshape(3, 2, 2, 2, 3, 2).max(axis=(3, 5)), rtol=1e-6)


def test_max_unpooling_padding_and_default_options():
    pin = C.input_variable((1, 5, 5))
    assert MaxUnpooling((3, 3), strides=2)(C.input_variable((1, 2, 2)), pin).shape == (1, 5, 5)
    with default_options(pad=True):
        u = MaxUnpooling((3, 3), strides=2)
    assert u(C.input_variable((1, 3, 3)), pin).shape == (1, 5, 5)
    with pytest.raises(ValueError, match=r"MaxUnpooling.*\(1, 2, 2\)"):
        u(C.input_variable((1, 2, 2)), pin)


# -- BatchNormalization parameter shapes ---------------------------------------------------------

def test_batch_normalization_parameter_shapes_as_cntk():
    # CNTK infers a rank-1 shape: one entry per element of the item (map_rank=None) or per channel
    bn = BatchNormalization()
    bn(C.input_variable((3, 4, 5)))
    for p in (bn.scale, bn.bias, bn.aggregate_mean, bn.aggregate_variance):
        assert p.shape == (60,)
    assert bn.aggregate_count.shape == ()
    bn = BatchNormalization(map_rank=1)
    bn(C.input_variable((3, 4, 5)))
    assert bn.scale.shape == bn.aggregate_variance.shape == (3,)


# -- default_options scoping and dtype ------------------------------------------------------------

def test_default_options_scoping_for_the_new_layers():
    x = C.input_variable((2, 4, 4))
    with default_options(pad=True, bias=False, activation=C.relu, init_bias=2):
        t = ConvolutionTranspose((3, 3), 2, strides=2)
        sc = SequentialConvolution(3, 2)
        with default_options(bias=True):                 # the innermost scope wins
            t_b = ConvolutionTranspose2D(3, 2)
    assert t(x).shape == (2, 7, 7) and t.find_by_name('b', depth=1) is None
    assert (t(x).eval({x: -np.ones((1, 2, 4, 4), np.float32)}) >= 0).all()
    assert sc.find_by_name('b', depth=1) is None
    np.testing.assert_allclose(t_b.b.value, 2)
    s = C.sequence.input_variable(2)
    assert [len(o) for o in sc(s).eval({s: [np.ones((4, 2), np.float32)]})] == [4]
    # default_options_for applies to the named factory only (as in CNTK: not to its xD forms)
    with default_options_for(ConvolutionTranspose, pad=True), default_options_for(Convolution2D, bias=False):
        assert ConvolutionTranspose((3, 3), 2)(x).shape == (2, 4, 4)
        assert ConvolutionTranspose2D(3, 2)(x).shape == (2, 6, 6)
        assert Convolution2D(3, 2).find_by_name('b', depth=1) is None
        assert Convolution((3, 3), 2).find_by_name('b', depth=1) is not None
    with default_options_for(Convolution, pad=True):
        assert Convolution2D(3, 2)(x).shape == (2, 2, 2)
        assert Convolution((3, 3), 2)(x).shape == (2, 4, 4)
    with default_options(output_shape=(8, 8)):
        assert ConvolutionTranspose((3, 3), 2, strides=2, pad=True)(x).shape == (2, 8, 8)
    assert ConvolutionTranspose((3, 3), 2, strides=2, pad=True)(x).shape == (2, 7, 7)


def test_default_options_dtype_makes_float64_parameters():
    with default_options(dtype=np.float64):
        d = Dense(3)
        t = ConvolutionTranspose((2, 2), 2)
        bn = BatchNormalization(map_rank=1)
        p = C.parameter((2,))                      # C.parameter's own dtype=None ignores the scope
    assert d.W.dtype == d.b.dtype == np.float64
    assert t.W.dtype == np.float64 and bn.scale.dtype == bn.aggregate_mean.dtype == np.float64
    x64 = C.input_variable(4, dtype=np.float64)
    assert d(x64).dtype == np.float64
    with pytest.raises(ValueError, match="float32.*float64|float64.*float32"):
        d(C.input_variable(4))                     # float64 parameters with a float32 input
    # outside the scope parameters take the dtype of what they are used with
    e = Dense(3)
    assert e(x64).dtype == np.float64 and e.W.dtype == np.float64
    assert (p + C.input_variable(2)).dtype == np.float32


# -- bad input --------------------------------------------------------------------------------------

def test_bad_input_names_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"Convolution2D: the input must have rank 3 .* got shape \(10,\)"):
        Convolution2D((3, 3), 4)(C.input_variable(10))
    with pytest.raises(ValueError, match=r"ConvolutionTranspose2D\('up'\): the input must have rank 3 .*\(5,\)"):
        ConvolutionTranspose2D(3, 4, name='up')(C.input_variable(5))
    with pytest.raises(ValueError, match=r"MaxPooling\('pool'\).*\(3, 4, 4\).*kernel \(5\) is larger"):
        MaxPooling((5, 5), name='pool')(C.input_variable((3, 4, 4)))
    with pytest.raises(ValueError, match="Dropout: dropout_rate and keep_prob"):
        Dropout(0.5, keep_prob=0.5)
    with pytest.raises(ValueError, match=r"SequentialConvolution\('sc'\).*\(5,\).*sequence axis"):
        SequentialConvolution(3, 4, name='sc')(C.input_variable(5))
    with pytest.raises(ValueError, match=r"ConvolutionTranspose2D: output_shape \(8,\)"):
        ConvolutionTranspose2D(3, 4, output_shape=(8,))
    with pytest.raises(ValueError, match=r"ConvolutionTranspose.*output size 20"):
        ConvolutionTranspose2D(3, 4, strides=2, output_shape=(20, 20))(C.input_variable((2, 4, 4)))
    with pytest.raises(ValueError, match="ConvolutionTranspose2D: filter_shape must be a scalar or a 2D tuple"):
        ConvolutionTranspose2D((3, 3, 3), 4)
    with pytest.raises(ValueError, match=r"Convolution: sharing=\(False, False\)"):
        Convolution((3, 3), 4, sharing=False)
    with pytest.raises(ValueError, match="ConvolutionTranspose: reduction_rank must be 0 or 1"):
        ConvolutionTranspose((3, 3), 4, reduction_rank=2)
    with pytest.raises(ValueError, match="num_filters must be a single number"):
        ConvolutionTranspose((3, 3), (2, 3))
    with pytest.raises(TypeError):
        Convolution1D(3, 4, groups=2)               # as in CNTK, the 1-D layer has no groups
