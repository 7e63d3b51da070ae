"""Recurrent layers: LSTM, GRU, RNNStep, Recurrence, RecurrenceFrom, Fold, Delay,
PastValueWindow, ForwardDeclaration, against numpy step-by-step references."""

import os
import tempfile

import numpy as np
import pytest

import cntk as C
from cntk.layers import (LSTM, GRU, RNNStep, RNNUnit, Recurrence, RecurrenceFrom, Fold, Delay, PastValueWindow,
                         ForwardDeclaration, Sequential, Dense, Embedding, default_options,
                         default_options_for)
from cntk.engine.graph import walk
from finite_differences import parameter_gradient, sequence_gradients

RNG = np.random.RandomState(1234)
LENGTHS = [5, 1, 3]


def _sig(v):
    return 1 / (1 + np.exp(-v))


def _beta(stab):
    """The scale of a Stabilizer block (1 when it is the identity)."""
    if stab is None:
        return 1.0
    (alpha,) = stab.block_root.parameters      # the block's own parameter
    a = float(alpha.value)
    return np.log1p(np.exp(4 * a)) / 4


def _stab(cell, name):
    return cell.find_by_name(name, depth=1)


def _seqs(dim, lengths=LENGTHS, dtype=np.float32, rng=RNG):
    return [rng.randn(n, dim).astype(dtype) for n in lengths]


def _randomize(params, rng=RNG, scale=0.5):
    for p in params:
        p.value = (rng.randn(*p.shape) * scale).astype(p.value.dtype)


def _scan(step, state, seq, backwards):
    """Apply ``step(state, x) -> state`` along ``seq``; returns the first state component per step."""
    out = [None] * len(seq)
    order = range(len(seq) - 1, -1, -1) if backwards else range(len(seq))
    for t in order:
        state = step(state, seq[t])
        out[t] = state[0] if isinstance(state, tuple) else state
    return np.array(out)


def _lstm_ref(cell, n_out, n_cell, act=np.tanh):
    v = {p.name: p.value.astype(np.float64) for p in cell.parameters if p.name != 'alpha'}
    peep = 'Ci' in v
    s_dh, s_dc, s_c, s_p = (_beta(_stab(cell, nm)) for nm in ('dh_stabilizer', 'dc_stabilizer', 'c_stabilizer',
                                                               'P_stabilizer'))
    n = n_cell

    def step(state, x):
        h, c = state
        p = v['b'] + x @ v['W'] + (s_dh * h) @ v['H']
        i, g, f, o = p[:n], p[n:2 * n], p[2 * n:3 * n], p[3 * n:]
        if peep:
            i = i + v['Ci'] * (s_dc * c)
            f = f + v['Cf'] * (s_dc * c)
        c_new = _sig(f) * c + _sig(i) * act(g)
        if peep:
            o = o + v['Co'] * (s_c * c_new)
        h_new = _sig(o) * act(c_new)
        if 'P' in v:
            h_new = (s_p * h_new) @ v['P']
        return h_new, c_new
    return step, (np.zeros(n_out), np.zeros(n_cell))


def _gru_ref(cell, n, act=np.tanh):
    v = {p.name: p.value.astype(np.float64) for p in cell.parameters if p.name != 'alpha'}
    s_dh = _beta(_stab(cell, 'dh_stabilizer'))

    def step(h, x):
        hs = s_dh * h
        px = v['b'] + x @ v['W']
        ph = hs @ v['H']
        z = _sig(px[:n] + ph[:n])
        r = _sig(px[n:2 * n] + ph[n:])
        c = act(px[2 * n:] + (r * hs) @ v['H1'])
        return (1 - z) * c + z * hs
    return step, np.zeros(n)


def _rnn_ref(cell, n, act):
    v = {p.name: p.value.astype(np.float64) for p in cell.parameters}

    def step(h, x):
        return act(x @ v['W'] + h @ v['H'] + v['b'])
    return step, np.zeros(n)


def _check(y, x, X, step, init, backwards, tol=1e-5):
    out = y.eval({x: X})
    assert len(out) == len(X)
    for s, o in zip(X, out):
        np.testing.assert_allclose(o, _scan(step, init, s.astype(np.float64), backwards), rtol=tol, atol=tol)


def _fused(f):
    """The 'fused_rnn' attributes of the Recurrence blocks in ``f``."""
    return [dict(p.attributes['fused_rnn']) if 'fused_rnn' in p.attributes else None
            for p in walk(f.outputs, into_blocks=-1) if p.block is not None and p.block.op_name == 'Recurrence']


