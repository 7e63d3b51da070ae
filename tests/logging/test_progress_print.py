"""ProgressPrinter lines compared with CNTK's format (including lines from published CNTK
logs), custom ProgressWriter hooks, log files, TensorBoard event files, the progress bar and
log_number_of_parameters."""

import io
import re

import numpy as np
import pytest

import cntk as C
from cntk.logging import progress_writer


@pytest.fixture
def clock(monkeypatch):
    """A controllable clock for the elapsed time of summaries."""
    now = [100.0]
    monkeypatch.setattr(progress_writer.time, "perf_counter", lambda: now[0])
    return now


def feed(writer, minibatches):
    """Drive ``writer`` as a Trainer does: cumulative loss and metric sums since the summary."""
    loss = metric = 0.0
    for n, loss_sum, metric_sum in minibatches:
        loss += loss_sum
        metric += metric_sum
        writer.update_training(n, loss, metric)
    return loss, metric


MBS = [(16, 11.09, 8.0), (16, 9.6, 4.0), (16, 8.0, 2.0), (16, 6.4, 1.0)]


def test_arithmetic_schedule_and_epoch_summary(capsys, clock):
    pp = C.logging.ProgressPrinter(freq=2, first=1, tag='Training')
    loss, metric = feed(pp, MBS)
    clock[0] = 101.5
    pp.write_training_summary(loss, metric)
    assert capsys.readouterr().out.splitlines() == [
        " Minibatch[   1-   1]: loss = 0.693125 * 16, metric = 50.00% * 16;",
        " Minibatch[   2-   2]: loss = 0.600000 * 16, metric = 25.00% * 16;",
        " Minibatch[   3-   4]: loss = 0.450000 * 32, metric = 9.38% * 32;",
        "Finished Epoch[1 of 300]: [Training] loss = 0.548281 * 64, metric = 23.44% * 64 1.500s ( 42.7 samples/s);",
    ]
    # the next epoch starts a new window and counts summaries
    feed(pp, MBS[:2])
    clock[0] = 103.5
    pp.write_training_summary(11.09 + 9.6, 12.0)
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == ("Finished Epoch[2 of 300]: [Training] loss = 0.646562 * 32, metric = 37.50% * 32 "
                       "2.000s ( 16.0 samples/s);")


def test_geometric_schedule_reproduces_a_cntk_log(capsys):
    # numbers from a published CNTK 2.x training log (minibatches of 64 samples)
    pp = C.logging.ProgressPrinter(freq=0)
    feed(pp, [(64, 105 * 64, 0.938 * 64), (64, 1.51e7 * 64, 0.883 * 64), (64, 1.51e7 * 64, 0.883 * 64)])
    pp.write_training_summary(0.0, 0.0)      # no epoch summaries in this mode
    assert capsys.readouterr().out.splitlines() == [
        " average      since    average      since      examples",
        "    loss       last     metric       last              ",
        " ------------------------------------------------------",
        "      105        105      0.938      0.938            64",
        " 1.01e+07   1.51e+07      0.901      0.883           192",
    ]


def test_plain_metric_test_lines_and_named_values(capsys, clock):
    pp = C.logging.ProgressPrinter(freq=4, test_freq=1, metric_is_pct=False, num_epochs=10)
    loss, metric = feed(pp, MBS)
    pp.write_training_summary(loss, metric)
    pp.update_test(16, 8.0)
    pp.update_test(16, 12.0)
    pp.write_test_summary(12.0)
    pp.update_test(10, 1.0)
    pp.write_test_summary(1.0)
    pp.write("Learning rate per 1 samples", 0.01)
    pp.update_distributed_sync(32, None)
    assert capsys.readouterr().out.splitlines() == [
        " Minibatch[   1-   4]: loss = 0.548281 * 64, metric = 0.234375 * 64;",
        "Finished Epoch[1 of 10]: loss = 0.548281 * 64, metric = 0.234375 * 64 0.000s (  0.0 samples/s);",
        " Evaluation Minibatch[   1-   1]: metric = 0.500000 * 16;",
        " Evaluation Minibatch[   2-   2]: metric = 0.250000 * 16;",
        "Finished Evaluation [1]: Minibatch[1-2]: metric = 0.375000 * 32;",
        " Evaluation Minibatch[   1-   1]: metric = 0.100000 * 10;",
        "Finished Evaluation [2]: Minibatch[1-1]: metric = 0.100000 * 10;",
        "Learning rate per 1 samples: 0.01",
    ]


