"""cntk.io.transforms: crops, scales (OpenCV's resize semantics), mean files and color jitter,
checked against hand-computed values on tiny images."""

import colorsys

import numpy as np
import pytest

from cntk.io import transforms as T
from cntk.io.transforms import resize


def _img(h, w, c=3, dtype=np.uint8):
    return (np.arange(h * w * c) % 251).reshape(h, w, c).astype(dtype)


def _rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------------- crop

def test_center_crop_with_crop_size_takes_the_centred_window():
    img = _img(5, 4)
    out = T.crop(crop_size=(2, 3)).apply(img, _rng())    # (width, height)
    np.testing.assert_array_equal(out, img[1:4, 1:3])
    # an int is a square; a window larger than the image is clipped to it
    np.testing.assert_array_equal(T.crop(crop_size=2).apply(img, _rng()), img[1:3, 1:3])
    np.testing.assert_array_equal(T.crop(crop_size=(9, 9)).apply(img, _rng()), img)


def test_center_crop_side_and_area_ratio():
    img = _img(6, 10)
    # side 0.5 of the shorter side 6 -> 3x3 at ((10-3)//2, (6-3)//2) = (3, 1)
    np.testing.assert_array_equal(T.crop(side_ratio=0.5).apply(img, _rng()), img[1:4, 3:6])
    # area 0.25 of 8x8 -> sqrt(16) = 4 -> 4x4 at (2, 2)
    img8 = _img(8, 8)
    np.testing.assert_array_equal(T.crop(area_ratio=0.25).apply(img8, _rng()), img8[2:6, 2:6])
    # side 0.75 of 6 = 4.5 rounds half away from zero to 5
    assert T.crop(side_ratio=0.75).apply(img, _rng()).shape[:2] == (5, 5)
    # no ratio and no size: the whole image
    np.testing.assert_array_equal(T.crop().apply(img, _rng()), img)


