"""Trainer: sums and sample counts as CNTK counts them (sequence padding excluded), gradients of
the summed loss, several learners, frozen parameters, argument forms, bad input."""

import numpy as np
import pytest

import cntk as C
from train_fixtures import RecordingLearner, MinibatchData

W0 = np.array([[0.5, -0.3], [0.2, 0.8], [-0.6, 0.1]])
B0 = np.array([0.1, -0.2])


def linear_model(sequence, dtype=np.float64):
    make = C.sequence.input_variable if sequence else C.input_variable
    x = make(3, dtype=dtype, name='x')
    t = make(2, dtype=dtype, name='t')
    W = C.parameter((3, 2), init=W0, dtype=dtype, name='W')
    b = C.parameter((2,), init=B0, dtype=dtype, name='b')
    z = C.times(x, W) + b
    return x, t, W, b, z


def np_loss_and_grads(xs, ts, W, b):
    """Summed squared error, its gradients and the count of samples, over a list of sequences."""
    X = np.concatenate(xs)
    T = np.concatenate(ts)
    Z = X @ W + b
    loss = ((Z - T) ** 2).sum()
    dZ = 2 * (Z - T)
    errors = (Z.argmax(1) != T.argmax(1)).sum()
    return loss, X.T @ dZ, dZ.sum(0), len(X), errors


def one_hot_seq(rng, n):
    return np.eye(2)[rng.integers(0, 2, n)]


def test_sequence_sums_exclude_padding():
    x, t, W, b, z = linear_model(True)
    loss = C.squared_error(z, t)
    err = C.classification_error(z, t)
    learner = RecordingLearner([W, b], lr=0.0)
    trainer = C.Trainer(z, (loss, err), [learner])
    rng = np.random.default_rng(0)
    lengths = [4, 1, 3]
    xs = [rng.standard_normal((n, 3)) for n in lengths]
    ts = [one_hot_seq(rng, n) for n in lengths]
    assert trainer.train_minibatch({x: xs, t: ts}) is True
    ref_loss, gW, gb, count, errors = np_loss_and_grads(xs, ts, W0, B0)
    assert trainer.previous_minibatch_sample_count == count == 8
    assert trainer.previous_minibatch_loss_average == pytest.approx(ref_loss / count, rel=1e-12)
    assert trainer.previous_minibatch_evaluation_average == pytest.approx(errors / count, rel=1e-12)
    grads, n, sweep_end = learner.calls[0]
    assert n == 8 and sweep_end is False
    np.testing.assert_allclose(grads[W], gW, rtol=1e-12)
    np.testing.assert_allclose(grads[b], gb, rtol=1e-12)
    # a sequence's result does not depend on its companions (padding never leaks)
    alone = RecordingLearner([W, b])
    C.Trainer(z, (loss, err), [alone]).train_minibatch({x: xs[1:2], t: ts[1:2]})
    ref1 = np_loss_and_grads(xs[1:2], ts[1:2], W0, B0)
    np.testing.assert_allclose(alone.calls[0][0][W], ref1[1], rtol=1e-12)
    assert trainer.test_minibatch({x: xs, t: ts}) == pytest.approx(errors / count, rel=1e-12)


def test_gradient_matches_finite_differences():
    x, t, W, b, z = linear_model(True)
    loss = C.cross_entropy_with_softmax(C.tanh(z), t)
    learner = RecordingLearner([W, b])
    trainer = C.Trainer(z, loss, [learner])
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((n, 3)) for n in (2, 5)]
    ts = [one_hot_seq(rng, n) for n in (2, 5)]
    trainer.train_minibatch({x: xs, t: ts})
    g = learner.calls[0][0][W]

    def summed():
        return sum(float(np.sum(v)) for v in loss.eval({x: xs, t: ts}))
    eps = 1e-6
    fd = np.zeros_like(W0)
    for i in range(3):
        for j in range(2):
            w = W0.copy()
            w[i, j] += eps
            W.value = w
            up = summed()
            w[i, j] -= 2 * eps
            W.value = w
            fd[i, j] = (up - summed()) / (2 * eps)
    W.value = W0
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


