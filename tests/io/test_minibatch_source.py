"""MinibatchSource: packing by samples, sweeps and limits, MinibatchData and feeding it to the
engine, composite readers, frame mode, truncated BPTT, ATIS end to end, and the Python-side
sources (MinibatchSourceFromData, UserMinibatchSource, UserDeserializer)."""

import os
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import cntk as C
from cntk.io import (MinibatchSource, CTFDeserializer, StreamDef, StreamDefs, StreamInformation, MinibatchData,
                     MinibatchSourceFromData, UserMinibatchSource, UserDeserializer, FULL_DATA_SWEEP, DataError)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(os.path.dirname(REPO), "shared", "data")
ATIS = os.path.join(DATA, "atis")
needs_atis = pytest.mark.skipif(not os.path.isdir(ATIS), reason="ATIS data not available")


def make_ctf(tmp_path, lengths, name="d.ctf", label_once=False, seed=0):
    """Sequence i has lengths[i] lines of 'x' (dim 2, values i and t) and 'y' (sparse dim 5)
    on every line (or only the first with label_once)."""
    lines = []
    for i, n in enumerate(lengths):
        for t in range(n):
            y = " |y %d:1" % (i % 5) if (t == 0 or not label_once) else ""
            lines.append("%d |x %d %d%s" % (i, i, t, y))
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return str(p)


XY = StreamDefs(x=StreamDef(field="x", shape=2), y=StreamDef(field="y", shape=5, is_sparse=True))


def ids_of(mb, name="x"):
    return [int(s[0, 0]) for s in mb[name].as_sequences()] if mb else []


def by_name(mb):
    return {si.name: d for si, d in mb.items()}


def greedy(lengths, M):
    out, cur, tot = [], [], 0
    for i, n in enumerate(lengths):
        if cur and tot + n > M:
            out.append(cur)
            cur, tot = [], 0
        cur.append(i)
        tot += n
    out.append(cur)
    return out


# ------------------------------------------------------------------------------- packing

def test_whole_sequences_packed_up_to_the_sample_budget(tmp_path):
    lengths = [3, 5, 2, 7, 1, 1, 4, 12, 2, 3]
    src = MinibatchSource(CTFDeserializer(make_ctf(tmp_path, lengths), XY), randomize=False, max_sweeps=1)
    got = []
    while True:
        mb = by_name(src.next_minibatch(8))
        if not mb:
            break
        got.append(ids_of(mb))
        assert mb["x"].num_samples == sum(lengths[i] for i in got[-1])
        assert mb["x"].num_sequences == len(got[-1])
    assert got == greedy(lengths, 8)       # the 12-sample sequence comes alone
    assert src.next_minibatch(8) == {}


def test_defines_mb_size_counts_that_streams_samples(tmp_path):
    lengths = [3, 5, 2, 7]
    xy = StreamDefs(x=StreamDef(field="x", shape=2),
                    y=StreamDef(field="y", shape=5, is_sparse=True, defines_mb_size=True))
    src = MinibatchSource(CTFDeserializer(make_ctf(tmp_path, lengths, label_once=True), xy),
                          randomize=False, max_sweeps=1)
    mb = by_name(src.next_minibatch(3))
    assert ids_of(mb) == [0, 1, 2] and mb["y"].num_samples == 3 and mb["x"].num_samples == 10
    assert src.stream_info("y").defines_mb_size


def test_sweeps_end_of_sweep_and_crossing_sweep_boundaries(tmp_path):
    lengths = [2, 2, 2, 2, 2]
    src = MinibatchSource(CTFDeserializer(make_ctf(tmp_path, lengths), XY), randomize=False)
    seen = []
    for _ in range(4):
        mb = by_name(src.next_minibatch(4))
        seen.append((ids_of(mb), mb["x"].end_of_sweep))
    # a minibatch may span two sweeps; it then reports the end of the sweep
    assert seen == [([0, 1], False), ([2, 3], False), ([4, 0], True), ([1, 2], False)]