def test_aspect_ratio_keeps_the_area_and_picks_an_orientation():
    img = _img(16, 16)
    shapes = set()
    for seed in range(20):
        out = T.crop(side_ratio=0.5, aspect_ratio=0.5).apply(img, _rng(seed))
        shapes.add(out.shape[:2])
        h, w = out.shape[:2]
        # 8x8 = 64: (int(sqrt(32)), int(sqrt(128))) = 5 x 11, centred
        np.testing.assert_array_equal(out, img[(16 - h) // 2:(16 - h) // 2 + h, (16 - w) // 2:(16 - w) // 2 + w])
    assert shapes == {(11, 5), (5, 11)}
    # a window that never fits (11 > 8) falls back to the whole image after 10 tries
    np.testing.assert_array_equal(T.crop(side_ratio=1.0, aspect_ratio=0.5).apply(_img(8, 8), _rng()), _img(8, 8))


def test_random_side_crop_positions_and_flips():
    img = _img(6, 7)
    crop = T.crop(crop_type='randomside', side_ratio=0.5)     # 3x3 windows
    positions, flips = set(), 0
    for seed in range(400):
        out = crop.apply(img, _rng(seed))
        assert out.shape == (3, 3, 3)
        found = None
        for y in range(4):
            for x in range(5):
                win = img[y:y + 3, x:x + 3]
                if np.array_equal(out, win):
                    found = (x, y, False)
                elif np.array_equal(out, win[:, ::-1]):
                    found = (x, y, True)
        assert found is not None
        positions.add(found[:2])
        flips += found[2]
    assert len(positions) == 20          # every offset 0..4 x 0..3 occurs
    assert 140 < flips < 260             # mirrored with probability 1/2


def test_random_crop_is_deterministic_for_a_seed():
    img = _img(20, 20)
    crop = T.crop(crop_type='randomarea', area_ratio=(0.1, 0.9), aspect_ratio=(0.5, 1.0), jitter_type='uniratio')
    a = crop.apply(img, _rng(7))
    b = crop.apply(img, _rng(7))
    np.testing.assert_array_equal(a, b)
    sizes = {crop.apply(img, _rng(s)).shape[:2] for s in range(30)}
    assert len(sizes) > 5                # the jitter varies the window


def test_uniratio_jitter_stays_in_its_range():
    img = _img(40, 40)
    crop = T.crop(side_ratio=(0.25, 0.5), jitter_type='uniratio')
    sides = {crop.apply(img, _rng(s)).shape[0] for s in range(200)}
    assert min(sides) >= 10 and max(sides) <= 20 and len(sides) > 5
    # jitter 'none' takes the minimum
    assert T.crop(side_ratio=(0.25, 0.5)).apply(img, _rng()).shape[:2] == (10, 10)


def test_multiview10_views():
    img = _img(4, 6)
    crop = T.crop(crop_type='multiview10', crop_size=2)
    corners = [img[0:2, 0:2], img[0:2, 4:6], img[2:4, 0:2], img[2:4, 4:6], img[1:3, 2:4]]
    for view in range(10):
        expected = corners[view % 5] if view < 5 else corners[view % 5][:, ::-1]
        np.testing.assert_array_equal(crop.apply(img, _rng(), view), expected)


@pytest.mark.parametrize("kwargs, match", [
    (dict(crop_type='random_thing'), "crop_type"),
    (dict(side_ratio=0.5, area_ratio=0.5), "simultaneously"),
    (dict(side_ratio=1.5), "side_ratio"),
    (dict(area_ratio=(0.6, 0.3)), "smaller than or equal"),
    (dict(aspect_ratio=2.0), "aspect_ratio"),
    (dict(jitter_type='unilength'), "jitter_type"),
    (dict(crop_size=-1), "crop_size"),
])
def test_crop_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        T.crop(**kwargs)


# ---------------------------------------------------------------------------------------- scale

def test_linear_resize_matches_opencv_hand_computed():
    row = np.array([0, 10, 20, 30], np.float32).reshape(1, 4, 1)
    # OpenCV: x_src = (x + 0.5) * 0.5 - 0.5, clamped at the borders
    expected = [0, 2.5, 7.5, 12.5, 17.5, 22.5, 27.5, 30]
    np.testing.assert_allclose(resize(row, 8, 1, 'linear')[0, :, 0], expected)
    # uint8 results are rounded (half up) as OpenCV's fixed-point code does
    np.testing.assert_array_equal(resize(row.astype(np.uint8), 8, 1, 'linear')[0, :, 0],
                                  [0, 3, 8, 13, 18, 23, 28, 30])
    assert resize(row.astype(np.uint8), 8, 1).dtype == np.uint8


def test_linear_downscale_by_two_averages_blocks():
    img = _img(4, 6).astype(np.float32)
    out = resize(img, 3, 2, 'linear')
    expected = img.reshape(2, 2, 3, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_nearest_resize_uses_floor_of_scaled_index():
    row = np.array([0, 10, 20, 30], np.uint8).reshape(1, 4, 1)
    np.testing.assert_array_equal(resize(row, 2, 1, 'nearest')[0, :, 0], [0, 20])
    np.testing.assert_array_equal(resize(row, 5, 1, 'nearest')[0, :, 0], [0, 0, 10, 20, 30])
    np.testing.assert_array_equal(resize(row[:, :2], 5, 1, 'nearest')[0, :, 0], [0, 0, 0, 10, 10])


# cv2.resize(row, (9, 1), interpolation=...) with OpenCV 5.0 (float32 input)
_CV_ROW = np.array([0, 0, 100, 0, 0, 0], np.float32).reshape(1, 6, 1)
_CV_EXPECTED = {
    'cubic': [0.0, -9.375, 16.087959, 94.328697, 59.375, -8.6805296, -1.73612, 0.0, 0.0],
    'lanczos': [4.2768202, -16.601139, 17.75193, 95.156067, 61.887741, -11.80347, -5.9734101, 5.9764099,
                -1.22936],
    'linear': [0.0, 0.0, 16.66666, 83.333344, 50.0, 0.0, 0.0, 0.0, 0.0],
}


@pytest.mark.parametrize("interp", sorted(_CV_EXPECTED))
def test_resize_kernels_match_opencv_reference_values(interp):
    np.testing.assert_allclose(resize(_CV_ROW, 9, 1, interp)[0, :, 0], _CV_EXPECTED[interp], atol=2e-4)


def test_cubic_2d_matches_opencv_reference_values():
    img = np.array([[10, 200, 30], [40, 50, 250]], np.float32)[..., None]
    expected = [[-12.3442, 101.7308, 213.0208, 104.1296, -8.5005],
                [15.4, 62.72, 125.0, 141.38, 141.44],
                [43.1442, 23.7092, 36.9792, 178.6305, 291.3805]]
    np.testing.assert_allclose(resize(img, 5, 3, 'cubic')[..., 0], expected, atol=2e-3)


def test_constants_and_same_size_are_preserved():
    const = np.full((3, 5, 3), 77.0, np.float32)
    for interp in ('cubic', 'lanczos', 'linear', 'nearest'):
        np.testing.assert_allclose(resize(const, 9, 7, interp), 77.0, atol=1e-4)
    img = _img(5, 6).astype(np.float32)
    for interp in ('cubic', 'lanczos'):
        np.testing.assert_array_equal(resize(img, 6, 5, interp), img)


def test_scale_fill_crop_and_pad_modes():
    img = _img(4, 8)
    assert T.scale(5, 3, 3).apply(img, _rng()).shape == (3, 5, 3)
    # crop: the shorter side (height 4) is scaled to 4 -> width stays 8, centre 4 columns
    np.testing.assert_array_equal(T.scale(4, 4, 3, scale_mode='crop').apply(img, _rng()), img[:, 2:6])
    # pad: the longer side (width 8) becomes 4 -> 2x4 image, centred with 1 row above and below
    small = _img(2, 4)
    out = T.scale(4, 4, 3, scale_mode='pad', pad_value=0).apply(small, _rng())
    np.testing.assert_array_equal(out[1:3], small)
    assert not out[0].any() and not out[3].any()
    rep = T.scale(4, 4, 3, scale_mode='pad').apply(small, _rng())      # -1 replicates the border
    np.testing.assert_array_equal(rep[0], small[0])
    np.testing.assert_array_equal(rep[3], small[1])
    # a non-square target still covers (crop) or fits in (pad) the target
    assert T.scale(10, 20, 3, scale_mode='crop').apply(_img(12, 10), _rng()).shape == (20, 10, 3)
    assert T.scale(10, 20, 3, scale_mode='pad').apply(_img(12, 10), _rng()).shape == (20, 10, 3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(width=0, height=3, channels=3), "dimensions"),
    (dict(width=3, height=3, channels=2), "channels"),
    (dict(width=3, height=3, channels=3, interpolations='area'), "interpolations"),
    (dict(width=3, height=3, channels=3, scale_mode='Fill'), "scale_mode"),
    (dict(width=3, height=3, channels=3, pad_value=-2), "pad_value"),
])
def test_scale_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        T.scale(**kwargs)


# ----------------------------------------------------------------------------------------- mean

def _write_mean(path, mean_hwc, channels=None, rows=None, cols=None, matrix_cols=None):
    h, w, c = mean_hwc.shape
    data = " ".join("%r" % float(v) for v in mean_hwc.reshape(-1))
    path.write_text(
        '<?xml version="1.0" ?>\n<opencv_storage>\n'
        '<Channel>%d</Channel>\n<Row>%d</Row>\n<Col>%d</Col>\n'
        '<MeanImg type_id="opencv-matrix">\n  <rows>1</rows>\n  <cols>%d</cols>\n  <dt>f</dt>\n'
        '  <data>\n    %s</data></MeanImg>\n</opencv_storage>\n'
        % (channels or c, rows or h, cols or w, matrix_cols or h * w * c, data))
    return str(path)


def test_mean_subtracts_the_interleaved_bgr_mean(tmp_path):
    mean_img = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3) * 0.5
    m = T.mean(_write_mean(tmp_path / "mean.xml", mean_img))
    assert m.shape == (2, 3, 3)
    img = _img(2, 3)
    out = m.apply(img.astype(np.float32), _rng())
    np.testing.assert_allclose(out, img - mean_img)


