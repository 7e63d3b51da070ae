"""optimized_rnnstack: cuDNN's packed weight layout, the LSTM/GRU/RNN equations against numpy,
variable-length and bidirectional stacks, float64 gradients, and bad input."""

import numpy as np
import pytest

import cntk as C
from cntk.engine.oplib import rnn
from finite_differences import numeric_gradient, sequence_gradients

LENGTHS = (4, 1, 3)


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _unpack(flat, op, n_in, h, layers, bidir):
    """cuDNN's packed vector read as CNTK's converter reads it: all layers' matrices first
    (per layer: forward W then R, then backward W then R; each (gates*h, in) row-major), then
    all layers' biases (per layer: forward bW, bR, then backward bW, bR)."""
    G = {"lstm": 4, "gru": 3, "rnnTanh": 1, "rnnReLU": 1}[op]
    D = 2 if bidir else 1
    cells = [[{} for _ in range(D)] for _ in range(layers)]
    off = 0
    size_in = n_in
    for layer in range(layers):
        for d in range(D):
            for name, cols in (("W", size_in), ("R", h)):
                cells[layer][d][name] = flat[off:off + G * h * cols].reshape(G * h, cols)
                off += G * h * cols
        size_in = D * h
    for layer in range(layers):
        for d in range(D):
            for name in ("bW", "bR"):
                cells[layer][d][name] = flat[off:off + G * h]
                off += G * h
    assert off == flat.size
    return cells


def _cell_step(op, p, x, hp, cp, h):
    """One step of cuDNN's cell equations (numpy)."""
    if op == "lstm":
        a = p["W"] @ x + p["bW"] + p["R"] @ hp + p["bR"]
        i, f, g, o = _sigmoid(a[:h]), _sigmoid(a[h:2 * h]), np.tanh(a[2 * h:3 * h]), _sigmoid(a[3 * h:])
        c = f * cp + i * g
        return o * np.tanh(c), c
    if op == "gru":
        wx = p["W"] @ x + p["bW"]
        rh = p["R"] @ hp + p["bR"]
        r = _sigmoid(wx[:h] + rh[:h])
        z = _sigmoid(wx[h:2 * h] + rh[h:2 * h])
        n = np.tanh(wx[2 * h:] + r * rh[2 * h:])
        return (1 - z) * n + z * hp, None
    a = p["W"] @ x + p["bW"] + p["R"] @ hp + p["bR"]
    return (np.tanh(a) if op == "rnnTanh" else np.maximum(a, 0)), None


def _reference(seq, flat, op, h, layers, bidir):
    """The stack over one sequence (T, in) -> (T, D*h)."""
    cells = _unpack(flat, op, seq.shape[1], h, layers, bidir)
    inp = seq
    for layer in range(layers):
        outs = []
        for d, cell in enumerate(cells[layer]):
            steps = range(len(inp)) if d == 0 else range(len(inp) - 1, -1, -1)
            hp, cp = np.zeros(h), np.zeros(h)
            out = np.zeros((len(inp), h))
            for t in steps:
                hp, cp2 = _cell_step(op, cell, inp[t], hp, cp, h)
                cp = cp2 if cp2 is not None else cp
                out[t] = hp
            outs.append(out)
        inp = np.concatenate(outs, axis=1)
    return inp


def _stack(op, n_in, h, layers, bidir, dtype=np.float64, seed=0):
    x = C.sequence.input_variable(n_in, dtype=dtype, needs_gradient=True)
    W = C.parameter((C.InferredDimension, h), init=C.uniform(0.6, seed=seed), dtype=dtype)
    y = C.optimized_rnnstack(x, W, h, layers, bidir, op)
    return x, W, y


def _seqs(rng, n_in, lengths=LENGTHS):
    return [rng.uniform(-1, 1, (n, n_in)) for n in lengths]


