"""Stream declarations (``StreamDef``, ``StreamDefs``, ``StreamConfiguration``) and the reader's
description of a stream (``StreamInformation``)."""

import numpy as np


class Record(dict):
    """A dict whose keys are also attributes (CNTK's ``cntk.variables.Record``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError("no stream named %r (have: %s)" % (name, ", ".join(sorted(self)) or "none"))

    def __setattr__(self, name, value):
        self[name] = value


class StreamDef(Record):
    """Declares one stream of a deserializer (a Record, like CNTK's).

    ``field``: the stream's name in the data (the CTF name after ``|``, ``'image'``/``'label'``
    for images); ``shape``: the sample dimension (int or tuple); ``is_sparse``; ``transforms``
    (image); ``context`` ``(left, right)``, ``scp``, ``mlf``, ``broadcast`` (HTK);
    ``defines_mb_size``: this stream's samples count against the minibatch size;
    ``max_sequence_length``: longer sequences are skipped (default 65535).

    Keys as in CNTK: ``stream_alias`` (= field), ``is_sparse``, ``dim`` (= shape, when given),
    ``transforms``/``context``/``scp``/``mlf``/``broadcast`` (only when given; ``mlf`` implies
    sparse), ``defines_mb_size``, ``max_sequence_length``. ``field`` and ``shape`` are also
    readable as keys and attributes; an option that was not given reads as ``None``.
    """

    _OPTIONAL = ("transforms", "context", "scp", "mlf", "broadcast", "dim", "shape")

    def __init__(self, field=None, shape=None, is_sparse=False, transforms=None, context=None,
                 scp=None, mlf=None, broadcast=None, defines_mb_size=False, max_sequence_length=65535):
        super().__init__()
        if shape is not None and not isinstance(shape, (int, np.integer, tuple, list)):
            raise TypeError("StreamDef shape must be an int or a tuple, got %r" % (shape,))
        self.update(stream_alias=field, field=field, is_sparse=bool(is_sparse) or mlf is not None)
        if shape is not None:
            self.update(dim=shape, shape=shape)
        for k, v in (("transforms", transforms), ("context", context), ("scp", scp), ("mlf", mlf),
                     ("broadcast", broadcast)):
            if v is not None:
                self[k] = v
        self.update(defines_mb_size=bool(defines_mb_size), max_sequence_length=int(max_sequence_length))

    def __getattr__(self, name):
        if name in self:
            return self[name]
        if name in self._OPTIONAL:
            return None
        raise AttributeError(name)

    @property
    def sample_dim(self):
        """The number of values in one sample (product of ``shape``), or None."""
        s = self.get("dim")
        if s is None:
            return None
        return int(np.prod(s)) if isinstance(s, (tuple, list)) else int(s)


def StreamDefs(**streams):
    """A Record of ``name=StreamDef(...)`` (the names the reader's streams get)."""
    for name, sd in streams.items():
        if not isinstance(sd, dict):
            raise TypeError("StreamDefs: %s must be a StreamDef, got %r" % (name, type(sd).__name__))
    return Record(streams)


def StreamConfiguration(name, dim, is_sparse=False, stream_alias="", defines_mb_size=False):
    """Older form of a stream declaration: ``name`` is the stream name, ``stream_alias`` the name
    in the file (defaults to ``name``)."""
    sd = StreamDef(field=stream_alias or name, shape=dim, is_sparse=is_sparse, defines_mb_size=defines_mb_size)
    sd["name"] = name
    return sd


class StreamInformation:
    """What a reader produces for one stream: ``name``, ``stream_id``, ``storage_format``
    (``'dense'`` or ``'sparse'``), ``dtype``, ``shape`` and
    ``defines_mb_size``. Hashable; used as the key of ``next_minibatch`` results."""

    __slots__ = ("name", "stream_id", "storage_format", "dtype", "shape", "defines_mb_size")

    def __init__(self, name, stream_id, storage_format, dtype, shape, defines_mb_size=False):
        if storage_format in ("sparse_csc", "sparse_csr"):
            storage_format = "sparse"
        if storage_format not in ("dense", "sparse"):
            raise ValueError("StreamInformation %r: storage_format must be 'dense' or 'sparse', got %r"
                             % (name, storage_format))
        self.name = str(name)
        self.stream_id = int(stream_id)
        self.storage_format = storage_format
        self.dtype = np.dtype(dtype).type
        self.shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
        self.defines_mb_size = bool(defines_mb_size)

    @property
    def is_sparse(self):
        return self.storage_format != "dense"

    @property
    def m_name(self):   # CNTK's swig names
        return self.name

    @property
    def sample_shape(self):
        return self.shape

    def _key(self):
        return (self.name, self.stream_id, self.storage_format, self.dtype, self.shape, self.defines_mb_size)

    def __eq__(self, other):
        return isinstance(other, StreamInformation) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return ("StreamInformation(name=%r, stream_id=%d, storage_format=%r, dtype=%s, shape=%s%s)"
                % (self.name, self.stream_id, self.storage_format, np.dtype(self.dtype).name, self.shape,
                   ", defines_mb_size=True" if self.defines_mb_size else ""))
