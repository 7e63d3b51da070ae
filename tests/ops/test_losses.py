"""Loss and metric behaviour the op table cannot express: gradients that are not the derivative
of the value (weighted binary cross entropy, lambda_rank), random negatives (nce_loss), errors
raised at evaluation, sequences, and saving models that use these criteria."""

import math

import numpy as np
import pytest

import cntk as C


def _vars(n, shape=(1,), dtype=np.float64, grad=(True,)):
    return [C.input_variable(shape, dtype=dtype, needs_gradient=i < len(grad) and grad[i]) for i in range(n)]


# ---------------------------------------------------------------------------------------
# weighted binary cross entropy
# ---------------------------------------------------------------------------------------

def test_weighted_binary_cross_entropy_value_and_unnormalized_gradient():
    p, t, w = _vars(3)
    f = C.weighted_binary_cross_entropy(p, t, w)
    assert f.shape == () and f.dynamic_axes == ()
    P = np.array([[0.7], [0.2], [0.9], [0.4]])
    Tg = np.array([[1.0], [0.0], [1.0], [0.0]])
    W = np.array([[0.5], [2.0], [1.0], [0.25]])
    ll = Tg * np.log(P) + (1 - Tg) * np.log(1 - P)
    data = {p: P, t: Tg, w: W}
    np.testing.assert_allclose(f.eval(data), -4 * np.sum(W * ll) / W.sum(), rtol=1e-12)
    # CNTK's gradient: -w * (2t - 1) / (t p + (1 - t)(1 - p)), without the N / sum(w) factor
    state, _ = f.forward(data, [f.output], keep_for_backward={f.output})
    g = f.backward(state, {f.output: np.float64(3.0)}, {p})[p]
    np.testing.assert_allclose(g, -3.0 * W * (2 * Tg - 1) / (Tg * P + (1 - Tg) * (1 - P)), rtol=1e-12)


def test_weighted_binary_cross_entropy_errors_at_evaluation():
    p, t = _vars(2, (3,))
    data = {p: np.full((2, 3), 0.5), t: np.ones((2, 3))}
    f = C.weighted_binary_cross_entropy(p, t, C.constant(np.ones(3)))
    with pytest.raises(RuntimeError, match="batch axis"):
        f.eval(data)
    w = C.input_variable(3, dtype=np.float64)
    f = C.weighted_binary_cross_entropy(p, t, w)
    with pytest.raises(ValueError, match="one value per sample"):
        f.eval({**data, w: np.ones((2, 3))})
    with pytest.raises(ValueError, match="same shape"):
        C.weighted_binary_cross_entropy(p, C.input_variable(2, dtype=np.float64), w)


# ---------------------------------------------------------------------------------------
# lambda_rank and ndcg_at_1
# ---------------------------------------------------------------------------------------

def _lambda_gradient(s, g, groups):
    """The LambdaRank gradient written out pair by pair (sigma = 1)."""
    grad = np.zeros(len(s))
    for idx in groups:
        gs, ss = g[idx], s[idx]
        order = sorted(range(len(idx)), key=lambda k: (-ss[k], gs[k]))
        rank = {k: order.index(k) for k in range(len(idx))}
        ideal = sum(gs[k] / math.log(2 + k) for k in range(len(idx)))
        for i in range(len(idx)):
            if gs[i] <= gs[-1]:
                continue
            for j in range(i + 1, len(idx)):
                if gs[i] == gs[j]:
                    continue
                di, dj = math.log(2 + rank[i]), math.log(2 + rank[j])
                delta = abs((gs[i] - gs[j]) * (di - dj) / (di * dj) / ideal)
                lam = -delta / (1 + math.exp(ss[i] - ss[j]))
                grad[idx[i]] += lam
                grad[idx[j]] -= lam
    return grad


