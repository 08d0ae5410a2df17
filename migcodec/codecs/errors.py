"""Exceptions of the codec layer; each message says what went wrong and what to do."""


class CodecError(Exception):
    """Base class of every codec-layer failure."""


class InvalidBatch(CodecError, ValueError):
    """A batch names pages that cannot form a request (bad run, too many pages, bad memory)."""


class DecodeError(CodecError):
    """An encoded batch does not decode to exactly the pages it names."""


class CodecNotFound(CodecError, LookupError):
    """No plugin is registered under the requested name (``name``, when one was given)."""

    name: str | None = None


class CodecUnavailable(CodecError):
    """A plugin is registered but cannot run here (missing library or device)."""


class CodecFailed(CodecError):
    """A codec's own code raised, or gave what the codec contract does not allow, while it
    ran; the message names the codec and what to do about its package."""


class RoundTripMismatch(CodecFailed):
    """A codec's output did not decode to the pages it encoded."""


class CodecStuck(CodecFailed):
    """A codec call has not returned within the time its caller could wait for it; the
    thread inside it is left running (see :mod:`migcodec.codecs.stuck`)."""


class PageSizeUnsupported(CodecError, ValueError):
    """The codec's format cannot describe pages of this size; refused before a stream or a
    trace starts, never in the middle of one."""


class OutdatedPlugin(CodecError, TypeError):
    """A codec class implements hooks of an earlier codec contract; the message names the
    methods that replace them."""