def test_batch_counts_and_scalar_loss_counts_from_graph():
    x, t, W, b, z = linear_model(False)
    rng = np.random.default_rng(2)
    X, T = rng.standard_normal((5, 3)), np.eye(2)[rng.integers(0, 2, 5)]
    learner = RecordingLearner([W, b])
    trainer = C.Trainer(z, C.squared_error(z, t), [learner])
    trainer.train_minibatch({x: X, t: T})
    assert trainer.previous_minibatch_sample_count == 5
    assert learner.calls[0][1] == 5
    # a loss already reduced to a scalar: the count comes from the first variable with dynamic axes
    xs, ts = [rng.standard_normal((n, 3)) for n in (3, 2)], [one_hot_seq(rng, n) for n in (3, 2)]
    xq, tq, Wq, bq, zq = linear_model(True)
    total = C.reduce_sum(C.squared_error(zq, tq), axis=C.Axis.all_axes())
    lq = RecordingLearner([Wq, bq])
    tr = C.Trainer(zq, total, [lq])
    tr.train_minibatch({xq: xs, tq: ts})
    ref = np_loss_and_grads(xs, ts, W0, B0)
    assert tr.previous_minibatch_sample_count == 5
    assert tr.previous_minibatch_loss_average == pytest.approx(ref[0] / 5, rel=1e-12)
    np.testing.assert_allclose(lq.calls[0][0][Wq], ref[1], rtol=1e-12)


def test_several_learners_and_frozen_parameters(capsys):
    x, t, W, b, z = linear_model(False)
    c = C.parameter((2,), init=np.array([1.0, 2.0]), dtype=np.float64, name='c')
    zc = z * c
    loss = C.squared_error(zc, t)
    lw = RecordingLearner([W], lr=0.01)
    lb = RecordingLearner([b], lr=0.1)
    trainer = C.Trainer(zc, loss, [lw, lb])
    assert "not covered by any of the specified Learners" in capsys.readouterr().err
    rng = np.random.default_rng(3)
    X, T = rng.standard_normal((4, 3)), np.eye(2)[rng.integers(0, 2, 4)]
    trainer.train_minibatch([X, T])    # positional: in the loss's argument order
    Z = X @ W0 + B0
    dZ = 2 * (Z * [1.0, 2.0] - T) * [1.0, 2.0]
    np.testing.assert_allclose(W.value, W0 - 0.01 * (X.T @ dZ), rtol=1e-12)
    np.testing.assert_allclose(b.value, B0 - 0.1 * dZ.sum(0), rtol=1e-12)
    np.testing.assert_array_equal(c.value, [1.0, 2.0])     # frozen
    assert [p.name for p in lw.calls[0][0]] == ['W']


def test_bad_learner_sets():
    x, t, W, b, z = linear_model(False)
    loss = C.squared_error(z, t)
    with pytest.raises(ValueError, match="'W' is given to learner 0 and to learner 1"):
        C.Trainer(z, loss, [RecordingLearner([W, b]), RecordingLearner([W])])
    other = C.parameter((2,), name='stranger')
    with pytest.raises(ValueError, match="'stranger'.*not part of the model"):
        C.Trainer(z, loss, [C.sgd([W, b, other], C.learning_parameter_schedule(0.1))])
    with pytest.raises(TypeError, match="not a learner"):
        C.Trainer(z, loss, [object()])
    with pytest.raises(ValueError, match="singleton or a tuple of 2"):
        C.Trainer(z, (loss, loss, loss), [RecordingLearner([W])])


def test_criterion_forms_outputs_and_names():
    x, t, W, b, z = linear_model(False)
    loss = C.squared_error(z, t)
    err = C.classification_error(z, t)
    rng = np.random.default_rng(4)
    X, T = rng.standard_normal((6, 3)), np.eye(2)[rng.integers(0, 2, 6)]
    trainer = C.Trainer(z, C.combine([loss, err]), [RecordingLearner([W, b])])
    ok, out = trainer.train_minibatch({'x': X, 't': T}, outputs=[z.output, loss])
    assert ok is True
    np.testing.assert_allclose(out[z.output], X @ W0 + B0, rtol=1e-12)
    np.testing.assert_allclose(out[loss].reshape(-1), ((X @ W0 + B0 - T) ** 2).sum(1), rtol=1e-12)
    ref = np_loss_and_grads([X], [T], W0, B0)
    assert trainer.previous_minibatch_evaluation_average == pytest.approx(ref[4] / 6)
    assert trainer.model is z and trainer.loss_function.output is loss.output
    assert trainer.evaluation_function.output is err.output
    tr2 = C.Trainer(z, (loss, None), [RecordingLearner([W, b])])
    tr2.train_minibatch({x: X, t: T})
    with pytest.raises(ValueError, match="no evaluation function"):
        tr2.previous_minibatch_evaluation_average
    with pytest.raises(ValueError, match="no evaluation function"):
        tr2.test_minibatch({x: X, t: T})


