"""Image deserializers: ``ImageDeserializer`` (map file of image paths and labels) and
``Base64ImageDeserializer`` (images embedded in the map file as base64).

Both produce an image stream of ``(C, H, W)`` float32 pixels in BGR channel order with values
0-255, as CNTK (OpenCV) does, and an optional one-hot sparse label stream. Images are decoded
with OpenCV when it is installed (CNTK's own decoder) and with Pillow otherwise. As in CNTK
every image is its own chunk, and ``MinibatchSource`` decodes the chunks of a randomization
window on worker threads. Transforms (``cntk.io.transforms``) run in list order with a random
generator seeded from the image's position, its multiview copy and the sweep (which
``MinibatchSource`` passes to ``get_chunk``), so augmentation changes from sweep to sweep and
every read is reproducible.
"""

import base64
import io
import os
import threading
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .deserializer import DataError, Deserializer, PackedSequences
from .streams import StreamInformation
from .transforms import MULTIVIEW_COPIES, Crop, Scale, _as_transforms

try:                                   # OpenCV decodes exactly as CNTK did; Pillow otherwise
    import cv2 as _cv2
except ImportError:                    # pragma: no cover - depends on the environment
    _cv2 = None


def _sequence_key(text):
    """Map-file sequence ids: digit strings become ints, so they join with CTF ids."""
    return int(text) if text.isdigit() else text


def _pixels_from_pil(data, grayscale):
    from PIL import Image, ImageOps
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        im = ImageOps.exif_transpose(im)          # OpenCV's imread applies EXIF orientation
        if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            # OpenCV reduces 16-bit images to 8 bits by dropping the low byte
            values = np.asarray(im, dtype=np.int64)
            if im.mode != "I" or values.max(initial=0) > 255:
                values = values >> 8
            gray = values.clip(0, 255).astype(np.uint8)
            return gray[..., None] if grayscale else np.repeat(gray[..., None], 3, axis=2)
        if grayscale:
            return np.asarray(im.convert("L"))[..., None]
        return np.ascontiguousarray(np.asarray(im.convert("RGB"))[..., ::-1])   # RGB -> BGR


def decode_image(data, grayscale=False):
    """Encoded image bytes -> ``(H, W, C)`` uint8 in BGR order (C = 1 when ``grayscale``).
    Raises ``ValueError`` when the bytes are not a decodable image."""
    if _cv2 is not None:
        flags = _cv2.IMREAD_GRAYSCALE if grayscale else _cv2.IMREAD_COLOR
        img = _cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        if img is None:
            raise ValueError("not a decodable image")
        return img[..., None] if img.ndim == 2 else img
    try:
        return _pixels_from_pil(data, grayscale)
    except ImportError:
        raise ImportError("reading images needs Pillow (pip install pillow) or OpenCV") from None
    except Exception as e:   # Pillow raises many types for corrupt data
        raise ValueError("not a decodable image (%s)" % (str(e) or type(e).__name__)) from None


def _stream_defs(streams, who):
    """Splits the StreamDefs of an image deserializer into (image name, transforms, label name, dim)."""
    image_name = label_name = None
    transforms, num_labels = [], None
    for name, sd in streams.items():
        field = sd.get("stream_alias", sd.get("field"))
        if field == "image":
            if image_name is not None:
                raise ValueError("%s: two image streams (%r and %r)" % (who, image_name, name))
            image_name, transforms = name, sd.get("transforms")
        elif field == "label":
            if label_name is not None:
                raise ValueError("%s: two label streams (%r and %r)" % (who, label_name, name))
            dim = sd.get("dim")
            if dim is None:
                raise ValueError("%s: the label stream %r needs shape=<number of classes>" % (who, name))
            num_labels = int(np.prod(dim)) if isinstance(dim, (tuple, list)) else int(dim)
            if num_labels <= 0:
                raise ValueError("%s: the label stream %r has shape %r; it must be > 0" % (who, name, dim))
            label_name = name
        else:
            raise ValueError("%s: invalid field name %r of stream %r, allowed are 'image' and 'label'"
                             % (who, field, name))
    if image_name is None:
        raise ValueError("%s: stream name ('image' or 'label') must be specified; no stream has field='image'" % who)
    return image_name, _as_transforms(transforms, who), label_name, num_labels


class _Entry:
    """One image of the map: where it is described and what it is."""
    __slots__ = ("line", "key", "label", "source")

    def __init__(self, line, key, label, source):
        self.line, self.key, self.label, self.source = line, key, label, source


