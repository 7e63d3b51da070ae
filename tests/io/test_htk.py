"""HTKFeatureDeserializer and HTKMLFDeserializer on HTK feature files, SCP files and MLFs the
tests write: header parsing, archives, context windows, broadcast, labels, and bad input."""

import struct
import warnings

import numpy as np
import pytest

from cntk.io import StreamDef, StreamDefs, DataError
from cntk.io import htk as H
from cntk.io.deserializer import ErrorBudget
from cntk.io.htk import HTKFeatureDeserializer, HTKMLFDeserializer, read_htk, stack_context

USER, MFCC, COMPRESSED = 9, 6, 0o2000


def write_htk(path, frames, kind=USER, period=100000, big_endian=True, compressed=None):
    """An HTK feature file; ``compressed=(A, B)`` stores int16 ``frames * A - B``."""
    order = ">" if big_endian else "<"
    frames = np.asarray(frames, np.float32)
    T, dim = frames.shape
    with open(str(path), "wb") as f:
        if compressed is None:
            f.write(struct.pack(order + "iiHh", T, period, 4 * dim, kind))
            f.write(frames.astype(order + "f4").tobytes())
        else:
            a, b = (np.asarray(v, np.float32) for v in compressed)
            f.write(struct.pack(order + "iiHh", T + 4, period, 2 * dim, kind | COMPRESSED))
            f.write(a.astype(order + "f4").tobytes() + b.astype(order + "f4").tobytes())
            f.write(np.round(frames * a - b).astype(order + "i2").tobytes())
    return frames


def _feat(scp, shape, **kw):
    return HTKFeatureDeserializer(StreamDefs(features=StreamDef(shape=shape, scp=str(scp), **kw)))


def _seqs(packed):
    return [packed.sequence(i) for i in range(len(packed))]


def _chunk(d, c=0):
    """Chunk ``c`` as {stream: [per-sequence value]}."""
    return {name: _seqs(p) for name, p in d.get_chunk(c).items()}


def _all(d, name):
    return [x for c in range(d.num_chunks()) for x in _seqs(d.get_chunk(c)[name])]


