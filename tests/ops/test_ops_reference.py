"""Every public op of cntk.ops / cntk.losses / cntk.metrics against a numpy reference.

One table drives two tests per case:

* ``test_value``: float32 forward (``f.eval``) against the numpy reference, plus the static
  output shape and dynamic axes;
* ``test_gradient`` (differentiable cases): float64 ``f.grad`` (ones backpropagated from the
  output) w.r.t. every input and parameter, against central differences of the numpy
  reference's sum. Inputs are drawn away from kinks (0 for relu/abs, integers for floor,
  ties for max/min, ...).

A case is ``Case(op, suffix, build, operands, ref, ...)``: ``build(*variables)`` makes the
function, ``operands`` declares each variable (``In``: batch input, ``Par``: parameter,
``Const``: constant), and ``ref`` computes one sample's result from one sample of every
input and the full value of every parameter (or, with ``batched=True``, the whole
minibatch's result from the whole minibatch).

Every per-sample case (not ``batched=True``) also runs, from the same row:

* ``test_sequence_variant``: every ``In`` operand becomes a sequence input fed sequences of
  lengths ``SEQ_LENGTHS``; the float32 value must be a list of per-sequence arrays whose step t
  is the reference on step t's inputs, and the float64 gradients the per-step central
  differences (parameters: summed over every valid step). Rows opt out with ``seq="<reason>"``;
  ``seq="bug: ..."`` rows are strict xfails;
* ``test_sequence_broadcast_variant`` (rows with several In operands): one In operand a
  sequence, the others batch-only inputs broadcast over its steps (flag: ``seq_broadcast``);
* ``test_batch_of_one_variant``: every sample evaluated alone equals its row of the minibatch
  result (no cross-sample leakage).

Hand-written sequence tests further down check compositions of ops on sequences.
"""

import glob
import importlib
import os
import sys
import zlib

import numpy as np
import pytest

import cntk as C

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opinfo import CASES, N, EPS, SEQ_LENGTHS, In, Par, U, POS  # noqa: E402

# every cases_<family>.py module adds its rows to the one table
for _path in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases_*.py"))):
    importlib.import_module(os.path.splitext(os.path.basename(_path))[0])

# ---------------------------------------------------------------------------------------
# machinery
# ---------------------------------------------------------------------------------------

def _seed(s):
    return zlib.crc32(s.encode()) & 0xFFFFFFFF


def _draw(case_):
    r = np.random.RandomState(_seed(case_.id))
    return [op.draw(r) for op in case_.operands]


def _build(case_, values, dtype):
    variables = [op.make(dtype, v, "v%d" % i) for i, (op, v) in enumerate(zip(case_.operands, values))]
    f = case_.build(*variables)
    if not isinstance(f, C.Function):
        f = C.combine([f])
    feed = {v: val.astype(dtype) for v, op, val in zip(variables, case_.operands, values) if isinstance(op, In)}
    return f, variables, feed


def _samples(case_, values):
    """The number of samples of a per-sample case (its In operands' leading dimension)."""
    return next(v.shape[0] for op, v in zip(case_.operands, values) if isinstance(op, In))


def _sample_args(case_, values, n):
    return [v[n] if isinstance(op, In) else v for op, v in zip(case_.operands, values)]


def _reference(case_, values):
    if case_.batched:
        return np.asarray(case_.ref(*values), dtype=np.float64)
    return np.stack([np.asarray(case_.ref(*_sample_args(case_, values, n)), dtype=np.float64)
                     for n in range(_samples(case_, values))])


def _axes_names(var):
    return tuple("batch" if a == C.Axis.default_batch_axis() else "sequence" for a in var.dynamic_axes)


@pytest.mark.parametrize("case_", CASES, ids=[c.id for c in CASES])
def test_value(case_):
    values = _draw(case_)
    # the reference sees the float32-rounded inputs the engine sees
    values = [v.astype(np.float32).astype(np.float64) for v in values]
    f, _, feed = _build(case_, values, np.float32)
    expected = _reference(case_, values)
    static = expected.shape if case_.batched else expected.shape[1:]
    assert tuple(f.output.shape) == static, "static shape %s, expected %s" % (f.output.shape, static)
    assert _axes_names(f.output) == tuple(case_.axes)
    got = f.eval(feed) if feed else f.eval()
    got = np.asarray(got)
    assert got.dtype == np.float32
    assert got.shape == expected.shape, "value shape %s, expected %s" % (got.shape, expected.shape)
    np.testing.assert_allclose(got, expected, rtol=case_.tol, atol=case_.tol)


