"""training_session: checkpoints, progress summaries and cross validation at frequencies in
samples, minibatches and sweeps; the final test; max_samples; minibatch size schedules; restart
from a checkpoint (reader position included) giving the same parameters as an uninterrupted run."""

import os

import numpy as np
import pytest

import cntk as C
from cntk.train import DataUnit
from train_fixtures import ArraySource

N = 20      # samples per sweep


def data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3)).astype(np.float32)
    Y = np.eye(2, dtype=np.float32)[(X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)]
    return X, Y


def setup(progress_writers=None, max_sweeps=3, momentum=False):
    x = C.input_variable(3, name='x')
    y = C.input_variable(2, name='y')
    W = C.parameter((3, 2), init=np.array([[0.5, -0.3], [0.2, 0.8], [-0.6, 0.1]], np.float32), name='W')
    z = C.times(x, W)
    loss = C.cross_entropy_with_softmax(z, y)
    err = C.classification_error(z, y)
    lr = C.learning_parameter_schedule(0.5)
    learner = C.momentum_sgd([W], lr, C.momentum_schedule(0.9)) if momentum else C.sgd([W], lr)
    trainer = C.Trainer(z, (loss, err), [learner], progress_writers)
    X, Y = data()
    source = ArraySource({'features': list(X), 'labels': list(Y)}, max_sweeps=max_sweeps)
    mapping = {x: source.streams['features'], y: source.streams['labels']}
    return x, y, z, W, trainer, source, mapping


class Recorder(C.logging.ProgressWriter):
    """Keeps every summary."""

    def __init__(self):
        super().__init__()
        self.training, self.test = [], []

    def on_write_training_summary(self, samples, updates, summaries, aggregate_loss, aggregate_metric, elapsed_ms):
        self.training.append((samples, updates, summaries))

    def on_write_test_summary(self, samples, updates, summaries, aggregate_metric, elapsed_ms):
        self.test.append((samples, updates, aggregate_metric))


class CountingSession(C.train.TrainingSession):
    def __init__(self, *args):
        super().__init__(*args)
        self.checkpoints = []

    def on_checkpoint_start(self, index):
        self.checkpoints.append(index)


@pytest.mark.parametrize("frequency, expected", [
    (8, [0, 1, 2, 3, 4, 5, 6, 7]),                  # every 8 samples, plus the last partial period
    ((3, DataUnit.minibatch), [0, 1, 2, 3, 4]),     # 15 minibatches of 4
    ((1, DataUnit.sweep), [0, 1, 2]),               # 3 sweeps
    (None, [0]),                                    # once, at the end
])
def test_checkpoint_frequency_units(tmp_path, frequency, expected):
    x, y, z, W, trainer, source, mapping = setup()
    name = str(tmp_path / "ckpt")
    cp = C.CheckpointConfig(name, frequency=frequency, preserve_all=True)
    session = CountingSession(trainer, source, 4, mapping, None, None, cp, None, None)
    session.train()
    assert session.checkpoints == expected
    assert trainer.total_number_of_samples_seen == 60
    files = sorted(f for f in os.listdir(tmp_path) if not f.endswith(".ckp"))
    assert files == sorted(["ckpt%d" % i for i in expected] + ["ckpt"])
    state = C.Trainer(z, C.cross_entropy_with_softmax(z, y), [C.sgd([W], C.learning_parameter_schedule(0.1))]) \
        .restore_from_checkpoint(name + str(expected[-1]))
    assert state["TrainingMinibatchSource"] == {"position": 0, "sweep": 3}


@pytest.mark.parametrize("frequency, indices", [
    (10, [0, 1, 2, 3, 4, 5]),
    ((2, DataUnit.minibatch), [0, 1, 2, 3, 4, 5, 6, 7]),
    ((1, DataUnit.sweep), [0, 1, 2]),
])
def test_cross_validation_callback(frequency, indices):
    x, y, z, W, trainer, source, mapping = setup()
    Xv, Yv = data(7, seed=1)
    cv_source = ArraySource({'features': list(Xv), 'labels': list(Yv)}, max_sweeps=1)
    err = trainer.evaluation_function
    seen = []

    def callback(index, average_error, num_samples, num_minibatches):
        expected = float(np.mean(err.eval({x: Xv, y: Yv})))
        seen.append(index)
        assert average_error == pytest.approx(expected)
        assert (num_samples, num_minibatches) == (7, 3)        # minibatches of 3, 3, 1
        assert cv_source.position == 0 and cv_source.sweep == 0  # rewound after each validation
        return True
    cv = C.CrossValidationConfig(cv_source, frequency=frequency, minibatch_size=3, callback=callback)
    C.training_session(trainer, source, 4, mapping, cv_config=cv).train()
    assert seen == indices


