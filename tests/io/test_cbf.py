"""CBFDeserializer, CBFWriter and the CTF -> CBF converter: the byte layout of CNTK's binary
format written by hand, round trips, renames, and corrupt files."""

import os
import struct
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from cntk.io import StreamDef, StreamDefs, DataError
from cntk.io.cbf import MAGIC, CBFDeserializer, CBFWriter
from cntk.io.ctf2bin import read_header
from cntk.io.deserializer import ErrorBudget


def _seqs(packed):
    """The per-sequence pieces of a chunk's ``PackedSequences``."""
    return [packed.sequence(i) for i in range(len(packed))]


def _hand_written_cbf(path):
    """Two sequences in one chunk, written byte by byte after CNTK's format description:
    'x' dense dim 2 (float32), 'y' sparse dim 4 (float64)."""
    chunk = struct.pack("<II", 2, 1)                    # sample counts of the 2 sequences
    # x: sequence 0 has 2 samples, sequence 1 has 1
    chunk += struct.pack("<I", 2) + np.array([1, 2, 3, 4], "<f4").tobytes()
    chunk += struct.pack("<I", 1) + np.array([5, 6], "<f4").tobytes()
    # y: sequence 0 has 1 sample {3: 0.5}; sequence 1 has 1 empty sample
    chunk += struct.pack("<Ii", 1, 1) + np.array([0.5], "<f8").tobytes() + struct.pack("<i", 3) + struct.pack("<i", 1)
    chunk += struct.pack("<Ii", 1, 0) + struct.pack("<i", 0)
    data = struct.pack("<QI", MAGIC, 1) + chunk
    header_offset = len(data)
    header = struct.pack("<QII", MAGIC, 1, 2)
    header += struct.pack("<BI", 0, 1) + b"x" + struct.pack("<BI", 0, 2)
    header += struct.pack("<BI", 1, 1) + b"y" + struct.pack("<BI", 1, 4)
    header += struct.pack("<qII", 12, 2, 3)
    with open(str(path), "wb") as f:
        f.write(data + header + struct.pack("<q", header_offset))
    return str(path)


def test_reads_cntk_layout_written_by_hand(tmp_path):
    d = CBFDeserializer(_hand_written_cbf(tmp_path / "h.cbf"))
    x, y = d.stream_infos()
    assert (x.name, x.shape, x.is_sparse, np.dtype(x.dtype)) == ("x", (2,), False, np.float32)
    assert (y.name, y.shape, y.is_sparse, np.dtype(y.dtype)) == ("y", (4,), True, np.float64)
    assert d.num_chunks() == 1 and d.chunk_sizes() == [(2, 3)] and d.sequence_keys(0) == [0, 1]
    chunk = d.get_chunk(0)
    x, y = _seqs(chunk["x"]), _seqs(chunk["y"])
    np.testing.assert_array_equal(x[0], [[1, 2], [3, 4]])
    np.testing.assert_array_equal(x[1], [[5, 6]])
    np.testing.assert_array_equal(y[0].toarray(), [[0, 0, 0, 0.5]])
    np.testing.assert_array_equal(y[1].toarray(), [[0, 0, 0, 0]])
    assert x[0].flags.writeable


def test_writer_produces_the_same_bytes(tmp_path):
    ref = _hand_written_cbf(tmp_path / "h.cbf")
    out = str(tmp_path / "w.cbf")
    with CBFWriter(out, [("x", "dense", 2), ("y", "sparse", 4)], precision="float") as w:
        w.add_sequence({"x": [[1, 2], [3, 4]], "y": sp.csr_matrix(([0.5], ([0], [3])), shape=(1, 4))})
        w.add_sequence({"x": [[5, 6]], "y": sp.csr_matrix((1, 4))})
    ref_bytes, our_bytes = open(ref, "rb").read(), open(out, "rb").read()
    # identical except that our 'y' is float32 (one precision per file, as in ctf2bin)
    assert len(our_bytes) == len(ref_bytes) - 4
    d = CBFDeserializer(out)
    np.testing.assert_array_equal(_seqs(d.get_chunk(0)["y"])[0].toarray(), [[0, 0, 0, 0.5]])


def _random_sequences(n, seed=0):
    rng = np.random.default_rng(seed)
    seqs = []
    for i in range(n):
        T = int(rng.integers(1, 5))
        x = rng.normal(size=(T, 3)).astype(np.float32)
        # the sparse stream may be shorter (even empty) and has empty samples
        y = sp.random(int(rng.integers(0, T + 1)), 6, density=0.3, random_state=i, format="csr", dtype=np.float32)
        seqs.append({"x": x, "y": y})
    return seqs