GRAD_CASES = [c for c in CASES if c.grad]


def _numeric_grad(case_, values, k):
    if not case_.batched and isinstance(case_.operands[k], In):
        return _numeric_grad_per_sample(case_, values, k)
    base = [v.copy() for v in values]
    g = np.zeros_like(values[k])
    it = np.nditer(values[k], flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        plus = [v.copy() for v in base]
        minus = [v.copy() for v in base]
        plus[k][i] += EPS
        minus[k][i] -= EPS
        g[i] = (_reference(case_, plus).sum() - _reference(case_, minus).sum()) / (2 * EPS)
    return g


def _numeric_grad_per_sample(case_, values, k):
    """Central differences w.r.t. the In operand k of a per-sample case: sample n's input
    only reaches sample n's result, so each element is perturbed in its own sample's call."""
    g = np.zeros_like(values[k])
    for n in range(values[k].shape[0]):
        args = _sample_args(case_, values, n)
        x = args[k].copy()
        it = np.nditer(x, flags=["multi_index"])
        for _ in it:
            i = it.multi_index
            old = x[i]
            x[i] = old + EPS
            plus = np.sum(case_.ref(*(args[:k] + [x] + args[k + 1:])))
            x[i] = old - EPS
            minus = np.sum(case_.ref(*(args[:k] + [x] + args[k + 1:])))
            x[i] = old
            g[(n,) + i] = (plus - minus) / (2 * EPS)
    return g


@pytest.mark.parametrize("case_", GRAD_CASES, ids=[c.id for c in GRAD_CASES])
def test_gradient(case_):
    values = _draw(case_)
    f, variables, feed = _build(case_, values, np.float64)
    wrt_idx = [i for i, op in enumerate(case_.operands) if op.grad]
    assert wrt_idx, "a gradient case needs an operand to differentiate"
    grads = f.grad(feed, wrt=[variables[i] for i in wrt_idx])
    if len(wrt_idx) == 1:
        grads = {variables[wrt_idx[0]]: grads}
    if case_.grad_ref is not None:
        # analytic expectation, per sample (only used where CNTK's rule is not the derivative)
        assert len(case_.operands) == 1
        expected_all = [np.stack([case_.grad_ref(values[0][n])[0] for n in range(N)])]
    else:
        expected_all = [_numeric_grad(case_, values, k) for k in wrt_idx]
    for k, expected in zip(wrt_idx, expected_all):
        got = np.asarray(grads[variables[k]])
        assert got.shape == values[k].shape, "gradient of operand %d: shape %s, expected %s" % (k, got.shape,
                                                                                               values[k].shape)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6,
                                   err_msg="gradient of operand %d (%s)" % (k, type(case_.operands[k]).__name__))


# ---------------------------------------------------------------------------------------
# sequence and batch-of-one variants of every per-sample row
# ---------------------------------------------------------------------------------------

PER_SAMPLE_CASES = [c for c in CASES if not c.batched and any(isinstance(op, In) for op in c.operands)]
_STARTS = np.cumsum((0,) + tuple(SEQ_LENGTHS))[:-1]        # first step of every sequence


def _flagged(case_, flag, *rest):
    """pytest.param of (case_, *rest) marked by a seq flag: True runs, "bug: ..." is a strict
    xfail, any other reason skips."""
    if flag is True:
        return pytest.param(case_, *rest)
    if flag.startswith("bug:"):
        return pytest.param(case_, *rest, marks=pytest.mark.xfail(strict=True, reason=flag))
    return pytest.param(case_, *rest, marks=pytest.mark.skip(reason="no sequence variant: " + flag))


def _in_indices(case_):
    return [i for i, op in enumerate(case_.operands) if isinstance(op, In)]


