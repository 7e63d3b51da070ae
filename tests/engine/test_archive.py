"""The npz container shared by model files and trainer checkpoints: round trip, atomic writes, and
the reasons it gives for files it refuses (models and checkpoints read through the same checks)."""

import io
import os
import pickle
import warnings
import zipfile

import numpy as np
import pytest

import cntk as C
from cntk.engine import archive

KEY = "__doc__"


def _packed():
    return archive.pack({"format": "f", "values": [1, 2.5, "x"]}, KEY,
                        {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array([3], np.int64)})


def _read(data):
    npz, headers = archive.open_archive(data, "thing", KEY)
    with npz:
        return (archive.read_description(npz, headers, KEY, "the description"),
                {k: archive.read_array(npz, k) for k in headers if k != KEY}, headers)


def _zip(entries, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)     # duplicate names are written on purpose
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return buf.getvalue()


def _npy(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_round_trip_checks_headers_before_reading():
    doc, arrays, headers = _read(_packed())
    assert doc == {"format": "f", "values": [1, 2.5, "x"]}
    np.testing.assert_array_equal(arrays["w"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert arrays["n"].dtype == np.int64
    assert headers["w"] == ((2, 3), np.dtype(np.float32))


@pytest.mark.parametrize("data,reason", [
    (b"", "^the file is empty$"),
    (pickle.dumps({"a": 1}), "^it is a pickle file; things are never unpickled$"),
    (b"not an archive", r"^it is not a thing archive \(no zip header\)$"),
    (b"PK\x03\x04" + b"\0" * 40, r"^the archive is damaged or truncated \("),
    (_zip([("data.pkl", b"x")]), r"^it contains pickled data \('data.pkl'\); things are never unpickled$"),
    (_zip([("dir/a.npy", _npy(np.zeros(2)))]), r"^unexpected archive entry 'dir/a.npy'$"),
    (_zip([(KEY + ".npy", _npy(np.zeros(200)))], zipfile.ZIP_DEFLATED), "is compressed"),
    (_zip([("a.npy", _npy(np.zeros(2))), ("a.npy", _npy(np.zeros(2)))]), "^duplicate archive entry 'a.npy'$"),
    (_zip([("a.npy", _npy(np.array(["s"])))]), "^entry 'a': arrays must be numeric"),
    (_zip([("a.npy", _npy(np.zeros(2)))]), "^the archive has no __doc__ entry$"),
    (_zip([(KEY + ".npy", _npy(np.zeros(2)))]), "^__doc__ must be a 1-D uint8 array$"),
    (_zip([(KEY + ".npy", _npy(np.frombuffer(b"{bad", np.uint8)))]), r"^the description is not valid JSON \("),
    (_zip([(KEY + ".npy", _npy(np.frombuffer(b"[NaN]", np.uint8)))]), "^the description contains NaN$"),
    (_zip([(KEY + ".npy", _npy(np.frombuffer(b"\xff\xfe", np.uint8)))]), "^the description is not UTF-8 text$"),
])
def test_refused_files_and_their_reasons(data, reason):
    with pytest.raises(archive.Invalid, match=reason):
        _read(data)


def test_array_larger_than_its_entry_is_refused_before_allocation():
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (2 ** 20, 2 ** 20)})
    buf.write(b"\0" * 16)
    data = _zip([(KEY + ".npy", _npy(np.zeros(1, np.uint8))), ("big.npy", buf.getvalue())])
    with pytest.raises(archive.Invalid, match="larger than its archive entry"):
        _read(data)


def test_atomic_write_keeps_the_previous_file_on_failure(tmp_path):
    path = str(tmp_path / "f")
    archive.atomic_write(path, b"first")

    def fail(p, data):
        archive.write_file(p, data[:2])
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        archive.atomic_write(path, b"second", fail)
    assert open(path, "rb").read() == b"first" and os.listdir(tmp_path) == ["f"]
    archive.atomic_write(path, b"second")
    assert open(path, "rb").read() == b"second" and os.listdir(tmp_path) == ["f"]


def test_models_and_checkpoints_read_through_the_same_checks(tmp_path):
    bad = pickle.dumps([1])
    with pytest.raises(ValueError, match="not a valid CNTK model file: it is a pickle file; models are never"):
        C.Function.load(bad)
    x = C.input_variable(2)
    z = C.layers.Dense(2)(x)
    trainer = C.Trainer(z, C.squared_error(z, C.input_variable(2)), [C.sgd(z.parameters, 0.1)])
    path = str(tmp_path / "m")
    trainer.save_checkpoint(path)
    with open(path + ".ckp", "wb") as f:
        f.write(_zip([("__state__.npy", _npy(np.zeros(3, np.uint8))), ("__state__.npy", _npy(np.zeros(3)))]))
    with pytest.raises(ValueError, match="not a valid checkpoint file: duplicate archive entry '__state__.npy'"):
        trainer.restore_from_checkpoint(path)
