"""UnfoldFrom (generators with until_predicate and length_increase) and AttentionModel (alone,
against numpy, and inside a small encoder-decoder that trains)."""

import math

import numpy as np
import pytest

import cntk as C
from cntk.layers import (UnfoldFrom, Recurrence, LSTM, GRU, Dense, Embedding, AttentionModel,
                         default_options, identity)
from cntk.layers.models import AttentionModel as AttentionModelFromModels
from finite_differences import numeric_gradient, parameter_gradient, sequence_gradients

RNG = np.random.RandomState(99)


def _scalar_input(dtype=np.float32, needs_gradient=False):
    return C.input_variable(2, dtype=dtype, needs_gradient=needs_gradient)


# -- UnfoldFrom -------------------------------------------------------------------------------

def test_unfold_from_emits_one_item_per_reference_item():
    M = np.array([[0.5, 0.1], [0.0, 0.5]], np.float32)
    gen = UnfoldFrom(lambda s: C.times(s, C.constant(M)) + 1, name='unfold')
    assert gen.is_block and gen.op_name == 'UnfoldFrom' and gen.name == 'unfold'
    assert [a.name for a in gen.arguments] == ['initial_state', 'dynamic_axes_like']
    s0, ref = _scalar_input(), C.sequence.input_variable(1)
    y = gen(s0, ref)
    assert y.shape == (2,) and y.output.sequence_axis == ref.sequence_axis
    S0 = np.array([[0, 0], [4, 8]], np.float32)
    out = y.eval({s0: S0, ref: [np.zeros((3, 1), np.float32), np.zeros((5, 1), np.float32)]})
    for s, o, n in zip(S0, out, (3, 5)):
        want, state = [], s.astype(np.float64)
        for _ in range(n):
            state = state @ M + 1
            want.append(state)
        np.testing.assert_allclose(o, want, rtol=1e-6)


def test_unfold_from_until_predicate_and_length_increase():
    M = C.constant(np.eye(2, dtype=np.float32))
    # counts up by one from the initial state; stops after the item whose first component reaches 3
    gen = UnfoldFrom(lambda s: C.times(s, M) + 1, until_predicate=lambda v: C.greater_equal(C.slice(v, 0, 0, 1), 3),
                     length_increase=2)
    s0, ref = _scalar_input(), C.sequence.input_variable(1)
    out = gen(s0, ref).eval({s0: np.array([[0, 0], [4, 8], [-10, 0]], np.float32),
                             ref: [np.zeros((n, 1), np.float32) for n in (3, 2, 2)]})
    np.testing.assert_allclose(out[0], [[1, 1], [2, 2], [3, 3]])      # the predicate fires at the third item
    np.testing.assert_allclose(out[1], [[5, 9]])                        # ... and at once
    np.testing.assert_allclose(out[2][:, 0], np.arange(-9, -5))         # never: 2 x 2 items
    assert len(out[2]) == 4


def test_unfold_from_output_and_state_and_fractional_length_increase():
    M = C.constant(np.array([[1, 0], [0, 2]], np.float32))
    # (emitted value, new state): emits the first component of the previous state
    gen = UnfoldFrom(lambda s: (C.slice(s, 0, 0, 1), C.times(s, M) + 1), length_increase=1.5)
    s0, ref = _scalar_input(), C.sequence.input_variable(1)
    y = gen(s0, ref)
    assert y.shape == (1,)
    lengths = [1, 3, 5]
    out = y.eval({s0: np.array([[0, 1], [2, 1], [5, 0]], np.float32),
                  ref: [np.zeros((n, 1), np.float32) for n in lengths]})
    assert [len(o) for o in out] == [math.ceil(1.5 * n) for n in lengths]
    np.testing.assert_allclose(out[1].ravel(), [2, 3, 4, 5, 6])


