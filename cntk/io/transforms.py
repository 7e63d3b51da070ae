"""Image transforms for ``ImageDeserializer`` (CNTK's ``cntk.io.transforms``): ``crop``, ``scale``,
``mean`` and ``color``.

Each function returns a transform object; the deserializer applies the list in order to every
image. Images travel through the list as ``(H, W, C)`` arrays in BGR channel order, as OpenCV
holds them in CNTK: ``uint8`` as decoded, or ``float32`` once a transform needs arithmetic
(``mean``, ``color``). Resizing reproduces OpenCV's ``cv::resize`` (pixel-centre alignment,
replicated borders, the same interpolation kernels) because CNTK's numbers come from it.
Randomness comes from the ``numpy.random.Generator`` the deserializer passes per image.
"""

import functools
import math
import xml.etree.ElementTree as ET

import numpy as np

_CROP_TYPES = ("center", "randomside", "randomarea", "multiview10")
_JITTER_TYPES = ("none", "uniratio")
_INTERPOLATIONS = ("nearest", "linear", "cubic", "lanczos")
_SCALE_MODES = ("fill", "crop", "pad")

#: views of ``multiview10``: 4 corners and the centre, then the same five mirrored
MULTIVIEW_COPIES = 10


def _pair(value, name, cast):
    """``v`` or ``(min, max)`` -> ``(min, max)`` (CNTK's ``a:b`` range options)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError("crop: %s must be a number or a (min, max) pair, got %r" % (name, value))
        lo, hi = cast(value[0]), cast(value[1])
    else:
        lo = hi = cast(value)
    if lo > hi:
        raise ValueError("crop: for %s the first number must be smaller than or equal to the second, got %r"
                         % (name, value))
    return lo, hi


class ImageTransform:
    """Base of the transform objects; ``type`` names it as CNTK's configuration does."""

    type = None
    #: the result needs float pixels (OpenCV converts before subtracting or scaling values)
    needs_float = False

    def apply(self, image, rng, view=0):
        """Transform one ``(H, W, C)`` image; ``view`` is the multiview10 copy index."""
        raise TypeError("%s does not implement apply()" % type(self).__name__)

    def output_shape(self, shape):
        """The ``(H, W, C)`` this transform produces from ``shape``, or None if it varies."""
        return shape

    def __repr__(self):
        args = ", ".join("%s=%r" % kv for kv in sorted(self.__dict__.items()) if not kv[0].startswith("_"))
        return "%s(%s)" % (self.type, args)


# --------------------------------------------------------------------------------------- crop

