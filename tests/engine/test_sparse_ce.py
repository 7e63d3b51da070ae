"""cross_entropy_with_softmax against sparse one-hot targets (class indices, no dense one-hot
tensor) gives the same values and gradients as against the same targets fed dense."""

import numpy as np

import cntk as C
from cntk.engine.oplib import loss as _loss


def _pair(V, dtype):
    z = C.sequence.input_variable(V, dtype=dtype, needs_gradient=True)
    ys = C.sequence.input_variable(V, dtype=dtype, is_sparse=True)
    yd = C.sequence.input_variable(V, dtype=dtype)
    return z, ys, yd


def test_sparse_targets_match_dense_with_padding(monkeypatch):
    calls = []
    kernel = _loss._ce_one_hot
    monkeypatch.setattr(_loss, "_ce_one_hot", lambda z, t: calls.append(1) or kernel(z, t))
    V, lengths = 7, (4, 1, 3)
    rng = np.random.default_rng(0)
    z, ys, yd = _pair(V, np.float64)
    W = C.parameter((V, V), init=rng.uniform(-1, 1, (V, V)), dtype=np.float64)
    zs = [rng.uniform(-3, 3, (n, V)) for n in lengths]
    cls = [rng.integers(0, V, n) for n in lengths]
    dense = [np.eye(V)[c] for c in cls]
    ce_s = C.cross_entropy_with_softmax(z @ W, ys)
    ce_d = C.cross_entropy_with_softmax(z @ W, yd)
    vs = ce_s.eval({z: zs, ys: C.Value.one_hot(cls, V)})
    vd = ce_d.eval({z: zs, yd: dense})
    for a, b, s, c in zip(vs, vd, zs, cls):
        logits = s @ W.value
        ref = np.log(np.exp(logits).sum(-1)) - logits[np.arange(len(c)), c]
        np.testing.assert_allclose(a[:, 0], ref, rtol=1e-12)
        np.testing.assert_allclose(a, b, rtol=1e-12)
    gs = ce_s.grad({z: zs, ys: C.Value.one_hot(cls, V)}, wrt=[W, z])
    gd = ce_d.grad({z: zs, yd: dense}, wrt=[W, z])
    np.testing.assert_allclose(gs[W], gd[W], rtol=1e-12, atol=1e-14)
    for a, b in zip(gs[z], gd[z]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert len(calls) == 2    # the index kernel ran (eval and grad), not the dense formula


def test_sparse_targets_without_padding_float32():
    V = 5
    rng = np.random.default_rng(1)
    z, ys, yd = _pair(V, np.float32)
    zs = rng.uniform(-2, 2, (3, 4, V)).astype(np.float32)
    cls = rng.integers(0, V, (3, 4))
    a = C.cross_entropy_with_softmax(z, ys).eval({z: zs, ys: C.Value.one_hot(list(cls), V)})
    b = C.cross_entropy_with_softmax(z, yd).eval({z: zs, yd: np.eye(V, dtype=np.float32)[cls]})
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5)