def test_max_sweeps_max_samples_and_full_data_sweep(tmp_path):
    p = make_ctf(tmp_path, [2, 2, 2])
    src = MinibatchSource(CTFDeserializer(p, XY), randomize=False, max_sweeps=2)
    n = 0
    while src.next_minibatch(3):
        n += 1
    assert n == 6
    src = MinibatchSource(CTFDeserializer(p, XY), randomize=False, max_samples=5)
    sizes = []
    while True:
        mb = by_name(src.next_minibatch(4))
        if not mb:
            break
        sizes.append(mb["x"].num_samples)
    assert sizes == [4, 1 + 1]     # the budget is cut at max_samples; a sequence still comes whole
    src = MinibatchSource(CTFDeserializer(p, XY), randomize=False, max_samples=FULL_DATA_SWEEP)
    mbs = [src.next_minibatch(100), src.next_minibatch(100)]
    assert by_name(mbs[0])["x"].num_sequences == 3 and by_name(mbs[0])["x"].end_of_sweep and mbs[1] == {}


def test_argument_checks(tmp_path):
    d = CTFDeserializer(make_ctf(tmp_path, [1]), XY)
    with pytest.raises(ValueError, match="mutually exclusive"):
        MinibatchSource(d, max_samples=10, max_sweeps=1)
    with pytest.raises(ValueError, match="mutually exclusive"):
        MinibatchSource(d, randomization_window_in_chunks=4, randomization_window_in_samples=10)
    with pytest.raises(ValueError, match="cannot be combined"):
        MinibatchSource(d, frame_mode=True, truncation_length=5)
    src = MinibatchSource(d)
    with pytest.raises(ValueError, match="positive integer"):
        src.next_minibatch(0)
    with pytest.raises(ValueError, match="partition_index"):
        src.next_minibatch(5, num_data_partitions=2, partition_index=2)
    with pytest.raises(KeyError, match="no stream named 'z'"):
        src.stream_info("z")
    assert C.io.INFINITELY_REPEAT == 2 ** 64 - 1 and C.io.FULL_DATA_SWEEP == 2 ** 64 - 2
    assert C.io.DEFAULT_RANDOMIZATION_WINDOW_IN_CHUNKS == 128


def test_streams_input_map_and_minibatch_data(tmp_path):
    src = MinibatchSource(CTFDeserializer(make_ctf(tmp_path, [3, 1, 2]), XY), randomize=False)
    assert src.streams.x is src.stream_info("x") is src["x"]
    assert [si.name for si in src.stream_infos()] == ["x", "y"]
    assert src.streams.y.is_sparse and src.streams.y.shape == (5,) and src.streams.x.storage_format == "dense"
    x = C.sequence.input_variable(2)
    y = C.sequence.input_variable(5, is_sparse=True)
    mb = src.next_minibatch(6, input_map={x: src.streams.x, y: "y"})
    assert set(mb) == {x, y}
    d = mb[x]
    assert isinstance(d, MinibatchData) and len(d) == 3
    assert d.shape == (3, 3, 2) and not d.is_sparse and mb[y].is_sparse
    np.testing.assert_array_equal(d.mask, [[2, 1, 1], [2, 0, 0], [2, 1, 0]])
    a = d.asarray()
    assert a.shape == (3, 3, 2) and a[1, 1:].sum() == 0
    np.testing.assert_array_equal(a[2, :2], [[2, 0], [2, 1]])
    seqs = mb[y].as_sequences()
    assert [s.shape for s in seqs] == [(3, 5), (1, 5), (2, 5)]
    np.testing.assert_array_equal(seqs[2].toarray(), [[0, 0, 1, 0, 0]] * 2)


# ------------------------------------------------------------------------------- feeding