def test_unfold_from_gradients_float64():
    rng = np.random.RandomState(3)
    M = C.parameter((2, 2), init=rng.randn(2, 2) * 0.5, dtype=np.float64, name='M')
    gen = UnfoldFrom(lambda s: C.tanh(C.times(s, M)))
    s0 = _scalar_input(np.float64, needs_gradient=True)
    ref = C.sequence.input_variable(1, dtype=np.float64)
    y = gen(s0, ref)
    S0 = rng.randn(2, 2)
    R = [np.zeros((3, 1)), np.zeros((2, 1))]
    g = y.grad({s0: S0, ref: R}, wrt=[M, s0])

    def total(S=S0):
        return sum(float(o.sum()) for o in y.eval({s0: S, ref: R}))
    np.testing.assert_allclose(g[M], parameter_gradient(total, M), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(g[s0], numeric_gradient(total, S0), rtol=1e-6, atol=1e-9)


def _unfold_ref(gen, state, n):
    """n items of the generator started from ``state`` (gen: numpy state -> (emitted, new state))."""
    out = []
    for _ in range(n):
        emitted, state = gen(state)
        out.append(emitted)
    return np.array(out)


@pytest.mark.parametrize("gen, ref", [
    (lambda s: s * 0.5 + 1, lambda s: (s * 0.5 + 1,) * 2),
    (identity, lambda s: (s, s)),
    (lambda s: C.tanh(s) * 1.5, lambda s: (np.tanh(s) * 1.5,) * 2),
    (lambda s: (s * 2, s + 1), lambda s: (s * 2, s + 1)),          # (emitted, new state)
])
def test_unfold_from_elementwise_generator_takes_the_state_shape_from_the_initial_state(gen, ref):
    unfold = UnfoldFrom(gen)
    s0, r = C.input_variable((2, 3)), C.sequence.input_variable(1)
    y = unfold(s0, r)
    assert y.shape == (2, 3) and y.output.sequence_axis == r.sequence_axis
    S0 = RNG.randn(2, 2, 3).astype(np.float32)
    lengths = (4, 1)
    out = y.eval({s0: S0, r: [np.zeros((n, 1), np.float32) for n in lengths]})
    for s, o, n in zip(S0, out, lengths):
        np.testing.assert_allclose(o, _unfold_ref(ref, s.astype(np.float64), n), rtol=1e-5, atol=1e-6)


def test_unfold_from_elementwise_generator_with_until_predicate_and_constant_or_scalar_state():
    r = C.sequence.input_variable(1)
    R = [np.zeros((n, 1), np.float32) for n in (5, 2)]
    # counts up from the initial state; stops after the item whose first component reaches 3
    s0 = C.input_variable(2)
    y = UnfoldFrom(lambda s: s + 1, until_predicate=lambda v: C.greater_equal(C.slice(v, 0, 0, 1), 3))(s0, r)
    out = y.eval({s0: np.array([[0, 10], [-10, 0]], np.float32), r: R})
    np.testing.assert_allclose(out[0], [[1, 11], [2, 12], [3, 13]])
    np.testing.assert_allclose(out[1], [[-9, 1], [-8, 2]])              # never fires: the reference's length
    # a non-scalar Constant gives the shape too
    y = UnfoldFrom(lambda s: s * 0.5)(C.constant(np.array([4., 8.], np.float32)), r)
    assert y.shape == (2,)
    np.testing.assert_allclose(y.eval({r: R})[1], [[2, 4], [1, 2]])
    # so does per-sequence data of any shape, a scalar included
    s1 = C.input_variable(())
    y = UnfoldFrom(lambda s: s * 0.5 + 1)(s1, r)
    assert y.shape == ()
    np.testing.assert_allclose(y.eval({s1: np.array([0., 2.], np.float32), r: R})[1], [2, 2])


def test_unfold_from_elementwise_generator_gradient_float64():
    rng = np.random.RandomState(8)
    scale = C.parameter((), init=0.7, dtype=np.float64, name='scale')
    y = UnfoldFrom(lambda s: C.tanh(s) * scale + 0.1)(_scalar_input(np.float64, needs_gradient=True),
                                                       C.sequence.input_variable(1, dtype=np.float64))
    s0, r = y.arguments
    S0, R = rng.randn(2, 2), [np.zeros((3, 1)), np.zeros((2, 1))]

    def total(S=S0):
        return sum(float(o.sum()) for o in y.eval({s0: S, r: R}))
    g = y.grad({s0: S0, r: R}, wrt=[s0, scale])
    np.testing.assert_allclose(g[s0], numeric_gradient(total, S0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(g[scale], parameter_gradient(total, scale), rtol=1e-6)


def test_unfold_from_bad_generators():
    with pytest.raises(TypeError, match=r"UnfoldFrom: generator_function must take 1 argument .*takes 2"):
        UnfoldFrom(lambda a, b: a + b)
    with pytest.raises(TypeError, match="UnfoldFrom: until_predicate"):
        UnfoldFrom(lambda s: s, until_predicate=lambda a, b: a + b)
    with pytest.raises(ValueError, match="length_increase"):
        UnfoldFrom(lambda s: s, length_increase=0)


# -- AttentionModel ---------------------------------------------------------------------------

def _attention_params(att, h, hd, dim):
    """(W_enc, W_dec, v) by their shapes (h != hd)."""
    ws = {p.shape: p for p in att.parameters if p.name == 'W'}
    return ws[(h, dim)], ws[(hd, dim)], ws[(dim, 1)]


def _attention_ref(E, D, We, Wd, v, beta=1.0):
    pe = (beta * E) @ We                                    # (e, dim)
    out = []
    for d in D:
        logits = (beta * np.tanh(pe + (beta * d) @ Wd)) @ v  # (e, 1)
        w = np.exp(logits - logits.max())
        w /= w.sum()
        out.append(beta * (w * E).sum(0))
    return np.array(out)


def test_attention_model_parameters_and_forward_match_numpy():
    assert C.layers.AttentionModel is AttentionModelFromModels
    h, hd, dim = 3, 4, 5
    att = AttentionModel(dim, name='att')
    assert att.is_block and att.op_name == 'AttentionModel' and att.name == 'att'
    assert [a.name for a in att.arguments] == ['encoder_hidden_state', 'decoder_hidden_state']
    assert not any(p.name == 'b' for p in att.parameters)                  # bias-free projections
    assert sum(p.name == 'alpha' for p in att.parameters) == 4            # stabilized by default
    en = C.sequence.input_variable(h, sequence_axis=C.Axis('m'))
    de = C.sequence.input_variable(hd, sequence_axis=C.Axis('n'))
    y = att(en, de)
    assert y.shape == (h,) and y.output.sequence_axis == C.Axis('n')
    a = RNG.uniform(0.6, 1.2)
    for p in att.parameters:
        if p.name == 'alpha':
            p.value = np.float32(a)
    beta = np.log1p(np.exp(4 * np.float32(a))) / 4
    E = [RNG.randn(n, h).astype(np.float32) for n in (4, 1, 6)]
    D = [RNG.randn(n, hd).astype(np.float32) for n in (2, 3, 1)]
    out = y.eval({en: E, de: D})
    We, Wd, v = (p.value.astype(np.float64) for p in _attention_params(att, h, hd, dim))
    for e, d, o in zip(E, D, out):
        np.testing.assert_allclose(o, _attention_ref(e, d, We, Wd, v, beta), rtol=1e-5, atol=1e-6)
    # a decoder step attends only to its own encoder sequence (padding of longer ones is masked)
    alone = y.eval({en: [E[1]], de: [D[1]]})[0]
    np.testing.assert_allclose(alone, out[1], rtol=1e-5, atol=1e-6)


def test_attention_model_gradients_float64():
    rng = np.random.RandomState(5)
    h, hd, dim = 2, 3, 2
    att = AttentionModel(dim, enable_self_stabilization=False)
    assert not any(p.name == 'alpha' for p in att.parameters)
    en = C.sequence.input_variable(h, dtype=np.float64, needs_gradient=True, sequence_axis=C.Axis('m'))
    de = C.sequence.input_variable(hd, dtype=np.float64, sequence_axis=C.Axis('n'))
    z = C.times(att(en, de), C.constant(rng.randn(h, 1)))
    E = [rng.randn(n, h) for n in (3, 1)]
    D = [rng.randn(n, hd) for n in (2, 2)]
    params = z.parameters
    g = z.grad({en: E, de: D}, wrt=params + [en])

    def total(enc=E):
        return sum(float(o.sum()) for o in z.eval({en: enc, de: D}))
    for p in params:
        np.testing.assert_allclose(g[p], parameter_gradient(total, p), rtol=1e-6, atol=1e-9)
    for k, num in enumerate(sequence_gradients(total, E)):
        np.testing.assert_allclose(g[en][k], num, rtol=1e-6, atol=1e-9)


def test_attention_model_windowed_mode():
    h, hd, dim, span = 2, 3, 4, 3
    with pytest.warns(DeprecationWarning):
        att = AttentionModel(dim, attention_span=span, attention_axis=-2, enable_self_stabilization=False)
    en = C.sequence.input_variable(h, sequence_axis=C.Axis('m'))
    de = C.sequence.input_variable(hd, sequence_axis=C.Axis('n'))
    y = att(en, de)
    assert y.shape == (1, h)
    E = [RNG.randn(n, h).astype(np.float32) for n in (5, 2)]
    D = [RNG.randn(n, hd).astype(np.float32) for n in (2, 1)]
    out = y.eval({en: E, de: D})
    We, Wd, v = (p.value.astype(np.float64) for p in _attention_params(att, h, hd, dim))
    for e, d, o in zip(E, D, out):
        window = e[::-1][:span]                    # the last `span` items, most recent first
        np.testing.assert_allclose(o[:, 0, :], _attention_ref(window, d, We, Wd, v), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="attention_axis"):
        AttentionModel(dim, attention_span=3)
    with pytest.raises(ValueError, match="attention_span"):
        AttentionModel(dim, attention_axis=-2)
    with pytest.raises(ValueError, match="positive"):
        AttentionModel(dim, attention_span=0, attention_axis=-2)


def test_attention_default_options():
    with default_options(enable_self_stabilization=False, init=0.1):
        att = AttentionModel(3)
    assert not any(p.name == 'alpha' for p in att.parameters)
    y = att(C.sequence.input_variable(2, sequence_axis=C.Axis('m')), C.sequence.input_variable(2))
    assert all(np.all(p.value == np.float32(0.1)) for p in y.parameters)


def test_attention_encoder_decoder_trains_with_plain_gradient_steps():
    vocab, emb, hidden = 6, 5, 8
    rng = np.random.RandomState(11)
    src = C.sequence.input_variable(vocab, is_sparse=False, sequence_axis=C.Axis('src'))
    tgt = C.sequence.input_variable(vocab, sequence_axis=C.Axis('tgt'))
    encoder = C.layers.Sequential([Embedding(emb, init=C.glorot_uniform(seed=1)),
                                   Recurrence(LSTM(hidden, init=C.glorot_uniform(seed=2)))])
    dec_embed = Embedding(emb, init=C.glorot_uniform(seed=3))
    decoder = Recurrence(GRU(hidden, init=C.glorot_uniform(seed=4)))
    attention = AttentionModel(hidden, init=C.glorot_uniform(seed=5))
    out = Dense(vocab, init=C.glorot_uniform(seed=6))
    h_enc = encoder(src)
    h_dec = decoder(dec_embed(C.sequence.past_value(tgt)))     # teacher forcing
    z = out(C.splice(h_dec, attention(h_enc, h_dec)))
    loss = C.cross_entropy_with_softmax(z, tgt)
    assert z.shape == (vocab,)

    def one_hot(ids):
        m = np.zeros((len(ids), vocab), np.float32)
        m[np.arange(len(ids)), ids] = 1
        return m
    # the target is the source reversed: needs the attention over the whole source
    srcs = [rng.randint(0, vocab, n) for n in (4, 2, 5, 3)]
    data = {src: [one_hot(s) for s in srcs], tgt: [one_hot(s[::-1]) for s in srcs]}
    params = loss.parameters

    losses = []
    for _ in range(16):
        grads, values = loss.grad(data, wrt=params, outputs=[loss])
        losses.append(sum(float(v.sum()) for v in values))
        for p in params:
            p.value = p.value - 0.05 * grads[p]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0], losses


def test_nested_function_uses_outer_argument_in_recurrence_and_unfold():
    # CNTK_204's pattern: a step/generator defined inside an @Function uses the outer argument
    dense = Dense(3, init=C.glorot_uniform(seed=1))
    start = C.Constant(np.zeros(3, np.float32))

    @C.Function
    def model(input):
        ctx = C.sequence.first(input)

        @C.Function
        def step(h, x):
            return C.tanh(dense(h) + x + ctx)
        assert len(step.signature) == 2 and len(step.arguments) == 3
        rec = Recurrence(step)(input)
        unfold = UnfoldFrom(lambda s: dense(s) + ctx, until_predicate=lambda w: C.greater(w[..., 0], 100))
        return rec, unfold(initial_state=start, dynamic_axes_like=input)
    assert [a.name for a in model.arguments] == ['input']
    x = C.sequence.input_variable(3)
    data = [np.random.RandomState(0).randn(n, 3).astype(np.float32) for n in (4, 2)]
    rec, gen = model(x).eval({x: data}).values()
    W, b = dense.W.value, dense.b.value
    for s, r, g in zip(data, rec, gen):
        h = np.zeros(3, np.float32); st = np.zeros(3, np.float32)
        for t in range(len(s)):
            h = np.tanh(h @ W + b + s[t] + s[0])
            st = st @ W + b + s[0]
            np.testing.assert_allclose(r[t], h, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(g[t], st, rtol=1e-5, atol=1e-5)


def test_function_outputs_is_a_tuple():
    x = C.input_variable(2)
    f = C.combine([x + 1, x * 2])
    assert isinstance(f.outputs, tuple) and len(f.outputs + (x,)) == 3


def test_attention_inside_a_recurrence_step_matches_numpy():
    # CNTK_204's attention decoder: each step of the recurrence attends over the whole encoder
    # sequence (another sequence axis) with the previous decoder state
    h, hd, dim = 3, 4, 5
    att = AttentionModel(dim, enable_self_stabilization=False)
    en = C.sequence.input_variable(h, sequence_axis=C.Axis('m'))
    de = C.sequence.input_variable(2, sequence_axis=C.Axis('n'))
    U = C.parameter((2, hd), init=C.glorot_uniform(seed=1))
    V = C.parameter((h, hd), init=C.glorot_uniform(seed=2))

    s_prev = C.placeholder(hd)
    y = C.tanh(C.times(de, U) + C.times(att(en, C.sequence.past_value(s_prev)), V))
    y.replace_placeholders({s_prev: y.output})
    E = [RNG.randn(n, h).astype(np.float32) for n in (4, 1, 6)]
    X = [RNG.randn(n, 2).astype(np.float32) for n in (3, 2, 1)]
    out = y.eval({en: E, de: X})
    We, Wd, v = (p.value.astype(np.float64) for p in _attention_params(att, h, hd, dim))
    for e, x, o in zip(E, X, out):
        s, ref = np.zeros(hd), []
        for xt in x:
            s = np.tanh(xt @ U.value + _attention_ref(e, s[None], We, Wd, v)[0] @ V.value)
            ref.append(s)
        np.testing.assert_allclose(o, np.array(ref), rtol=1e-5, atol=1e-6)
    alone = y.eval({en: [E[2]], de: [X[2]]})[0]
    np.testing.assert_allclose(alone, out[2], rtol=1e-5, atol=1e-6)
