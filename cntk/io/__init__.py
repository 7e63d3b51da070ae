"""Readers: ``MinibatchSource`` and deserializers (CNTK's ``cntk.io``)."""

from .streams import StreamDef, StreamDefs, StreamConfiguration, StreamInformation, Record  # noqa: F401
from .deserializer import Deserializer, UserDeserializer, PackedSequences, DataError  # noqa: F401
from .minibatch import MinibatchData  # noqa: F401
from .source import (MinibatchSource, INFINITELY_REPEAT, FULL_DATA_SWEEP,  # noqa: F401
                     DEFAULT_RANDOMIZATION_WINDOW_IN_CHUNKS)
from .user_source import UserMinibatchSource, MinibatchSourceFromData  # noqa: F401
from .ctf import CTFDeserializer, sequence_to_cntk_text_format  # noqa: F401
from . import transforms  # noqa: F401
from .image import ImageDeserializer, Base64ImageDeserializer  # noqa: F401
from .htk import HTKFeatureDeserializer, HTKMLFDeserializer  # noqa: F401
from .cbf import CBFDeserializer, ctf_to_cbf  # noqa: F401