def test_minibatch_data_feeds_eval_train_and_test(tmp_path):
    src = MinibatchSource(CTFDeserializer(make_ctf(tmp_path, [3, 1, 2, 4, 2]), XY), randomize=False)
    x = C.sequence.input_variable(2)
    y = C.sequence.input_variable(5, is_sparse=True)
    W = C.parameter((5, 2), init=np.arange(10, dtype=np.float32).reshape(5, 2) / 10)
    emb = C.times(y, W)                  # sparse left operand: a row lookup
    out = emb + x
    mb = src.next_minibatch(12, input_map={x: src.streams.x, y: src.streams.y})
    got = out.eval(mb)
    xs = mb[x].as_sequences()
    ys = [s.toarray() for s in mb[y].as_sequences()]
    for g, xa, ya in zip(got, xs, ys):
        np.testing.assert_allclose(g, ya @ W.value + xa, rtol=1e-6)
    # the same through the Trainer
    z = C.times(x, C.parameter((2, 5), init=C.glorot_uniform(seed=1)))
    loss = C.cross_entropy_with_softmax(z, y)
    err = C.classification_error(z, y)
    trainer = C.Trainer(z, (loss, err), [C.sgd(z.parameters, C.learning_parameter_schedule(0.01))])
    before = trainer.test_minibatch(mb)
    for _ in range(5):
        trainer.train_minibatch(mb)
    assert trainer.previous_minibatch_sample_count == 12
    assert np.isfinite(trainer.previous_minibatch_loss_average)
    assert 0 <= before <= 1


def test_non_sequence_input_takes_length_one_sequences(tmp_path):
    p = tmp_path / "flat.ctf"
    p.write_text("|f 1 2 |l 1:1\n|f 3 4 |l 0:1\n|f 5 6 |l 2:1\n")
    src = MinibatchSource(CTFDeserializer(str(p), StreamDefs(f=StreamDef(field="f", shape=2),
                                                             l=StreamDef(field="l", shape=3, is_sparse=True))),
                          randomize=False)
    f = C.input_variable(2)
    lab = C.input_variable(3, is_sparse=True)
    mb = src.next_minibatch(3, input_map={f: "f", lab: "l"})
    np.testing.assert_array_equal((f * 2).eval({f: mb[f]}), [[2, 4], [6, 8], [10, 12]])
    np.testing.assert_array_equal(C.reduce_sum(lab * np.arange(3, dtype=np.float32)).eval({lab: mb[lab]}).ravel(), [1, 0, 2])
    seq_src = MinibatchSource(CTFDeserializer(make_ctf(tmp_path, [2]), XY), randomize=False)
    with pytest.raises(ValueError, match="no sequence axis"):
        (f * 1).eval({f: seq_src.next_minibatch(5)[seq_src.streams.x]})


# ------------------------------------------------------------------------------- composite

def test_composite_reader_joins_by_sequence_id(tmp_path):
    a = tmp_path / "a.ctf"
    b = tmp_path / "b.ctf"
    a.write_text("".join("%d |x %d 0\n%d |x %d 1\n" % (i, i, i, i) for i in range(6)))
    # the second file lists the sequences in another order and lacks sequence 4
    b.write_text("".join("%d |lab %d\n" % (i, 10 * i) for i in [5, 3, 1, 0, 2]))
    da = CTFDeserializer(str(a), StreamDefs(x=StreamDef(field="x", shape=2)))
    db = CTFDeserializer(str(b), StreamDefs(lab=StreamDef(field="lab", shape=1)))
    with pytest.warns(RuntimeWarning, match="no match by key"):
        src = MinibatchSource([da, db], randomize=False, max_sweeps=1)
        mb = by_name(src.next_minibatch(100))
    xs = [int(s[0, 0]) for s in mb["x"].as_sequences()]
    labs = [s.ravel().tolist() for s in mb["lab"].as_sequences()]
    assert xs == [0, 1, 2, 3, 5] and labs == [[0], [10], [20], [30], [50]]
    assert mb["x"].num_samples == 10 and mb["lab"].num_samples == 5
    with pytest.raises(ValueError, match="two deserializers define a stream named 'x'"):
        MinibatchSource([da, CTFDeserializer(str(a), StreamDefs(x=StreamDef(field="x", shape=2)))])


@pytest.mark.skipif(not os.path.isdir(os.path.join(DATA, "cntk")), reason="CNTK data not available")
def test_composite_readers_example_file():
    path = os.path.join(DATA, "cntk", "Examples", "DataReading", "CompositeReaders", "test.ctf")
    src = MinibatchSource(CTFDeserializer(path, StreamDefs(features=StreamDef(field="features", shape=3),
                                                           label=StreamDef(field="label", shape=4))),
                          randomize=False, max_sweeps=1)
    mb = by_name(src.next_minibatch(100000))
    assert mb["features"].num_sequences == 4 and mb["features"].end_of_sweep
    np.testing.assert_array_equal(mb["label"].asarray()[:, 0], [[1, 2, 3, 4]] * 2 + [[4, 3, 2, 1]] * 2)