def test_cross_validation_can_stop_training():
    x, y, z, W, trainer, source, mapping = setup()
    calls = []

    def callback(index, average_error, num_samples, num_minibatches):
        calls.append((index, average_error, num_samples, num_minibatches))
        return index < 1
    cv = C.CrossValidationConfig(frequency=(1, DataUnit.sweep), callback=callback)   # no source: callback only
    C.training_session(trainer, source, 4, mapping, cv_config=cv).train()
    assert calls == [(0, 0, 0, 0), (1, 0, 0, 0)]
    assert trainer.total_number_of_samples_seen == 2 * N


def test_cross_validation_max_samples():
    x, y, z, W, trainer, source, mapping = setup(max_sweeps=1)
    Xv, Yv = data(9, seed=2)
    cv_source = ArraySource({'features': list(Xv), 'labels': list(Yv)}, max_sweeps=1)
    got = []
    cv = C.CrossValidationConfig(cv_source, minibatch_size=4, max_samples=6,
                                 callback=lambda *a: got.append(a[2:]) or True)
    C.training_session(trainer, source, 5, mapping, cv_config=cv).train()
    assert got == [(6, 2)]
    assert cv_source.calls == [4, 2]


def test_progress_summaries_and_final_test(capsys):
    rec = Recorder()
    printer = C.logging.ProgressPrinter(tag='Training', num_epochs=3)
    x, y, z, W, trainer, source, mapping = setup([rec, printer])
    Xt, Yt = data(11, seed=3)
    test_source = ArraySource({'features': list(Xt), 'labels': list(Yt)}, max_sweeps=1)
    test = C.TestConfig(test_source, minibatch_size=5)
    C.training_session(trainer, source, 4, mapping, progress_frequency=N, test_config=test).train()
    assert rec.training == [(20, 5, 1), (20, 5, 2), (20, 5, 3)]
    expected = float(np.sum(trainer.evaluation_function.eval({x: Xt, y: Yt})))
    assert rec.test == [(11, 3, pytest.approx(expected))]
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["Learning rate per minibatch", "Finished Epoch[1 of 3]",
                                                     "Finished Epoch[2 of 3]", "Finished Epoch[3 of 3]",
                                                     "Finished Evaluation [1]"]
    assert out[0] == "Learning rate per minibatch: 0.5"   # reported once: the rate does not change
    assert out[-1] == "Finished Evaluation [1]: Minibatch[1-3]: metric = %.2f%% * 11;" % (100 * expected / 11)


def test_max_samples_and_minibatch_size_schedule():
    x, y, z, W, trainer, source, mapping = setup(max_sweeps=None)
    C.training_session(trainer, source, 4, mapping, max_samples=30).train()
    assert trainer.total_number_of_samples_seen == 30
    assert source.calls == [4] * 7 + [2]
    x, y, z, W, trainer, source, mapping = setup(max_sweeps=2)
    schedule = C.minibatch_size_schedule([4, 8], epoch_size=N)
    C.training_session(trainer, source, schedule, mapping).train()
    # 5 minibatches of 4, then 8, 8 and the 4 left in the second sweep
    assert source.calls[:8] == [4, 4, 4, 4, 4, 8, 8, 8]
    assert trainer.total_number_of_samples_seen == 2 * N


def test_restart_from_checkpoint_continues_exactly(tmp_path, capsys):
    x, y, z, W, trainer, source, mapping = setup(momentum=True)
    C.training_session(trainer, source, 4, mapping).train()
    uninterrupted = W.value

    name = str(tmp_path / "run" / "model")
    x, y, z, W, trainer, source, mapping = setup(momentum=True)
    cp = C.CheckpointConfig(name, frequency=8)
    C.training_session(trainer, source, 4, mapping, max_samples=28, checkpoint_config=cp).train()
    assert trainer.total_number_of_samples_seen == 28
    assert source.position == 8          # 28 = one sweep of 20 and 8 samples

    x, y, z, W, trainer, source, mapping = setup(momentum=True)
    C.training_session(trainer, source, 4, mapping, checkpoint_config=cp).train()
    assert "Restoring training session from the checkpoint" in capsys.readouterr().err
    assert trainer.total_number_of_samples_seen == 60
    np.testing.assert_array_equal(W.value, uninterrupted)


