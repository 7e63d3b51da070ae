"""Recurrence over a standard cell runs as one fused recurrent kernel: same numbers and gradients
as the stepped loop on the same parameters, used exactly where it applies."""

import numpy as np
import pytest
import torch

import cntk as C
from cntk.engine import fuse
from cntk.engine.oplib import rnn
from cntk.engine.plan import Plan
from finite_differences import parameter_gradient

LENGTHS = (5, 1, 3, 4)
CELLS = {
    "lstm": lambda n: C.layers.LSTM(n),
    "rnn_tanh": lambda n: C.layers.RNNStep(n, activation=C.tanh),
    "rnn_relu": lambda n: C.layers.RNNStep(n, activation=C.relu),
}


def _kinds(f):
    return [n.kind for n in Plan(f.outputs, torch.device("cpu")).fused_recurrences]


def _randomize(params, rng, scale=0.5):
    for p in params:
        p.value = rng.uniform(-scale, scale, p.shape).astype(p.dtype)


def _model(build, n_in, dtype, seed, lengths=LENGTHS):
    """``build(x)`` -> y over a sequence input; a loss reading every output step through random
    weights z; parameters randomized (biases included)."""
    x = C.sequence.input_variable(n_in, dtype=dtype, needs_gradient=True)
    y = build(x)
    z = C.sequence.input_variable(y.output.shape, dtype=dtype)
    loss = C.reduce_sum(C.tanh(y) * z)
    rng = np.random.default_rng(seed)
    _randomize(loss.parameters, rng)
    seqs = [rng.uniform(-1, 1, (n, n_in)).astype(dtype) for n in lengths]
    zs = [rng.uniform(-1, 1, (n,) + y.output.shape).astype(dtype) for n in lengths]
    return x, y, loss, {x: seqs, z: zs}


def _both_paths(y, loss, feed, x):
    """(outputs, gradients) fused and stepped."""
    res = []
    for enabled in (True, False):
        with fuse.fused_rnn(enabled):
            out = y.eval({x: feed[x]})
            g = loss.grad(feed, wrt=list(loss.parameters) + [x])
        res.append((out, g))
    return res


def _assert_same(res, params, x, rtol, atol):
    (o1, g1), (o2, g2) = res
    for a, b in zip(o1, o2):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    for p in params:
        np.testing.assert_allclose(g1[p], g2[p], rtol=rtol, atol=atol, err_msg=p.name)
    for a, b in zip(g1[x], g2[x]):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@pytest.fixture(params=["packed", "padded"])
def layout(request, monkeypatch):
    """Run variable-length sequences packed, or padded (what float32 on the CPU gets), whatever
    the dtype."""
    monkeypatch.setattr(rnn, "_padded_is_faster", lambda x, bidirectional: request.param == "padded"
                        and not bidirectional)
    return request.param


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_fused_equals_stepped_float64(kind, go_backwards, layout):
    def build(x):
        return C.layers.Recurrence(CELLS[kind](4), go_backwards=go_backwards)(x)
    x, y, loss, feed = _model(build, 3, np.float64, seed=1)
    assert _kinds(y) == [kind]
    with fuse.fused_rnn(False):
        assert _kinds(y) == []
    _assert_same(_both_paths(y, loss, feed, x), loss.parameters, x, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_fused_equals_stepped_on_equal_lengths(go_backwards):
    """No padding: the kernel runs on the batch as it is (flipped in time to go backwards)."""
    def build(x):
        return C.layers.Recurrence(C.layers.LSTM(3), go_backwards=go_backwards)(x)
    x, y, loss, feed = _model(build, 2, np.float64, seed=10, lengths=(4, 4, 4))
    assert _kinds(y) == ["lstm"]
    _assert_same(_both_paths(y, loss, feed, x), loss.parameters, x, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "rnn_tanh"])
