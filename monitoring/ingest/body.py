"""Request bodies as both protocols send them: identity, gzip, deflate or br, under two size limits.

``decode_body`` checks the raw size first, then inflates incrementally with
``zlib.decompressobj`` and ``max_length``, so a small body that inflates past the limit (a gzip
bomb) is refused after at most ``max_inflated_bytes`` plus one step of output has been
produced: memory stays bounded by the limit, never by what the body claims to hold. The
inflated body is returned as one ``bytes`` object, so the peak is about twice the limit while
the pieces are joined.

``br`` (Brotli) is what sentry-python sends instead of gzip when the ``brotli`` package is
installed in the sending app. It is decoded with that package's ``Decompressor`` and its
``output_buffer_limit`` (brotli 1.2 or later), step by step under the same limit; without the
package (or with an older one) ``br`` is refused with 415, and the message says why.

Limits (defaults below, each settable by phase 2's settings):

* OTLP/HTTP: the specification says the server MUST limit the body "including after
  decompression" and RECOMMENDS 64 MiB, answering 413 beyond it.
* Sentry envelopes: Sentry documents 200 MiB for an envelope after decompression and 1 MiB per
  event or transaction item; Relay's default envelope limit is 100 MiB and its general API
  payload limit 20 MiB. Centinela keeps only events and transactions (attachments and replays
  are dropped), so it takes Relay's 100 MiB inflated and 40 MiB raw (Relay's upload limit)
  for the envelope, and the 1 MiB item limit applies to each event (see sentry_protocol).
* The legacy store endpoint carries one event: 1 MiB inflated, as Sentry's event limit.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

from monitoring.ingest.errors import (
    InflatedBodyTooLarge,
    RawBodyTooLarge,
    UndecodableBody,
    UnsupportedContentEncoding,
)

MIB = 1024 * 1024

# Output produced per decompress call: small enough that overshooting the limit costs little,
# large enough that a 64 MiB body needs only a few hundred calls.
_INFLATE_STEP = 256 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_DEFLATE_WBITS = -zlib.MAX_WBITS
# At most this many encodings may be stacked ("gzip, gzip" is legal HTTP, a hundred is abuse).
_MAX_ENCODINGS = 4


@dataclass(frozen=True)
class BodyLimits:
    """Size limits for one kind of request body, in bytes."""

    max_raw_bytes: int
    max_inflated_bytes: int

    def __post_init__(self) -> None:
        if self.max_raw_bytes < 1 or self.max_inflated_bytes < 1:
            raise ValueError("body limits must be at least one byte")


OTLP_BODY_LIMITS = BodyLimits(max_raw_bytes=64 * MIB, max_inflated_bytes=64 * MIB)
SENTRY_ENVELOPE_LIMITS = BodyLimits(max_raw_bytes=40 * MIB, max_inflated_bytes=100 * MIB)
SENTRY_STORE_LIMITS = BodyLimits(max_raw_bytes=1 * MIB, max_inflated_bytes=1 * MIB)


def content_encodings(header: str | None) -> list[str]:
    """The codings of a Content-Encoding header in the order they were applied (identity left out)."""
    if not header:
        return []
    codings = [part.strip().lower() for part in header.split(",")]
    return [coding for coding in codings if coding and coding != "identity"]


def decode_body(body: bytes, content_encoding: str | None, limits: BodyLimits) -> bytes:
    """The body with its Content-Encoding removed, within ``limits``.

    Raises RawBodyTooLarge, InflatedBodyTooLarge (413), UnsupportedContentEncoding (415) or
    UndecodableBody (400: a truncated or corrupt compressed stream).
    """
    codings = content_encodings(content_encoding)
    # An uncompressed body is its own inflated form: both limits apply to it.
    raw_limit = limits.max_raw_bytes if codings else min(limits.max_raw_bytes, limits.max_inflated_bytes)
    if len(body) > raw_limit:
        raise RawBodyTooLarge(f"request body of {len(body)} bytes is over the limit of {raw_limit} bytes", raw_limit)
    if len(codings) > _MAX_ENCODINGS:
        raise UnsupportedContentEncoding(f"more than {_MAX_ENCODINGS} stacked content encodings")
    for coding in codings:
        if coding == "br" and not brotli_supported():
            raise UnsupportedContentEncoding(
                "Content-Encoding 'br' needs the brotli package (1.2 or later) on the Centinela side; "
                "send gzip, deflate or identity"
            )
        if coding not in ("gzip", "x-gzip", "deflate", "br"):
            raise UnsupportedContentEncoding(
                f"Content-Encoding {coding[:40]!r} is not supported; send gzip, deflate, br or identity"
            )
    data = bytes(body)
    for coding in reversed(codings):  # the last coding listed was applied last
        if coding == "deflate":
            data = _inflate(data, limits.max_inflated_bytes)
        elif coding == "br":
            data = _unbrotli(data, limits.max_inflated_bytes)
        else:
            data = _gunzip(data, limits.max_inflated_bytes)
    return data


def brotli_supported() -> bool:
    """Whether ``br`` bodies can be decoded: the brotli package, with bounded output (1.2+)."""
    try:
        import brotli  # type: ignore[import-untyped]  # optional, ships no types
    except ImportError:
        return False
    return hasattr(brotli.Decompressor(), "can_accept_more_data")


def _unbrotli(data: bytes, limit: int) -> bytes:
    import brotli

    decompressor = brotli.Decompressor()
    chunks: list[bytes] = []
    produced = 0
    pending = data
    try:
        while True:
            chunk = decompressor.process(pending, output_buffer_limit=min(_INFLATE_STEP, limit - produced + 1))
            pending = b""
            produced += len(chunk)
            if produced > limit:
                raise _inflated_too_large(limit)
            if chunk:
                chunks.append(chunk)
            if decompressor.is_finished():
                return b"".join(chunks)
            if decompressor.can_accept_more_data() and not chunk:
                # It wants input and every byte was given: the stream stops short.
                raise UndecodableBody("compressed body is truncated")
    except brotli.error as exc:
        raise UndecodableBody(f"compressed body does not decode as brotli ({exc})") from None


def _inflated_too_large(limit: int) -> InflatedBodyTooLarge:
    return InflatedBodyTooLarge(f"request body inflates past the limit of {limit} bytes", limit)


def _inflate_stream(data: bytes, wbits: int, limit: int, chunks: list[bytes], produced: int) -> tuple[bytes, int]:
    """Inflate one compressed stream from ``data`` into ``chunks``; returns (the bytes after it, total produced)."""
    inflater = zlib.decompressobj(wbits)
    pending = data
    try:
        while True:
            chunk = inflater.decompress(pending, min(_INFLATE_STEP, limit - produced + 1))
            produced += len(chunk)
            if produced > limit:
                raise _inflated_too_large(limit)
            if chunk:
                chunks.append(chunk)
            pending = inflater.unconsumed_tail
            if inflater.eof:
                return inflater.unused_data, produced
            if not pending and not chunk:
                raise UndecodableBody("compressed body is truncated")
    except zlib.error as exc:
        raise UndecodableBody(f"compressed body does not inflate ({exc})") from None


def _gunzip(data: bytes, limit: int) -> bytes:
    """gzip, including several concatenated members (RFC 1952 allows them)."""
    if not data.startswith(_GZIP_MAGIC):
        raise UndecodableBody("body is not gzip although Content-Encoding says so")
    chunks: list[bytes] = []
    produced = 0
    rest = data
    while rest:
        rest, produced = _inflate_stream(rest, _GZIP_WBITS, limit, chunks, produced)
        if rest and not rest.startswith(_GZIP_MAGIC):
            raise UndecodableBody("unexpected bytes after the gzip stream")
    return b"".join(chunks)


def _inflate(data: bytes, limit: int) -> bytes:
    """HTTP "deflate" is the zlib format (RFC 9110), but some clients send raw deflate: accept both."""
    looks_like_zlib = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
    chunks: list[bytes] = []
    rest, _ = _inflate_stream(data, _ZLIB_WBITS if looks_like_zlib else _RAW_DEFLATE_WBITS, limit, chunks, 0)
    if rest:
        raise UndecodableBody("unexpected bytes after the deflate stream")
    return b"".join(chunks)