def test_restore_picks_newest_numbered_checkpoint(tmp_path, capsys):
    name = str(tmp_path / "m")
    x, y, z, W, trainer, source, mapping = setup()
    cp = C.CheckpointConfig(name, frequency=(1, DataUnit.sweep), preserve_all=True)
    C.training_session(trainer, source, 4, mapping, max_samples=45, checkpoint_config=cp).train()
    os.remove(name)
    os.remove(name + ".ckp")
    x, y, z, W, trainer, source, mapping = setup()
    session = C.training_session(trainer, source, 4, mapping, max_samples=45, checkpoint_config=cp)
    session._restore(None)
    # m0 and m1 after the two complete sweeps (a partial sweep is not a sweep), m after 45 samples
    assert trainer.total_number_of_samples_seen == 40
    assert "checkpoint '%s1'" % name in capsys.readouterr().err


def test_bad_configurations():
    x, y, z, W, trainer, source, mapping = setup()
    with pytest.raises(ValueError, match="without a filename"):
        C.CheckpointConfig(None, frequency=10)
    with pytest.raises(ValueError, match="either minibatch_source or callback"):
        C.CrossValidationConfig(frequency=5)
    with pytest.raises(ValueError, match="unsupported frequency"):
        C.CheckpointConfig("f", frequency=(3, "sweeps"))
    with pytest.raises(ValueError, match="mapping between input variables and streams"):
        C.training_session(trainer, source, 4, {})
    with pytest.raises(ValueError, match="mb_size of type str"):
        C.training_session(trainer, source, "4", mapping)
    with pytest.raises(ValueError, match="must not be None"):
        C.training_session(trainer, None, 4, mapping)
    with pytest.raises(ValueError, match="no data for the stream"):
        C.training_session(trainer, source, 4, {x: source.streams['features'], y: object()}).train()


def test_function_train_and_test_with_a_reader():
    x, y, z, W, trainer, source, mapping = setup(max_sweeps=None)
    criterion = C.combine([trainer.loss_function, trainer.evaluation_function])
    learner = C.sgd([W], C.learning_parameter_schedule(0.5))
    progress = criterion.train(source, minibatch_size=4, streams=[source.streams['features'], source.streams['labels']],
                               parameter_learners=[learner], max_epochs=3, epoch_size=N)
    assert [s.samples for s in progress.epoch_summaries] == [N, N, N]
    assert [u.samples for u in progress.updates] == [20, 20, 20]    # one update per epoch (5 minibatches)
    losses = [s.loss for s in progress.epoch_summaries]
    assert losses[2] < losses[0]
    # the same training by hand gives the same numbers
    x2, y2, z2, W2, _, _, _ = setup()
    X, Y = data()
    loss2 = C.cross_entropy_with_softmax(z2, y2)
    tr = C.Trainer(z2, loss2, [C.sgd([W2], C.learning_parameter_schedule(0.5))])
    epoch = []
    for i in range(15):
        tr.train_minibatch({x2: X[4 * (i % 5):4 * (i % 5) + 4], y2: Y[4 * (i % 5):4 * (i % 5) + 4]})
        epoch.append(tr.previous_minibatch_loss_average)
    np.testing.assert_allclose(losses, [np.mean(epoch[i:i + 5]) for i in (0, 5, 10)], rtol=1e-5)
    np.testing.assert_allclose(W.value, W2.value, rtol=1e-6)

    Xt, Yt = data(9, seed=4)
    test_source = ArraySource({'features': list(Xt), 'labels': list(Yt)}, max_sweeps=1)
    summary = criterion.test(test_source, minibatch_size=4,
                             model_inputs_to_streams={x: test_source.streams['features'],
                                                      y: test_source.streams['labels']})
    assert summary.samples == 9
    assert summary.metric == pytest.approx(float(np.mean(trainer.evaluation_function.eval({x: Xt, y: Yt}))))
    with pytest.raises(ValueError, match="epoch_size must be given"):
        criterion.train(source, streams=[source.streams['features'], source.streams['labels']],
                        parameter_learners=[learner])
    with pytest.raises(ValueError, match="limited number of samples"):
        criterion.test(ArraySource({'features': list(Xt), 'labels': list(Yt)}),
                       streams=[source.streams['features'], source.streams['labels']])