def test_lambda_rank_gradient_ignores_the_root_gradient():
    s, g, q = _vars(3)
    f = C.lambda_rank(s, g, q)
    assert f.shape == () and f.dynamic_axes == ()
    S = np.array([0.3, 0.9, -0.2, 0.5, 0.1, 0.4, 0.8])
    G = np.array([3.0, 2.0, 2.0, 0.0, 4.0, 1.0, 0.0])     # equal gains 2, 2: that pair is skipped
    Q = np.array([5, 5, 5, 5, 9, 9, 9], dtype=float)
    data = {s: S[:, None], g: G[:, None], q: Q[:, None]}
    expected = _lambda_gradient(S, G, [[0, 1, 2, 3], [4, 5, 6]])
    for root in (1.0, -7.0, 0.0):
        state, _ = f.forward(data, [f.output], keep_for_backward={f.output})
        got = f.backward(state, {f.output: np.float64(root)}, {s})[s]
        np.testing.assert_allclose(got[:, 0], expected, rtol=1e-12, atol=1e-15)


def test_ranking_inputs_must_be_scalars_per_sample():
    s, g, q = _vars(3, (2,))
    with pytest.raises(ValueError, match="one value per sample"):
        C.lambda_rank(s, g, q)
    with pytest.raises(ValueError, match="one value per sample"):
        C.ndcg_at_1(s, g, q)


def test_ndcg_at_1_group_with_zero_first_gain_counts_as_zero():
    s, g, q = _vars(3, grad=())
    f = C.ndcg_at_1(s, g, q)
    data = {s: np.array([[1.0], [2.0], [0.5], [0.1]]), g: np.array([[0.0], [0.0], [2.0], [1.0]]),
            q: np.array([[1.0], [1.0], [2.0], [2.0]])}
    # group 1: first gain 0 adds nothing; group 2: the top-scored sample has the first gain
    np.testing.assert_allclose(f.eval(data), (0 + 1) / 2 * 100 * 4)


# ---------------------------------------------------------------------------------------
# nce_loss: random negatives
# ---------------------------------------------------------------------------------------

def _nce_setup(noise, k=4, allow_duplicates=True, seed=11):
    classes, dim = len(noise), 3
    r = np.random.RandomState(0)
    W = C.parameter((classes, dim), init=r.uniform(-1, 1, (classes, dim)), dtype=np.float64)
    b = C.parameter((classes, 1), init=r.uniform(-1, 1, (classes, 1)), dtype=np.float64)
    x = C.input_variable(dim, dtype=np.float64)
    y = C.input_variable(classes, dtype=np.float64)
    f = C.nce_loss(W, b, x, y, noise, num_samples=k, allow_duplicates=allow_duplicates, seed=seed)
    data = {x: r.uniform(-1, 1, (2, dim)), y: np.eye(classes)[[1, 3]]}
    return f, W.value, b.value[:, 0], data[x], data[y], data


def _nce_expected(W, b, X, Y, noise, k):
    """The loss averaged over the negatives when they are drawn with replacement."""
    q = noise / noise.sum()
    logp = np.log(k * q)
    s_neg = X @ W.T + b                                        # (samples, classes)
    loss_neg = k * (q[None, :] * np.logaddexp(s_neg, logp[None, :])).sum(1) - np.sum(k * q * logp)
    s_pos = np.sum(X * (Y @ W), 1) + Y @ b
    return np.logaddexp(s_pos, Y @ logp) - s_pos + loss_neg


def test_nce_loss_averages_to_its_expectation():
    noise = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    f, W, b, X, Y, data = _nce_setup(noise, k=8)
    assert f.shape == () and f.dynamic_axes == f.arguments[0].dynamic_axes
    values = np.stack([f.eval(data) for _ in range(400)])
    assert np.std(values[:, 0]) > 0          # every evaluation draws new negatives
    np.testing.assert_allclose(values.mean(0), _nce_expected(W, b, X, Y, noise, 8), rtol=0.02)


