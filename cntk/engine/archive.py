"""The npz container shared by model files and trainer checkpoints: a JSON description plus arrays.

A file is a zip archive written by ``numpy.savez`` (entries stored, never pickled): one entry,
named by the format, holds the UTF-8 JSON description as a 1-D uint8 array; every other entry is
a numeric array. Reading treats the bytes as untrusted: the container and every array header are
checked (numeric dtype, no Fortran order, data really in the file) before numpy reads anything,
always with ``allow_pickle=False``. Problems raise ``Invalid`` with the reason; the caller turns
it into a ``ValueError`` naming the file. Writing is atomic (temp file, fsync, rename).
"""

import io
import json
import math
import os
import zipfile

import numpy as np

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_CHUNK = 1 << 24


class Invalid(Exception):
    """A reason why a file is not valid (turned into ValueError at the boundary)."""


# ============================================================================== writing

def pack(description, key, arrays):
    """The archive's bytes: ``arrays`` plus the JSON ``description`` stored under ``key``."""
    payload = json.dumps(description, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    arrays = dict(arrays)
    arrays[key] = np.frombuffer(payload, dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def write_file(path, data):
    """Write ``data`` to ``path`` and flush it to disk (in pieces, as a large file is written)."""
    with open(path, "wb") as f:
        view = memoryview(data)
        for i in range(0, len(view), _CHUNK):
            f.write(view[i:i + _CHUNK])
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path):
    try:
        fd = os.open(path or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, data, write=None):
    """Replace ``path`` by ``data`` atomically: ``write(tmp, data)`` (default ``write_file``),
    then rename; on any failure the previous file stays and the temporary is removed."""
    path = os.fspath(path)
    tmp = path + ".tmp"
    try:
        (write or write_file)(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


# ============================================================================== reading

def check_header(zf, info, what):
    """Read an npy member's header without its data: (shape, dtype), numeric only."""
    with zf.open(info) as fp:
        try:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                raise Invalid("%s: unsupported array format version %s" % (what, version))
        except Invalid:
            raise
        except Exception as e:
            raise Invalid("%s: bad array header (%s)" % (what, e)) from None
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
        raise Invalid("%s: arrays must be numeric, not %s" % (what, dtype))
    if fortran:
        raise Invalid("%s: Fortran-ordered arrays are not used by this format" % what)
    count = math.prod(int(d) for d in shape)
    if count * dtype.itemsize > info.file_size:
        # checked before numpy allocates anything: the data must really be in the file
        raise Invalid("%s: the array %s of %s is larger than its archive entry" % (what, tuple(shape), dtype))
    return tuple(shape), dtype


def open_archive(data, kind, key):
    """Validate the container of a ``kind`` file ('model', 'checkpoint') whose description is
    under ``key``; returns (NpzFile, {key: (shape, dtype)}). The caller closes the NpzFile."""
    if len(data) == 0:
        raise Invalid("the file is empty")
    if data[:1] == b"\x80":
        raise Invalid("it is a pickle file; %ss are never unpickled" % kind)
    if data[:4] not in _ZIP_MAGIC:
        raise Invalid("it is not a %s archive (no zip header)" % kind)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except Exception as e:
        raise Invalid("the archive is damaged or truncated (%s)" % e) from None
    headers = {}
    for info in infos:
        name = info.filename
        if name.endswith(".pkl") or name.endswith(".pickle"):
            raise Invalid("it contains pickled data (%r); %ss are never unpickled" % (name, kind))
        if not name.endswith(".npy") or "/" in name or "\\" in name:
            raise Invalid("unexpected archive entry %r" % name)
        if info.compress_type != zipfile.ZIP_STORED:
            raise Invalid("archive entry %r is compressed; this format stores arrays uncompressed" % name)
        if info.file_size != info.compress_size or info.file_size > len(data):
            raise Invalid("archive entry %r has inconsistent sizes" % name)
        entry = name[:-4]
        if entry in headers:
            raise Invalid("duplicate archive entry %r" % name)
        try:
            headers[entry] = check_header(zf, info, "entry %r" % entry)
        except Invalid:
            raise
        except Exception as e:
            raise Invalid("the archive is damaged or truncated (entry %r: %s)" % (name, e)) from None
    if key not in headers:
        raise Invalid("the archive has no %s entry" % key)
    try:
        npz = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:
        raise Invalid("the archive is damaged or truncated (%s)" % e) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise Invalid("not an npz archive")
    return npz, headers


def read_array(npz, key):
    """The array ``key`` of an archive ``open_archive`` validated."""
    try:
        return npz[key]
    except Exception as e:
        raise Invalid("the archive is damaged or truncated (cannot read the array %r: %s)" % (key, e)) from None


def read_description(npz, headers, key, what):
    """The JSON data stored under ``key``; ``what`` names it in errors ('the state')."""
    shape, dtype = headers[key]
    if dtype != np.dtype(np.uint8) or len(shape) != 1:
        raise Invalid("%s must be a 1-D uint8 array" % key)
    raw = read_array(npz, key)
    try:
        text = raw.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("%s is not UTF-8 text" % what) from None

    def no_constants(c):
        raise Invalid("%s contains %s" % (what, c))
    try:
        return json.loads(text, parse_constant=no_constants)
    except Invalid:
        raise
    except (ValueError, RecursionError) as e:
        raise Invalid("%s is not valid JSON (%s)" % (what, e)) from None