def test_function_train_and_test_with_numpy_data():
    """Data given directly (a tuple of arrays, one per criterion argument) is wrapped into a
    MinibatchSourceFromData; the epoch defaults to one pass over it."""
    x, y, z, W, trainer, source, mapping = setup()
    criterion = C.combine([trainer.loss_function, trainer.evaluation_function])
    X, Y = data(40, seed=5)
    Xt, Yt = data(10, seed=6)
    summaries = []
    cv = C.CrossValidationConfig((Xt, Yt), frequency=20, minibatch_size=4, criterion=criterion,
                                 callback=lambda i, e, n, m: summaries.append((i, n, m)) or True)
    test = C.TestConfig((Xt, Yt), minibatch_size=3, criterion=criterion)
    progress = criterion.train((X, Y), minibatch_size=8, max_epochs=2, parameter_learners=[
        C.sgd([W], C.learning_parameter_schedule(0.5))], callbacks=[cv, test])
    assert [s.samples for s in progress.epoch_summaries] == [40, 40]
    assert summaries == [(0, 10, 3), (1, 10, 3), (2, 10, 3), (3, 10, 3)]
    expected = float(np.mean(trainer.evaluation_function.eval({x: Xt, y: Yt})))
    assert progress.test_summary.samples == 10
    assert progress.test_summary.metric == pytest.approx(expected)
    result = criterion.test((Xt, Yt), minibatch_size=4)
    assert result.samples == 10 and result.metric == pytest.approx(expected)
    with pytest.raises(ValueError, match="pass a tuple of 2 numpy or scipy arrays"):
        criterion.train((X,), parameter_learners=[C.sgd([W], C.learning_parameter_schedule(0.5))])
    with pytest.raises(ValueError, match="only one TestConfig"):
        criterion.train((X, Y), parameter_learners=[C.sgd([W], C.learning_parameter_schedule(0.5))],
                        callbacks=[test, test])


def test_restart_with_a_ctf_reader(tmp_path):
    """With CNTK's reader (randomized CTF), a restarted session continues from the saved reader
    position and ends with the parameters of an uninterrupted run."""
    X, Y = data(30, seed=7)
    path = str(tmp_path / "train.ctf")
    with open(path, "w") as f:
        for a, b in zip(X, Y):
            f.write("|y %s |x %s\n" % (" ".join("%g" % v for v in b), " ".join("%.6f" % v for v in a)))

    def run(max_samples, cp):
        x, y, z, W, trainer, _, _ = setup(momentum=True)
        reader = C.io.MinibatchSource(C.io.CTFDeserializer(path, C.io.StreamDefs(
            x=C.io.StreamDef(field='x', shape=3), y=C.io.StreamDef(field='y', shape=2))), randomize=True)
        C.training_session(trainer, reader, 4, {x: reader.streams.x, y: reader.streams.y}, max_samples=max_samples,
                           checkpoint_config=cp).train()
        return W.value, trainer
    uninterrupted, _ = run(70, None)
    cp = C.CheckpointConfig(str(tmp_path / "ckpt"), frequency=(1, DataUnit.sweep))
    run(38, cp)
    resumed, trainer = run(70, cp)
    assert trainer.total_number_of_samples_seen == 70
    np.testing.assert_array_equal(resumed, uninterrupted)


@pytest.mark.parametrize("config", [C.CrossValidationConfig, C.TestConfig])
def test_deprecated_source_and_mb_size_names(config):
    X, Y = data(6)
    source = ArraySource({'features': list(X), 'labels': list(Y)}, max_sweeps=1)
    with pytest.warns(DeprecationWarning) as rec:
        cfg = config(source=source, mb_size=4)
    messages = [str(w.message) for w in rec]
    assert len(messages) == 2
    assert any('"source" parameter is deprecated' in m for m in messages)
    assert any('"mb_size" parameter is deprecated' in m for m in messages)
    assert all(w.filename == __file__ for w in rec)     # the warning points at the caller
    assert cfg.minibatch_source is source
    assert cfg.minibatch_size[0] == 4
