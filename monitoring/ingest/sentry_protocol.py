"""The Sentry SDK protocol: authentication, the envelope and store endpoints, and their answer.

Authentication (what SDKs send):
    ``X-Sentry-Auth: Sentry sentry_key=KEY, sentry_version=7, sentry_client=sentry.python/2.x``
    (older SDKs send the same in ``Authorization``), or ``?sentry_key=KEY`` in the query
    string (browser SDKs, to avoid a CORS preflight), or a ``dsn`` in the envelope header.
    When two of them disagree the request is refused, as Sentry refuses it.

Envelope (``POST /api/<project>/envelope/``), per Sentry's developer documentation: one JSON
header line, then items, each a JSON header line with a ``type`` and an optional ``length``
followed by its payload: ``length`` bytes then a newline or the end, or without ``length``
up to the next newline. Content-Type ``application/x-sentry-envelope`` is implied when
absent; ``text/plain``, ``multipart/form-data`` and ``application/x-www-form-urlencoded``
are accepted too (browser SDKs use them to avoid a preflight). Items of type ``event``
become errors, ``transaction`` items of op ``http.server`` become requests; every other item
type (session, sessions, client_report, attachment, replay, profile, check_in, log, span...)
is accepted and dropped, counted by type. An event or transaction item over 1 MiB (Sentry's
limit) is refused with 413; bad framing or an item payload that is not a JSON object with
400.

Store (``POST /api/<project>/store/``): the body is one event as JSON, or, from very old
SDKs, base64 of its zlib-compressed JSON.

The answer: 200 with ``{"id": "<event id>"}`` (``{}`` for an envelope without an event).
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from monitoring.clock import Clock
from monitoring.ingest.body import MIB, SENTRY_STORE_LIMITS, decode_body
from monitoring.ingest.errors import (
    ConflictingCredentials,
    ItemTooLarge,
    MalformedEnvelope,
    UndecodableBody,
    UnsupportedMediaType,
)
from monitoring.ingest.records import IngestedError, IngestedRequest
from monitoring.ingest.sentry_events import (
    error_from_event,
    event_id_of,
    new_event_id,
    request_from_transaction,
)
from monitoring.ingest.timestamps import DEFAULT_BOUNDS, TimestampBounds

MAX_ITEM_BYTES = 1 * MIB  # Sentry: 1 MiB per event (errors and transactions)
MAX_ITEMS = 1_000
MAX_HEADER_LINE_BYTES = 64 * 1024
ENVELOPE_CONTENT_TYPES = frozenset(
    {"application/x-sentry-envelope", "text/plain", "multipart/form-data", "application/x-www-form-urlencoded"}
)
STORE_CONTENT_TYPES = frozenset({"application/json", "text/plain", "application/octet-stream"})
_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
_EVENT_TYPES = frozenset({"event", "transaction"})


# --- authentication ---------------------------------------------------------------------------


def _valid_key(value: object) -> str | None:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if not isinstance(value, str):
        return None
    value = value.strip().strip('"')
    return value if _KEY_RE.match(value) else None


def _key_from_header(header: str) -> str | None:
    text = header.strip()
    if text[:7].lower() == "sentry ":
        text = text[7:]
    for part in text.split(","):
        name, separator, value = part.strip().partition("=")
        if separator and name.strip().lower() == "sentry_key":
            return _valid_key(value)
    return None


def parse_sentry_auth(header: str | None, query: Mapping[str, str | Sequence[str]] | None = None) -> str | None:
    """The public key from ``X-Sentry-Auth`` (or a ``Sentry ...`` Authorization value) or ``?sentry_key=``.

    None when neither carries a well-formed key. ConflictingCredentials (401) when both carry
    keys and they differ. Compare the key in constant time; never log it.
    """
    from_header = _key_from_header(header) if header else None
    from_query = _valid_key(query.get("sentry_key")) if query else None
    if from_header and from_query and from_header != from_query:
        raise ConflictingCredentials("the X-Sentry-Auth header and the sentry_key parameter name different keys")
    return from_header or from_query


def dsn_public_key(dsn: object) -> str | None:
    """The key of a DSN (``https://KEY@host/1``), as an envelope header may carry it."""
    if not isinstance(dsn, str):
        return None
    try:
        return _valid_key(urlsplit(dsn).username)
    except ValueError:
        return None


# --- content types ----------------------------------------------------------------------------


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_envelope_content_type(content_type: str | None) -> None:
    """UnsupportedMediaType (415) unless the envelope endpoint accepts this Content-Type (or none)."""
    media_type = _media_type(content_type)
    if media_type and media_type not in ENVELOPE_CONTENT_TYPES:
        raise UnsupportedMediaType(f"Content-Type {media_type[:60]!r} is not an envelope content type")


def check_store_content_type(content_type: str | None) -> None:
    """UnsupportedMediaType (415) unless the store endpoint accepts this Content-Type (or none)."""
    media_type = _media_type(content_type)
    if media_type and media_type not in STORE_CONTENT_TYPES:
        raise UnsupportedMediaType(f"Content-Type {media_type[:60]!r} is not a store content type")


# --- batches ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SentryBatch:
    """What one envelope (or store request) held, decoded."""

    errors: tuple[IngestedError, ...] = ()
    requests: tuple[IngestedRequest, ...] = ()
    event_id: str | None = None  # what the answer names
    dsn_key: str | None = None  # the key of the envelope header's DSN, when it has one
    ignored_items: dict[str, int] = field(default_factory=dict)  # item type -> count dropped
    rejected_items: dict[str, int] = field(default_factory=dict)  # reason -> count (transactions' times)


def sentry_response(batch: SentryBatch) -> dict[str, str]:
    """The JSON body Sentry answers with: ``{"id": event_id}``, or ``{}`` without an event."""
    return {"id": batch.event_id} if batch.event_id else {}


def _json_object(payload: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise MalformedEnvelope(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedEnvelope(f"{what} is not a JSON object")
    return value


def _header_line(body: bytes, start: int, what: str) -> tuple[dict[str, Any], int]:
    """The JSON header line at ``start`` and the position after its newline (or the end)."""
    end = body.find(b"\n", start, start + MAX_HEADER_LINE_BYTES + 1)
    if end == -1:
        if len(body) - start > MAX_HEADER_LINE_BYTES:
            raise MalformedEnvelope(f"{what} is longer than {MAX_HEADER_LINE_BYTES} bytes")
        end = len(body)
    return _json_object(body[start:end], what), min(end + 1, len(body))


def decode_envelope(
    body: bytes,
    *,
    service: str,
    clock: Clock,
    bounds: TimestampBounds = DEFAULT_BOUNDS,
    max_item_bytes: int = MAX_ITEM_BYTES,
    max_items: int = MAX_ITEMS,
) -> SentryBatch:
    """Decode an (already inflated) envelope sent for ``service``.

    Raises MalformedEnvelope (400), ItemTooLarge (413) or BodyTooLarge (413, too many items).
    """
    if not body.strip():
        raise MalformedEnvelope("the envelope is empty: it needs at least its header line")
    headers, position = _header_line(body, 0, "the envelope header")
    header_event_id = event_id_of(headers.get("event_id"))
    errors: list[IngestedError] = []
    requests: list[IngestedRequest] = []
    ignored: dict[str, int] = {}
    rejected: dict[str, int] = {}
    event_id: str | None = None
    items = 0
    while position < len(body):
        if not body[position:position + 1].strip() and not body[position:].strip():
            break  # trailing newlines or whitespace after the last item
        items += 1
        if items > max_items:
            raise ItemTooLarge(f"the envelope has more than {max_items} items", max_items)
        item_headers, position = _header_line(body, position, f"the header of item {items}")
        item_type = item_headers.get("type")
        if not isinstance(item_type, str) or not item_type:
            raise MalformedEnvelope(f"item {items} has no type")
        length = item_headers.get("length")
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                raise MalformedEnvelope(f"item {items} has an invalid length")
            end = position + length
            if end > len(body):
                raise MalformedEnvelope(f"item {items} is truncated: {length} bytes announced")
            if end < len(body) and body[end:end + 1] != b"\n":
                raise MalformedEnvelope(f"item {items} is not followed by a newline")
            next_position = end + 1
        else:
            end = body.find(b"\n", position)
            end = len(body) if end == -1 else end
            next_position = end + 1
        kind = item_type.lower()
        if kind in _EVENT_TYPES:
            if end - position > max_item_bytes:
                raise ItemTooLarge(f"a {kind} item is over Sentry's limit of {max_item_bytes} bytes", max_item_bytes)
            event = _json_object(body[position:end], f"the payload of item {items} ({kind})")
            if kind == "event":
                error = error_from_event(
                    event, service=service, clock=clock, bounds=bounds, fallback_event_id=header_event_id
                )
                errors.append(error)
                event_id = event_id or error.event_id
            else:
                outcome = request_from_transaction(event, service=service, clock=clock, bounds=bounds)
                if isinstance(outcome, IngestedRequest):
                    requests.append(outcome)
                elif isinstance(outcome, str):
                    rejected[outcome] = rejected.get(outcome, 0) + 1
                else:
                    ignored[kind] = ignored.get(kind, 0) + 1
                event_id = event_id or event_id_of(event.get("event_id"))
        else:
            ignored[kind[:40]] = ignored.get(kind[:40], 0) + 1
        position = next_position
    return SentryBatch(
        errors=tuple(errors),
        requests=tuple(requests),
        event_id=event_id or header_event_id,
        dsn_key=dsn_public_key(headers.get("dsn")),
        ignored_items=ignored,
        rejected_items=rejected,
    )


def decode_store(
    body: bytes,
    *,
    service: str,
    clock: Clock,
    bounds: TimestampBounds = DEFAULT_BOUNDS,
    max_item_bytes: int = MAX_ITEM_BYTES,
) -> SentryBatch:
    """Decode an (already inflated) legacy store body: one event, as JSON or base64 of zlib'd JSON."""
    payload = body.strip()
    if payload[:1] != b"{":
        try:
            compressed = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise UndecodableBody("the store body is neither JSON nor base64") from None
        payload = decode_body(compressed, "deflate", SENTRY_STORE_LIMITS)
    if len(payload) > max_item_bytes:
        raise ItemTooLarge(f"the event is over Sentry's limit of {max_item_bytes} bytes", max_item_bytes)
    try:
        event = _json_object(payload, "the event")
    except MalformedEnvelope as exc:
        raise UndecodableBody(exc.message) from None
    if event.get("type") == "transaction":
        outcome = request_from_transaction(event, service=service, clock=clock, bounds=bounds)
        event_id = event_id_of(event.get("event_id")) or new_event_id()
        if isinstance(outcome, IngestedRequest):
            return SentryBatch(requests=(outcome,), event_id=event_id)
        if isinstance(outcome, str):
            return SentryBatch(event_id=event_id, rejected_items={outcome: 1})
        return SentryBatch(event_id=event_id, ignored_items={"transaction": 1})
    error = error_from_event(event, service=service, clock=clock, bounds=bounds)
    return SentryBatch(errors=(error,), event_id=error.event_id)