def _draw_steps(case_, seq_ops):
    """Values of the operands, one row per valid step of all the sequences (one after the
    other): the In operands in ``seq_ops`` are drawn step by step with their generators, the
    other In operands once per sequence (repeated on its steps: they are fed batch-only and
    broadcast over the sequence); parameters and constants as in the table."""
    r = np.random.RandomState(_seed("%s/sequence/%s" % (case_.id, sorted(seq_ops))))
    owner = np.repeat(np.arange(len(SEQ_LENGTHS)), SEQ_LENGTHS)
    return [op.draw(r, sum(SEQ_LENGTHS)) if i in seq_ops else
            op.draw(r, len(SEQ_LENGTHS))[owner] if isinstance(op, In) else op.draw(r)
            for i, op in enumerate(case_.operands)]


def _split(a):
    return np.split(a, _STARTS[1:])


def _build_sequence(case_, values, dtype, seq_ops):
    variables = [op.make_sequence(dtype, "v%d" % i) if i in seq_ops else op.make(dtype, v, "v%d" % i)
                 for i, (op, v) in enumerate(zip(case_.operands, values))]
    f = case_.build(*variables)
    if not isinstance(f, C.Function):
        f = C.combine([f])
    feed = {variables[i]: [s.astype(dtype) for s in _split(values[i])] if i in seq_ops else
            values[i][_STARTS].astype(dtype) for i in _in_indices(case_)}
    return f, variables, feed


def _check_sequences(got, expected, what, dtype, **tol):
    """got: a list of per-sequence arrays; expected: the steps of all sequences, concatenated."""
    assert isinstance(got, list), "%s: %s, expected a list of per-sequence arrays" % (what, type(got).__name__)
    assert len(got) == len(SEQ_LENGTHS), "%s: %d sequences, expected %d" % (what, len(got), len(SEQ_LENGTHS))
    for b, (g, e) in enumerate(zip(got, _split(expected))):
        g = np.asarray(g)
        assert g.dtype == dtype, "%s, sequence %d: dtype %s" % (what, b, g.dtype)
        assert g.shape == e.shape, "%s, sequence %d: shape %s, expected %s" % (what, b, g.shape, e.shape)
        np.testing.assert_allclose(g, e, err_msg="%s, sequence %d (length %d)" % (what, b, len(e)), **tol)


def _check_on_sequences(case_, seq_ops):
    """Value (float32) and gradients (float64) of the row with the In operands in ``seq_ops``
    sequence inputs (the others batch-only): step t of sequence b is the per-sample reference
    on step t's inputs; the gradient of a sequence operand is the per-step central
    difference, of a batch-only operand its sum over the sequence's steps, of a parameter its
    sum over all valid steps."""
    values = [v.astype(np.float32).astype(np.float64) for v in _draw_steps(case_, seq_ops)]
    f, _, feed = _build_sequence(case_, values, np.float32, seq_ops)
    expected = _reference(case_, values)
    assert tuple(f.output.shape) == expected.shape[1:], "static shape %s, expected %s" % (f.output.shape,
                                                                                          expected.shape[1:])
    assert case_.axes == ("batch",)
    assert _axes_names(f.output) == ("batch", "sequence")
    _check_sequences(f.eval(feed), expected, "value", np.float32, rtol=case_.tol, atol=case_.tol)
    if not case_.grad:
        return
    values = _draw_steps(case_, seq_ops)
    f, variables, feed = _build_sequence(case_, values, np.float64, seq_ops)
    wrt_idx = [i for i, op in enumerate(case_.operands) if op.grad]
    grads = f.grad(feed, wrt=[variables[i] for i in wrt_idx])
    if len(wrt_idx) == 1:
        grads = {variables[wrt_idx[0]]: grads}
    if case_.grad_ref is not None:
        expected_all = [np.stack([case_.grad_ref(v)[0] for v in values[0]])]
    else:
        expected_all = [_numeric_grad(case_, values, k) for k in wrt_idx]
    for k, expected in zip(wrt_idx, expected_all):
        got = grads[variables[k]]
        what = "gradient of operand %d (%s)" % (k, type(case_.operands[k]).__name__)
        if k in seq_ops:
            _check_sequences(got, expected, what, np.float64, rtol=1e-5, atol=1e-6)
            continue
        if isinstance(case_.operands[k], In):       # batch-only: summed over its sequence's steps
            expected = np.add.reduceat(expected, _STARTS, axis=0)
        got = np.asarray(got)
        assert got.shape == expected.shape, "%s: shape %s, expected %s" % (what, got.shape, expected.shape)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=what)


@pytest.mark.parametrize("case_", [_flagged(c, c.seq) for c in PER_SAMPLE_CASES],
                         ids=[c.id for c in PER_SAMPLE_CASES])