@pytest.mark.parametrize("op", ["lstm", "gru", "rnnTanh", "rnnReLU"])
@pytest.mark.parametrize("layers,bidir", [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("padded", [False, True])
def test_matches_numpy_per_sequence(op, layers, bidir, padded, monkeypatch):
    # variable-length sequences run packed, or padded (float32 on the CPU) where that is exact
    monkeypatch.setattr(rnn, "_padded_is_faster", lambda x, bidirectional: padded and not bidirectional)
    rng = np.random.default_rng(1)
    x, W, y = _stack(op, 3, 5, layers, bidir)
    seqs = _seqs(rng, 3)
    out = y.eval({x: seqs})
    for s, o in zip(seqs, out):
        np.testing.assert_allclose(o, _reference(s, W.value.reshape(-1), op, 5, layers, bidir), rtol=1e-10, atol=1e-12)


def test_weight_shape_is_cntks():
    # CNTK infers (total / hidden, hidden); the counts follow cuDNN (two bias vectors per gate)
    for op, G in (("lstm", 4), ("gru", 3), ("rnnTanh", 1), ("rnnReLU", 1)):
        for layers, bidir in ((1, False), (3, True)):
            x = C.sequence.input_variable(7)
            W = C.parameter((C.InferredDimension, 6))
            y = C.optimized_rnnstack(x, W, 6, layers, bidir, op)
            D = 2 if bidir else 1
            total, n_in = 0, 7
            for _ in range(layers):
                total += D * (G * 6 * (n_in + 6) + 2 * G * 6)
                n_in = D * 6
            assert W.shape == (total // 6, 6)
            assert y.output.shape == (D * 6,)


def test_known_weight_shape_is_checked_and_one_free_dim_is_inferred():
    x = C.sequence.input_variable(4)
    with pytest.raises(ValueError, match="OptimizedRNNStack.*hold 80 numbers.*needs 448"):
        C.optimized_rnnstack(x, C.parameter((10, 8)), 8, 1)
    W = C.parameter((C.InferredDimension, 4))   # the shape CNTK's docstring example uses
    C.optimized_rnnstack(x, W, 8, 2)
    assert W.shape == (256, 4)


def test_float32_matches_float64():
    rng = np.random.default_rng(2)
    x64, W64, y64 = _stack("lstm", 3, 4, 2, True)
    x32, W32, y32 = _stack("lstm", 3, 4, 2, True, dtype=np.float32)
    W32.value = W64.value.astype(np.float32)
    seqs = _seqs(rng, 3)
    for a, b in zip(y32.eval({x32: [s.astype(np.float32) for s in seqs]}), y64.eval({x64: seqs})):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_sequence_alone_equals_it_in_a_padded_batch():
    rng = np.random.default_rng(3)
    x, W, y = _stack("gru", 2, 3, 2, True)
    seqs = _seqs(rng, 2, (5, 2, 3))
    together = y.eval({x: seqs})
    for s, t in zip(seqs, together):
        np.testing.assert_allclose(y.eval({x: [s]})[0], t, rtol=1e-12, atol=1e-13)


def _loss_and_numeric(op, layers, bidir, seed):
    rng = np.random.default_rng(seed)
    x, W, y = _stack(op, 2, 3, layers, bidir, seed=seed)
    z = C.sequence.input_variable(y.output.shape, dtype=np.float64)
    loss = C.reduce_sum(y * z)
    seqs = _seqs(rng, 2)
    zs = [rng.uniform(-1, 1, (len(s),) + y.output.shape) for s in seqs]
    feed = {x: seqs, z: zs}

    def total():
        return sum(float(np.sum(v)) for v in loss.eval(feed))
    return x, W, loss, feed, seqs, total


@pytest.mark.parametrize("op,layers,bidir", [("lstm", 2, True), ("gru", 2, True), ("rnnTanh", 1, True),
                                             ("rnnReLU", 2, False)])
def test_gradients_match_finite_differences(op, layers, bidir):
    x, W, loss, feed, seqs, total = _loss_and_numeric(op, layers, bidir, seed=4)
    g = loss.grad(feed, wrt=[W, x])
    w0 = W.value
    rng = np.random.default_rng(5)
    flat_idx = rng.choice(w0.size, size=min(w0.size, 40), replace=False)

    def at(picked):             # total() with the sampled entries of W set to `picked`
        w = w0.copy()
        w.flat[flat_idx] = picked
        W.value = w
        return total()
    try:
        numeric = numeric_gradient(at, w0.flat[flat_idx])
    finally:
        W.value = w0
    np.testing.assert_allclose(g[W].flat[flat_idx], numeric, rtol=1e-6, atol=1e-8)

    def with_input(data):
        feed[x] = data
        return total()
    numeric_x = sequence_gradients(with_input, seqs)
    feed[x] = seqs
    # every input element, padding positions excluded: each sequence's gradient has its own length
    for b, s in enumerate(seqs):
        assert g[x][b].shape == s.shape
        np.testing.assert_allclose(g[x][b], numeric_x[b], rtol=1e-6, atol=1e-8, err_msg="sequence %d" % b)


def test_bad_input_raises_at_construction():
    W = C.parameter((C.InferredDimension, 4))
    with pytest.raises(ValueError, match="unsupported recurrent_op"):
        C.optimized_rnnstack(C.sequence.input_variable(3), W, 4, 1, recurrent_op="relu")
    with pytest.raises(ValueError, match="OptimizedRNNStack.*rank 1"):
        C.optimized_rnnstack(C.sequence.input_variable((2, 3)), W, 4, 1)
    with pytest.raises(ValueError, match="OptimizedRNNStack.*must be a sequence"):
        C.optimized_rnnstack(C.input_variable(3), W, 4, 1)
    with pytest.raises(ValueError, match="OptimizedRNNStack.*dense"):
        C.optimized_rnnstack(C.sequence.input_variable(3, is_sparse=True), W, 4, 1)
    with pytest.raises(ValueError, match="num_layers must be an integer >= 1"):
        C.optimized_rnnstack(C.sequence.input_variable(3), W, 4, 0)
    with pytest.raises(ValueError, match="hidden_size must be an integer >= 1"):
        C.optimized_rnnstack(C.sequence.input_variable(3), W, 0, 1)


def test_inside_a_recurrent_loop_is_an_error():
    x = C.sequence.input_variable(3)
    p = C.placeholder(4)
    W = C.parameter((C.InferredDimension, 4), init=0.1)
    loop = C.optimized_rnnstack(x + C.sequence.past_value(p)[0:3], W, 4, 1)
    with pytest.raises(ValueError, match="OptimizedRNNStack.*cannot be used inside a recurrent loop"):
        loop.replace_placeholders({p: loop.output})


@pytest.mark.parametrize("op,cell", [("lstm", lambda: C.layers.LSTM(4)),
                                     ("rnnTanh", lambda: C.layers.RNNStep(4, activation=C.tanh))])
def test_equals_layers_recurrences_with_converted_weights(op, cell):
    """CNTK's convert_optimized_rnnstack mapping: a cell's W is the transposed input matrix with
    LSTM gates reordered from [i, f, candidate, o] to [i, candidate, f, o], H likewise, and
    b = bW + bR; a bidirectional layer is splice(forward, backward)."""
    x = C.sequence.input_variable(3, dtype=np.float64)
    Wc = C.parameter((C.InferredDimension, 4), init=C.uniform(0.5, seed=3), dtype=np.float64)
    y = C.optimized_rnnstack(x, Wc, 4, 1, True, op)
    fw, bw = C.layers.Recurrence(cell()), C.layers.Recurrence(cell(), go_backwards=True)
    ref = C.splice(fw(x), bw(x))

    def adjust(m):
        if op != "lstm":
            return m
        i, f, c, o = np.split(m, 4, axis=-1)
        return np.concatenate([i, c, f, o], axis=-1)
    for layer, p in zip((fw, bw), _unpack(Wc.value.reshape(-1), op, 3, 4, 1, True)[0]):
        params = {q.name: q for q in layer.parameters}
        params["W"].value = adjust(p["W"].T)
        params["H"].value = adjust(p["R"].T)
        params["b"].value = adjust(p["bW"] + p["bR"])
    seqs = _seqs(np.random.default_rng(6), 3)
    for a, b in zip(y.eval({x: seqs}), ref.eval({x: seqs})):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