# -- parameters -------------------------------------------------------------------------------

def test_lstm_parameters_names_shapes_and_signature():
    cell = LSTM(4, name='lstm')
    assert cell.is_block and cell.op_name == 'LSTM' and cell.name == 'lstm'
    assert [a.name for a in cell.arguments] == ['dh', 'dc', 'x'] and len(cell.outputs) == 2
    assert cell.W.shape == (-1, 16) and cell.H.shape == (4, 16) and cell.b.shape == (16,)
    assert sorted(p.name for p in cell.parameters) == ['H', 'W', 'b']
    assert np.all(cell.b.value == 0)
    y = Recurrence(cell)(C.sequence.input_variable(3))
    assert cell.W.shape == (3, 16) and y.shape == (4,)
    # glorot_uniform on W (3, 16): limit sqrt(6 / (fan_in + fan_out))
    assert np.abs(cell.W.value).max() <= np.sqrt(6 / 19) + 1e-6 and cell.W.value.std() > 0.1

    full = LSTM(4, cell_shape=6, use_peepholes=True, enable_self_stabilization=True)
    shapes = {p.name: p.shape for p in full.parameters if p.name != 'alpha'}
    assert shapes == {'b': (24,), 'W': (-1, 24), 'H': (4, 24), 'Ci': (6,), 'Cf': (6,), 'Co': (6,), 'P': (6, 4)}
    assert sum(p.name == 'alpha' for p in full.parameters) == 4      # one per stabilizer
    assert [o.shape for o in full.outputs] == [(4,), (6,)]
    for nm in ('dh_stabilizer', 'dc_stabilizer', 'c_stabilizer', 'P_stabilizer'):
        assert _stab(full, nm).op_name == 'Stabilizer'
    with pytest.raises(ValueError, match="LSTM"):
        LSTM((2, 3))


def test_gru_and_rnnstep_parameters():
    g = GRU(5)
    assert g.op_name == 'GRU' and [a.name for a in g.arguments] == ['dh', 'x']
    assert {p.name: p.shape for p in g.parameters} == {'b': (15,), 'W': (-1, 15), 'H': (5, 10), 'H1': (5, 5)}
    r = RNNStep(5)
    assert r.op_name == 'RNNStep'
    assert {p.name: p.shape for p in r.parameters} == {'b': (5,), 'W': (-1, 5), 'H': (5, 5)}
    rp = RNNStep(3, cell_shape=5)
    assert {p.name: p.shape for p in rp.parameters} == {'b': (5,), 'W': (-1, 5), 'H': (3, 5), 'P': (5, 3)}
    with pytest.warns(DeprecationWarning):
        u = RNNUnit(5)
    assert u.op_name == 'RNNStep'


# -- forward references -----------------------------------------------------------------------

@pytest.mark.parametrize("backwards", [False, True])
def test_lstm_matches_numpy_over_variable_lengths(backwards):
    x = C.sequence.input_variable(3)
    cell = LSTM(4)
    y = Recurrence(cell, go_backwards=backwards)(x)
    _randomize([cell.b])
    step, init = _lstm_ref(cell, 4, 4)
    _check(y, x, _seqs(3), step, init, backwards)


@pytest.mark.parametrize("backwards", [False, True])
def test_lstm_peepholes_projection_stabilization_match_numpy(backwards):
    x = C.sequence.input_variable(3)
    cell = LSTM(4, cell_shape=6, use_peepholes=True, enable_self_stabilization=True)
    y = Recurrence(cell, go_backwards=backwards)(x)
    _randomize([p for p in cell.parameters if p.name in ('b', 'Ci', 'Cf', 'Co')])
    for p in cell.parameters:
        if p.name == 'alpha':
            p.value = np.float32(RNG.uniform(0.5, 1.5))
    step, init = _lstm_ref(cell, 4, 6)
    _check(y, x, _seqs(3), step, init, backwards)


def test_lstm_each_option_alone_matches_numpy():
    x = C.sequence.input_variable(2)
    X = _seqs(2)
    for kw, n_cell in ((dict(use_peepholes=True), 3), (dict(cell_shape=5), 5),
                       (dict(enable_self_stabilization=True), 3), (dict(activation=C.relu), 3)):
        cell = LSTM(3, **kw)
        y = Recurrence(cell)(x)
        _randomize([p for p in cell.parameters if p.name in ('b', 'Ci', 'Cf', 'Co')])
        act = (lambda v: np.maximum(v, 0)) if 'activation' in kw else np.tanh
        step, init = _lstm_ref(cell, 3, n_cell, act)
        _check(y, x, X, step, init, False)