def test_sequence_variant(case_):
    """The row with every In operand a sequence input fed sequences of lengths SEQ_LENGTHS:
    the value is a list of per-sequence arrays whose step t is the reference on step t's
    inputs, and the gradients are the per-step central differences (parameters: summed over
    all valid steps). Padding leaks into neither."""
    _check_on_sequences(case_, set(_in_indices(case_)))


BROADCAST_CASES = [(c, i) for c in PER_SAMPLE_CASES if len(_in_indices(c)) > 1 for i in _in_indices(c)]


@pytest.mark.parametrize("case_, seq_op",
                         [_flagged(c, c.broadcast_flag(i), i) for c, i in BROADCAST_CASES],
                         ids=["%s-seq%d" % (c.id, i) for c, i in BROADCAST_CASES])
def test_sequence_broadcast_variant(case_, seq_op):
    """Rows with several In operands: operand ``seq_op`` a sequence input, the others
    batch-only inputs (one sample per sequence), which broadcast over the steps of their
    sequence; batch-only gradients are summed over those steps."""
    _check_on_sequences(case_, {seq_op})


@pytest.mark.parametrize("case_", PER_SAMPLE_CASES, ids=[c.id for c in PER_SAMPLE_CASES])
def test_batch_of_one_variant(case_):
    """Every sample evaluated alone (a minibatch of one) equals its row of the minibatch
    result: nothing leaks across samples (float64, so the comparison can be tight)."""
    values = _draw(case_)
    f, variables, feed = _build(case_, values, np.float64)
    together = np.asarray(f.eval(feed))
    for n in range(N):
        alone = np.asarray(f.eval({v: x[n:n + 1] for v, x in feed.items()}))
        assert alone.shape == (1,) + together.shape[1:], "sample %d alone: shape %s" % (n, alone.shape)
        np.testing.assert_allclose(alone[0], together[n], rtol=1e-10, atol=1e-12, err_msg="sample %d alone" % n)


# ---------------------------------------------------------------------------------------
# graph utilities of cntk.ops
# ---------------------------------------------------------------------------------------

def test_combine_and_as_composite():
    x = C.input_variable(3)
    a, b = C.sin(x), C.square(x)
    f = C.combine(a, b)
    X = np.random.RandomState(1).uniform(-1, 1, (2, 3)).astype(np.float32)
    res = f.eval({x: X})
    assert len(res) == 2
    np.testing.assert_allclose(res[a.output], np.sin(X), rtol=1e-6)
    np.testing.assert_allclose(res[b.output], X * X, rtol=1e-6)
    g = C.as_composite(b.root_function if hasattr(b, "root_function") else b, name="sq")
    np.testing.assert_allclose(g.eval({x: X}), X * X, rtol=1e-6)
    with pytest.raises(ValueError):
        C.combine(a, a)


def test_as_block_evaluates_its_composite():
    ph = C.placeholder()
    inner = C.tanh(ph) * 2.0
    x = C.input_variable(3, needs_gradient=True, dtype=np.float64)
    blk = C.as_block(inner, [(ph, x)], "Twice")
    X = np.random.RandomState(2).uniform(-1, 1, (2, 3))
    np.testing.assert_allclose(blk.eval({x: X}), 2 * np.tanh(X), rtol=1e-12)
    np.testing.assert_allclose(blk.grad({x: X}, wrt=[x]), 2 * (1 - np.tanh(X) ** 2), rtol=1e-10)


def test_argmax_hardmax_have_no_gradient_path():
    """Non-differentiable ops contribute nothing: the gradient comes from the other term only."""
    x = C.input_variable(4, needs_gradient=True, dtype=np.float64)
    f = C.reduce_sum(C.hardmax(x) * 3.0 + C.argmax(x, axis=0) + C.greater(x, 0.0) + x * x)
    X = np.random.RandomState(3).uniform(-1, 1, (2, 4))
    np.testing.assert_allclose(f.grad({x: X}, wrt=[x]), 2 * X, rtol=1e-12)


