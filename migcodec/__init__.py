"""migcodec: codecs, adaptive codec selection and a wire format for live migration of memory."""

__version__ = "0.1.0"
