"""Typed refusals of an ingest request, each carrying the HTTP status and error code it maps to.

The decoders raise these; an endpoint turns one into its answer (the JSON error shape, or an
OTLP ``Status``) with ``error.status``, ``error.code`` and ``error.message``. Messages name
what was wrong with the payload and never quote it, so no secret it carried can reach a log
or a response.
"""
from __future__ import annotations

from typing import ClassVar


class IngestError(ValueError):
    """A request the ingest endpoints must refuse as a whole."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UndecodableBody(IngestError):
    """The body is not what its content type says (broken protobuf, JSON, gzip...): 400."""

    code = "undecodable_body"


class MalformedEnvelope(UndecodableBody):
    """A Sentry envelope whose framing or item payloads do not parse: 400."""

    code = "malformed_envelope"


class BodyTooLarge(IngestError):
    """A payload over a size limit: 413."""

    status = 413
    code = "payload_too_large"

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class RawBodyTooLarge(BodyTooLarge):
    """The body as sent on the wire is over the raw limit."""


class InflatedBodyTooLarge(BodyTooLarge):
    """The body inflates past the limit (a gzip bomb, or just too much): refused while inflating."""

    code = "inflated_payload_too_large"


class ItemTooLarge(BodyTooLarge):
    """One Sentry envelope item (an event or transaction) over Sentry's per-item limit."""


class UnsupportedMediaType(IngestError):
    """A content type the endpoint does not speak: 415."""

    status = 415
    code = "unsupported_media_type"


class UnsupportedContentEncoding(UnsupportedMediaType):
    """A Content-Encoding other than gzip, deflate or identity: 415 (RFC 9110, 15.5.16)."""

    code = "unsupported_content_encoding"


class ConflictingCredentials(IngestError):
    """A Sentry request whose header and query string carry different keys (Sentry refuses it): 401."""

    status = 401
    code = "unauthorized"