def test_fused_equals_stepped_float32(kind):
    def build(x):
        return C.layers.Recurrence(CELLS[kind](6), go_backwards=True)(x)
    x, y, loss, feed = _model(build, 5, np.float32, seed=2)
    assert _kinds(y) == [kind]
    _assert_same(_both_paths(y, loss, feed, x), loss.parameters, x, rtol=1e-5, atol=1e-5)


def test_stacked_and_bidirectional_with_a_shared_layer(layout):
    shared = C.layers.Recurrence(C.layers.LSTM(3))

    def build(x):
        fwd = C.layers.Recurrence(C.layers.LSTM(4))(x)
        bwd = C.layers.Recurrence(C.layers.RNNStep(2, activation=C.relu), go_backwards=True)(x)
        h = C.splice(fwd, bwd)                                  # bidirectional
        h = C.layers.Recurrence(C.layers.LSTM(3), go_backwards=True)(h)
        return shared(shared(h))                                # stacked, same weights twice
    x, y, loss, feed = _model(build, 2, np.float64, seed=3)
    assert sorted(_kinds(y)) == ["lstm"] * 4 + ["rnn_relu"]
    _assert_same(_both_paths(y, loss, feed, x), loss.parameters, x, rtol=1e-10, atol=1e-12)


def test_fused_lstm_matches_numpy_and_finite_differences():
    n_in, n = 2, 3
    x = C.sequence.input_variable(n_in, dtype=np.float64)
    r = C.layers.Recurrence(C.layers.LSTM(n), go_backwards=True)
    y = r(x)
    loss = C.reduce_sum(y * y)
    rng = np.random.default_rng(4)
    _randomize(loss.parameters, rng, 0.8)
    W, H, b = (next(p for p in loss.parameters if p.name == nm) for nm in ("W", "H", "b"))
    seqs = [rng.uniform(-1, 1, (k, n_in)) for k in LENGTHS]
    assert _kinds(y) == ["lstm"]

    def reference(s):           # CNTK's equations, gates stacked [i, candidate, f, o], run backwards
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        h, c, out = np.zeros(n), np.zeros(n), np.zeros((len(s), n))
        for t in range(len(s) - 1, -1, -1):
            p = b.value + s[t] @ W.value + h @ H.value
            c = sig(p[2 * n:3 * n]) * c + sig(p[:n]) * np.tanh(p[n:2 * n])
            h = out[t] = sig(p[3 * n:]) * np.tanh(c)
        return out
    for s, o in zip(seqs, y.eval({x: seqs})):
        np.testing.assert_allclose(o, reference(s), rtol=1e-12, atol=1e-14)
    g = loss.grad({x: seqs}, wrt=[W, H, b])
    total = lambda: sum(float(v.sum()) for v in loss.eval({x: seqs}))  # noqa: E731
    for p in (W, H, b):
        v0 = p.value
        np.testing.assert_allclose(g[p], parameter_gradient(total, p), rtol=1e-6, atol=1e-9, err_msg=p.name)
        assert np.array_equal(p.value, v0)      # the check leaves the weights as they were


@pytest.mark.parametrize("make", [
    lambda: C.layers.Recurrence(C.layers.LSTM(4, use_peepholes=True)),
    lambda: C.layers.Recurrence(C.layers.LSTM(4, enable_self_stabilization=True)),
    lambda: C.layers.Recurrence(C.layers.LSTM(4, cell_shape=5)),
    lambda: C.layers.Recurrence(C.layers.LSTM(4, cell_shape=4)),     # a projection P, even if square
    lambda: C.layers.Recurrence(C.layers.LSTM(4, activation=C.relu)),
    lambda: C.layers.Recurrence(C.layers.RNNStep(4)),                  # sigmoid
    lambda: C.layers.Recurrence(C.layers.GRU(4)),                      # CNTK's GRU is not cuDNN's
    lambda: C.layers.Recurrence(C.layers.LSTM(4), initial_state=0.5),
    lambda: C.layers.Recurrence(C.layers.LSTM(4), return_full_state=True),
])
def test_other_recurrences_are_stepped(make):
    x = C.sequence.input_variable(3)
    y = make()(x)
    assert _kinds(y) == []
    out = y.eval({x: [np.ones((2, 3), np.float32)]})
    assert np.all(np.isfinite(out[0] if isinstance(out, list) else list(out.values())[0][0]))