def test_with_a_trainer(capsys):
    x = C.input_variable(2)
    y = C.input_variable(2)
    W = C.parameter((2, 2), init=np.array([[1.0, -1.0], [0.5, 0.2]], np.float32))
    z = C.times(x, W)
    learner = C.momentum_sgd([W], C.learning_parameter_schedule_per_sample(0.01), C.momentum_schedule(0.9))
    pp = C.logging.ProgressPrinter(freq=1)
    trainer = C.Trainer(z, (C.cross_entropy_with_softmax(z, y), C.classification_error(z, y)), [learner], [pp])
    X = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    Y = np.eye(2, dtype=np.float32)[[0, 1, 1]]
    lines = []
    for _ in range(2):
        trainer.train_minibatch({x: X, y: Y})
        lines.append(" Minibatch[   %d-   %d]: loss = %.6f * 3, metric = %.2f%% * 3;" % (
            len(lines) + 1, len(lines) + 1, trainer.previous_minibatch_loss_average,
            100 * trainer.previous_minibatch_evaluation_average))
    assert capsys.readouterr().out.splitlines() == \
        ["Learning rate per 1 samples: 0.01", "Momentum per minibatch: 0.9", lines[0], lines[1]]


def test_custom_writer_hooks():
    class Hooks(C.logging.ProgressWriter):
        def __init__(self):
            super().__init__(2, 0, None, 0, None, 0)
            self.calls = []

        def on_write_training_update(self, samples, updates, aggregate_loss, aggregate_metric):
            self.calls.append(("update", samples, updates, aggregate_loss, aggregate_metric))

        def on_training_update_end(self):
            self.calls.append(("end",))

        def on_write_training_summary(self, samples, updates, summaries, aggregate_loss, aggregate_metric, ms):
            self.calls.append(("summary", samples, updates, summaries, aggregate_loss, aggregate_metric))
    w = Hooks()
    feed(w, MBS[:3])
    w.write_training_summary(28.69, 14.0)
    assert w.calls == [("end",), ("update", (0, 32), (0, 2), (0.0, 11.09 + 9.6), (0.0, 12.0)), ("end",), ("end",),
                       ("summary", 48, 3, 1, 28.69, 14.0)]
    assert w.total_training_updates() == 3


def test_log_to_file(tmp_path, capsys):
    path = str(tmp_path / "log.txt")
    pp = C.logging.ProgressPrinter(freq=2, log_to_file=path, rank=0, num_epochs=5)
    feed(pp, MBS[:2])
    pp.log("a message")
    pp.end_progress_print("done")
    assert capsys.readouterr().out == "Redirecting log to file %srank0\n" % path
    assert open(path + "rank0").read().splitlines() == [
        path + "rank0",
        "CNTKCommandTrainInfo: train : 5",
        "CNTKCommandTrainInfo: CNTKNoMoreCommands_Total : 5",
        "CNTKCommandTrainBegin: train",
        " Minibatch[   1-   2]: loss = 0.646562 * 32, metric = 37.50% * 32;",
        "a message",
        "CNTKCommandTrainEnd: train",
        "done",
    ]