def test_mean_errors_name_the_file(tmp_path):
    mean_img = np.zeros((2, 3, 3), np.float32)
    path = _write_mean(tmp_path / "mean.xml", mean_img)
    with pytest.raises(ValueError, match=r"mean\.xml.*2x3x3"):
        T.mean(path).apply(np.zeros((4, 4, 3), np.float32), _rng())
    with pytest.raises(ValueError, match="cannot open"):
        T.mean(str(tmp_path / "missing.xml"))
    bad = tmp_path / "bad.xml"
    bad.write_text("<opencv_storage><MeanImg><rows>1</rows>")
    with pytest.raises(ValueError, match="bad.xml"):
        T.mean(str(bad))
    with pytest.raises(ValueError, match="Channel"):
        T.mean(_write_mean(tmp_path / "wrong.xml", mean_img, channels=1))
    with pytest.raises(ValueError, match="holds"):
        T.mean(_write_mean(tmp_path / "short.xml", mean_img, matrix_cols=20))


# ---------------------------------------------------------------------------------------- color

def test_brightness_and_contrast_follow_cntk_formula():
    img = _img(3, 4).astype(np.float32)
    seed = 3
    r = _rng(seed)
    u_b, u_c = r.uniform(-0.4, 0.4), r.uniform(-0.3, 0.3)
    expected = np.clip(img * (1 + u_c) + u_b * img.mean(), 0, 255)
    out = T.color(brightness_radius=0.4, contrast_radius=0.3).apply(img, _rng(seed))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-3)
    assert out.min() >= 0 and out.max() <= 255


def test_saturation_matches_an_hsv_round_trip():
    img = np.array([[[50, 100, 200], [80, 80, 80], [0, 10, 250]]], np.float32)   # BGR
    seed = 11
    ratio = 1 + _rng(seed).uniform(-0.5, 0.5)
    out = T.color(saturation_radius=0.5).apply(img, _rng(seed))
    for px, got in zip(img[0], out[0]):
        b, g, r = px / 255.0
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        rr, gg, bb = colorsys.hsv_to_rgb(h, min(s * ratio, 1.0), v)
        np.testing.assert_allclose(got, np.array([bb, gg, rr]) * 255, atol=1e-3)
    np.testing.assert_allclose(out[0, 1], img[0, 1])       # gray stays gray


def test_color_jitter_is_deterministic_and_varies_with_the_seed():
    img = _img(6, 6).astype(np.float32)
    c = T.color(0.3, 0.3, 0.3)
    np.testing.assert_array_equal(c.apply(img, _rng(5)), c.apply(img, _rng(5)))
    assert not np.allclose(c.apply(img, _rng(5)), c.apply(img, _rng(6)))
    # all radii 0: the image is untouched
    assert T.color().apply(img, _rng()) is img
    with pytest.raises(ValueError, match="brightness_radius"):
        T.color(brightness_radius=1.5)