def test_nce_loss_seed_reproduces_and_model_round_trips(tmp_path):
    noise = np.array([1.0, 1.0, 2.0, 1.0])
    f1, *_, data1 = _nce_setup(noise, seed=5)
    f2, *_, data2 = _nce_setup(noise, seed=5)
    a = [f1.eval(data1) for _ in range(3)]
    b = [f2.eval(data2) for _ in range(3)]
    np.testing.assert_allclose(a, b)
    path = str(tmp_path / "nce.model")
    f1.save(path)
    g = C.load_model(path)
    f3, *_, data3 = _nce_setup(noise, seed=5)
    arg = {v.shape: v for v in g.arguments}
    feed = {arg[k.shape]: v for k, v in data3.items()}
    np.testing.assert_allclose(g.eval(feed), f3.eval(data3))


def test_nce_loss_without_duplicates_draws_distinct_classes():
    noise = np.array([0.0, 1.0, 1.0, 0.0])
    f, W, b, X, Y, data = _nce_setup(noise, k=2, allow_duplicates=False)
    # both non-zero classes are always drawn, so the value is deterministic
    first = f.eval(data)
    for _ in range(5):
        np.testing.assert_allclose(f.eval(data), first)
    with pytest.raises(ValueError, match="distinct"):
        _nce_setup(noise, k=3, allow_duplicates=False)


def test_nce_loss_infers_the_weight_dimension_and_checks_shapes():
    x = C.input_variable(4)
    y = C.input_variable(6, is_sparse=True)
    W = C.parameter((6, C.InferredDimension), init=C.glorot_uniform(seed=1))
    b = C.parameter((6, 1), init=0.0)
    C.nce_loss(W, b, x, y, np.ones(6))
    assert W.shape == (6, 4)
    with pytest.raises(ValueError, match="biases"):
        C.nce_loss(W, C.parameter((6,)), x, y, np.ones(6))
    with pytest.raises(ValueError, match="labels"):
        C.nce_loss(W, b, x, C.input_variable(5), np.ones(6))
    with pytest.raises(ValueError, match="constant"):
        C.nce_loss(W, b, x, y, C.input_variable(6))


# ---------------------------------------------------------------------------------------
# cosine distances, binary cross entropy and edit distance on sequences and edge cases
# ---------------------------------------------------------------------------------------

def test_cosine_distance_of_a_zero_vector_is_zero_with_finite_gradient():
    a, b = _vars(2, (3,), grad=(True, True))
    f = C.cosine_distance(a, b)
    data = {a: np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]]), b: np.array([[1.0, 0.0, 0.0], [2.0, 1.0, 2.0]])}
    np.testing.assert_allclose(f.eval(data), [0.0, 8.0 / 9.0], rtol=1e-12)
    g = f.grad(data, wrt=[a, b])
    assert all(np.all(np.isfinite(v)) for v in g.values())


def test_cosine_distance_with_negative_samples_on_sequences():
    """The negatives come from the other samples of the minibatch: with sequences, from every
    step of every sequence, read sequence by sequence."""
    x = C.sequence.input_variable(2, dtype=np.float64)
    y = C.sequence.input_variable(2, dtype=np.float64)
    f = C.cosine_distance_with_negative_samples(x, y, shift=1, num_negative_samples=2)
    r = np.random.RandomState(3)
    xs = [r.uniform(-1, 1, (n, 2)) for n in (2, 1, 3)]
    ys = [r.uniform(-1, 1, (n, 2)) for n in (2, 1, 3)]
    out = f.eval({x: xs, y: ys})
    X, Y = np.concatenate(xs), np.concatenate(ys)
    n = len(X)
    cos = lambda u, v: u @ v / np.linalg.norm(u) / np.linalg.norm(v)  # noqa: E731
    expected = np.array([[cos(X[j], Y[j]), cos(X[j], Y[(j + 1) % n]), cos(X[j], Y[(j + 2) % n])] for j in range(n)])
    np.testing.assert_allclose(np.concatenate(out), expected, rtol=1e-12)