# ------------------------------------------------------------------------------- frame mode, BPTT

def test_frame_mode_makes_every_sample_a_sequence(tmp_path):
    p = make_ctf(tmp_path, [3, 1, 2])
    src = MinibatchSource(CTFDeserializer(p, XY), randomize=False, frame_mode=True, max_sweeps=1)
    mb = by_name(src.next_minibatch(4))
    assert mb["x"].num_sequences == 4 and mb["x"].num_samples == 4
    assert [s.tolist() for s in mb["x"].as_sequences()] == [[[0, 0]], [[0, 1]], [[0, 2]], [[1, 0]]]
    f = C.input_variable(2)
    np.testing.assert_array_equal((f + 0).eval({f: mb["x"]}), [[0, 0], [0, 1], [0, 2], [1, 0]])
    q = make_ctf(tmp_path, [3, 1], name="once.ctf", label_once=True)
    with pytest.raises(ValueError, match="frame mode needs every stream"):
        MinibatchSource(CTFDeserializer(q, XY), frame_mode=True).next_minibatch(4)


def test_truncation_cuts_sequences_and_marks_continuations(tmp_path):
    lengths = [5, 3, 7, 2]
    p = make_ctf(tmp_path, lengths)
    src = MinibatchSource(CTFDeserializer(p, XY), randomize=False, truncation_length=2, max_sweeps=1)
    rows = []
    while True:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            mb = by_name(src.next_minibatch(4))       # 2 slots of 2 samples
        if len(rows) == 4:      # slot 0 ran dry; sequence 2 moves from row 1 to row 0 and restarts
            assert "move to another row" in str(w[0].message)
        if not mb:
            break
        d = mb["x"]
        assert d.num_sequences <= 2 and all(s.shape[0] <= 2 for s in d.as_sequences())
        rows.append([(int(s[0, 0]), int(s[0, 1]), int(m[0])) for s, m in zip(d.as_sequences(), d.mask)])
    # slot 0 walks sequence 0 then 2's... each piece starts where the last one ended
    assert rows[:3] == [[(0, 0, 2), (1, 0, 2)], [(0, 2, 1), (1, 2, 1)], [(0, 4, 1), (2, 0, 2)]]
    total = sum(len(r) for r in rows)
    pieces = sorted((i, t) for r in rows for (i, t, _) in r)
    assert pieces == sorted((i, t) for i, n in enumerate(lengths) for t in range(0, n, 2)) and total == len(pieces)


def test_truncated_pieces_carry_recurrent_state(tmp_path):
    lengths = [6, 4]
    p = make_ctf(tmp_path, lengths)
    x = C.sequence.input_variable(2)
    ph = C.placeholder()
    cum = x + C.sequence.past_value(ph)
    cum.replace_placeholders({ph: cum.output})
    whole = MinibatchSource(CTFDeserializer(p, XY), randomize=False, max_sweeps=1).next_minibatch(100)
    expect = cum.eval({x: whole[C.io.StreamInformation("x", 0, "dense", np.float32, (2,))]})
    src = MinibatchSource(CTFDeserializer(p, XY), randomize=False, truncation_length=3, max_sweeps=1)
    got = [[], []]
    while True:
        mb = src.next_minibatch(6, input_map={x: "x"})
        if not mb:
            break
        out = cum.forward({x: mb[x]}, keep_for_backward=[cum.output])[1][cum.output]
        for s, o in zip(mb[x].as_sequences(), out):
            got[int(s[0, 0])].append(o)
    for g, e in zip(got, expect):
        np.testing.assert_allclose(np.concatenate(g), e)


# ------------------------------------------------------------------------------- ATIS

