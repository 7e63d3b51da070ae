"""ImageDeserializer and Base64ImageDeserializer on tiny images the tests write: map file
formats, BGR CHW pixels, labels, keys, paths, chunking, transforms and every bad-input case."""

import base64
import io
import warnings
import zipfile

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from cntk.io import StreamDef, StreamDefs, DataError  # noqa: E402
from cntk.io import transforms as T  # noqa: E402
from cntk.io.deserializer import ErrorBudget  # noqa: E402
from cntk.io.image import Base64ImageDeserializer, ImageDeserializer, decode_image  # noqa: E402


def _rgb(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png(path, rgb):
    Image.fromarray(rgb).save(str(path))
    return rgb


def _streams(transforms=None, num_classes=3, label=True):
    s = dict(features=StreamDef(field='image', transforms=transforms))
    if label:
        s['labels'] = StreamDef(field='label', shape=num_classes)
    return StreamDefs(**s)


def _bgr_chw(rgb):
    return rgb[..., ::-1].transpose(2, 0, 1).astype(np.float32)


def _keys(d):
    return [k for c in range(d.num_chunks()) for k in d.sequence_keys(c)]


def _seqs(packed):
    return [packed.sequence(i) for i in range(len(packed))]


def _read_all(d, sweep=0):
    """Every sequence's image (1, C, H, W) and label (1, classes) CSR row, in order."""
    images, labels = [], []
    for c in range(d.num_chunks()):
        chunk = d.get_chunk(c, sweep) if sweep else d.get_chunk(c)
        images += _seqs(chunk['features'])
        labels += _seqs(chunk['labels']) if 'labels' in chunk else []
    return images, labels


@pytest.fixture
def three_images(tmp_path):
    imgs = [_png(tmp_path / ("img%d.png" % i), _rgb(4, 6, i)) for i in range(3)]
    return tmp_path, imgs


def test_two_column_map_gives_bgr_chw_floats_and_one_hot_labels(three_images):
    folder, imgs = three_images
    m = folder / "map.txt"
    m.write_text("".join("%s\t%d\n" % (folder / ("img%d.png" % i), (2 - i)) for i in range(3)))
    d = ImageDeserializer(str(m), _streams())
    feat, lab = d.stream_infos()
    assert (feat.name, feat.shape, feat.is_sparse, np.dtype(feat.dtype)) == ('features', (3, 4, 6), False, np.float32)
    assert (lab.name, lab.shape, lab.is_sparse) == ('labels', (3,), True)
    images, labels = _read_all(d)
    assert len(images) == 3
    for i, (x, y) in enumerate(zip(images, labels)):
        assert x.shape == (1, 3, 4, 6) and x.dtype == np.float32
        np.testing.assert_array_equal(x[0], _bgr_chw(imgs[i]))      # blue first, values 0..255
        np.testing.assert_array_equal(y.toarray(), np.eye(3, dtype=np.float32)[[2 - i]])
    assert _keys(d) == [0, 1, 2]                                    # line numbers


def test_three_column_map_uses_sequence_ids(three_images):
    folder, _ = three_images
    m = folder / "map.txt"
    m.write_text("17\timg0.png\t0\r\nabc\timg1.png\t1\r\n\n")   # CRLF, a blank line
    d = ImageDeserializer(str(m), _streams())
    assert _keys(d) == [17, 'abc']
    images, labels = _read_all(d)
    assert [int(y.indices[0]) for y in labels] == [0, 1]


def test_relative_paths(three_images, tmp_path, monkeypatch):
    folder, imgs = three_images
    sub = folder / "maps"
    sub.mkdir()
    # '...' is the map file's folder; a plain relative path is tried in the working directory
    # first (CNTK) and then next to the map file
    (sub / "local.png").write_bytes((folder / "img1.png").read_bytes())
    m = sub / "map.txt"
    m.write_text(".../local.png\t0\nlocal.png\t1\nimg2.png\t2\n")
    monkeypatch.chdir(folder)
    images, _ = _read_all(ImageDeserializer(str(m), _streams()))
    for got, want in zip(images, (imgs[1], imgs[1], imgs[2])):
        np.testing.assert_array_equal(got[0], _bgr_chw(want))


def test_zip_archive_member(three_images):
    folder, imgs = three_images
    with zipfile.ZipFile(str(folder / "pack.zip"), "w") as z:
        z.write(str(folder / "img2.png"), "inner/x.png")
    m = folder / "map.txt"
    m.write_text("%s@/inner/x.png\t1\n" % (folder / "pack.zip"))
    images, _ = _read_all(ImageDeserializer(str(m), _streams()))
    np.testing.assert_array_equal(images[0][0], _bgr_chw(imgs[2]))


def test_scale_to_one_channel_decodes_grayscale(three_images):
    folder, imgs = three_images
    m = folder / "map.txt"
    m.write_text("img0.png\t0\n")
    d = ImageDeserializer(str(m), _streams([T.scale(6, 4, 1)]))
    assert d.stream_infos()[0].shape == (1, 4, 6)
    x = _read_all(d)[0][0][0, 0]
    r, g, b = (imgs[0][..., k].astype(np.float64) for k in range(3))
    np.testing.assert_allclose(x, 0.299 * r + 0.587 * g + 0.114 * b, atol=1.0)


def test_jpeg_is_decoded_in_bgr_order(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200                       # a red image
    Image.fromarray(rgb).save(str(tmp_path / "red.jpg"), quality=95)
    (tmp_path / "map.txt").write_text("red.jpg\t0\n")
    x = _read_all(ImageDeserializer(str(tmp_path / "map.txt"), _streams()))[0][0][0]
    assert abs(x[2].mean() - 200) < 3 and x[0].mean() < 3      # channel 2 is red


def test_transforms_apply_in_order_and_fix_the_shape(three_images):
    folder, imgs = three_images
    m = folder / "map.txt"
    m.write_text("img0.png\t0\nimg1.png\t1\n")
    d = ImageDeserializer(str(m), _streams([T.crop(crop_size=(4, 2)), T.scale(8, 4, 3, interpolations='nearest')]))
    assert d.stream_infos()[0].shape == (3, 4, 8)
    x = _read_all(d)[0][0][0]
    window = imgs[0][1:3, 1:5]                     # centre 4x2 of the 6x4 image
    np.testing.assert_array_equal(x, _bgr_chw(window.repeat(2, axis=0).repeat(2, axis=1)))


def test_multiview10_gives_ten_sequences_per_image(three_images):
    folder, imgs = three_images
    m = folder / "map.txt"
    m.write_text("5\timg0.png\t0\n6\timg1.png\t1\n")
    d = ImageDeserializer(str(m), _streams([T.crop(crop_type='multiview10', crop_size=2)]))
    images, labels = _read_all(d)
    assert len(images) == 20 and _keys(d) == [5] * 10 + [6] * 10
    assert [int(y.indices[0]) for y in labels] == [0] * 10 + [1] * 10
    np.testing.assert_array_equal(images[1][0], _bgr_chw(imgs[0][0:2, 4:6]))          # top-right
    np.testing.assert_array_equal(images[9][0], _bgr_chw(imgs[0][1:3, 2:4][:, ::-1]))  # centre, mirrored


def test_random_transforms_are_reproducible_and_vary_per_sweep(three_images):
    folder, _ = three_images
    m = folder / "map.txt"
    m.write_text("img0.png\t0\nimg0.png\t0\n")
    tr = [T.crop(crop_type='randomside', side_ratio=(0.3, 1.0), jitter_type='uniratio'), T.scale(3, 3, 3),
          T.color(0.2, 0.2, 0.2)]
    a = _read_all(ImageDeserializer(str(m), _streams(tr)))[0]
    b = _read_all(ImageDeserializer(str(m), _streams(tr)))[0]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], a[1])           # two lines, two random draws
    c = _read_all(ImageDeserializer(str(m), _streams(tr)), sweep=1)[0]
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("per_chunk", [1, 5])
def test_chunks_of_one_or_several_images_decode_in_order(tmp_path, monkeypatch, per_chunk):
    n = 37
    imgs = [_png(tmp_path / ("i%d.png" % i), _rgb(2, 3, i)) for i in range(n)]
    (tmp_path / "map.txt").write_text("".join("i%d.png\t%d\n" % (i, i % 4) for i in range(n)))
    monkeypatch.setattr(ImageDeserializer, "images_per_chunk", per_chunk)   # 1: CNTK's one image per chunk
    d = ImageDeserializer(str(tmp_path / "map.txt"), _streams(num_classes=4))
    assert d.num_chunks() == -(-n // per_chunk)
    assert d.multithreaded_by_default
    images, labels = _read_all(d)
    for i in range(n):
        np.testing.assert_array_equal(images[i][0], _bgr_chw(imgs[i]))
        assert labels[i].indices[0] == i % 4


def test_without_label_stream_only_images_are_produced(three_images):
    folder, _ = three_images
    (folder / "map.txt").write_text("img0.png\t7\n")
    d = ImageDeserializer(str(folder / "map.txt"), _streams(label=False))
    assert [s.name for s in d.stream_infos()] == ['features']
    assert list(d.get_chunk(0)) == ['features']


# ---------------------------------------------------------------------------------- bad input

def test_missing_map_file_names_it(tmp_path):
    with pytest.raises(DataError, match=r"cannot open map file .*nope\.txt"):
        ImageDeserializer(str(tmp_path / "nope.txt"), _streams())


@pytest.mark.parametrize("line, match", [
    ("img0.png", r"map\.txt:2: invalid map file format, expected 2 or 3 tab-separated columns"),
    ("img0.png\tcat", r"map\.txt:2: cannot parse label 'cat'"),
    ("img0.png\t5", r"map\.txt:2: image 'img0.png' has invalid class id 5; it exceeds the label dimension 3"),
    ("missing.png\t0", r"map\.txt:2: image 'missing.png': cannot open the image file"),
    ("corrupt.png\t0", r"map\.txt:2: image 'corrupt.png': not a decodable image"),
    ("a\tb\tc\td", r"map\.txt:2: invalid map file format.*found 4"),
])
def test_bad_map_lines_raise_naming_file_and_line(three_images, line, match):
    folder, _ = three_images
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (folder / "map.txt").write_text("img0.png\t0\n%s\nimg1.png\t1\n" % line)
    d = ImageDeserializer(str(folder / "map.txt"), _streams())
    with pytest.raises(DataError, match=match):
        _read_all(d)


def test_bad_lines_are_skipped_within_max_errors(three_images):
    folder, imgs = three_images
    (folder / "map.txt").write_text("img0.png\t0\nbroken line\nmissing.png\t1\nimg2.png\t2\n")
    d = ImageDeserializer(str(folder / "map.txt"), _streams())
    d.error_budget = ErrorBudget(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images, labels = _read_all(d)
    assert len(images) == 2 and len(caught) == 2
    assert ":2:" in str(caught[0].message) and ":3:" in str(caught[1].message)
    np.testing.assert_array_equal(images[1][0], _bgr_chw(imgs[2]))
    assert _keys(d) == [0, 3]                       # the unreadable image is left out
    d.error_budget = ErrorBudget(1)
    with pytest.raises(DataError, match="max_errors=1 exceeded"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _read_all(d)


def test_images_of_different_sizes_need_a_scale(tmp_path):
    _png(tmp_path / "a.png", _rgb(4, 6, 0))
    _png(tmp_path / "b.png", _rgb(5, 6, 1))
    (tmp_path / "map.txt").write_text("a.png\t0\nb.png\t0\n")
    d = ImageDeserializer(str(tmp_path / "map.txt"), _streams())
    assert d.stream_infos()[0].shape == (3, 4, 6)        # from the first image
    with pytest.raises(DataError, match=r":2: image 'b.png': the image is 3x5x6.*3x4x6.*scale"):
        _read_all(d)


@pytest.mark.parametrize("streams, match", [
    (StreamDefs(x=StreamDef(field='pixels')), "invalid field name 'pixels'"),
    (StreamDefs(y=StreamDef(field='label', shape=3)), "field='image'"),
    (StreamDefs(x=StreamDef(field='image'), y=StreamDef(field='label')), "needs shape"),
    (StreamDefs(x=StreamDef(field='image', transforms=[{'type': 'Crop'}])), "cntk.io.transforms"),
])
def test_stream_declarations_are_checked(three_images, streams, match):
    folder, _ = three_images
    (folder / "map.txt").write_text("img0.png\t0\n")
    with pytest.raises((ValueError, TypeError), match=match):
        ImageDeserializer(str(folder / "map.txt"), streams)


# ------------------------------------------------------------------------------------- base64

def _b64(rgb, fmt="PNG"):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def test_base64_with_and_without_sequence_ids(tmp_path):
    imgs = [_rgb(3, 5, i) for i in range(3)]
    keyed = tmp_path / "keyed.txt"
    keyed.write_text("".join("%d\t%d\t%s\n" % (10 + i, i, _b64(im)) for i, im in enumerate(imgs)))
    plain = tmp_path / "plain.txt"
    plain.write_text("".join("%d\t%s  \r\n" % (i, _b64(im)) for i, im in enumerate(imgs)))
    for path, keys in ((keyed, [10, 11, 12]), (plain, [0, 1, 2])):
        d = Base64ImageDeserializer(str(path), _streams())
        assert _keys(d) == keys
        assert d.stream_infos()[0].shape == (3, 3, 5)
        images, labels = _read_all(d)
        for i in range(3):
            np.testing.assert_array_equal(images[i][0], _bgr_chw(imgs[i]))
            assert labels[i].indices[0] == i


def test_base64_bad_lines(tmp_path):
    good = _b64(_rgb(3, 5, 0))
    path = tmp_path / "b64.txt"
    path.write_text("0\t%s\nx\t%s\n1\t%s\n0\n" % (good, good, base64.b64encode(b"not an image").decode()))
    d = Base64ImageDeserializer(str(path), _streams())
    with pytest.raises(DataError, match=r"b64\.txt:2: image with id 1: cannot parse label 'x'"):
        _read_all(d)
    d.error_budget = ErrorBudget(10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images, _ = _read_all(d)
    assert len(images) == 1
    text = " ".join(str(w.message) for w in caught)
    assert ":3:" in text and "not a decodable image" in text and ":4:" in text


def test_decode_image_rejects_garbage():
    with pytest.raises(ValueError, match="not a decodable image"):
        decode_image(b"definitely not an image")


def test_opencv_and_pillow_decode_png_identically(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rgb = _rgb(5, 7, 3)
    data = io.BytesIO()
    Image.fromarray(rgb).save(data, format="PNG")
    ours = decode_image(data.getvalue())
    theirs = cv2.imdecode(np.frombuffer(data.getvalue(), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(ours, theirs)


# ---------------------------------------------------------------------------- MinibatchSource

from cntk.io import MinibatchSource  # noqa: E402


def _map_of(tmp_path, n, bad=()):
    imgs = [_png(tmp_path / ("i%d.png" % i), _rgb(3, 4, i)) for i in range(n)]
    lines = ["i%d.png\t%d" % (i, i % 3) if i not in bad else "missing%d.png\t0" % i for i in range(n)]
    (tmp_path / "map.txt").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "map.txt"), imgs


def test_minibatch_source_reads_images_in_order(tmp_path):
    path, imgs = _map_of(tmp_path, 7)
    src = MinibatchSource(ImageDeserializer(path, _streams()), randomize=False, max_sweeps=1)
    seen = []
    while True:
        mb = src.next_minibatch(3)
        if not mb:
            break
        f, l = mb[src.streams.features], mb[src.streams.labels]
        assert f.shape[1:] == (1, 3, 3, 4) and l.is_sparse and l.shape[1:] == (1, 3)
        x = f.asarray()
        for k in range(f.num_sequences):
            seen.append(x[k, 0])
        assert f.end_of_sweep == (len(seen) == 7)
    assert len(seen) == 7
    for got, rgb in zip(seen, imgs):
        np.testing.assert_array_equal(got, _bgr_chw(rgb))


def test_minibatch_source_randomizes_a_permutation_of_the_images(tmp_path):
    path, imgs = _map_of(tmp_path, 12)
    src = MinibatchSource(ImageDeserializer(path, _streams([T.scale(4, 3, 3)])), randomization_seed=3,
                          max_sweeps=2)
    firsts = {tuple(_bgr_chw(rgb)[:, 0, 0]): i for i, rgb in enumerate(imgs)}
    order = []
    while True:
        mb = src.next_minibatch(5)
        if not mb:
            break
        x = mb[src.streams.features].asarray()
        order += [firsts[tuple(x[k, 0][:, 0, 0])] for k in range(x.shape[0])]
    assert sorted(order[:12]) == sorted(order[12:]) == list(range(12))
    assert order[:12] != list(range(12)) and order[:12] != order[12:]


def test_minibatch_source_max_errors_skips_unreadable_images(tmp_path):
    path, _ = _map_of(tmp_path, 6, bad=(2, 4))
    with pytest.raises(DataError, match=r"map\.txt:3: image 'missing2.png': cannot open the image file"):
        src = MinibatchSource(ImageDeserializer(path, _streams()), randomize=False, max_sweeps=1)
        while src.next_minibatch(10):
            pass
    src = MinibatchSource(ImageDeserializer(path, _streams()), randomize=False, max_sweeps=1, max_errors=2)
    total = 0
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        while True:
            mb = src.next_minibatch(10)
            if not mb:
                break
            total += mb[src.streams.features].num_sequences
    assert total == 4


def test_minibatch_source_varies_random_transforms_per_sweep_reproducibly(tmp_path):
    path, _ = _map_of(tmp_path, 4)
    tr = [T.crop(crop_type='randomside', side_ratio=(0.5, 1.0), jitter_type='uniratio'), T.scale(3, 3, 3),
          T.color(0.3, 0.3, 0.3)]

    def sweeps():
        src = MinibatchSource(ImageDeserializer(path, _streams(tr)), randomize=False, max_sweeps=2)
        out = []
        while True:
            mb = src.next_minibatch(4)
            if not mb:
                return out
            out.append(mb[src.streams.features].asarray())

    a, b = sweeps(), sweeps()
    assert len(a) == 2
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    for k in range(4):                        # the same image, augmented differently in sweep 2
        assert not np.array_equal(a[0][k], a[1][k])