def test_binary_cross_entropy_sequences_do_not_leak_padding():
    p = C.sequence.input_variable(2, dtype=np.float64, needs_gradient=True)
    t = C.sequence.input_variable(2, dtype=np.float64)
    f = C.binary_cross_entropy(C.sigmoid(p), t)
    r = np.random.RandomState(4)
    ps = [r.uniform(-2, 2, (n, 2)) for n in (3, 1)]
    ts = [r.randint(0, 2, (n, 2)).astype(float) for n in (3, 1)]
    together = f.grad({p: ps, t: ts}, wrt=[p])
    for i in range(2):
        alone = f.grad({p: [ps[i]], t: [ts[i]]}, wrt=[p])[0]
        np.testing.assert_allclose(together[i], alone, rtol=1e-12)


def test_edit_distance_error_penalties_choose_the_path():
    a = C.sequence.input_variable(3)
    b = C.sequence.input_variable(3)
    eye = np.eye(3, dtype=np.float32)
    seq_a, seq_b = [eye[[0, 1]]], [eye[[0, 2]]]
    # one substitution, or (when substitutions are expensive) a deletion plus an insertion
    np.testing.assert_allclose(C.edit_distance_error(a, b).eval({a: seq_a, b: seq_b}), 1.0)
    np.testing.assert_allclose(C.edit_distance_error(a, b, subPen=5).eval({a: seq_a, b: seq_b}), 2.0)
    with pytest.raises(ValueError, match="penalty"):
        C.edit_distance_error(a, b, insPen=-1)


def test_criteria_survive_save_and_load(tmp_path):
    s, g, q = _vars(3)
    a = C.sequence.input_variable(3, dtype=np.float64)
    b = C.sequence.input_variable(3, dtype=np.float64)
    model = C.combine([C.lambda_rank(s, g, q), C.ndcg_at_1(s, g, q),
                       C.edit_distance_error(a, b, subPen=2, squashInputs=True, tokensToIgnore=[0]),
                       C.cosine_distance_with_negative_samples(s, g, 1, 1)])
    path = str(tmp_path / "criteria.model")
    model.save(path)
    loaded = C.load_model(path)
    assert [o.shape for o in loaded.outputs] == [o.shape for o in model.outputs]
    ops = sorted(p.op_name for p in [o.owner for o in loaded.outputs])
    assert ops == sorted(["LambdaRank", "NDCG", "EditDistanceError", "CosineDistanceWithNegativeSamples"])
    edit = [o.owner for o in loaded.outputs if o.owner.op_name == "EditDistanceError"][0]
    assert edit.attributes["tokensToIgnore"] == [0] and edit.attributes["squashInputs"] is True


def test_cross_entropy_with_softmax_accepts_a_leading_one_on_either_operand():
    """CNTK checks the output and target for elementwise compatibility: a (1, n) output goes
    with an (n,) target (CNTK_207's full-softmax criterion), other shape mismatches still fail."""
    z = C.input_variable((1, 4), dtype=np.float64)
    t = C.input_variable(4, dtype=np.float64)
    f = C.cross_entropy_with_softmax(z, t)
    Z = np.array([[[0.5, -1.0, 2.0, 0.1]], [[1.0, 1.0, 1.0, 1.0]]])
    T = np.array([[0, 0, 1, 0], [1, 0, 0, 0]], dtype=np.float64)
    zz = Z[:, 0]
    expected = np.log(np.exp(zz).sum(1)) - (zz * T).sum(1)
    np.testing.assert_allclose(np.asarray(f.eval({z: Z, t: T})).reshape(-1), expected, rtol=1e-12)
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        C.cross_entropy_with_softmax(C.input_variable((2, 4)), C.input_variable(4))