@pytest.mark.parametrize("backwards", [False, True])
def test_gru_matches_numpy(backwards):
    x = C.sequence.input_variable(3)
    cell = GRU(4, enable_self_stabilization=True)
    y = Recurrence(cell, go_backwards=backwards)(x)
    _randomize([cell.b])
    cell.dh_stabilizer.block_root.parameters[0].value = np.float32(0.7)
    step, init = _gru_ref(cell, 4)
    _check(y, x, _seqs(3), step, init, backwards)


@pytest.mark.parametrize("act, ref", [(None, _sig), (C.relu, lambda v: np.maximum(v, 0)), (C.tanh, np.tanh)])
def test_rnnstep_matches_numpy_both_directions(act, ref):
    x = C.sequence.input_variable(3)
    cell = RNNStep(4) if act is None else RNNStep(4, activation=act)
    fwd = Recurrence(cell)(x)
    bwd = Recurrence(cell, go_backwards=True)(x)
    _randomize([cell.b])
    step, init = _rnn_ref(cell, 4, ref)
    X = _seqs(3)
    _check(fwd, x, X, step, init, False)
    _check(bwd, x, X, step, init, True)


def test_sequences_are_independent_of_the_minibatch():
    x = C.sequence.input_variable(3)
    y = Sequential([Recurrence(LSTM(4)), Recurrence(GRU(3), go_backwards=True)])(x)
    X = _seqs(3, [6, 2, 4, 1])
    together = y.eval({x: X})
    for s, t in zip(X, together):
        np.testing.assert_allclose(y.eval({x: [s]})[0], t, rtol=1e-5, atol=1e-6)
    # a sequence's result does not depend on what else is in the minibatch
    np.testing.assert_allclose(y.eval({x: [X[2], X[0]]})[0], together[2], rtol=1e-5, atol=1e-6)


# -- gradients --------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: LSTM(3, cell_shape=4, use_peepholes=True),
                                  lambda: GRU(3), lambda: RNNStep(3, activation=C.tanh),
                                  lambda: LSTM(3, enable_self_stabilization=True),
                                  lambda: GRU(3, enable_self_stabilization=True)],
                         ids=["lstm_peep_proj", "gru", "rnnstep", "lstm_stabilized", "gru_stabilized"])
def test_recurrence_gradients_float64(make):
    rng = np.random.RandomState(7)
    x = C.sequence.input_variable(2, dtype=np.float64, needs_gradient=True)
    cell = make()
    y = Recurrence(cell, go_backwards=True)(x)
    proj = C.constant(rng.randn(3, 1))
    z = C.times(y, proj)
    _randomize([p for p in cell.parameters if p.name in ('b', 'Ci', 'Cf', 'Co')], rng)
    X = [rng.randn(n, 2) for n in (3, 1, 2)]
    # every parameter, the stabilizers' alphas (used through a softplus) included, is float64
    assert {np.dtype(p.dtype) for p in z.parameters} == {np.dtype(np.float64)}

    def total(data=X):
        return sum(float(s.sum()) for s in z.eval({x: data}))
    params = [p for p in z.parameters]
    grads = z.grad({x: X}, wrt=params + [x])
    for p in params:
        np.testing.assert_allclose(grads[p], parameter_gradient(total, p), rtol=1e-5, atol=1e-8, err_msg=p.name)
    for b, num in enumerate(sequence_gradients(total, X)):
        np.testing.assert_allclose(grads[x][b], num, rtol=1e-5, atol=1e-8)


# -- Recurrence semantics ---------------------------------------------------------------------

def test_recurrence_of_plus_with_tensor_initial_state():
    x = C.sequence.input_variable(2)
    cum_sum = Recurrence(C.plus, initial_state=C.constant([0, 0.5]))
    X = [np.array([[3, 2], [13, 42], [-100, 100]], np.float32)]
    np.testing.assert_allclose(cum_sum(x).eval({x: X})[0], [[3, 2.5], [16, 44.5], [-84, 144.5]])
    # a numpy array and a scalar work too; backwards accumulates from the end
    back = Recurrence(lambda h, v: h + v, go_backwards=True, initial_state=np.array([1, 0], np.float32))
    np.testing.assert_allclose(back(x).eval({x: X})[0], np.cumsum(X[0][::-1], 0)[::-1] + [1, 0])
    np.testing.assert_allclose(Recurrence(C.plus, initial_state=10)(x).eval({x: X})[0], np.cumsum(X[0], 0) + 10)