@needs_atis
def test_atis_end_to_end_counts_and_shapes():
    streams = StreamDefs(query=StreamDef(field="S0", shape=943, is_sparse=True),
                         intent=StreamDef(field="S1", shape=26, is_sparse=True),
                         labels=StreamDef(field="S2", shape=129, is_sparse=True))
    for name, n in (("atis.train.ctf", 4978), ("atis.test.ctf", 893)):
        src = MinibatchSource(CTFDeserializer(os.path.join(ATIS, name), streams), max_sweeps=1)
        assert [(s.name, s.shape, s.is_sparse) for s in src.stream_infos()] == [
            ("query", (943,), True), ("intent", (26,), True), ("labels", (129,), True)]
        seqs = samples = 0
        while True:
            mb = by_name(src.next_minibatch(2000))
            if not mb:
                break
            assert mb["query"].num_samples == mb["labels"].num_samples <= 2000 or mb["query"].num_sequences == 1
            assert mb["intent"].num_samples == mb["intent"].num_sequences
            seqs += mb["query"].num_sequences
            samples += mb["query"].num_samples
        assert seqs == n
        assert samples == (66547 if n == 4978 else 10984)


# ------------------------------------------------------------------------------- Python sources

def test_minibatch_source_from_data_dense_sparse_and_sequences():
    X = np.arange(15, dtype=np.float32).reshape(5, 3)
    s = MinibatchSourceFromData(dict(x=X), max_samples=len(X))
    np.testing.assert_array_equal(s.next_minibatch(3)[s.streams["x"]].data.asarray(), X[:3])
    last = s.next_minibatch(3)[s.streams["x"]]
    np.testing.assert_array_equal(last.asarray(), X[3:])
    assert last.end_of_sweep and s.next_minibatch(3) == {}
    Y = sp.csr_matrix((np.ones(5, np.float32), ([0, 1, 2, 3, 4], [1, 0, 0, 1, 0])), shape=(5, 2))
    s = MinibatchSourceFromData(dict(x=X, y=Y))
    s.next_minibatch(3)
    a = s.next_minibatch(3)
    assert a[s.streams.y].num_sequences == 2 and a[s.streams.y].end_of_sweep
    np.testing.assert_array_equal(a[s.streams.y].asarray().toarray(), [[0, 1], [1, 0]])
    np.testing.assert_array_equal(s.next_minibatch(3)[s.streams.y].asarray().toarray(), Y[:3].toarray())  # wraps
    state = s.get_checkpoint_state()
    nxt = s.next_minibatch(2)[s.streams.x].asarray()
    s.restore_from_checkpoint(state)
    np.testing.assert_array_equal(s.next_minibatch(2)[s.streams.x].asarray(), nxt)
    XX = [np.array([[1], [3], [2]], np.float32), np.array([[4], [1]], np.float32)]
    YY = [sp.csr_matrix(np.array([[0, 1], [1, 0], [1, 0]], np.float32)), sp.csr_matrix(np.array([[1, 0], [1, 0]], np.float32))]
    seqtype = C.layers.typing.Sequence[C.layers.typing.tensor]
    s = MinibatchSourceFromData(dict(xx=(XX, seqtype), yy=(YY, seqtype)))
    mb = s.next_minibatch(3)
    assert mb[s.streams.xx].num_sequences == 1 and mb[s.streams.yy].shape == (1, 3, 2)
    xv = C.sequence.input_variable(1)
    np.testing.assert_array_equal(C.sequence.reduce_sum(xv).eval({xv: mb[s.streams.xx]}).ravel(), [6])
    with pytest.raises(ValueError, match="has 2 items but another stream has 5"):
        MinibatchSourceFromData(dict(x=X, y=X[:2]))


def test_user_minibatch_source_both_calling_conventions():
    class Counting(UserMinibatchSource):
        def __init__(self):
            self.info = StreamInformation("n", 0, "dense", np.float32, (1,))
            self.pos = 0
            super().__init__()

        def stream_infos(self):
            return [self.info]

        def next_minibatch(self, num_samples, number_of_workers, worker_rank, device=None):
            vals = np.arange(self.pos, self.pos + num_samples, dtype=np.float32)[worker_rank::number_of_workers]
            self.pos += num_samples
            return {self.info: MinibatchData(C.Value(batch=vals.reshape(-1, 1)), len(vals), len(vals), False)}

        def get_checkpoint_state(self):
            return {"pos": self.pos}

        def restore_from_checkpoint(self, state):
            self.pos = state["pos"]

    s = Counting()
    assert s.streams.n is s.info and s["n"] is s.info and not s.is_infinite()
    np.testing.assert_array_equal(s.next_minibatch(4, 1, 0)[s.info].asarray().ravel(), [0, 1, 2, 3])
    v = C.input_variable(1)
    mb = s.next_minibatch(4, input_map={v: s.streams.n}, num_data_partitions=2, partition_index=1)
    np.testing.assert_array_equal(mb[v].asarray().ravel(), [5, 7])
    np.testing.assert_array_equal((v * 1).eval(mb).ravel(), [5, 7])
    with pytest.raises(TypeError):
        UserMinibatchSource()