def test_clip_bounds_receive_no_gradient():
    """CNTK passes the gradient to the clipped operand only (where lo <= x <= hi)."""
    x = C.input_variable(4, needs_gradient=True, dtype=np.float64)
    lo = C.parameter((4,), init=np.full(4, -0.5), dtype=np.float64)
    hi = C.parameter((4,), init=np.full(4, 0.5), dtype=np.float64)
    f = C.clip(x, lo, hi)
    X = np.array([[-1.0, -0.2, 0.3, 2.0]])
    g = f.grad({x: X}, wrt=[x, lo, hi])
    np.testing.assert_array_equal(g[x], [[0, 1, 1, 0]])
    np.testing.assert_array_equal(g[lo], np.zeros(4))
    np.testing.assert_array_equal(g[hi], np.zeros(4))


def test_guarded_numerics_follow_cntk():
    """CNTK clips log's argument (log 0 = -85.1), defines 1/0 = 0 for reciprocal, clips a
    division's denominator to +-1e-30, clips sqrt's argument at 0 and uses a safe pow."""
    x = C.input_variable(4)
    X = np.array([[0.0, -1.0, 1e-40, 1.0]], np.float32)
    np.testing.assert_allclose(C.log(x).eval({x: X}), [[-85.1, -85.1, -85.1, 0.0]], rtol=1e-6)
    R = np.array([[0.0, -0.5, 4.0, 1.0]], np.float32)
    np.testing.assert_array_equal(C.reciprocal(x).eval({x: R}), [[0.0, -2.0, 0.25, 1.0]])
    np.testing.assert_array_equal(C.sqrt(x).eval({x: R}), [[0.0, 0.0, 2.0, 1.0]])
    np.testing.assert_allclose(C.element_divide(1.0, x).eval({x: X}), [[-1e30, -1.0, 1e30, 1.0]], rtol=1e-6)
    P = np.array([[0.0, -2.0, 4.0, 0.0]], np.float32)
    np.testing.assert_array_equal(C.pow(x, -1.0).eval({x: P}), [[0.0, -0.5, 0.25, 0.0]])
    np.testing.assert_array_equal(C.pow(x, 0.0).eval({x: P}), [[1.0, 1.0, 1.0, 1.0]])
    assert np.isnan(C.pow(x, 0.5).eval({x: P})[0, 1])


# ---------------------------------------------------------------------------------------
# sequences: the padding of variable-length sequences never leaks
# ---------------------------------------------------------------------------------------

LENGTHS = [3, 1, 4]


def _seqs(r, shape, gen):
    return [gen(r, (n,) + shape) for n in LENGTHS]


SEQ_CASES = [
    # id, build(x, w), x item shape, x generator, w (Par/None)
    ("sqrt_times_param", lambda x, w: C.sqrt(x * w), (3,), POS(), Par((3,), POS())),
    ("log_times_param", lambda x, w: C.log(x * w), (3,), POS(), Par((3,), POS())),
    ("param_divided_by_x", lambda x, w: C.element_divide(w, x), (3,), POS(), Par((3,))),
    ("reciprocal_pow", lambda x, w: C.pow(C.reciprocal(x) + 1.0, w), (3,), POS(), Par((3,), U(0.5, 1.5))),
    ("times", lambda x, w: C.times(C.log(x), w), (3,), POS(), Par((3, 2))),
    ("softmax_axis", lambda x, w: C.softmax(C.log(x) * w, axis=0), (3, 2), POS(), Par((2,))),
    ("log_softmax", lambda x, w: C.log_softmax(C.sqrt(x) + w), (4,), POS(), Par((4,))),
    ("reduce_sum_axis", lambda x, w: C.reduce_sum(C.log(x) * w, axis=1), (2, 3), POS(), Par((3,))),
    ("reduce_max", lambda x, w: C.reduce_max(C.sqrt(x) * w), (2, 3), POS(), Par((3,), POS())),
    ("reduce_log_sum_exp_none", lambda x, w: C.reduce_log_sum_exp(C.log(x) + w, keepdims=False, axis=0),
     (2, 3), POS(), Par((3,))),
    ("slice_splice", lambda x, w: C.splice(C.sqrt(x)[:, 1:], w, axis=1), (2, 3), POS(), Par((2, 1))),
    ("reshape_transpose", lambda x, w: C.transpose(C.reshape(C.log(x), (3, 2))) * w, (2, 3), POS(), Par((2, 1))),
    ("times_transpose", lambda x, w: C.times_transpose(C.sqrt(x), w), (3,), POS(), Par((2, 3))),
    ("cross_entropy", lambda x, w: C.cross_entropy_with_softmax(C.log(x) * w, C.softmax(x)), (4,), POS(), Par((4,))),
    ("squared_error", lambda x, w: C.squared_error(C.sqrt(x), w), (2, 2), POS(), Par((2, 2))),
    ("element_select", lambda x, w: C.element_select(C.greater(x, 1.0), C.log(x), w), (3,), POS(), Par((3,))),
    ("hardmax_argmax", lambda x, w: C.hardmax(C.log(x) * w) + C.argmax(x, axis=0), (4,), POS(), Par((4,))),
    ("classification_error", lambda x, w: C.classification_error(C.log(x) * w, C.hardmax(x)), (4,), POS(), Par((4,))),
]


