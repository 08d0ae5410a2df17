"""The batch codec interface, the registry and asynchronous engines.

Guest memory is any writable buffer seen as pages; a :class:`Batch` is runs of those pages;
a :class:`Codec` encodes a batch to :class:`Encoded` and decodes it into destination memory
in place. Codecs are plugins found through the ``migcodec.codecs`` entry points.
"""

from migcodec.codecs.base import Codec, PageEncoding, Probe
from migcodec.codecs.batch import DEFAULT_MAX_PAGES, Batch
from migcodec.codecs.encoded import CodecKind, CodecPath, Encoded, Measurements, PageMode
from migcodec.codecs.errors import (
    CodecError,
    CodecFailed,
    CodecNotFound,
    CodecStuck,
    CodecUnavailable,
    DecodeError,
    InvalidBatch,
    OutdatedPlugin,
    PageSizeUnsupported,
    RoundTripMismatch,
)
from migcodec.codecs.mirror import DestinationMirror, Held
from migcodec.codecs.page_views import DEFAULT_PAGE_SIZE, page_view
from migcodec.codecs.pool import CodecEngines, Request
from migcodec.codecs.registry import (
    available_codecs,
    get_codec,
    load_codec_class,
    plugin_statuses,
)
from migcodec.codecs.zero import zero_page_mask

__all__ = [
    "DEFAULT_MAX_PAGES",
    "DEFAULT_PAGE_SIZE",
    "Batch",
    "Codec",
    "CodecEngines",
    "CodecError",
    "CodecFailed",
    "CodecKind",
    "CodecNotFound",
    "CodecPath",
    "CodecStuck",
    "CodecUnavailable",
    "DecodeError",
    "DestinationMirror",
    "Encoded",
    "Held",
    "InvalidBatch",
    "Measurements",
    "OutdatedPlugin",
    "PageEncoding",
    "PageMode",
    "PageSizeUnsupported",
    "Probe",
    "Request",
    "RoundTripMismatch",
    "available_codecs",
    "get_codec",
    "load_codec_class",
    "page_view",
    "plugin_statuses",
    "zero_page_mask",
]