def test_recurrence_learnable_and_per_state_initial_states():
    x = C.sequence.input_variable(3)
    X = _seqs(3)
    h0 = C.parameter(4, init=np.arange(4, dtype=np.float32) * 0.1, name='h0')
    cell = RNNStep(4, activation=C.tanh)
    y = Recurrence(cell, initial_state=h0)(x)
    assert any(p is h0 for p in y.parameters)
    _randomize([cell.b])
    v = {p.name: p.value.astype(np.float64) for p in cell.parameters}
    step = lambda h, xt: np.tanh(xt @ v['W'] + h @ v['H'] + v['b'])  # noqa: E731
    _check(y, x, X, step, h0.value.astype(np.float64), False)
    g = y.grad({x: X}, wrt=[h0])
    assert g.shape == (4,) and np.abs(g).sum() > 0

    lstm = LSTM(4)
    c0 = C.constant(np.full(4, 0.3, np.float32))
    y2 = Recurrence(lstm, initial_state=(0.2, c0))(x)
    step2, _ = _lstm_ref(lstm, 4, 4)
    _check(y2, x, X, step2, (np.full(4, 0.2), np.full(4, 0.3)), False)
    # an initial state computed by a function (of constants)
    y3 = Recurrence(lstm, initial_state=(C.constant(0.1) * 2, C.constant(0.3)))(x)
    _check(y3, x, X, step2, (np.full(4, 0.2), np.full(4, 0.3)), False)
    with pytest.raises(ValueError, match="Recurrence: 3 initial states"):
        Recurrence(lstm, initial_state=(0, 0, 0))