class _ImageDeserializerBase(Deserializer):
    """Streams, transforms, chunking and parallel decoding shared by the image deserializers."""

    #: images (map lines) per chunk. CNTK makes every image its own chunk, so randomization
    #: windows and distributed reading count images and only a window's images are decoded
    #: and held at a time; a larger value decodes each chunk's images on a thread pool
    images_per_chunk = 1
    #: decoding threads for chunks of several images
    num_workers = min(8, os.cpu_count() or 1)
    #: ask MinibatchSource to load the chunks of a window on worker threads (CNTK's
    #: ``multithreaded_deserializer=None`` turns threads on when an image reader is present)
    multithreaded_by_default = True
    #: base of the per-image random seeds of the transforms
    seed = 0

    def _init_streams(self, filename, streams, who):
        self.filename = os.fspath(filename)
        self._who = who
        (self._image_name, self._transforms, self._label_name,
         self._num_labels) = _stream_defs(streams, who)
        self._defines_mb_size = {n: bool(sd.get("defines_mb_size", False)) for n, sd in streams.items()}
        scales = [t for t in self._transforms if isinstance(t, Scale)]
        self._grayscale = bool(scales) and scales[-1].channels == 1
        self._copies = MULTIVIEW_COPIES if any(
            isinstance(t, Crop) and t.crop_type == "multiview10" for t in self._transforms) else 1
        shape = None
        for t in self._transforms:
            shape = t.output_shape(shape)
        self._hwc = shape               # None: decided by the first image (see _probe_shape)
        self._pool = None
        self._pool_lock = threading.Lock()
        self._failed = {}               # chunk id -> positions of entries that could not be used

    # -- the contract ----------------------------------------------------------------------------

    def stream_infos(self):
        if self._hwc is None:
            self._probe_shape()
        h, w, c = self._hwc
        infos = [StreamInformation(self._image_name, 0, "dense", np.float32, (c, h, w),
                                   self._defines_mb_size.get(self._image_name, False))]
        if self._label_name is not None:
            infos.append(StreamInformation(self._label_name, 1, "sparse", np.float32, (self._num_labels,),
                                           self._defines_mb_size.get(self._label_name, False)))
        return infos

    def num_chunks(self):
        return len(self._chunks)

    def sequence_keys(self, chunk_id):
        failed = self._failed.get(chunk_id, ())
        return [e.key for i, e in enumerate(self._chunks[chunk_id]) if i not in failed
                for _ in range(self._copies)]

    def get_chunk(self, chunk_id, sweep=0):
        """The chunk's images and labels; ``sweep`` varies the random transforms per sweep."""
        if not 0 <= chunk_id < len(self._chunks):
            raise IndexError("%s: chunk %r out of range (have %d)" % (self._who, chunk_id, len(self._chunks)))
        if self._hwc is None:
            self._probe_shape()
        self._report_map_errors(chunk_id)
        entries = self._chunks[chunk_id]
        base = self._chunk_start[chunk_id]
        jobs = [(base + i, e) for i, e in enumerate(entries)]
        load = lambda job: self._load(job[0], job[1], sweep)   # noqa: E731
        results = list(self._executor().map(load, jobs)) if len(jobs) > 1 else [load(j) for j in jobs]
        images, labels, failed = [], [], set()
        for i, res in enumerate(results):
            if isinstance(res, str):          # reported in map order, whatever thread found it
                failed.add(i)
                self.report_error(res)
                continue
            label, copies = res
            images.extend(copies)
            labels.extend([label] * len(copies))
        self._failed[chunk_id] = failed
        n = len(images)
        ones = np.ones(n, dtype=np.int64)
        h, w, c = self._hwc if self._hwc is not None else (0, 0, 0)
        data = np.concatenate(images) if n else np.zeros((0, c, h, w), np.float32)
        out = {self._image_name: PackedSequences(data, ones)}
        if self._label_name is not None:
            import scipy.sparse as sp   # optional dependency, needed for the sparse labels
            onehot = sp.csr_matrix((np.ones(n, np.float32), np.asarray(labels, np.int64), np.arange(n + 1)),
                                   shape=(n, self._num_labels))
            out[self._label_name] = PackedSequences(onehot, ones)
        return out

    # -- internals -------------------------------------------------------------------------------

    def _executor(self):
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=max(1, self.num_workers),
                                                thread_name_prefix="cntk-image-decode")
            return self._pool

    def _build_chunks(self, entries):
        n = max(1, int(self.images_per_chunk))
        self._chunks = [entries[i:i + n] for i in range(0, len(entries), n)]
        self._chunk_start = [i for i in range(0, len(entries), n)]

    def _report_map_errors(self, chunk_id):
        for msg in self._map_errors.get(chunk_id, ()):   # reported with the chunk they sit in
            self.report_error(msg)

    def _where(self, entry):
        return "%s:%d" % (self.filename, entry.line)

    def _load(self, position, entry, sweep):
        """``(label, [decoded and transformed copies])`` of one image, or an error message."""
        try:
            label, data = self._read(entry)
            pixels = decode_image(data, self._grayscale)
            copies = []
            for view in range(self._copies):
                rng = np.random.default_rng([self.seed, sweep, position, view])
                chw = self._transform(pixels, rng, view)
                if self._hwc is not None and (chw.shape[1], chw.shape[2], chw.shape[0]) != tuple(self._hwc):
                    raise ValueError("the image is %dx%dx%d (CxHxW) after the transforms, but the stream's "
                                     "images are %dx%dx%d; add a scale transform to give all images one size"
                                     % (chw.shape + (self._hwc[2], self._hwc[0], self._hwc[1])))
                copies.append(chw[None])
        except ValueError as e:
            return "%s: %s%s" % (self._where(entry), self._describe(entry), e)
        return label, copies

    def _transform(self, pixels, rng, view):
        img = pixels
        for t in self._transforms:
            if t.needs_float and img.dtype != np.float32:
                img = img.astype(np.float32)
            img = t.apply(img, rng, view)
        return np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)

    def _probe_shape(self):
        """Without a final scale transform the stream's shape is that of the first usable image."""
        for position, entry in enumerate(e for chunk in self._chunks for e in chunk):
            res = self._load(position, entry, 0)
            if not isinstance(res, str):
                c, h, w = res[1][0].shape[1:]
                self._hwc = (h, w, c)
                return
        raise DataError("%s: %s: no readable image to take the image size from" % (self._who, self.filename))


