import numpy as np
import pytest

import cntk as C
from cntk.layers import (Convolution, Convolution1D, Convolution2D, Convolution3D, MaxPooling, AveragePooling,
                         GlobalMaxPooling, GlobalAveragePooling, BatchNormalization, LayerNormalization,
                         Stabilizer, default_options, identity)
from finite_differences import numeric_gradient


def _conv2d_ref(X, W, b, stride=1, pad=0):
    # X (N, C, H, W), W (O, C, kh, kw); zero padding `pad` on each side
    X = np.pad(X, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    O, Cc, kh, kw = W.shape
    Ho = (X.shape[2] - kh) // stride + 1
    Wo = (X.shape[3] - kw) // stride + 1
    out = np.zeros((X.shape[0], O, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            patch = X[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.einsum('nchw,ochw->no', patch, W)
    return out + b.reshape(1, O, 1, 1)


def _numgrad(y, x, X):
    """d sum(y) / d x at X, by central differences."""
    return numeric_gradient(lambda v: y.eval({x: v}).sum(), X)


def test_convolution_shapes_and_names():
    c = Convolution((3, 3), 4, name='conv')
    assert c.is_block and c.op_name == 'Convolution' and c.name == 'conv'
    assert c.W.name == 'W' and c.b.name == 'b'
    assert c.W.shape == (4, -1, 3, 3) and c.b.shape == (4, 1, 1)
    x = C.input_variable((2, 7, 8))
    assert c(x).shape == (4, 5, 6) and c.W.shape == (4, 2, 3, 3)
    c = Convolution2D((3, 3), 6, pad=True, strides=2, groups=2)
    assert c.op_name == 'Convolution2D'
    assert c(x).shape == (6, 4, 4) and c.W.shape == (6, 1, 3, 3)
    assert Convolution((3, 3), bias=False).find_by_name('b', depth=1) is None
    c = Convolution((3, 3))                     # no num_filters: no output channel axis
    assert c(x).shape == (5, 6) and c.W.shape == (1, 2, 3, 3)
    c = Convolution((3, 3), 3, reduction_rank=0)
    assert c(C.input_variable((7, 8))).shape == (3, 5, 6)
    assert Convolution1D(3, 5)(C.input_variable((2, 9))).shape == (5, 7)
    assert Convolution3D(3, 2, pad=True)(C.input_variable((1, 4, 5, 6))).shape == (2, 4, 5, 6)


def test_convolution_rank_checked():
    with pytest.raises(ValueError, match=r"Convolution2D.*\(5, 6\)"):
        Convolution2D((3, 3), 4)(C.input_variable((5, 6)))
    with pytest.raises(ValueError, match=r"Convolution1D.*\(2, 5, 6\)"):
        Convolution1D(3, 4)(C.input_variable((2, 5, 6)))
    with pytest.raises(ValueError, match="Convolution2D"):
        Convolution2D((3, 3, 3), 4)


def test_convolution_forward_reference():
    c = Convolution2D((3, 3), 3, activation=C.relu, pad=True, strides=2, init=C.glorot_uniform(seed=3))
    x = C.input_variable((2, 5, 6))
    y = c(x)
    c.b.value = np.array([[[0.1]], [[-0.2]], [[0.3]]], np.float32)
    X = np.random.RandomState(0).randn(4, 2, 5, 6).astype(np.float32)
    ref = np.maximum(_conv2d_ref(X, c.W.value, c.b.value, stride=2, pad=1), 0)
    assert y.shape == ref.shape[1:]
    np.testing.assert_allclose(y.eval({x: X}), ref, rtol=1e-4, atol=1e-5)


def test_convolution_gradient_float64():
    x = C.input_variable((2, 4, 4), dtype=np.float64, needs_gradient=True)
    c = Convolution2D(3, 2, activation=C.tanh, pad=True, init=C.glorot_uniform(seed=2))
    y = c(x)
    X = np.random.RandomState(1).randn(1, 2, 4, 4)
    g = y.grad({x: X}, wrt=[x])
    np.testing.assert_allclose(g, _numgrad(y, x, X), rtol=1e-5, atol=1e-7)


def test_convolution_default_options():
    x = C.input_variable((1, 5, 5))
    with default_options(pad=True, activation=C.relu, bias=False):
        c = Convolution2D(3, 2)
    assert c(x).shape == (2, 5, 5) and c.find_by_name('b', depth=1) is None
    assert (c(x).eval({x: -np.ones((1, 1, 5, 5), np.float32)}) >= 0).all()
    assert Convolution2D(3, 2)(x).shape == (2, 3, 3)


def test_pooling_layers():
    x = C.input_variable((2, 4, 5))
    X = np.random.RandomState(0).randn(3, 2, 4, 5).astype(np.float32)
    m = MaxPooling((2, 2), strides=2, name='mp')
    assert m.op_name == 'MaxPooling' and m.name == 'mp'
    y = m(x)
    assert y.shape == (2, 2, 2)
    ref = X[:, :, :4, :4].reshape(3, 2, 2, 2, 2, 2).max(axis=(3, 5))
    np.testing.assert_allclose(y.eval({x: X}), ref, rtol=1e-6)
    a = AveragePooling((2, 2), strides=2)(x)
    ref = X[:, :, :4, :4].reshape(3, 2, 2, 2, 2, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(a.eval({x: X}), ref, rtol=1e-5, atol=1e-6)
    with default_options(pad=True):
        assert MaxPooling((3, 3))(x).shape == (2, 4, 5)
    assert MaxPooling((3, 3))(x).shape == (2, 2, 3)
    gm, ga = GlobalMaxPooling()(x), GlobalAveragePooling()(x)
    assert gm.shape == ga.shape == (2, 1, 1)
    np.testing.assert_allclose(gm.eval({x: X}), X.max(axis=(2, 3), keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(ga.eval({x: X}), X.mean(axis=(2, 3), keepdims=True), rtol=1e-5, atol=1e-6)


def test_pooling_gradient_float64():
    x = C.input_variable((1, 4, 4), dtype=np.float64, needs_gradient=True)
    y = AveragePooling((2, 2), strides=1, pad=True)(x)
    X = np.random.RandomState(2).randn(1, 1, 4, 4)
    np.testing.assert_allclose(y.grad({x: X}, wrt=[x]), _numgrad(y, x, X), rtol=1e-5, atol=1e-7)


def test_batch_normalization():
    bn = BatchNormalization(map_rank=1, name='bn')
    assert bn.op_name == 'BatchNormalization' and bn.name == 'bn'
    for a in ('scale', 'bias', 'aggregate_mean', 'aggregate_variance', 'aggregate_count'):
        assert getattr(bn, a).name == a
    x = C.input_variable((3, 2, 2))
    y = bn(x)
    assert y.shape == (3, 2, 2) and bn.scale.shape == (3,) and bn.aggregate_mean.shape == (3,)
    assert bn.aggregate_count.shape == ()
    assert isinstance(bn.scale, C.Parameter) and isinstance(bn.aggregate_mean, C.Constant)
    # inference: running statistics only
    bn.aggregate_mean.value = np.array([1., 2., 3.], np.float32)
    bn.aggregate_variance.value = np.array([4., 1., 0.25], np.float32)
    bn.scale.value = np.array([1., 2., 3.], np.float32)
    bn.bias.value = np.array([0., 1., -1.], np.float32)
    X = np.random.RandomState(0).randn(2, 3, 2, 2).astype(np.float32)
    s = lambda v: v.reshape(1, 3, 1, 1)
    ref = (X - s(bn.aggregate_mean.value)) / np.sqrt(s(bn.aggregate_variance.value) + 1e-5) * s(bn.scale.value) \
        + s(bn.bias.value)
    np.testing.assert_allclose(y.eval({x: X}), ref, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="BatchNormalization"):
        BatchNormalization(map_rank=2)
    per_elem = BatchNormalization()
    per_elem(C.input_variable((3, 2)))
    assert int(np.prod(per_elem.scale.shape)) == 6


def test_batch_normalization_default_options_and_gradient():
    with default_options(epsilon=0.5, map_rank=1):
        bn = BatchNormalization()
    x = C.input_variable((2, 3), dtype=np.float64, needs_gradient=True)
    y = bn(x)
    assert bn.scale.shape == (2,)
    bn.aggregate_variance.value = np.array([1., 2.])
    X = np.random.RandomState(3).randn(2, 2, 3)
    ref = X / np.sqrt(np.array([1., 2.]).reshape(1, 2, 1) + 0.5)
    np.testing.assert_allclose(y.eval({x: X}), ref, rtol=1e-6)
    # gradients run in training mode (minibatch statistics): d(sum y)/d bias = samples * spatial cells
    g = y.grad({x: X}, wrt=[bn.bias])
    np.testing.assert_allclose(g, [6., 6.], rtol=1e-10)


def test_layer_normalization():
    ln = LayerNormalization(initial_scale=2, initial_bias=0.5, name='ln')
    assert ln.op_name == 'LayerNormalization' and ln.scale.shape == () and ln.bias.shape == ()
    assert ln.scale.name == 'scale' and ln.bias.name == 'bias'
    x = C.input_variable((3, 4), dtype=np.float64, needs_gradient=True)
    y = ln(x)
    assert y.shape == (3, 4)
    X = np.random.RandomState(0).randn(2, 3, 4)
    mu = X.mean(axis=(1, 2), keepdims=True)
    sigma = np.sqrt(((X - mu) ** 2).mean(axis=(1, 2), keepdims=True)) + 1e-5    # epsilon added to sigma
    np.testing.assert_allclose(y.eval({x: X}), (X - mu) / sigma * 2 + 0.5, rtol=1e-10)
    np.testing.assert_allclose(y.grad({x: X}, wrt=[x]), _numgrad(y, x, X), rtol=1e-5, atol=1e-6)
    with default_options(epsilon=1.0):
        ln = LayerNormalization()
    y = ln(x)
    sigma = np.sqrt(((X - mu) ** 2).mean(axis=(1, 2), keepdims=True)) + 1.0
    np.testing.assert_allclose(y.eval({x: X}), (X - mu) / sigma, rtol=1e-10)


def test_stabilizer():
    st = Stabilizer(name='st')
    assert st.op_name == 'Stabilizer' and st.alpha.shape == () and st.alpha.name == 'alpha'
    np.testing.assert_allclose(st.alpha.value, np.log(np.exp(4) - 1) / 4, rtol=1e-6)
    x = C.input_variable(3, dtype=np.float64, needs_gradient=True)
    y = st(x)
    X = np.random.RandomState(0).randn(2, 3)
    np.testing.assert_allclose(y.eval({x: X}), X, rtol=1e-6)          # beta starts at 1
    st.alpha.value = np.array(0.3)
    beta = np.log1p(np.exp(4 * 0.3)) / 4
    np.testing.assert_allclose(y.eval({x: X}), beta * X, rtol=1e-6)
    np.testing.assert_allclose(y.grad({x: X}, wrt=[x]), _numgrad(y, x, X), rtol=1e-5, atol=1e-7)
    st2 = Stabilizer(steepness=2)
    np.testing.assert_allclose(st2.alpha.value, np.log(np.exp(2) - 1) / 2, rtol=1e-6)
    with default_options(enable_self_stabilization=False):
        assert Stabilizer() is identity


def test_sequential_convolution_pooling_dense_builds_before_its_input_is_known():
    from cntk.layers import Sequential, Convolution2D, MaxPooling, Dense
    m = Sequential([Convolution2D((3, 3), 4, pad=True, activation=C.relu), MaxPooling((2, 2), strides=2), Dense(5)])
    x = C.input_variable((3, 8, 8))
    y = m(x)
    assert y.shape == (5,)
    X = np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32)
    assert y.eval({x: X}).shape == (2, 5)


def test_stacked_convolutions_then_pooling_build_before_their_input_is_known():
    # CNTK_201B's VGG block: two convolutions before a pooling, composed before any input exists
    from cntk.layers import Sequential, Convolution, MaxPooling
    c1, c2 = Convolution((3, 3), 4, pad=True), Convolution((3, 3), 6, pad=True)
    pool = MaxPooling((3, 3), strides=(2, 2))
    m = Sequential([c1, c2, pool])
    x = C.input_variable((3, 10, 10))
    y = m(x)
    assert y.shape == (6, 4, 4)
    X = np.random.default_rng(0).random((2, 3, 10, 10)).astype(np.float32)
    # the same layers applied one by one to the bound input give the same values
    np.testing.assert_allclose(y.eval({x: X}), pool(c2(c1(x))).eval({x: X}), rtol=1e-6)