class Crop(ImageTransform):
    """See :func:`crop`."""

    type = "Crop"

    def __init__(self, crop_type, crop_size, side_ratio, area_ratio, aspect_ratio, jitter_type):
        crop_type = str(crop_type).lower()
        if crop_type not in _CROP_TYPES:
            raise ValueError("crop: invalid crop_type %r, must be one of %s" % (crop_type, ", ".join(_CROP_TYPES)))
        jitter_type = str(jitter_type).lower()
        if jitter_type not in _JITTER_TYPES:
            raise ValueError("crop: invalid jitter_type %r, must be 'none' or 'uniratio'" % (jitter_type,))
        if isinstance(crop_size, (tuple, list)):
            if len(crop_size) != 2:
                raise ValueError("crop: crop_size must be an int or a (width, height) pair, got %r" % (crop_size,))
            width, height = int(crop_size[0]), int(crop_size[1])
        else:
            width = height = int(crop_size)
        if width < 0 or height < 0:
            raise ValueError("crop: invalid crop_size %r, must be >= 0" % (crop_size,))
        side = _pair(side_ratio, "side_ratio", float)
        area = _pair(area_ratio, "area_ratio", float)
        aspect = _pair(aspect_ratio, "aspect_ratio", float)
        use_side, use_area = side != (0.0, 0.0), area != (0.0, 0.0)
        if use_side and not (side[0] > 0 and side[1] <= 1):
            raise ValueError("crop: invalid side_ratio %r, must be > 0 and <= 1" % (side_ratio,))
        if use_area and not (area[0] > 0 and area[1] <= 1):
            raise ValueError("crop: invalid area_ratio %r, must be > 0 and <= 1" % (area_ratio,))
        if use_side and use_area:
            raise ValueError("crop: side_ratio and area_ratio cannot be specified simultaneously")
        if not (aspect[0] > 0 and aspect[1] <= 1):
            raise ValueError("crop: invalid aspect_ratio %r, must be > 0 and <= 1" % (aspect_ratio,))
        self.crop_type, self.jitter_type = crop_type, jitter_type
        self.crop_size = (width, height)
        self.side_ratio, self.area_ratio, self.aspect_ratio = side, area, aspect
        self._use_side, self._use_area = use_side, use_area
        # the random crops mirror half of the images; multiview10 mirrors views 5-9
        self._hflip = crop_type in ("randomside", "randomarea")

    def _jitter(self, lo, hi, rng):
        if self.jitter_type == "none" or lo == hi:
            return lo
        return float(rng.uniform(lo, hi))

    def _size(self, rows, cols, rng):
        """The crop's (width, height) as CNTK's centre crop chooses it."""
        width, height = self.crop_size
        if width > 0 and height > 0:
            return min(cols, width), min(rows, height)
        for _ in range(10):          # CNTK tries 10 times to fit the jittered window
            w, h = cols, rows
            if self._use_side:
                w = h = int(_round_half_away(min(rows, cols) * self._jitter(*self.side_ratio, rng)))
            elif self._use_area:
                w = h = int(_round_half_away(math.sqrt(rows * cols * self._jitter(*self.area_ratio, rng))))
            aspect = self._jitter(*self.aspect_ratio, rng)
            if aspect != 1.0:
                area = w * h
                if rng.random() < 0.5:
                    w, h = int(math.sqrt(area * aspect)), int(math.sqrt(area / aspect))
                else:
                    h, w = int(math.sqrt(area * aspect)), int(math.sqrt(area / aspect))
            if w <= cols and h <= rows:
                return w, h
        return cols, rows            # no fit: the whole image

    def rect(self, rows, cols, rng, view=0):
        """``(x, y, width, height)`` of the crop window in an image of ``rows`` x ``cols``."""
        w, h = self._size(rows, cols, rng)
        if self.crop_type == "center":
            x, y = (cols - w) // 2, (rows - h) // 2
        elif self.crop_type in ("randomside", "randomarea"):
            x = int(rng.integers(0, cols - w + 1))
            y = int(rng.integers(0, rows - h + 1))
        else:
            corner = view % 5
            x = (0, cols - w, 0, cols - w, (cols - w) // 2)[corner]
            y = (0, 0, rows - h, rows - h, (rows - h) // 2)[corner]
        return x, y, w, h

    def apply(self, image, rng, view=0):
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError("crop: empty image")
        x, y, w, h = self.rect(image.shape[0], image.shape[1], rng, view)
        out = image[y:y + h, x:x + w]
        flip = (view % MULTIVIEW_COPIES) >= 5 if self.crop_type == "multiview10" else \
            (self._hflip and rng.random() < 0.5)
        return out[:, ::-1] if flip else out

    def output_shape(self, shape):
        return None


def crop(crop_type='center', crop_size=0, side_ratio=0.0, area_ratio=0.0, aspect_ratio=1.0, jitter_type='none'):
    """Crop transform for ``ImageDeserializer``.

    ``crop_type``: ``'center'``, ``'randomside'``, ``'randomarea'`` (random position, and a
    horizontal flip with probability 1/2) or ``'multiview10'`` (each image becomes 10 sequences:
    the 4 corner crops and the centre crop, then the same 5 mirrored).
    ``crop_size``: ``w`` or ``(w, h)`` in pixels (0: not used); when given, the ratios are
    ignored and the window is ``min(w, width) x min(h, height)``.
    ``side_ratio``: the square window's side over the image's shorter side, in (0, 1].
    ``area_ratio``: the square window's area over the image's area, in (0, 1].
    ``aspect_ratio``: in (0, 1]; keeps the window's area and makes it ``r``-times narrower or
    wider (each with probability 1/2). Any ratio may be a ``(min, max)`` range, sampled
    uniformly when ``jitter_type='uniratio'`` (with ``'none'`` the minimum is used). A window
    that does not fit after 10 tries becomes the whole image.
    """
    return Crop(crop_type, crop_size, side_ratio, area_ratio, aspect_ratio, jitter_type)


def _round_half_away(x):
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


# -------------------------------------------------------------------------------------- scale

def _lanczos4_weights(fx):
    """OpenCV's 8-tap Lanczos weights for fractional offsets ``fx`` -> (n, 8)."""
    t = fx[:, None] + 3.0 - np.arange(8)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        y = t * (np.pi / 4)
        w = np.sin(4 * y) * np.sin(y) / (y * y)
    w = np.where(np.abs(t) < 1e-12, 1.0, w)
    w /= w.sum(axis=1, keepdims=True)
    exact = fx < np.finfo(np.float32).eps      # OpenCV: integral positions copy the pixel
    w[exact] = 0.0
    w[exact, 3] = 1.0
    return w


def _cubic_weights(fx, a=-0.75):
    x = fx[:, None]
    c0 = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
    c1 = ((a + 2) * x - (a + 3)) * x * x + 1
    c2 = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
    return np.concatenate([c0, c1, c2, 1 - c0 - c1 - c2], axis=1)


def _resize_taps(src, dst, interpolation):
    """Source indices (dst, K) and weights (dst, K) of OpenCV's resize along one axis."""
    scale = src / dst
    d = np.arange(dst, dtype=np.float64)
    if interpolation == "nearest":
        idx = np.minimum(np.floor(d * scale).astype(np.int64), src - 1)
        return idx[:, None], np.ones((dst, 1))
    f = ((d + 0.5) * scale - 0.5).astype(np.float32).astype(np.float64)  # OpenCV computes it in float
    s = np.floor(f).astype(np.int64)
    f = f - s
    if interpolation == "linear":
        f = np.where(s < 0, 0.0, f)
        s = np.where(s < 0, 0, s)
        last = s >= src - 1
        f = np.where(last, 0.0, f)
        s = np.where(last, src - 1, s)
        idx = np.stack([s, s + 1], axis=1)
        w = np.stack([1.0 - f, f], axis=1)
    elif interpolation == "cubic":
        idx = s[:, None] + np.arange(-1, 3)[None, :]
        w = _cubic_weights(f)
    else:
        idx = s[:, None] + np.arange(-3, 5)[None, :]
        w = _lanczos4_weights(f)
    return np.clip(idx, 0, src - 1), w   # replicated border


@functools.lru_cache(maxsize=64)
def _resize_matrix(src, dst, interpolation):
    """OpenCV's resize along one axis as a sparse (dst, src) float32 matrix."""
    import scipy.sparse as sp   # optional dependency of the image reader
    idx, w = _resize_taps(src, dst, interpolation)
    rows = np.repeat(np.arange(dst), idx.shape[1])
    # taps clamped onto the same border pixel add up, as OpenCV's replicated border does
    return sp.csr_matrix((w.ravel().astype(np.float32), (rows, idx.ravel())), shape=(dst, src))


def resize(image, width, height, interpolation="linear"):
    """``cv::resize`` of an ``(H, W, C)`` image to ``(height, width)``: uint8 stays uint8
    (rounded and saturated, as OpenCV does), float stays float32."""
    h, w, c = image.shape
    if h == height and w == width:
        return image.copy()
    if interpolation == "nearest":
        rows = _resize_taps(h, height, "nearest")[0][:, 0]
        cols = _resize_taps(w, width, "nearest")[0][:, 0]
        return image[rows][:, cols]
    # columns first, then rows, as OpenCV does: two sparse products over the other axes
    t = np.ascontiguousarray(image.transpose(1, 0, 2), dtype=np.float32).reshape(w, h * c)
    t = (_resize_matrix(w, width, interpolation) @ t).reshape(width, h, c)
    t = np.ascontiguousarray(t.transpose(1, 0, 2)).reshape(h, width * c)
    out = (_resize_matrix(h, height, interpolation) @ t).reshape(height, width, c)
    if image.dtype == np.uint8:
        return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out, dtype=np.float32)


class Scale(ImageTransform):
    """See :func:`scale`."""

    type = "Scale"

    def __init__(self, width, height, channels, interpolations, scale_mode, pad_value):
        self.width, self.height, self.channels = int(width), int(height), int(channels)
        if self.width <= 0 or self.height <= 0 or self.channels <= 0:
            raise ValueError("scale: invalid image dimensions width=%r height=%r channels=%r (all must be > 0)"
                             % (width, height, channels))
        if self.channels not in (1, 3):
            raise ValueError("scale: channels must be 1 (grayscale) or 3 (BGR color), got %d" % self.channels)
        interp = str(interpolations).lower()
        if interp not in _INTERPOLATIONS:
            raise ValueError("scale: invalid interpolations %r, must be nearest, linear, cubic or lanczos"
                             % (interpolations,))
        mode = str(scale_mode)
        if mode not in _SCALE_MODES:
            raise ValueError("scale: invalid scale_mode %r, must be fill, crop or pad (all lower case)" % (scale_mode,))
        pad_value = int(pad_value)
        if pad_value < -1:
            raise ValueError("scale: invalid pad_value %d, must be -1 (replicates the border) or >= 0" % pad_value)
        self.interpolations, self.scale_mode, self.pad_value = interp, mode, pad_value

    def apply(self, image, rng, view=0):
        W, H = self.width, self.height
        if self.scale_mode == "fill":
            return resize(image, W, H, self.interpolations)
        rows, cols = image.shape[:2]
        # crop: scale the shorter side to the target; pad: the longer side
        scale_w = cols < rows if self.scale_mode == "crop" else cols > rows
        for attempt in (scale_w, not scale_w):
            if attempt:
                tw, th = W, int(_round_half_away(rows * W / cols))
            else:
                tw, th = int(_round_half_away(cols * H / rows)), H
            fits = (tw >= W and th >= H) if self.scale_mode == "crop" else (tw <= W and th <= H)
            if fits:     # for a non-square target the other side may have to decide
                break
        if self.scale_mode == "crop":   # guard against a 1-pixel rounding shortfall
            tw, th = max(tw, W), max(th, H)
        else:
            tw, th = max(min(tw, W), 1), max(min(th, H), 1)
        out = resize(image, tw, th, self.interpolations)
        if self.scale_mode == "crop":
            x, y = (tw - W) // 2, (th - H) // 2
            return out[y:y + H, x:x + W]
        top, left = (H - th) // 2, (W - tw) // 2
        pads = ((top, H - th - top), (left, W - tw - left), (0, 0))
        if self.pad_value == -1:
            return np.pad(out, pads, mode="edge")
        value = min(self.pad_value, 255) if out.dtype == np.uint8 else self.pad_value
        return np.pad(out, pads, mode="constant", constant_values=value)

    def output_shape(self, shape):
        return (self.height, self.width, self.channels)


def scale(width, height, channels, interpolations='linear', scale_mode='fill', pad_value=-1):
    """Scale transform for ``ImageDeserializer``: every image becomes ``height`` x ``width``.

    ``channels``: 1 (images are decoded as grayscale) or 3 (BGR). ``interpolations``:
    ``'nearest'``, ``'linear'``, ``'cubic'`` or ``'lanczos'`` (OpenCV's kernels).
    ``scale_mode``: ``'fill'`` warps the image to the target size; ``'crop'`` scales the shorter
    side to the target and crops the centre; ``'pad'`` scales the longer side to the target,
    centres the image and pads the rest with ``pad_value`` (-1 replicates the border).
    """
    return Scale(width, height, channels, interpolations, scale_mode, pad_value)


# --------------------------------------------------------------------------------------- mean

def read_opencv_matrix(filename, name):
    """The matrix ``name`` of an OpenCV ``FileStorage`` XML file as ``(rows, cols, channels)``
    float32, plus the file's other scalar entries."""
    try:
        root = ET.parse(filename).getroot()
    except OSError as e:
        raise ValueError("mean: cannot open mean file %r: %s" % (filename, e.strerror or e)) from None
    except ET.ParseError as e:
        raise ValueError("mean: %r is not an OpenCV XML file: %s" % (filename, e)) from None
    if root.tag != "opencv_storage":
        raise ValueError("mean: %r is not an OpenCV XML file (root element <%s>, expected <opencv_storage>)"
                         % (filename, root.tag))
    node = root.find(name)
    if node is None:
        raise ValueError("mean: %r has no <%s> matrix" % (filename, name))

    def field(n, key):
        el = n.find(key)
        if el is None or el.text is None:
            raise ValueError("mean: <%s> in %r has no <%s>" % (n.tag, filename, key))
        return el.text.strip()

    try:
        rows, cols = int(field(node, "rows")), int(field(node, "cols"))
        dt = field(node, "dt")
        channels = int(dt[:-1]) if len(dt) > 1 else 1
        data = np.array(field(node, "data").split(), dtype=np.float64) if rows * cols else np.zeros(0)
    except ValueError as e:
        if str(e).startswith("mean:"):
            raise
        raise ValueError("mean: malformed <%s> in %r: %s" % (name, filename, e)) from None
    if data.size != rows * cols * channels:
        raise ValueError("mean: <%s> in %r declares %dx%dx%d values but holds %d"
                         % (name, filename, rows, cols, channels, data.size))
    scalars = {}
    for el in root:
        if el is not node and len(el) == 0 and el.text is not None:
            scalars[el.tag] = el.text.strip()
    return data.astype(np.float32), (rows, cols, channels), scalars


class Mean(ImageTransform):
    """See :func:`mean`."""

    type = "Mean"
    needs_float = True

    def __init__(self, filename):
        self.filename = filename
        data, (rows, cols, ch), scalars = read_opencv_matrix(filename, "MeanImg")
        try:
            cchan, crow, ccol = (int(scalars[k]) for k in ("Channel", "Row", "Col"))
        except KeyError as e:
            raise ValueError("mean: %r lacks the <%s> entry" % (filename, e.args[0])) from None
        except ValueError:
            raise ValueError("mean: %r has a non-integer Channel/Row/Col entry" % (filename,)) from None
        if cchan * crow * ccol != data.size:
            raise ValueError("mean: invalid data in %r: Channel*Row*Col = %d*%d*%d but MeanImg holds %d values"
                             % (filename, cchan, crow, ccol, data.size))
        # OpenCV's reshape(cchan, crow): rows of interleaved (BGR) pixels
        self._mean = data.reshape(crow, ccol, cchan)

    @property
    def shape(self):
        """``(H, W, C)`` of the mean image."""
        return self._mean.shape

    def apply(self, image, rng, view=0):
        if image.shape != self._mean.shape:
            raise ValueError("mean: the mean image in %r is %dx%dx%d (HxWxC) but the image is %dx%dx%d; "
                             "scale the images to the mean's size first"
                             % ((self.filename,) + self._mean.shape + image.shape))
        return image.astype(np.float32) - self._mean


def mean(filename):
    """Mean transform for ``ImageDeserializer``: subtracts the per-pixel mean image stored in
    OpenCV's XML format (``MeanImg`` matrix with ``Channel``, ``Row``, ``Col`` entries; BGR
    interleaved, as CNTK's image examples write it)."""
    return Mean(filename)


# -------------------------------------------------------------------------------------- color

def _saturate(image, ratio):
    """Scales HSV saturation by ``ratio`` (capped at 1) keeping hue and value, as OpenCV's
    BGR->HSV->BGR round trip does: each channel moves along the line to the pixel's maximum,
    ``c' = v - (v - c) * min(ratio, v / (v - min))``."""
    b, g, r = image[..., 0], image[..., 1], image[..., 2]
    v = np.maximum(np.maximum(b, g), r)
    spread = v - np.minimum(np.minimum(b, g), r)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(spread > 0, np.minimum(np.float32(ratio), v / spread), np.float32(1))
    v, factor = v[..., None], factor[..., None].astype(np.float32)
    return (v - (v - image) * factor).astype(np.float32)


class Color(ImageTransform):
    """See :func:`color`."""

    type = "Color"
    needs_float = True

    def __init__(self, brightness_radius, contrast_radius, saturation_radius):
        for name, r in (("brightness_radius", brightness_radius), ("contrast_radius", contrast_radius),
                        ("saturation_radius", saturation_radius)):
            if not 0.0 <= float(r) <= 1.0:
                raise ValueError("color: %s must be >= 0.0 and <= 1.0, got %r" % (name, r))
        self.brightness_radius = float(brightness_radius)
        self.contrast_radius = float(contrast_radius)
        self.saturation_radius = float(saturation_radius)

    def apply(self, image, rng, view=0):
        b, c, s = self.brightness_radius, self.contrast_radius, self.saturation_radius
        if b == 0 and c == 0 and s == 0:
            return image
        image = image.astype(np.float32)
        if b > 0 or c > 0:
            beta = rng.uniform(-b, b) * float(image.mean(dtype=np.float64)) if b > 0 else 0.0
            alpha = 1.0 + rng.uniform(-c, c) if c > 0 else 1.0
            image = np.clip(image * np.float32(alpha) + np.float32(beta), 0, 255)
        if s > 0 and image.shape[2] == 3:
            image = _saturate(image, 1.0 + rng.uniform(-s, s))
        return image


def color(brightness_radius=0.0, contrast_radius=0.0, saturation_radius=0.0):
    """Color transform for ``ImageDeserializer`` (each radius in [0, 1]): with ``x ~ U(-r, r)``
    per image, brightness adds ``x * mean pixel value`` and contrast multiplies by ``1 + x``
    (results clipped to [0, 255]); saturation (color images only) multiplies the HSV saturation
    by ``1 + x`` (capped at 1)."""
    return Color(brightness_radius, contrast_radius, saturation_radius)


def _as_transforms(transforms, where):
    """Validates a stream's ``transforms`` list."""
    out = list(transforms or [])
    for t in out:
        if not isinstance(t, ImageTransform):
            raise TypeError("%s: transforms must come from cntk.io.transforms (crop, scale, mean, color), got %r"
                            % (where, t))
    return out