class ImageDeserializer(_ImageDeserializerBase):
    """Reads images listed in a map file (CNTK's ``ImageDeserializer``).

    Each line of the map file is ``path<TAB>label`` or ``sequenceId<TAB>path<TAB>label`` with a
    0-based class id. ``streams`` holds ``StreamDef(field='image', transforms=[...])`` and
    optionally ``StreamDef(field='label', shape=num_classes)`` (a one-hot sparse stream). A path
    starting with ``...`` is relative to the map file's folder; other relative paths are
    relative to the working directory (as in CNTK) and, when nothing is there, to the map
    file's folder. ``archive.zip@/member`` reads an image from a zip archive. Sequence ids are
    the first column, or the 0-based line number.
    """

    def __init__(self, filename, streams):
        self._init_streams(filename, streams, "ImageDeserializer")
        try:
            with open(self.filename, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise DataError("ImageDeserializer: cannot open map file %r: %s" % (self.filename, e.strerror or e)) from None
        self._dir = os.path.dirname(os.path.abspath(self.filename))
        self._zips = {}
        self._zip_lock = threading.Lock()
        entries, errors = [], []
        for index, line in enumerate(raw.split(b"\n")):
            text = line.decode("utf-8", errors="replace").rstrip("\r")
            if not text.strip():
                continue
            entry = self._parse_line(index, text, errors, len(entries))
            if entry is not None:
                entries.append(entry)
        if not entries and not errors:
            raise DataError("ImageDeserializer: map file %r lists no images" % (self.filename,))
        self._build_chunks(entries)
        # a bad line is reported (or skipped within max_errors) when its chunk is read
        n = max(1, int(self.images_per_chunk))
        last = max(0, len(self._chunks) - 1)
        self._map_errors = {}
        for pos, msg in errors:
            self._map_errors.setdefault(min(pos // n, last), []).append(msg)
        if not self._chunks:      # every line was bad: one empty chunk carries the errors
            self._chunks, self._chunk_start = [[]], [0]

    def _parse_line(self, index, text, errors, position):
        where = "%s:%d" % (self.filename, index + 1)
        cols = text.split("\t")
        if len(cols) == 2:
            key, path, label = index, cols[0], cols[1]
        elif len(cols) == 3:
            key, path, label = _sequence_key(cols[0].strip()), cols[1], cols[2]
        else:
            errors.append((position, "%s: invalid map file format, expected 2 or 3 tab-separated columns "
                                     "(path<TAB>label or id<TAB>path<TAB>label), found %d: %r"
                           % (where, len(cols), text)))
            return None
        label = label.strip()
        if not path:
            errors.append((position, "%s: empty image path" % where))
            return None
        if not label.isdigit():
            errors.append((position, "%s: cannot parse label %r (a 0-based class id)" % (where, label)))
            return None
        label = int(label)
        if self._num_labels is not None and label >= self._num_labels:
            errors.append((position, "%s: image %r has invalid class id %d; it exceeds the label dimension %d"
                           % (where, path, label, self._num_labels)))
            return None
        return _Entry(index + 1, key, label, path)

    def _describe(self, entry):
        return "image %r: " % (entry.source,)

    def _resolve(self, path):
        if path.startswith("..."):
            return self._dir + path[3:]
        if not os.path.isabs(path) and not os.path.exists(path.split("@", 1)[0]):
            alt = os.path.join(self._dir, path)
            if os.path.exists(alt.split("@", 1)[0]):
                return alt
        return path

    def _read(self, entry):
        path = self._resolve(entry.source)
        at = path.find("@")
        if at > 0 and os.path.isfile(path[:at]):
            member = path[at + 1:].replace("\\", "/").lstrip("/")   # 'archive.zip@/member'
            return entry.label, self._read_zip_member(path[:at], member)
        try:
            with open(path, "rb") as f:
                return entry.label, f.read()
        except OSError as e:
            raise ValueError("cannot open the image file: %s" % (e.strerror or e)) from None

    def _read_zip_member(self, archive, member):
        with self._zip_lock:
            zf = self._zips.get(archive)
            if zf is None:
                try:
                    zf = self._zips[archive] = zipfile.ZipFile(archive)
                except (OSError, zipfile.BadZipFile) as e:
                    raise ValueError("cannot open zip archive %r: %s" % (archive, e)) from None
            try:
                return zf.read(member)
            except KeyError:
                raise ValueError("zip archive %r has no member %r" % (archive, member)) from None
            except (zipfile.BadZipFile, zlib.error, OSError) as e:
                raise ValueError("cannot read %r from zip archive %r: %s" % (member, archive, e)) from None


class Base64ImageDeserializer(_ImageDeserializerBase):
    """Reads images embedded in a text file (CNTK's ``Base64ImageDeserializer``): lines
    ``[sequenceId<TAB>]label<TAB>base64-encoded image``. Whether lines carry a sequence id is
    decided by the first line (three columns), as in CNTK; without ids the 0-based line number
    is the id. ``streams`` as for ``ImageDeserializer``."""

    def __init__(self, filename, streams):
        self._init_streams(filename, streams, "Base64ImageDeserializer")
        try:
            f = open(self.filename, "rb")
        except OSError as e:
            raise DataError("Base64ImageDeserializer: cannot open %r: %s" % (self.filename, e.strerror or e)) from None
        entries, keyed = [], None
        with f:
            offset, index, tail = 0, 0, b""
            while True:
                block = f.read(1 << 24)
                if not block and not tail:
                    break
                data = tail + block
                lines = data.split(b"\n")
                tail = lines.pop() if block else b""
                for line in lines:
                    start, length = offset, len(line) + 1
                    offset += length
                    index += 1
                    if not line.strip():
                        continue
                    tab = line.find(b"\t")
                    if keyed is None:
                        keyed = line.count(b"\t") >= 2
                    key = _sequence_key(line[:tab].decode("utf-8", "replace").strip()) if keyed and tab >= 0 \
                        else index - 1
                    entries.append(_Entry(index, key, None, (start, len(line))))
                if not block:
                    break
        if not entries:
            raise DataError("Base64ImageDeserializer: %r holds no images" % (self.filename,))
        self._keyed = keyed
        self._map_errors = {}
        self._build_chunks(entries)

    def _describe(self, entry):
        return "image with id %r: " % (entry.key,)

    def _read(self, entry):
        start, length = entry.source
        with open(self.filename, "rb") as f:   # one handle per read: safe in the decoding threads
            f.seek(start)
            line = f.read(length)
        cols = line.rstrip(b"\r").split(b"\t")
        need = 3 if self._keyed else 2
        if len(cols) != need:
            raise ValueError("expected %s, found %d tab-separated column(s)" % (
                "id<TAB>label<TAB>base64 image" if self._keyed else "label<TAB>base64 image", len(cols)))
        text = cols[need - 2].strip().decode("utf-8", "replace")
        if not text.isdigit():
            raise ValueError("cannot parse label %r (a 0-based class id)" % (text,))
        label = int(text)
        if self._num_labels is not None and label >= self._num_labels:
            raise ValueError("invalid class id %d; it exceeds the label dimension %d" % (label, self._num_labels))
        # like CNTK, characters outside the base64 alphabet (trailing blanks) are ignored
        data = base64.b64decode(cols[need - 1], validate=False)
        if not data:
            raise ValueError("empty image")
        return label, data