@pytest.mark.parametrize("precision", ["float", "double"])
def test_round_trip_with_several_chunks(tmp_path, precision):
    seqs = _random_sequences(25)
    path = str(tmp_path / "r.cbf")
    with CBFWriter(path, [("x", "dense", 3), ("y", "sparse", 6)], chunk_size=200, precision=precision) as w:
        for s in seqs:
            w.add_sequence(s)
    d = CBFDeserializer(path)
    assert d.num_chunks() > 3
    got, keys = [], []
    for c in range(d.num_chunks()):
        chunk = d.get_chunk(c)
        got += list(zip(_seqs(chunk["x"]), _seqs(chunk["y"])))
        keys += d.sequence_keys(c)
    assert keys == list(range(25))
    sizes = d.chunk_sizes()
    assert sum(n for n, _ in sizes) == 25
    assert sum(m for _, m in sizes) == sum(max(s["x"].shape[0], s["y"].shape[0]) for s in seqs)
    for s, (x, y) in zip(seqs, got):
        np.testing.assert_array_equal(x, s["x"])
        np.testing.assert_array_equal(y.toarray(), s["y"].toarray())
        assert x.dtype == (np.float32 if precision == "float" else np.float64)


def test_streams_rename_and_check_shapes(tmp_path):
    path = _hand_written_cbf(tmp_path / "h.cbf")
    d = CBFDeserializer(path, StreamDefs(features=StreamDef(field="x", shape=2, defines_mb_size=True)))
    names = [s.name for s in d.stream_infos()]
    assert names == ["features", "y"] and d.stream_infos()[0].defines_mb_size
    assert set(d.get_chunk(0)) == {"features", "y"}
    with pytest.raises(ValueError, match="has no stream named 'z'.*'x', 'y'"):
        CBFDeserializer(path, StreamDefs(a=StreamDef(field="z")))
    with pytest.raises(ValueError, match="dimension 2, not shape 3"):
        CBFDeserializer(path, StreamDefs(a=StreamDef(field="x", shape=3)))
    with pytest.raises(ValueError, match="two streams called the same"):
        CBFDeserializer(path, StreamDefs(y=StreamDef(field="x")))


def _patched(tmp_path, offset, fmt, value, name="bad.cbf"):
    data = bytearray(open(_hand_written_cbf(tmp_path / "h.cbf"), "rb").read())
    struct.pack_into(fmt, data, offset if offset >= 0 else len(data) + offset, value)
    (tmp_path / name).write_bytes(bytes(data))
    return str(tmp_path / name)


def test_bad_files_are_rejected_naming_them(tmp_path):
    with pytest.raises(DataError, match=r"bad\.cbf.*not a valid CNTK binary format file: bad magic number"):
        CBFDeserializer(_patched(tmp_path, 0, "<Q", 0x1234))
    with pytest.raises(DataError, match="reader version is 1, but the data file was created for version 2"):
        CBFDeserializer(_patched(tmp_path, 8, "<I", 2))
    with pytest.raises(DataError, match="header offset .* outside the file"):
        CBFDeserializer(_patched(tmp_path, -8, "<q", 10 ** 6))
    with pytest.raises(DataError, match="cannot open"):
        CBFDeserializer(str(tmp_path / "missing.cbf"))
    (tmp_path / "short.cbf").write_bytes(b"cntk")
    with pytest.raises(DataError, match="only 4 bytes"):
        CBFDeserializer(str(tmp_path / "short.cbf"))
    data = open(_hand_written_cbf(tmp_path / "h.cbf"), "rb").read()
    (tmp_path / "cut.cbf").write_bytes(data[:60])
    with pytest.raises(DataError, match="cut.cbf"):
        CBFDeserializer(str(tmp_path / "cut.cbf"))


def test_corrupt_chunk_is_reported_and_skippable(tmp_path):
    # the first sparse index: prefix 12 + sample counts 8 + x (4 + 16 + 4 + 8) + T, nnz 8 + value 8
    path = _patched(tmp_path, 12 + 8 + 32 + 8 + 8, "<i", 9)
    d = CBFDeserializer(path)
    with pytest.raises(DataError, match=r"bad\.cbf: chunk 0 .* is corrupt: stream 'y', sequence 0: sparse index 9"):
        d.get_chunk(0)
    d.error_budget = ErrorBudget(1)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        chunk = d.get_chunk(0)
    assert len(chunk["x"]) == len(chunk["y"]) == 0 and chunk["y"].data.shape == (0, 4)
    assert d.sequence_keys(0) == []                  # consistent with the skipped chunk