def test_empty_minibatch_and_minibatch_data_sweep_flag():
    x, t, W, b, z = linear_model(False)
    learner = RecordingLearner([W, b])
    trainer = C.Trainer(z, C.squared_error(z, t), [learner])
    assert trainer.train_minibatch({}) is False
    assert trainer.previous_minibatch_sample_count == 0
    with pytest.raises(RuntimeError, match="no preceding call"):
        trainer.previous_minibatch_loss_average
    X, T = np.ones((3, 3)), np.eye(2)[[0, 1, 0]]
    trainer.train_minibatch({x: MinibatchData(X, 3, 3, True), t: MinibatchData(T, 3, 3, False)})
    assert learner.calls[-1][1:] == (3, True)
    trainer.train_minibatch({x: MinibatchData(X, 3, 3, True), t: T}, is_sweep_end=False)
    assert learner.calls[-1][1:] == (3, False)
    trainer.train_minibatch({x: X, t: T}, is_sweep_end=True)
    assert learner.calls[-1][2] is True
    assert trainer.total_number_of_samples_seen == 9


def test_real_learner_update_uses_summed_gradient():
    """sgd with a per-sample rate steps lr * (sum of per-sample gradients), as CNTK's learners expect."""
    x, t, W, b, z = linear_model(True)
    learner = C.sgd([W, b], C.learning_parameter_schedule_per_sample(0.05))
    trainer = C.Trainer(z, C.squared_error(z, t), [learner])
    rng = np.random.default_rng(5)
    xs, ts = [rng.standard_normal((n, 3)) for n in (3, 1)], [one_hot_seq(rng, n) for n in (3, 1)]
    trainer.train_minibatch({x: xs, t: ts})
    ref = np_loss_and_grads(xs, ts, W0, B0)
    np.testing.assert_allclose(W.value, W0 - 0.05 * ref[1], rtol=1e-12)
    np.testing.assert_allclose(b.value, B0 - 0.05 * ref[2], rtol=1e-12)
    assert trainer.total_number_of_samples_seen == 4


def test_evaluator_on_sequences_and_progress():
    x, t, W, b, z = linear_model(True)
    err = C.classification_error(z, t)

    class Collect(C.logging.ProgressWriter):
        def __init__(self):
            super().__init__(test_update_write_freq=1)
            self.updates, self.summaries = [], []

        def on_write_test_update(self, samples, updates, aggregate_metric):
            self.updates.append((samples, updates, aggregate_metric))

        def on_write_test_summary(self, samples, updates, summaries, aggregate_metric, elapsed_milliseconds):
            self.summaries.append((samples, updates, summaries, aggregate_metric))
    w = Collect()
    ev = C.Evaluator(err, [w])
    rng = np.random.default_rng(6)
    total_err = total_n = 0
    for lengths in ([2, 5], [1]):
        xs = [rng.standard_normal((n, 3)) for n in lengths]
        ts = [one_hot_seq(rng, n) for n in lengths]
        ref = np_loss_and_grads(xs, ts, W0, B0)
        assert ev.test_minibatch({x: xs, t: ts}) == pytest.approx(ref[4] / ref[3])
        total_err += ref[4]
        total_n += ref[3]
    ev.summarize_test_progress()
    assert [u[0] for u in w.updates] == [(0, 7), (7, 8)]
    assert w.updates[-1][2][1] == pytest.approx(total_err)
    assert w.summaries == [(8, 2, 1, pytest.approx(total_err))]
    with pytest.raises(ValueError, match="must not be None"):
        C.Evaluator(None)
