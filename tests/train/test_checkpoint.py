"""Trainer checkpoints: exact resume (parameters, learner state, batch-norm statistics, dropout
streams), external state, atomic writes, and clear errors for files that are not checkpoints of
this model."""

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

import cntk as C
from cntk.train import checkpoint as ckpt


def build(hidden=8, seed=1):
    """A small classifier with dropout and batch normalization, trained with momentum SGD."""
    C.initializer.set_global_seed(seed)
    x = C.input_variable(4, name='x')
    y = C.input_variable(3, name='y')
    h = C.layers.Dense(hidden, activation=C.relu, init=C.glorot_uniform(seed=seed), name='hidden')(x)
    h = C.layers.BatchNormalization(name='bn')(h)
    h = C.layers.Dropout(0.3, seed=7)(h)
    z = C.layers.Dense(3, init=C.glorot_uniform(seed=seed + 1), name='out')(h)
    loss = C.cross_entropy_with_softmax(z, y)
    err = C.classification_error(z, y)
    learner = C.momentum_sgd(z.parameters, C.learning_parameter_schedule(0.1), C.momentum_schedule(0.9))
    return x, y, z, C.Trainer(z, (loss, err), [learner])


def batches(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        X = rng.standard_normal((6, 4)).astype(np.float32)
        Y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 6)]
        out.append((X, Y))
    return out


def values(z):
    return [p.value.copy() for p in z.parameters] + [c.value.copy() for c in z.constants]


def test_resume_is_bit_identical(tmp_path):
    data = batches(8)
    x, y, z, trainer = build()
    for X, Y in data[:4]:
        trainer.train_minibatch({x: X, y: Y})
    path = str(tmp_path / "model.dnn")
    trainer.save_checkpoint(path, {"epoch": 3})
    for X, Y in data[4:]:
        trainer.train_minibatch({x: X, y: Y})
    uninterrupted = values(z)
    seen = trainer.total_number_of_samples_seen

    # the same trainer, after more training: restore and continue (plans and generators exist)
    assert trainer.restore_from_checkpoint(path) == {"epoch": 3}
    assert trainer.total_number_of_samples_seen == 24
    for X, Y in data[4:]:
        trainer.train_minibatch({x: X, y: Y})
    for a, b in zip(values(z), uninterrupted):
        np.testing.assert_array_equal(a, b)

    # a model built afresh (as after a restart), never run before the restore
    x2, y2, z2, trainer2 = build()
    trainer2.restore_from_checkpoint(path)
    for X, Y in data[4:]:
        trainer2.train_minibatch({x2: X, y2: Y})
    for a, b in zip(values(z2), uninterrupted):
        np.testing.assert_array_equal(a, b)
    assert trainer2.total_number_of_samples_seen == seen
    # the model file is an ordinary model
    loaded = C.load_model(path)
    assert len(loaded.parameters) == len(z.parameters)


def test_external_state_round_trip(tmp_path):
    x, y, z, trainer = build()
    state = {"name": "run", "n": 3, "ratio": 0.25, "inf": float("inf"), "none": None, "flags": [True, False],
             "pair": (1, "a"), "array": np.arange(6, dtype=np.int64).reshape(2, 3), "nested": {"w": np.ones(2)},
             1: "int key"}
    path = str(tmp_path / "m")
    trainer.save_checkpoint(path, state)
    back = trainer.restore_from_checkpoint(path)
    assert back["pair"] == (1, "a") and back["inf"] == float("inf") and back[1] == "int key"
    np.testing.assert_array_equal(back["array"], state["array"])
    np.testing.assert_array_equal(back["nested"]["w"], np.ones(2))
    assert {k: v for k, v in back.items() if k not in ("array", "nested")} == \
        {k: v for k, v in state.items() if k not in ("array", "nested")}
    with pytest.raises(TypeError, match="cannot store external_state\\['obj'\\]"):
        trainer.save_checkpoint(path, {"obj": object()})
    # the failed save left the previous checkpoint in place
    assert trainer.restore_from_checkpoint(path)["name"] == "run"


def test_checkpoint_is_not_pickle(tmp_path):
    x, y, z, trainer = build()
    path = str(tmp_path / "m")
    trainer.save_checkpoint(path)
    with zipfile.ZipFile(path + ".ckp") as zf:
        assert all(n.endswith(".npy") for n in zf.namelist())
    with np.load(path + ".ckp", allow_pickle=False) as npz:
        assert "__state__" in npz.files


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    data = batches(3)
    x, y, z, trainer = build()
    trainer.train_minibatch({x: data[0][0], y: data[0][1]})
    path = str(tmp_path / "m")
    trainer.save_checkpoint(path, {"step": 1})
    before = open(path + ".ckp", "rb").read()
    saved = values(z)
    trainer.train_minibatch({x: data[1][0], y: data[1][1]})

    def half_then_fail(p, data):
        with open(p, "wb") as f:
            f.write(data[:len(data) // 2])
        raise OSError("disk full")
    monkeypatch.setattr(ckpt, "_write_file", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert open(path + ".ckp", "rb").read() == before
    assert not os.path.exists(path + ".ckp.tmp")
    assert trainer.restore_from_checkpoint(path) == {"step": 1}
    for a, b in zip(values(z), saved):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_of_another_model(tmp_path):
    x, y, z, trainer = build(hidden=8)
    path = str(tmp_path / "m")
    trainer.save_checkpoint(path)
    _, _, z2, other = build(hidden=5)
    with pytest.raises(ValueError, match="different model: parameter .* of shape"):
        other.restore_from_checkpoint(path)
    x3 = C.input_variable(4)
    y3 = C.input_variable(3)
    z3 = C.layers.Dense(3, name='renamed')(x3)
    tr3 = C.Trainer(z3, C.cross_entropy_with_softmax(z3, y3),
                    [C.sgd(z3.parameters, C.learning_parameter_schedule(0.1))])
    with pytest.raises(ValueError, match="different model"):
        tr3.restore_from_checkpoint(path)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "pickle", "empty", "missing"])
def test_bad_checkpoint_files(tmp_path, damage):
    x, y, z, trainer = build()
    path = str(tmp_path / "m")
    trainer.save_checkpoint(path)
    state = path + ".ckp"
    good = open(state, "rb").read()
    if damage == "truncated":
        open(state, "wb").write(good[:len(good) * 2 // 3])
        expected = "not a valid checkpoint file: the archive is damaged or truncated"
    elif damage == "garbage":
        open(state, "wb").write(b"this is not a checkpoint at all")
        expected = "not a valid checkpoint file: it is not a checkpoint archive"
    elif damage == "pickle":
        open(state, "wb").write(pickle.dumps({"Learners": []}))
        expected = "pickle file; checkpoints are never unpickled"
    elif damage == "empty":
        open(state, "wb").close()
        expected = "the file is empty"
    else:
        os.remove(state)
        with pytest.raises(FileNotFoundError, match="does not exist"):
            trainer.restore_from_checkpoint(path)
        return
    before = values(z)
    with pytest.raises(ValueError, match=expected):
        trainer.restore_from_checkpoint(path)
    for a, b in zip(values(z), before):     # nothing was changed
        np.testing.assert_array_equal(a, b)


def test_pickled_entry_in_archive_is_refused(tmp_path):
    x, y, z, trainer = build()
    path = str(tmp_path / "m")
    trainer.save_checkpoint(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps([1, 2]))
    open(path + ".ckp", "wb").write(buf.getvalue())
    with pytest.raises(ValueError, match="pickled data"):
        trainer.restore_from_checkpoint(path)