@pytest.mark.parametrize("sid, build, shape, gen, par", SEQ_CASES, ids=[c[0] for c in SEQ_CASES])
def test_sequence_padding_never_leaks(sid, build, shape, gen, par):
    r = np.random.RandomState(_seed(sid))
    seqs = _seqs(r, shape, gen)
    wv = par.draw(r)
    x = C.sequence.input_variable(shape, dtype=np.float64, needs_gradient=True)
    w = C.parameter(par.shape, init=wv, dtype=np.float64)
    f = build(x, w)
    assert _axes_names(f.output) == ("batch", "sequence")
    together = f.eval({x: seqs})
    assert len(together) == len(seqs)
    differentiable = sid not in ("hardmax_argmax", "classification_error")
    if differentiable:
        g_together = f.grad({x: seqs}, wrt=[x, w])
        g_w_sum = np.zeros_like(wv)
    for i, s in enumerate(seqs):
        alone = f.eval({x: [s]})[0]
        assert np.all(np.isfinite(together[i]))
        np.testing.assert_allclose(together[i], alone, rtol=1e-12, atol=1e-12, err_msg="sequence %d" % i)
        if differentiable:
            g_alone = f.grad({x: [s]}, wrt=[x, w])
            np.testing.assert_allclose(g_together[x][i], g_alone[x][0], rtol=1e-10, atol=1e-12)
            g_w_sum += g_alone[w]
    if differentiable:
        assert np.all(np.isfinite(g_together[w])), "padding leaked into the parameter gradient"
        np.testing.assert_allclose(g_together[w], g_w_sum, rtol=1e-10, atol=1e-12)


def test_sequence_values_match_numpy_per_step():
    """Per-step ops on sequences equal the numpy reference applied to every step."""
    r = np.random.RandomState(11)
    seqs = _seqs(r, (2, 3), POS())
    W = r.uniform(-1, 1, (3, 4))
    x = C.sequence.input_variable((2, 3))
    f = C.times(C.log(x), C.parameter((3, 4), init=W.astype(np.float32)))
    out = f.eval({x: [s.astype(np.float32) for s in seqs]})
    for s, o in zip(seqs, out):
        np.testing.assert_allclose(o, np.log(s.astype(np.float32)) @ W.astype(np.float32), rtol=1e-5, atol=1e-6)


def test_batch_operand_broadcasts_over_sequence():
    """x + b with b batch-only adds b[i] to every step of sequence i (spec 14)."""
    r = np.random.RandomState(12)
    seqs = _seqs(r, (3,), U())
    B = r.uniform(-1, 1, (len(LENGTHS), 3))
    x = C.sequence.input_variable(3, dtype=np.float64, needs_gradient=True)
    b = C.input_variable(3, dtype=np.float64, needs_gradient=True)
    f = C.sqrt(C.square(x) + b * b + 1.0)
    out = f.eval({x: seqs, b: B})
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(out[i], np.sqrt(s ** 2 + B[i] ** 2 + 1.0), rtol=1e-12)
    g = f.grad({x: seqs, b: B}, wrt=[b])
    expected = np.stack([(B[i] / np.sqrt(s ** 2 + B[i] ** 2 + 1.0)).sum(0) for i, s in enumerate(seqs)])
    np.testing.assert_allclose(g, expected, rtol=1e-10)