class Squares(UserDeserializer):
    """Chunk c holds sequences k = 10c .. 10c+9; sequence k has k % 4 + 1 samples (k, t)."""

    def __init__(self, chunks=6):
        self.chunks = chunks

    def stream_infos(self):
        return [StreamInformation("v", 0, "dense", np.float32, (2,)),
                StreamInformation("lab", 1, "sparse", np.float32, (3,))]

    def num_chunks(self):
        return self.chunks

    def get_chunk(self, chunk_id):
        ks = range(10 * chunk_id, 10 * chunk_id + 10)
        return {"v": [np.array([[k, t] for t in range(k % 4 + 1)], np.float32) for k in ks],
                "lab": sp.csr_matrix((np.ones(10, np.float32), ([i for i in range(10)], [k % 3 for k in ks])),
                                     shape=(10, 3))}


def test_user_deserializer_plugs_into_minibatch_source():
    src = MinibatchSource(Squares(), randomization_window_in_chunks=2, max_sweeps=1)
    keys = []
    while True:
        mb = by_name(src.next_minibatch(9))
        if not mb:
            break
        for s, lab in zip(mb["v"].as_sequences(), mb["lab"].as_sequences()):
            k = int(s[0, 0])
            assert s.shape[0] == k % 4 + 1 and lab.shape == (1, 3) and lab.toarray()[0, k % 3] == 1
            keys.append(k)
    assert sorted(keys) == list(range(60)) and keys != list(range(60))


def test_bad_user_deserializer_output_is_reported():
    class Broken(Squares):
        def get_chunk(self, chunk_id):
            d = super().get_chunk(chunk_id)
            d["v"] = d["v"][:-1]
            return d

    with pytest.raises(DataError, match=r"get_chunk\(\d\) gave (9|10) sequences for stream '(v|lab)' but (9|10)"):
        MinibatchSource(Broken()).next_minibatch(5)


def test_prefetch_does_not_change_results(tmp_path):
    p = make_ctf(tmp_path, list(np.random.default_rng(0).integers(1, 6, 80)))
    sizes = [7, 7, 3, 11, 11, 11, 5, 7, 2, 20]

    def run(multithreaded):
        src = MinibatchSource(CTFDeserializer(p, XY, chunk_size=200), randomization_window_in_chunks=3,
                              multithreaded_deserializer=multithreaded)
        return [ids_of(by_name(src.next_minibatch(s))) for s in sizes * 3]

    a = run(False)
    assert a == run(True)
    # without prefetching: a fresh source per minibatch, restored to where the last one stopped
    state, b = None, []
    for s in sizes * 3:
        src = MinibatchSource(CTFDeserializer(p, XY, chunk_size=200), randomization_window_in_chunks=3)
        if state is not None:
            src.restore_from_checkpoint(state)
        b.append(ids_of(by_name(src.next_minibatch(s))))
        state = src.get_checkpoint_state()
    assert a == b


def test_data_that_is_all_skipped_never_hangs(tmp_path):
    p = tmp_path / "bad.ctf"
    p.write_text("0 |x 1 q\n1 |x 2 w\n")
    src = MinibatchSource(CTFDeserializer(str(p), XY), max_errors=5)
    with pytest.raises(DataError, match="no sequences"), pytest.warns(RuntimeWarning, match="skipping"):
        src.next_minibatch(10)
    src = MinibatchSource(CTFDeserializer(str(p), XY), max_errors=5, max_sweeps=1)
    with pytest.warns(RuntimeWarning, match="skipping"):
        assert src.next_minibatch(10) == {}
    assert not src.is_infinite() and MinibatchSource(CTFDeserializer(str(p), XY)).is_infinite()