def test_heartbeat_and_deprecated_interface(capsys):
    pp = C.logging.ProgressPrinter(freq=2, gen_heartbeat=True)
    with pytest.warns(DeprecationWarning):
        pp.update(0.5, 10, 0.1)
    pp.update(0.25, 10, 0.3)
    out = capsys.readouterr().out.splitlines()
    assert out == ["PROGRESS: 0.00%", " Minibatch[   1-   2]: loss = 0.375000 * 20, metric = 20.00% * 20;"]
    with pytest.warns(DeprecationWarning):
        assert pp.epoch_summary(with_metric=True) == (0.375, 0.2, 20)
    assert re.fullmatch(r"Finished Epoch\[1 of 300\]: loss = 0\.375000 \* 20, metric = 20\.00% \* 20 "
                        r"\d+\.\d{3}s \(.* samples/s\);", capsys.readouterr().out.strip())


def test_log_number_of_parameters(capsys):
    x = C.input_variable(3)
    z = C.layers.Dense(4)(x)
    C.logging.log_number_of_parameters(z)
    C.logging.log_number_of_parameters(z, trace_level=1)
    lazy = C.layers.Dense(4)(C.placeholder())
    C.logging.log_number_of_parameters(lazy)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Training 16 parameters in 2 parameter tensors."
    assert out[1:5] == ["Training 16 parameters in 2 parameter tensors.", "", "\t(4,)", "\t(3, 4)"] or \
        out[1:5] == ["Training 16 parameters in 2 parameter tensors.", "", "\t(3, 4)", "\t(4,)"]
    assert out[-1] == "Training so far unspecified number of parameters in 2 parameter tensors."


def test_trace_level():
    old = C.logging.get_trace_level()
    try:
        C.logging.set_trace_level(C.logging.TraceLevel.Info)
        assert C.logging.get_trace_level() == 2
        with pytest.raises(ValueError, match="expected one of"):
            C.logging.set_trace_level(7)
    finally:
        C.logging.set_trace_level(old)


def test_tensorboard_writer(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    x = C.input_variable(2)
    y = C.input_variable(2)
    W = C.parameter((2, 2), init=np.eye(2, dtype=np.float32))
    z = C.times(x, W)
    tb = C.logging.TensorBoardProgressWriter(freq=1, log_dir=str(tmp_path), model=z)
    trainer = C.Trainer(z, (C.cross_entropy_with_softmax(z, y), C.classification_error(z, y)),
                        [C.sgd([W], C.learning_parameter_schedule(0.1))], [tb])
    X = np.array([[1, 0], [0, 1]], np.float32)
    losses = []
    for _ in range(3):
        trainer.train_minibatch({x: X, y: X})
        losses.append(trainer.previous_minibatch_loss_average)
    trainer.summarize_training_progress()
    tb.write_image("input", {x: np.zeros((2, 1, 4, 4), np.float32)}, 0)
    tb.close()
    with pytest.raises(RuntimeError, match="closed"):
        tb.flush()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    got = [e.value for e in acc.Scalars("minibatch/avg_loss")]
    np.testing.assert_allclose(got, losses, rtol=1e-6)
    assert [e.step for e in acc.Scalars("minibatch/avg_loss")] == [1, 2, 3]
    assert acc.Scalars("summary/avg_loss")[0].value == pytest.approx(np.mean(losses), rel=1e-6)
    assert "input" in acc.Tags()["images"]
    with pytest.raises(ValueError, match="positive int"):
        C.logging.TensorBoardProgressWriter(freq=0, log_dir=str(tmp_path))


def test_progress_bar():
    pytest.importorskip("tqdm")
    out = io.StringIO()
    bar = C.logging.ProgressBar(epoch_size=64, file=out)
    feed(bar, MBS)
    bar.write_training_summary(35.09, 15.0)
    bar.update_test(16, 8.0)
    bar.write_test_summary(8.0)
    text = out.getvalue()
    assert "Epoch 1" in text and "64/64" in text and "loss = 0.5483, metric = 23.44%" in text
    assert "Evaluation" in text and "metric = 50%" in text