def test_header_byte_order_and_compression_are_detected(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 4
    write_htk(tmp_path / "be.htk", x)
    write_htk(tmp_path / "le.htk", x, big_endian=False, kind=MFCC)
    write_htk(tmp_path / "c.htk", x, compressed=([4, 4, 4], [1, 1, 1]))
    for name, kind in (("be.htk", "USER"), ("le.htk", "MFCC")):
        frames, h = read_htk(str(tmp_path / name))
        np.testing.assert_array_equal(frames, x)
        assert (h.kind, h.period, h.dim, h.frames) == (kind, 100000, 3, 4)
    frames, h = read_htk(str(tmp_path / "c.htk"))
    assert h.compressed and h.frames == 4
    np.testing.assert_allclose(frames, x)          # (short + B) / A undoes the compression
    np.testing.assert_array_equal(read_htk(str(tmp_path / "be.htk"), 1, 2)[0], x[1:3])


def test_scp_archive_ranges_and_utterance_ids(tmp_path):
    a = write_htk(tmp_path / "a.htk", np.arange(10, dtype=np.float32).reshape(5, 2))
    b = write_htk(tmp_path / "arch.htk", -np.arange(16, dtype=np.float32).reshape(8, 2))
    (tmp_path / "f.scp").write_text("spk1/utt1.mfc=%s\r\nutt2.mfc=%s[2,5]\n\n%s\n"
                                    % (tmp_path / "a.htk", tmp_path / "arch.htk", tmp_path / "a.htk"))
    d = _feat(tmp_path / "f.scp", 2)
    assert d.stream_infos()[0].shape == (2,) and not d.stream_infos()[0].is_sparse
    assert d.sequence_keys(0) == ["spk1/utt1", "utt2", str(tmp_path / "a")]
    seqs = _all(d, "features")
    np.testing.assert_array_equal(seqs[0], a)
    np.testing.assert_array_equal(seqs[1], b[2:6])           # [start, end] is inclusive
    assert seqs[1].dtype == np.float32


def test_context_window_stacks_neighbours_with_replicated_edges(tmp_path):
    x = write_htk(tmp_path / "u.htk", np.arange(8, dtype=np.float32).reshape(4, 2))
    (tmp_path / "f.scp").write_text("u=%s\n" % (tmp_path / "u.htk"))
    d = _feat(tmp_path / "f.scp", 2, context=(2, 1))
    assert d.stream_infos()[0].shape == (8,)
    got = _all(d, "features")[0]
    # row t = frames t-2, t-1, t, t+1 clipped to [0, 3]
    expected = np.array([np.concatenate([x[max(0, min(3, t + k))] for k in (-2, -1, 0, 1)]) for t in range(4)])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(stack_context(x, 0, 0), x)


def test_shape_without_context_implies_a_symmetric_window(tmp_path):
    x = write_htk(tmp_path / "u.htk", np.arange(6, dtype=np.float32).reshape(3, 2))
    (tmp_path / "f.scp").write_text("u=%s\n" % (tmp_path / "u.htk"))
    got = _all(_feat(tmp_path / "f.scp", 6), "features")[0]     # 6 = 3 frames of 2
    np.testing.assert_array_equal(got, stack_context(x, 1, 1))
    with pytest.raises(DataError, match="not symmetrical"):
        _feat(tmp_path / "f.scp", 4)
    with pytest.raises(DataError, match="not a multiple"):
        _feat(tmp_path / "f.scp", 5)
    with pytest.raises(DataError, match="has shape 3 but the features in .*u.htk.* have dimension 2"):
        _feat(tmp_path / "f.scp", 3, context=(1, 1))


def test_streams_join_by_utterance_and_broadcast_repeats_one_frame(tmp_path):
    x = write_htk(tmp_path / "x.htk", np.arange(10, dtype=np.float32).reshape(5, 2))
    y = write_htk(tmp_path / "y.htk", np.arange(15, dtype=np.float32).reshape(5, 3) + 100)
    iv = write_htk(tmp_path / "iv.htk", np.array([[7, 8, 9, 10]], np.float32))
    (tmp_path / "x.scp").write_text("b=%s[0,1]\na=%s[2,4]\n" % ((tmp_path / "x.htk",) * 2))
    (tmp_path / "y.scp").write_text("a=%s[2,4]\nb=%s[0,1]\n" % ((tmp_path / "y.htk",) * 2))
    (tmp_path / "iv.scp").write_text("a=%s\nb=%s\n" % ((tmp_path / "iv.htk",) * 2))
    d = HTKFeatureDeserializer(StreamDefs(
        x=StreamDef(shape=2, scp=str(tmp_path / "x.scp")),
        y=StreamDef(shape=3, scp=[str(tmp_path / "y.scp")]),
        iv=StreamDef(shape=4, scp=str(tmp_path / "iv.scp"), broadcast=True)))
    assert d.sequence_keys(0) == ["b", "a"]                   # the first stream's order
    chunk = _chunk(d)
    np.testing.assert_array_equal(chunk["x"][1], x[2:5])
    np.testing.assert_array_equal(chunk["y"][1], y[2:5])      # found by id, not by position
    np.testing.assert_array_equal(chunk["iv"][0], np.repeat(iv, 2, axis=0))
    np.testing.assert_array_equal(chunk["iv"][1], np.repeat(iv, 3, axis=0))
    with pytest.raises(ValueError, match="primary"):
        HTKFeatureDeserializer(StreamDefs(iv=StreamDef(shape=4, scp=str(tmp_path / "iv.scp"), broadcast=True)))


def test_dots_in_scp_mean_the_scp_folder(tmp_path, monkeypatch):
    sub = tmp_path / "feats"
    sub.mkdir()
    x = write_htk(sub / "u.htk", np.ones((2, 3), np.float32))
    (sub / "f.scp").write_text("u=.../u.htk\n")
    monkeypatch.chdir(tmp_path)
    np.testing.assert_array_equal(_all(_feat("feats/f.scp", 3), "features")[0], x)


def test_utterances_are_grouped_into_chunks_of_frames(tmp_path, monkeypatch):
    monkeypatch.setattr(H, "FRAMES_PER_CHUNK", 10)
    write_htk(tmp_path / "a.htk", np.zeros((40, 1), np.float32))
    (tmp_path / "f.scp").write_text("".join("u%d=%s[%d,%d]\n" % (i, tmp_path / "a.htk", 4 * i, 4 * i + 3)
                                            for i in range(10)))
    d = _feat(tmp_path / "f.scp", 1)
    # a new chunk starts once the current one holds more than 10 frames: 3 utterances each
    assert [len(d.sequence_keys(c)) for c in range(d.num_chunks())] == [3, 3, 3, 1]


def test_truncated_file_is_an_error_naming_it(tmp_path):
    write_htk(tmp_path / "t.htk", np.ones((6, 2), np.float32))
    data = (tmp_path / "t.htk").read_bytes()
    (tmp_path / "t.htk").write_bytes(data[:-12])            # drops a frame and a half
    write_htk(tmp_path / "ok.htk", np.ones((2, 2), np.float32))
    (tmp_path / "f.scp").write_text("bad=%s\ngood=%s\n" % (tmp_path / "t.htk", tmp_path / "ok.htk"))
    d = _feat(tmp_path / "f.scp", 2)
    with pytest.raises(DataError, match=r"f\.scp:1: utterance 'bad': HTK file .*t\.htk.* is truncated: "
                                        r"its header announces 6 frames of 8 bytes, but it holds only 4"):
        d.get_chunk(0)
    d.error_budget = ErrorBudget(1)
    with pytest.warns(RuntimeWarning, match="truncated"):
        chunk = _chunk(d)
    assert len(chunk["features"]) == 1


def test_bad_utterances_are_known_before_reading_and_keys_match_the_data(tmp_path):
    x = write_htk(tmp_path / "x.htk", np.arange(8, dtype=np.float32).reshape(4, 2))
    write_htk(tmp_path / "iv.htk", np.ones((2, 3), np.float32))
    (tmp_path / "x.scp").write_text("a=%s[0,1]\nb=%s[2,3]\nc=%s[0,3]\n" % ((tmp_path / "x.htk",) * 3))
    (tmp_path / "iv.scp").write_text("a=%s[0,0]\nc=%s\n" % ((tmp_path / "iv.htk",) * 2))
    d = HTKFeatureDeserializer(StreamDefs(x=StreamDef(shape=2, scp=str(tmp_path / "x.scp")),
                                          iv=StreamDef(shape=3, scp=str(tmp_path / "iv.scp"), broadcast=True)))
    # b has no i-vector and c's has 2 frames: only a is usable, and the keys say so up front
    assert d.sequence_keys(0) == ["a"] and d.chunk_sizes() == [(1, 2)]
    with pytest.raises(DataError, match=r"x\.scp:2: utterance 'b': not listed in the SCP file\(s\) of stream 'iv'"):
        d.get_chunk(0)
    d.error_budget = ErrorBudget(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chunk = _chunk(d)
    assert "needs 1 frame per utterance" in str(caught[1].message)
    np.testing.assert_array_equal(chunk["x"][0], x[0:2])
    assert len(chunk["iv"]) == 1 and chunk["iv"][0].shape == (2, 3)


def test_bad_scp_and_header_input(tmp_path):
    write_htk(tmp_path / "u.htk", np.ones((2, 2), np.float32))
    write_htk(tmp_path / "m.htk", np.ones((2, 2), np.float32), kind=MFCC)
    write_htk(tmp_path / "w.htk", np.ones((2, 2), np.float32), kind=0)          # WAVEFORM
    (tmp_path / "range.scp").write_text("u=%s[3,x]\n" % (tmp_path / "u.htk"))
    with pytest.raises(DataError, match=r"range\.scp:1: malformed path"):
        _feat(tmp_path / "range.scp", 2)
    with pytest.raises(DataError, match="cannot open SCP file"):
        _feat(tmp_path / "missing.scp", 2)
    (tmp_path / "w.scp").write_text("w=%s\n" % (tmp_path / "w.htk"))
    with pytest.raises(DataError, match="unsupported feature kind 0"):
        _feat(tmp_path / "w.scp", 2)
    (tmp_path / "mix.scp").write_text("u=%s\nm=%s\n" % (tmp_path / "u.htk", tmp_path / "m.htk"))
    with pytest.raises(DataError, match=":2: utterance 'm': inconsistent feature kind"):
        _feat(tmp_path / "mix.scp", 2).get_chunk(0)
    (tmp_path / "past.scp").write_text("u=%s[1,5]\n" % (tmp_path / "u.htk"))
    with pytest.raises(DataError, match=r"frame range \[1,5\] exceeds the 2 frames"):
        _feat(tmp_path / "past.scp", 2).get_chunk(0)
    with pytest.raises(ValueError, match="does not support stream names"):
        HTKFeatureDeserializer(StreamDefs(f=StreamDef(field='x', shape=2, scp=str(tmp_path / "w.scp"))))


# ------------------------------------------------------------------------------------------ MLF

STATES = ["sil", "a_s2", "a_s3", "b_s2"]


def _mlf(tmp_path, text, name="l.mlf"):
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


def _labels(tmp_path, mlf, dim=4, states=True, **kw):
    (tmp_path / "states.list").write_text("\n".join(STATES) + "\n")
    return HTKMLFDeserializer(str(tmp_path / "states.list") if states else None,
                              StreamDefs(labels=StreamDef(shape=dim, mlf=mlf)), **kw)


def _dense(m):
    return m.toarray()


def test_mlf_times_in_100ns_units_become_frame_labels(tmp_path):
    mlf = _mlf(tmp_path, '#!MLF!#\n"*/dir/utt1.lab"\n0 200000 sil\n200000 500000 a_s2 a\n500000 600000 b_s2\n.\n'
                         '"utt2.rec"\n0 2 a_s3\n2 3 sil\n.\n')
    d = _labels(tmp_path, mlf)
    info = d.stream_infos()[0]
    assert (info.name, info.shape, info.is_sparse) == ("labels", (4,), True)
    assert d.sequence_keys(0) == ["dir/utt1", "utt2"]
    y1, y2 = _chunk(d)["labels"]
    np.testing.assert_array_equal(_dense(y1), np.eye(4)[[0, 0, 1, 1, 1, 3]])     # 10 ms frames
    np.testing.assert_array_equal(_dense(y2), np.eye(4)[[2, 2, 0]])               # frame numbers


def test_phone_boundaries_mark_segment_starts_with_two(tmp_path):
    mlf = _mlf(tmp_path, '#!MLF!#\n"u.lab"\n0 2 sil\n2 5 a_s2\n.\n')
    y = _dense(_chunk(_labels(tmp_path, mlf, phoneBoundaries=True))["labels"][0])
    np.testing.assert_array_equal(y.max(axis=1), [2, 1, 2, 1, 1])
    y = _dense(_chunk(_labels(tmp_path, mlf, phone_boundaries=True))["labels"][0])
    assert y[2, 1] == 2
    assert _dense(_chunk(_labels(tmp_path, mlf))["labels"][0]).max() == 1


def test_numeric_class_ids_without_a_state_list_and_several_files(tmp_path):
    m1 = _mlf(tmp_path, '#!MLF!#\n"a.lab"\n0 2 x 3\n.\n#!MLF!#\n"b.lab"\n0 1 y 0\n.\n', "one.mlf")
    m2 = _mlf(tmp_path, '#!MLF!#\n"c.lab"\n0 1 z 1\n.\n', "two.mlf")
    d = _labels(tmp_path, [m1, m2], states=False)
    assert d.sequence_keys(0) == ["a", "b", "c"]
    ys = [_dense(y) for y in _chunk(d)["labels"]]
    np.testing.assert_array_equal(ys[0], np.eye(4)[[3, 3]])
    np.testing.assert_array_equal(ys[2], np.eye(4)[[1]])


@pytest.mark.parametrize("body, match", [
    ('"u.lab"\n0 2 sil\n3 4 sil\n.\n', r"l\.mlf:4: utterance 'u': labels are not consecutive"),
    ('"u.lab"\n1 2 sil\n.\n', "segment starts at frame 1, expected 0"),
    ('"u.lab"\n0 2 zzz\n.\n', r"l\.mlf:3: state 'zzz' is not in the state list"),
    ('"u.lab"\n0 x sil\n.\n', "cannot parse the frame range"),
    ('"u.lab"\n0 2 sil\n', "not terminated"),
    ('u.lab\n0 2 sil\n.\n', "expected a quoted utterance name"),
    ('"u.lab"\n0 2 sil\n.\n"u.lab"\n0 1 sil\n.\n', "utterance 'u' already appeared"),
])
def test_bad_mlf_entries_raise_naming_file_and_line(tmp_path, body, match):
    d = _labels(tmp_path, _mlf(tmp_path, "#!MLF!#\n" + body))
    with pytest.raises(DataError, match=match):
        d.get_chunk(0)


def test_class_id_beyond_the_label_dimension(tmp_path):
    d = _labels(tmp_path, _mlf(tmp_path, '#!MLF!#\n"u.lab"\n0 2 b_s2\n.\n'), dim=3)
    with pytest.raises(DataError, match="class id 3 exceeds the label dimension 3"):
        d.get_chunk(0)


def test_bad_mlf_entries_are_skipped_within_max_errors(tmp_path):
    d = _labels(tmp_path, _mlf(tmp_path, '#!MLF!#\n"bad.lab"\n0 2 zzz\n.\n"good.lab"\n0 1 sil\n.\n'))
    assert d.sequence_keys(0) == ["good"]
    d.error_budget = ErrorBudget(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = _chunk(d)["labels"]
    assert len(labels) == 1 and "zzz" in str(caught[0].message)


def test_mlf_file_level_errors(tmp_path):
    with pytest.raises(DataError, match="expected the MLF header"):
        _labels(tmp_path, _mlf(tmp_path, '"u.lab"\n0 1 sil\n.\n'))
    with pytest.raises(DataError, match="cannot open MLF file"):
        _labels(tmp_path, str(tmp_path / "missing.mlf"))
    (tmp_path / "dup.list").write_text("a\nb\na\n")
    with pytest.raises(DataError, match=r"dup\.list:3: state 'a' appears twice"):
        HTKMLFDeserializer(str(tmp_path / "dup.list"), StreamDefs(l=StreamDef(shape=3, mlf=str(tmp_path / "x"))))
    with pytest.raises(ValueError, match="single stream"):
        HTKMLFDeserializer(None, StreamDefs(a=StreamDef(shape=3, mlf="x"), b=StreamDef(shape=3, mlf="y")))



@pytest.mark.parametrize("make,files,who,files_words,dim_words", [
    (lambda d: HTKFeatureDeserializer(d), "scp", "HTKFeatureDeserializer", "scp files", "feature dimension"),
    (lambda d: HTKMLFDeserializer(None, d), "mlf", "HTKMLFDeserializer", "master label files", "number of classes")],
    ids=["features", "mlf"])
def test_stream_definition_errors_name_the_deserializer_and_stream(make, files, who, files_words, dim_words):
    with pytest.raises(ValueError, match=r"^%s does not support stream names \(field\); stream 's' has field='x'$"
                       % who):
        make(StreamDefs(s=StreamDef(field='x', shape=3, **{files: "f"})))
    with pytest.raises(ValueError, match="^%s: no %s specified for stream 's'$" % (who, files_words)):
        make(StreamDefs(s=StreamDef(shape=3)))
    with pytest.raises(ValueError, match="^%s: stream 's' needs shape=<%s>$" % (who, dim_words)):
        make(StreamDefs(s=StreamDef(**{files: "f"})))


# ---------------------------------------------------------------------------- MinibatchSource

from cntk.io import MinibatchSource  # noqa: E402


def _speech_corpus(tmp_path, lengths):
    feats, scp, mlf = [], [], ["#!MLF!#"]
    for i, T in enumerate(lengths):
        feats.append(write_htk(tmp_path / ("u%d.htk" % i), np.arange(2 * T, dtype=np.float32).reshape(T, 2) + 100 * i))
        scp.append("spk/u%d.mfc=%s" % (i, tmp_path / ("u%d.htk" % i)))
    for i in reversed(range(len(lengths))):           # the MLF lists the utterances in another order
        T = lengths[i]
        mlf += ['"*/spk/u%d.lab"' % i, "0 %d %s" % (100000 * (T // 2), STATES[i % 4]),
                "%d %d %s" % (100000 * (T // 2), 100000 * T, STATES[(i + 1) % 4]), "."]
    (tmp_path / "f.scp").write_text("\n".join(scp) + "\n")
    (tmp_path / "l.mlf").write_text("\n".join(mlf) + "\n")
    (tmp_path / "states.list").write_text("\n".join(STATES) + "\n")
    fd = HTKFeatureDeserializer(StreamDefs(features=StreamDef(shape=2, context=(1, 1), scp=str(tmp_path / "f.scp"))))
    ld = HTKMLFDeserializer(str(tmp_path / "states.list"),
                            StreamDefs(labels=StreamDef(shape=4, mlf=str(tmp_path / "l.mlf"))))
    return fd, ld, feats


def test_features_and_labels_join_by_utterance_in_a_minibatch_source(tmp_path):
    lengths = [4, 6, 2, 5]
    fd, ld, feats = _speech_corpus(tmp_path, lengths)
    src = MinibatchSource([fd, ld], randomize=False, max_sweeps=1)
    mb = src.next_minibatch(100)
    f, l = mb[src.streams.features], mb[src.streams.labels]
    assert (f.num_sequences, f.num_samples, l.num_samples) == (4, 17, 17)
    assert f.shape[-1] == 6 and l.is_sparse
    for i, (x, y) in enumerate(zip(f.as_sequences(), l.as_sequences())):
        T = lengths[i]
        np.testing.assert_array_equal(np.asarray(x), stack_context(feats[i], 1, 1))
        cls = np.asarray(y.todense() if hasattr(y, "todense") else y).argmax(axis=1)
        np.testing.assert_array_equal(cls, [i % 4] * (T // 2) + [(i + 1) % 4] * (T - T // 2))


def test_frame_mode_gives_frames_with_their_context_and_label(tmp_path):
    fd, ld, feats = _speech_corpus(tmp_path, [3, 4])
    src = MinibatchSource([fd, ld], frame_mode=True, randomize=False, max_sweeps=1)
    mb = src.next_minibatch(7)
    f, l = mb[src.streams.features], mb[src.streams.labels]
    assert f.num_sequences == 7 and f.shape[1:] == (1, 6)
    x = f.asarray()[:, 0]
    np.testing.assert_array_equal(x[:3], stack_context(feats[0], 1, 1))
    np.testing.assert_array_equal(x[3:], stack_context(feats[1], 1, 1))
    cls = [int(np.asarray(y.todense() if hasattr(y, "todense") else y).argmax()) for y in l.as_sequences()]
    assert l.num_sequences == 7 and cls == [0, 1, 1, 1, 1, 2, 2]