def test_sparse_input_is_stepped():
    x = C.sequence.input_variable(10, is_sparse=True)
    y = C.layers.Recurrence(C.layers.LSTM(4))(x)
    assert _kinds(y) == []


def test_a_recurrence_inside_an_enclosing_loop_is_inlined():
    x = C.sequence.input_variable(2, dtype=np.float64)
    p = C.placeholder()
    y = C.layers.Recurrence(C.layers.RNNStep(2, activation=C.tanh))(x + C.sequence.past_value(p))
    y.replace_placeholders({p: y.output})
    assert _kinds(y) == []
    W, H, b = (next(q for q in y.parameters if q.name == nm).value for nm in ("W", "H", "b"))
    s = np.random.default_rng(5).uniform(-1, 1, (4, 2))
    h, out = np.zeros(2), []
    for t in range(4):
        h = np.tanh((s[t] + (out[-1] if out else 0)) @ W + h @ H + b)
        out.append(h)
    np.testing.assert_allclose(y.eval({x: [s]})[0], np.array(out), rtol=1e-12)


def test_module_switch_selects_the_path():
    x = C.sequence.input_variable(3)
    y = C.layers.Recurrence(C.layers.LSTM(4))(x)
    seqs = [np.ones((3, 3), np.float32)]
    y.eval({x: seqs})
    ex = y._executor()
    old = fuse.FUSED_RNN
    try:
        fuse.FUSED_RNN = False
        y.eval({x: seqs})
        kinds = {k[2]: [n.kind for n in p.fused_recurrences] for k, p in ex._plans.items()}
        assert kinds == {True: ["lstm"], False: []}
    finally:
        fuse.FUSED_RNN = old


def test_truncated_bptt_carry_matches_stepped():
    """Sequences flagged as continuing start from the previous call's last h and c."""
    rng = np.random.default_rng(6)
    first = [rng.uniform(-1, 1, (k, 2)) for k in (3, 2)]
    second = [rng.uniform(-1, 1, (k, 2)) for k in (2, 4)]
    results = []
    for enabled in (True, False):
        with fuse.fused_rnn(enabled):
            x = C.sequence.input_variable(2, dtype=np.float64)
            y = C.layers.Recurrence(C.layers.LSTM(3))(x)
            _randomize(y.parameters, np.random.default_rng(7))
            out = [y.eval({x: (first, [True, True])}), y.eval({x: (second, [False, True])})]
            results.append(out)
    for a, b in zip(results[0], results[1]):
        for u, v in zip(a, b):
            np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-14)
    # the continued sequence differs from a fresh start; the restarted one does not
    with fuse.fused_rnn(True):
        fresh = y.eval({x: second})
    assert not np.allclose(fresh[0], results[0][1][0])
    np.testing.assert_allclose(fresh[1], results[0][1][1], rtol=1e-12)


def test_clones_and_loaded_models_stay_fused(tmp_path):
    x = C.sequence.input_variable(3)
    m = C.layers.Sequential([C.layers.Recurrence(C.layers.LSTM(4)), C.layers.Dense(2)])(x)
    _randomize(m.parameters, np.random.default_rng(8))
    m.save(str(tmp_path / "m.model"))
    seqs = [np.random.default_rng(9).uniform(-1, 1, (k, 3)).astype(np.float32) for k in (3, 1)]
    ref = m.eval({x: seqs})
    for f in (m.clone(C.CloneMethod.clone), m.clone(C.CloneMethod.freeze), C.load_model(str(tmp_path / "m.model"))):
        assert _kinds(f) == ["lstm"]
        for a, b in zip(f.eval({f.arguments[0]: seqs}), ref):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