def test_reduce_all_axes_over_sequences_ignores_padding():
    r = np.random.RandomState(13)
    seqs = _seqs(r, (2,), POS())
    x = C.sequence.input_variable(2, dtype=np.float64, needs_gradient=True)
    allv = np.concatenate(seqs)
    for op, ref in [(C.reduce_sum, np.sum), (C.reduce_mean, np.mean), (C.reduce_max, np.max), (C.reduce_min, np.min),
                    (C.reduce_prod, np.prod), (C.reduce_log_sum_exp, lambda a: np.log(np.exp(a).sum()))]:
        f = op(C.log(x), axis=C.Axis.all_axes())
        np.testing.assert_allclose(f.eval({x: seqs}), ref(np.log(allv)), rtol=1e-12)
        g = f.grad({x: seqs}, wrt=[x])
        assert all(np.all(np.isfinite(gi)) for gi in g)


def test_times_reduce_sequence_axis():
    r = np.random.RandomState(14)
    xs = _seqs(r, (3,), U())
    ys = _seqs(r, (3, 4), U())
    x = C.sequence.input_variable(3, dtype=np.float64, needs_gradient=True)
    y = C.sequence.input_variable((3, 4), dtype=np.float64, needs_gradient=True)
    f = C.times(x, y, infer_input_rank_to_map=C.TIMES_REDUCE_SEQUENCE_AXIS_WITHOUT_INFERRED_INPUT_RANK)
    assert _axes_names(f.output) == ("batch",)
    out = f.eval({x: xs, y: ys})
    np.testing.assert_allclose(out, np.stack([np.einsum("ti,tio->o", a, b) for a, b in zip(xs, ys)]), rtol=1e-12)
    g = f.grad({x: xs, y: ys}, wrt=[x, y])
    for a, b, ga, gb in zip(xs, ys, g[x], g[y]):
        np.testing.assert_allclose(ga, b.sum(-1), rtol=1e-12)
        np.testing.assert_allclose(gb, np.broadcast_to(a[:, :, None], b.shape), rtol=1e-12)


def test_times_infer_input_rank_to_map():
    x = C.input_variable((2, 3, 4), dtype=np.float64, needs_gradient=True)
    for m, expect_w, out_shape in [(0, (24, 5), (5,)), (1, (12, 5), (2, 5)), (2, (4, 5), (2, 3, 5))]:
        W = C.parameter((C.InferredDimension, 5), init=C.glorot_uniform(), dtype=np.float64)
        f = C.times(x, W, infer_input_rank_to_map=m)
        wv = W.value
        assert wv.shape == expect_w or (wv.size == np.prod(expect_w)), wv.shape
        assert tuple(f.output.shape) == out_shape
        X = np.random.RandomState(m).uniform(-1, 1, (2, 2, 3, 4))
        lead = X.shape[:1 + m]
        exp = (X.reshape(lead + (-1,)) @ wv.reshape(-1, 5)).reshape(lead + (5,))
        np.testing.assert_allclose(f.eval({x: X}), exp, rtol=1e-12)


# ---------------------------------------------------------------------------------------
# coverage: every public op has a case
# ---------------------------------------------------------------------------------------

NOT_OPS = {
    # constructors and helpers, exercised by every test above
    "input_variable", "input", "placeholder", "parameter", "constant", "output_variable", "sanitize_input",
    "load_model",
    # graph utilities, tested in test_combine_and_as_composite / test_as_block_evaluates_its_composite
    "combine", "as_composite", "as_block",
    # sequence ops live in cntk.ops.sequence (their own suite)
    "past_value", "future_value",
    # needs sequence operands: its own suite, tests/ops/test_optimized_rnnstack.py
    "optimized_rnnstack",
}


def _public_ops():
    import inspect
    import cntk.losses
    import cntk.metrics
    import cntk.ops
    names = set()
    for mod in (cntk.ops, cntk.losses, cntk.metrics):
        for name, obj in vars(mod).items():
            # ops defined in the module itself or in a family module re-exported by it
            # (cntk.ops.convolution, ...); sequence ops and graph utilities have their own suites
            if not name.startswith("_") and inspect.isfunction(obj) and \
                    obj.__module__.startswith(mod.__name__) and \
                    not obj.__module__.startswith(("cntk.ops.sequence", "cntk.ops.functions", "cntk.ops.indexing")):
                names.add(name)
    return names


def test_every_public_op_has_a_reference_case():
    covered = {c.op for c in CASES}
    missing = sorted(_public_ops() - covered - NOT_OPS)
    assert not missing, "public ops without a case in test_ops_reference.py: %s" % ", ".join(missing)