@pytest.mark.parametrize("offset, value, match", [
    (12 + 8 + 32 + 8 + 8 + 4, 2, "stream 'y', sequence 0: per-sample counts do not add up to nnz=1"),
    (12 + 8 + 32 + 8 + 8 + 4, -1, "stream 'y', sequence 0: per-sample counts do not add up"),
    (12 + 8 + 20, 1000, "stream 'x', sequence 1: data runs past the end of the chunk"),
    (12 + 8 + 32 + 4, -5, "stream 'y', sequence 0: negative nnz"),
])
def test_corrupt_chunk_structure(tmp_path, offset, value, match):
    d = CBFDeserializer(_patched(tmp_path, offset, "<i", value))
    with pytest.raises(DataError, match=match):
        d.get_chunk(0)


def test_ctf2bin_header_file(tmp_path):
    (tmp_path / "h.txt").write_text("features\tx\tdense\t3\nlabels  y sparse 10\n\n")
    streams = read_header(str(tmp_path / "h.txt"))
    assert list(streams) == ["features", "labels"]
    assert streams.labels.field == "y" and streams.labels.is_sparse and streams.labels.dim == 10
    (tmp_path / "bad.txt").write_text("features x dense\n")
    with pytest.raises(ValueError, match=r"bad\.txt:1"):
        read_header(str(tmp_path / "bad.txt"))


# ------------------------------------------------------------------------------ CTF -> CBF

from cntk.io.cbf import ctf_to_cbf  # noqa: E402
from cntk.io.ctf import CTFDeserializer  # noqa: E402
from cntk.io.ctf2bin import main as ctf2bin_main  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(REPO), "shared")
ATIS_TEST = os.path.join(SHARED, "data", "atis", "atis.test.ctf")

CTF_TEXT = """0\t|x 1 2 3\t|y 0:1 4:2.5
0\t|x 4 5 6
0\t|x 7 8 9\t|y
1\t|x -1 -2 -3 |# a comment
2\t|y 5:1e-3 1:2
3\t|x 1.5e2 0 0\t|y 3:1
3\t|x 0 0 1\t|y 3:1 0:-1
"""

CTF_STREAMS = dict(x=StreamDef(field="x", shape=3), y=StreamDef(field="y", shape=6, is_sparse=True))


def _all_sequences(d):
    """{stream: [per-sequence dense array]} of everything a deserializer holds, in order."""
    out = {si.name: [] for si in d.stream_infos()}
    for c in range(d.num_chunks()):
        chunk = d.get_chunk(c)
        for name in out:
            v = chunk[name]
            pieces = _seqs(v) if hasattr(v, "sequence") else list(v)
            out[name] += [p.toarray() if hasattr(p, "toarray") else np.asarray(p) for p in pieces]
    return out


@pytest.mark.parametrize("chunk_size", [1, 1 << 20])
def test_ctf_to_cbf_round_trip_equals_ctf_reading(tmp_path, chunk_size):
    (tmp_path / "d.ctf").write_text(CTF_TEXT)
    ctf_to_cbf(str(tmp_path / "d.ctf"), str(tmp_path / "d.cbf"), StreamDefs(**CTF_STREAMS), chunk_size=chunk_size)
    cbf = CBFDeserializer(str(tmp_path / "d.cbf"))
    assert cbf.num_chunks() == (4 if chunk_size == 1 else 1)
    assert [(s.name, s.shape, s.is_sparse) for s in cbf.stream_infos()] == [("x", (3,), False), ("y", (6,), True)]
    want = _all_sequences(CTFDeserializer(str(tmp_path / "d.ctf"), StreamDefs(**CTF_STREAMS)))
    got = _all_sequences(cbf)
    for name in ("x", "y"):
        assert [g.shape for g in got[name]] == [w.shape for w in want[name]]
        for g, w in zip(got[name], want[name]):
            np.testing.assert_array_equal(g, w)
    # streams of different lengths: the sequence's length is the longest stream
    assert [n for n, _ in cbf.chunk_sizes()] == ([1, 1, 1, 1] if chunk_size == 1 else [4])
    assert sum(m for _, m in cbf.chunk_sizes()) == 3 + 1 + 1 + 2


def test_ctf2bin_command_line(tmp_path, capsys):
    (tmp_path / "d.ctf").write_text(CTF_TEXT)
    (tmp_path / "header.txt").write_text("features x dense 3\nlabels y sparse 6\n")
    rc = ctf2bin_main(["--input", str(tmp_path / "d.ctf"), "--header", str(tmp_path / "header.txt"),
                       "--chunk_size", "64", "--output", str(tmp_path / "d.cbf"), "--precision", "double"])
    assert rc == 0
    d = CBFDeserializer(str(tmp_path / "d.cbf"))
    assert [(s.name, np.dtype(s.dtype)) for s in d.stream_infos()] == [("features", np.float64), ("labels", np.float64)]
    np.testing.assert_array_equal(_all_sequences(d)["features"][3], [[150, 0, 0], [0, 0, 1]])
    (tmp_path / "bad.ctf").write_text("0\t|x 1 2 3 4\n")
    rc = ctf2bin_main(["--input", str(tmp_path / "bad.ctf"), "--header", str(tmp_path / "header.txt"),
                       "--chunk_size", "64", "--output", str(tmp_path / "bad.cbf")])
    assert rc == 1 and "bad.ctf:1" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.exists(ATIS_TEST), reason="shared ATIS data not present")