def test_return_full_state_and_multi_state_step_functions():
    x = C.sequence.input_variable(3)
    X = _seqs(3)
    cell = LSTM(4, cell_shape=5)
    r = Recurrence(cell, return_full_state=True)
    y = r(x)
    assert len(y.outputs) == 2 and [o.shape for o in y.outputs] == [(4,), (5,)]
    res = y.eval({x: X})
    h, c = res[y.outputs[0]], res[y.outputs[1]]
    step, init = _lstm_ref(cell, 4, 5)
    for s, hs, cs in zip(X, h, c):
        state, hh, cc = init, [], []
        for t in range(len(s)):
            state = step(state, s[t].astype(np.float64))
            hh.append(state[0])
            cc.append(state[1])
        np.testing.assert_allclose(hs, hh, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(cs, cc, rtol=1e-5, atol=1e-6)

    # a three-state step function written in Python: (a, b, c, x) -> (a + x, a * 0.5, b + c)
    @C.Function
    def three(a, b, c, v):
        return a + v, a * 0.5, b + c
    y3 = Recurrence(three, return_full_state=True)(x)
    out = y3.eval({x: X})
    a = np.cumsum(X[0], 0)
    np.testing.assert_allclose(out[y3.outputs[0]][0], a, rtol=1e-6)
    np.testing.assert_allclose(out[y3.outputs[1]][0][1:], a[:-1] * 0.5, rtol=1e-6)


def test_state_count_mismatch_raises_at_construction():
    with pytest.raises(TypeError, match=r"Recurrence: .*takes 1 argument \(x: \?, \?\) and returns 1 output"):
        Recurrence(Dense(3))
    d = Dense(3)
    d.update_signature(5)
    with pytest.raises(TypeError, match=r"Recurrence: .*\(5,\)"):
        Recurrence(d)

    @C.Function
    def bad(h, c, v):
        return h + c + v
    with pytest.raises(TypeError, match="takes 3 arguments .* returns 1 output"):
        Recurrence(bad)
    with pytest.raises(TypeError, match="RecurrenceFrom"):
        RecurrenceFrom(bad)
    with pytest.raises(TypeError, match="Fold"):
        Fold(Dense(2))
    with pytest.raises(TypeError, match="Recurrence: the step function must be"):
        Recurrence(3)


def test_bidirectional_and_stacked_recurrences():
    x = C.sequence.input_variable(3)
    f_cell, b_cell = LSTM(2), LSTM(2)
    bi = Sequential([(Recurrence(f_cell), Recurrence(b_cell, go_backwards=True)), C.splice])
    bi.update_signature(C.layers.typing.Sequence[C.layers.typing.Tensor[3]])
    assert bi.shape == (4,)
    X = _seqs(3)
    out = bi.eval({bi.arguments[0]: X})
    sf, i_f = _lstm_ref(f_cell, 2, 2)
    sb, i_b = _lstm_ref(b_cell, 2, 2)
    for s, o in zip(X, out):
        s = s.astype(np.float64)
        np.testing.assert_allclose(o, np.concatenate([_scan(sf, i_f, s, False), _scan(sb, i_b, s, True)], 1),
                                   rtol=1e-5, atol=1e-6)
    # stacked: the second layer reads the first one's outputs
    c1, c2 = RNNStep(3, activation=C.tanh), GRU(2)
    stacked = Sequential([Recurrence(c1), Recurrence(c2, go_backwards=True)])(x)
    s1, i1 = _rnn_ref(c1, 3, np.tanh)
    s2, i2 = _gru_ref(c2, 2)
    for s, o in zip(X, stacked.eval({x: X})):
        np.testing.assert_allclose(o, _scan(s2, i2, _scan(s1, i1, s.astype(np.float64), False), True),
                                   rtol=1e-5, atol=1e-6)


def test_recurrence_is_a_block_with_the_fused_annotation():
    x = C.sequence.input_variable(3)
    r = Recurrence(LSTM(4), name='rec')
    assert r.is_block and r.op_name == 'Recurrence' and r.name == 'rec'
    assert r.attributes['fused_rnn'] == {'kind': 'lstm', 'go_backwards': False}
    y = r(x)
    assert _fused(y) == [{'kind': 'lstm', 'go_backwards': False}]
    (blk,) = [p for p in walk(y.outputs, into_blocks=-1)
              if p.block is not None and p.block.op_name == 'Recurrence']
    assert blk.inputs[0].shape == (3,) and len(blk.outputs) == 1
    inner = {p.name: p.shape for p in C.combine(blk.block.outputs).parameters}
    assert inner == {'W': (3, 16), 'H': (4, 16), 'b': (16,)}

    assert Recurrence(RNNStep(4, activation=C.tanh), go_backwards=True).attributes['fused_rnn'] == \
        {'kind': 'rnn_tanh', 'go_backwards': True}
    assert Recurrence(RNNStep(4, activation=C.relu)).attributes['fused_rnn']['kind'] == 'rnn_relu'
    for plain in (Recurrence(GRU(4)), Recurrence(RNNStep(4)), Recurrence(LSTM(4, use_peepholes=True)),
                  Recurrence(LSTM(4, enable_self_stabilization=True)), Recurrence(LSTM(4, cell_shape=4)),
                  Recurrence(LSTM(4, activation=C.relu)), Recurrence(LSTM(4), initial_state=0.5),
                  Recurrence(LSTM(4), return_full_state=True), Recurrence(RNNStep(4, activation=C.tanh) >> C.layers.identity),
                  Recurrence(C.plus)):
        assert 'fused_rnn' not in plain.attributes
    # applying, cloning, saving and loading keep it
    model = Sequential([Embedding(5), Recurrence(LSTM(4), go_backwards=True), Dense(2)])(x)
    assert _fused(model.clone(C.CloneMethod.clone)) == [{'kind': 'lstm', 'go_backwards': True}]
    with tempfile.TemporaryDirectory() as d:
        fn = os.path.join(d, 'm.model')
        model.save(fn)
        loaded = C.load_model(fn)
    assert _fused(loaded) == [{'kind': 'lstm', 'go_backwards': True}]
    X = _seqs(3)
    for a, b in zip(model.eval({x: X}), loaded.eval({loaded.arguments[0]: X})):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_default_options_for_recurrent_layers():
    x = C.sequence.input_variable(3)
    X = [np.arange(6, dtype=np.float32).reshape(2, 3)]
    with default_options(go_backwards=True, initial_state=1.0):
        r = Recurrence(C.plus)
        f = Fold(C.plus)
        d = Delay()
    np.testing.assert_allclose(r(x).eval({x: X})[0], [[4, 6, 8], [4, 5, 6]])
    np.testing.assert_allclose(f(x).eval({x: X}), [[4, 6, 8]])
    np.testing.assert_allclose(d(x).eval({x: X})[0], [[1, 1, 1], [0, 1, 2]])
    with default_options(enable_self_stabilization=True, init_bias=0.5, use_peepholes=True):
        cell = LSTM(2)
        g = GRU(2)
    assert any(p.name == 'alpha' for p in cell.parameters) and 'Ci' in [p.name for p in cell.parameters]
    assert np.all(cell.b.value == 0.5) and any(p.name == 'alpha' for p in g.parameters)
    with default_options(activation=C.relu):
        assert RNNStep(2)(C.constant(-np.ones(2, np.float32)), C.constant(np.ones(2, np.float32))).output is not None
    with default_options_for(RNNStep, activation=C.tanh):
        assert Recurrence(RNNStep(2)).attributes['fused_rnn']['kind'] == 'rnn_tanh'
        assert 'fused_rnn' not in Recurrence(LSTM(2, activation=C.sigmoid)).attributes
    with default_options_for(LSTM, init=0.25):
        c = LSTM(2)
        c(C.placeholder(), C.placeholder(), x)
    assert np.all(c.H.value == 0.25)


# -- RecurrenceFrom, Fold, Delay, PastValueWindow, ForwardDeclaration -------------------------

def _check_encoder_decoder(out, E, F, enc_cell, dec_cell):
    """Each decoder output sequence against the LSTM reference started from the state the
    encoder (4 cells) reaches at the last item of the matching encoder sequence."""
    se, ie = _lstm_ref(enc_cell, 4, 4)
    sd, _ = _lstm_ref(dec_cell, 4, 4)
    assert len(out) == len(F)
    for e, f, o in zip(E, F, out):
        state = ie
        for t in range(len(e)):
            state = se(state, e[t].astype(np.float64))
        np.testing.assert_allclose(o, _scan(sd, state, f.astype(np.float64), False), rtol=1e-5, atol=1e-6)


def test_recurrence_from_takes_data_initial_states():
    en = C.sequence.input_variable(3, sequence_axis=C.Axis('m'))
    fr = C.sequence.input_variable(2, sequence_axis=C.Axis('n'))
    enc_cell, dec_cell = LSTM(4), LSTM(4)
    encoder = Recurrence(enc_cell, return_full_state=True)
    decoder = RecurrenceFrom(dec_cell)
    assert [a.name for a in decoder.arguments] == ['h', 'c', 'x']
    h, c = encoder(en).outputs
    z = decoder(h, c, fr)
    assert z.shape == (4,) and z.output.sequence_axis == C.Axis('n')
    E, F = _seqs(3, [4, 2]), _seqs(2, [3, 5])
    _check_encoder_decoder(z.eval({en: E, fr: F}), E, F, enc_cell, dec_cell)
    # backwards: the first item of a sequence initial state; a batch-only initial state as is
    s0 = C.input_variable(3)
    cell = RNNStep(3, activation=C.tanh)
    back = RecurrenceFrom(cell, go_backwards=True)
    S0 = RNG.randn(2, 3).astype(np.float32)
    out = back(s0, fr).eval({s0: S0, fr: F[:2]})
    step, _ = _rnn_ref(cell, 3, np.tanh)
    for o, s, f in zip(out, S0, F):
        np.testing.assert_allclose(o, _scan(step, s.astype(np.float64), f.astype(np.float64), True), rtol=1e-5,
                                   atol=1e-6)
    seq0 = C.sequence.input_variable(3, sequence_axis=C.Axis('m'))
    out = back(seq0, fr).eval({seq0: [S0, S0[::-1]], fr: F[:2]})
    np.testing.assert_allclose(out[1], _scan(step, S0[1].astype(np.float64), F[1].astype(np.float64), True),
                               rtol=1e-5, atol=1e-6)


def _check_from_sequence_state(y, seq0, fr, S0, F, step, backwards):
    """y's output against the reference started from each initial-state sequence's last item
    (first when going backwards)."""
    out = y.eval({seq0: S0, fr: F})
    assert len(out) == len(F)
    for s, f, o in zip(S0, F, out):
        init = (s[0] if backwards else s[-1]).astype(np.float64)
        np.testing.assert_allclose(o, _scan(step, init, f.astype(np.float64), backwards), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backwards", [False, True])
def test_recurrence_from_sequence_initial_state_bound_by_replace_placeholders(backwards):
    fr = C.sequence.input_variable(2, sequence_axis=C.Axis('n'))
    seq0 = C.sequence.input_variable(3, sequence_axis=C.Axis('m'))
    S0, F = _seqs(3, [4, 1, 2]), _seqs(2, [3, 5, 2])
    cell = RNNStep(3, activation=C.tanh)
    rf = RecurrenceFrom(cell, go_backwards=backwards)
    h, x = rf.arguments
    assert rf.replace_placeholders({h: seq0, x: fr}) is rf
    assert rf.arguments == [seq0, fr] and rf.output.sequence_axis == C.Axis('n') and rf.shape == (3,)
    step, _ = _rnn_ref(cell, 3, np.tanh)
    _check_from_sequence_state(rf, seq0, fr, S0, F, step, backwards)
    # the same as applying the layer
    _check_from_sequence_state(RecurrenceFrom(cell, go_backwards=backwards)(seq0, fr), seq0, fr, S0, F, step,
                               backwards)


def test_recurrence_from_inside_a_function_typed_later():
    """The seq2seq pattern: the encoder's state sequences reach RecurrenceFrom through placeholders
    whose types are only known when the enclosing function is typed (or applied)."""
    m, n = C.Axis('m'), C.Axis('n')
    enc_cell, dec_cell = LSTM(4), LSTM(4)
    encoder, decoder = Recurrence(enc_cell, return_full_state=True), RecurrenceFrom(dec_cell)

    @C.Function
    def model(inp, hist):
        h, c = encoder(inp).outputs
        return decoder(h, c, hist)
    from cntk.layers.typing import SequenceOver, Tensor
    model.update_signature(SequenceOver[m][Tensor[3]], SequenceOver[n][Tensor[2]])
    assert model.output.sequence_axis == n and model.shape == (4,)
    en, fr = model.arguments
    E, F = _seqs(3, [4, 2, 1]), _seqs(2, [3, 5, 2])
    _check_encoder_decoder(model.eval({en: E, fr: F}), E, F, enc_cell, dec_cell)


def test_recurrence_from_static_and_parameter_initial_states_by_replace_placeholders():
    fr = C.sequence.input_variable(2)
    F = _seqs(2, [3, 1])
    cell = RNNStep(3, activation=C.tanh)
    h0 = C.parameter(3, init=np.array([0.5, -1., 2.], np.float32), name='h0')
    rf = RecurrenceFrom(cell)
    rf.replace_placeholders(dict(zip(rf.arguments, [h0, fr])))
    assert rf.arguments == [fr] and h0 in rf.parameters
    step, _ = _rnn_ref(cell, 3, np.tanh)
    for f, o in zip(F, rf.eval({fr: F})):
        np.testing.assert_allclose(o, _scan(step, h0.value.astype(np.float64), f.astype(np.float64), False),
                                   rtol=1e-5, atol=1e-6)
    # the parameter is learnt through the loop
    assert np.abs(rf.grad({fr: F}, wrt=[h0])).sum() > 0


def test_recurrence_from_gradient_reaches_only_the_used_item_of_a_sequence_state_float64():
    rng = np.random.RandomState(5)
    fr = C.sequence.input_variable(2, dtype=np.float64, sequence_axis=C.Axis('n'))
    seq0 = C.sequence.input_variable(2, dtype=np.float64, needs_gradient=True, sequence_axis=C.Axis('m'))
    with default_options(dtype=np.float64):
        cell = RNNStep(2, activation=C.tanh)
    for backwards in (False, True):
        rf = RecurrenceFrom(cell, go_backwards=backwards)
        h, x = rf.arguments
        rf.replace_placeholders({h: seq0, x: fr})
        if not backwards:
            _randomize(cell.parameters, rng)
        S0, F = [rng.randn(3, 2), rng.randn(1, 2)], [rng.randn(2, 2), rng.randn(4, 2)]

        def total(S):
            return sum(float(o.sum()) for o in rf.eval({seq0: S, fr: F}))
        g = rf.grad({seq0: S0, fr: F}, wrt=[seq0])
        for b, num in enumerate(sequence_gradients(total, S0)):
            np.testing.assert_allclose(g[b], num, rtol=1e-6, atol=1e-9)
            used = 0 if backwards else len(S0[b]) - 1
            assert np.abs(g[b][used]).sum() > 0 and np.abs(np.delete(g[b], used, 0)).sum() == 0


def test_recurrence_from_with_a_sequence_state_saves_and_loads():
    fr = C.sequence.input_variable(2, sequence_axis=C.Axis('n'))
    seq0 = C.sequence.input_variable(3, sequence_axis=C.Axis('m'))
    rf = RecurrenceFrom(RNNStep(3, activation=C.tanh))
    rf.replace_placeholders(dict(zip(rf.arguments, [seq0, fr])))
    S0, F = _seqs(3, [2, 3]), _seqs(2, [3, 1])
    want = rf.eval({seq0: S0, fr: F})
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'rf.model')
        rf.save(path)
        back = C.load_model(path)
    got = back.eval(dict(zip(back.arguments, [S0, F])))
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_fold_returns_final_states():
    x = C.sequence.input_variable(2)
    X = [np.array([[1, 2], [6, 3], [4, 2], [8, 1], [6, 0]], np.float32), np.array([[3, 9]], np.float32)]
    np.testing.assert_allclose(Fold(C.element_max)(x).eval({x: X}), [[8, 3], [3, 9]])
    np.testing.assert_allclose(Fold(C.plus)(x).eval({x: X}), [[25, 8], [3, 9]])
    f = Fold(C.minus, go_backwards=True, name='fold')
    assert f.is_block and f.op_name == 'Fold' and f.name == 'fold'
    # folding from the end: s = s - x over x[::-1]
    np.testing.assert_allclose(f(x).eval({x: X}), [-X[0].sum(0), -X[1].sum(0)])
    cell = LSTM(3)
    both = Fold(cell, return_full_state=True)(x)
    assert [o.shape for o in both.outputs] == [(3,), (3,)] and not both.outputs[0].sequence_axis
    res = both.eval({x: X})
    step, init = _lstm_ref(cell, 3, 3)
    state = init
    for t in range(len(X[0])):
        state = step(state, X[0][t].astype(np.float64))
    np.testing.assert_allclose(res[both.outputs[0]][0], state[0], rtol=1e-5)
    np.testing.assert_allclose(res[both.outputs[1]][0], state[1], rtol=1e-5)


def test_delay_layer_and_trigram():
    x = C.sequence.input_variable(2)
    X = [np.arange(6, dtype=np.float32).reshape(3, 2), np.array([[7, 8]], np.float32)]
    d = Delay(2, initial_state=-1, name='d2')
    assert d.is_block and d.op_name == 'Delay' and d.name == 'd2'
    np.testing.assert_allclose(d(x).eval({x: X})[0], [[-1, -1], [-1, -1], [0, 1]])
    trigram = Sequential([tuple(Delay(T) for T in (-1, 0, 1)), C.splice])(x)
    out = trigram.eval({x: X})
    np.testing.assert_allclose(out[0], [[2, 3, 0, 1, 0, 0], [4, 5, 2, 3, 0, 1], [0, 0, 4, 5, 2, 3]])
    np.testing.assert_allclose(out[1], [[0, 0, 7, 8, 0, 0]])


def test_past_value_window_layer():
    x = C.sequence.input_variable(2)
    X = [np.arange(6, dtype=np.float32).reshape(3, 2), np.array([[7, 8]], np.float32)]
    w = PastValueWindow(4, axis=-2, name='win')
    assert w.is_block and w.op_name == 'PastValueWindow' and len(w.outputs) == 2
    y = w(x)
    res = y.eval({x: X})
    value, valid = res[y.outputs[0]], res[y.outputs[1]]
    np.testing.assert_allclose(value[0], [[4, 5], [2, 3], [0, 1], [0, 0]])
    np.testing.assert_allclose(valid[0], [[1], [1], [1], [0]])
    np.testing.assert_allclose(valid[1], [[1], [0], [0], [0]])
    res = PastValueWindow(2, axis=-2, go_backwards=True)(x).eval({x: X})
    assert [v.shape for v in res.values()] == [(2, 2, 2), (2, 2, 1)]
    np.testing.assert_allclose(list(res.values())[0][0], [[0, 1], [2, 3]])


def test_forward_declaration_closes_a_loop():
    x = C.sequence.input_variable(2)
    fwd = ForwardDeclaration()
    assert fwd.is_placeholder and fwd.name == 'forward_declaration'
    out = C.sequence.past_value(fwd, initial_state=0) + C.sequence.broadcast_as(1, x)
    fwd.resolve_to(out)
    length = C.sequence.last(out)
    np.testing.assert_allclose(length.eval({x: _seqs(2, [3, 5])}).ravel(), [3, 5])