def test_atis_test_set_converts_losslessly(tmp_path):
    streams = StreamDefs(query=StreamDef(field="S0", shape=943, is_sparse=True),
                         intent=StreamDef(field="S1", shape=26, is_sparse=True),
                         labels=StreamDef(field="S2", shape=129, is_sparse=True))
    ctf_to_cbf(ATIS_TEST, str(tmp_path / "atis.cbf"), streams, chunk_size=100000)
    cbf = CBFDeserializer(str(tmp_path / "atis.cbf"))
    assert cbf.num_chunks() > 1
    assert sum(n for n, _ in cbf.chunk_sizes()) == 893
    keys = [k for c in range(cbf.num_chunks()) for k in cbf.sequence_keys(c)]
    assert keys == list(range(893))
    got, want = _all_sequences(cbf), _all_sequences(CTFDeserializer(ATIS_TEST, streams))
    for name in ("query", "intent", "labels"):
        assert len(got[name]) == 893
        for g, w in zip(got[name], want[name]):
            np.testing.assert_array_equal(g, w)


# ---------------------------------------------------------------------------- MinibatchSource

from cntk.io import MinibatchSource  # noqa: E402

ATIS_PACKING = os.path.join(SHARED, "golden", "ctf", "atis_test_packing.json")


@pytest.mark.skipif(not (os.path.exists(ATIS_TEST) and os.path.exists(ATIS_PACKING)),
                    reason="shared ATIS data or golden packing not present")
def test_atis_cbf_packs_minibatches_as_cntk_packs_the_ctf(tmp_path):
    import json
    golden = json.load(open(ATIS_PACKING))["reads"][0]
    streams = StreamDefs(query=StreamDef(field="S0", shape=943, is_sparse=True),
                         intent=StreamDef(field="S1", shape=26, is_sparse=True),
                         labels=StreamDef(field="S2", shape=129, is_sparse=True))
    ctf_to_cbf(ATIS_TEST, str(tmp_path / "atis.cbf"), streams, chunk_size=50000)
    src = MinibatchSource(CBFDeserializer(str(tmp_path / "atis.cbf")), randomize=False, max_sweeps=1)
    got = []
    while True:
        mb = src.next_minibatch(100)
        if not mb:
            break
        got.append({name: {"num_sequences": mb[src.streams[name]].num_sequences,
                           "num_samples": mb[src.streams[name]].num_samples,
                           "end_of_sweep": mb[src.streams[name]].end_of_sweep} for name in ("query", "intent", "labels")})
    assert len(got) == golden["num_minibatches"] == 117
    for mine, theirs in zip(got, golden["minibatches"]):
        for name in ("query", "intent", "labels"):
            want = theirs["streams"][name]
            assert mine[name] == {k: want[k] for k in ("num_sequences", "num_samples", "end_of_sweep")}


def test_cbf_through_minibatch_source_matches_the_ctf(tmp_path):
    (tmp_path / "d.ctf").write_text(CTF_TEXT)
    ctf_to_cbf(str(tmp_path / "d.ctf"), str(tmp_path / "d.cbf"), StreamDefs(**CTF_STREAMS), chunk_size=1)
    sources = [MinibatchSource(CTFDeserializer(str(tmp_path / "d.ctf"), StreamDefs(**CTF_STREAMS)),
                               randomize=False, max_sweeps=1),
               MinibatchSource(CBFDeserializer(str(tmp_path / "d.cbf")), randomize=False, max_sweeps=1)]
    batches = [[], []]
    for k, src in enumerate(sources):
        while True:
            mb = src.next_minibatch(3)
            if not mb:
                break
            batches[k].append({si.name: (d.num_sequences, d.num_samples,
                                         [np.asarray(s.todense() if hasattr(s, "todense") else s)
                                          for s in d.as_sequences()]) for si, d in mb.items()})
    assert len(batches[0]) == len(batches[1]) > 1
    for a, b in zip(*batches):
        for name in ("x", "y"):
            assert a[name][:2] == b[name][:2]
            for sa, sb in zip(a[name][2], b[name][2]):
                np.testing.assert_array_equal(sa, sb)
