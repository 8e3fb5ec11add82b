"""/api/monitoring/events: business events from apps in any language (ingest key, or the metrics key).

The body is one event object, or ``{"events": [...]}`` with at most MAX_BATCH events. Every
item is validated first; if any is bad the answer is 400 listing each bad field and nothing
is stored. Otherwise the batch is stored in one transaction: 201 with the counts (200 when
every event was a repeat of an id already stored).

The events are checked by ``monitoring.business.events``, the one validator the Python API
(``Monitoring.record_event``) and this endpoint share, which reports every bad field of every
item at once and checks what no JSON Schema can (a real ISO 4217 code, a timestamp within the
retention). The models below document that validator from its own limits; the fuzz test
(tests/test_fuzz.py) holds the two to each other.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import Response, jsonify
from pydantic import BaseModel, ConfigDict, Field, RootModel, WithJsonSchema

from monitoring.api.auth import require_key
from monitoring.api.contract import Document, ErrorBody, ErrorDetail, Model, Timestamp, endpoint, sometimes_absent
from monitoring.api.errors import ApiError
from monitoring.business.events import (
    MAX_AMOUNT_MINOR,
    MAX_BATCH,
    MAX_EVENT_ID_LENGTH,
    MAX_LABEL_LENGTH,
    MAX_QUANTITY,
    MAX_USER_ID_LENGTH,
    PAYMENT_OUTCOMES,
    TICKET_OPERATIONS,
    InvalidEvents,
)
from monitoring.extension import current_services
from monitoring.security.keys import INGEST, METRICS

# --- the contract ---------------------------------------------------------------------------

EventId = Annotated[str, Field(max_length=MAX_EVENT_ID_LENGTH, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
                               description="Idempotency key: an event whose id is already stored is ignored "
                               "(counted as a duplicate).")]
EventTime = Annotated[Timestamp, Field(description="RFC 3339 with an offset; default: when received. At most 5 "
                                       "minutes ahead, and no older than METRICS_RETENTION_DAYS.")]
Label = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_LENGTH)]


class PaymentEvent(Model):
    type: Literal["payment"]
    id: EventId | None = None
    timestamp: EventTime | None = None
    outcome: Annotated[str, WithJsonSchema({"type": "string", "enum": list(PAYMENT_OUTCOMES)})]
    amount: int = Field(ge=0, le=MAX_AMOUNT_MINOR,
                        description="Integer minor units of the currency (1999 EUR is 19.99 euros).")
    currency: str = Field(pattern="^[A-Za-z]{3}$", description="ISO 4217 code.")
    provider: Label | None = None
    failure_code: Label | None = Field(None, description="Only for failed payments.")


class TicketEvent(Model):
    type: Literal["ticket"]
    id: EventId | None = None
    timestamp: EventTime | None = None
    operation: Annotated[str, WithJsonSchema({"type": "string", "enum": list(TICKET_OPERATIONS)})]
    ticket_type: Label | None = None
    quantity: int = Field(1, ge=1, le=MAX_QUANTITY)


class UserActivityEvent(Model):
    type: Literal["user_activity"]
    id: EventId | None = None
    timestamp: EventTime | None = None
    user_id: Annotated[str, Field(min_length=1, max_length=MAX_USER_ID_LENGTH)] | int = Field(
        description="Stored only as a keyed HMAC-SHA256 (USER_ID_HASH_KEY).")
    action: Label


Event = Annotated[PaymentEvent | TicketEvent | UserActivityEvent, Field(discriminator="type")]


class EventBatch(Model):
    events: list[Event] = Field(min_length=1, max_length=MAX_BATCH)


class ReceivedEvents(BaseModel):
    """What the view receives: the body's items, its shape checked, as sent (the domain checks each)."""

    model_config = ConfigDict(defer_build=True)
    items: list[Any]


class EventsBody(RootModel[Any]):
    """One event, or a batch."""

    model_config = ConfigDict(defer_build=True)
    root: Event | EventBatch

    @classmethod
    def from_request(cls, data: Any) -> ReceivedEvents:
        return ReceivedEvents(items=_items(data))


class EventCounts(Document):
    accepted: int = Field(description="Events stored.")
    duplicates: int = Field(description="Events whose id was already stored: ignored.")


class EventProblem(Document):
    index: int = Field(description="The event's place in the batch (0 for a single event).")
    field: str | None = Field(description="The field; null when the item itself is wrong.")
    message: str


class EventsRefusedDetail(ErrorDetail):
    model_config = ConfigDict(extra="allow", populate_by_name=True, json_schema_extra=sometimes_absent("items"))

    items: list[EventProblem] = Field(description="invalid_events: one entry per bad field.")


class EventsRefused(ErrorBody):
    error: EventsRefusedDetail


def _items(body: Any) -> list[Any]:
    if not isinstance(body, dict):
        raise ApiError(400, 'send one event object, or {"events": [...]} for a batch', "invalid_body")
    if "events" not in body:
        return [body]
    items = body["events"]
    if set(body) != {"events"}:
        raise ApiError(400, 'a batch is {"events": [...]} with no other field', "invalid_body")
    if not isinstance(items, list) or not items:
        raise ApiError(400, "events must be a non-empty list of event objects", "invalid_body")
    if len(items) > MAX_BATCH:
        raise ApiError(413, f"at most {MAX_BATCH} events per request (got {len(items)}); split the batch",
                       "batch_too_large")
    return items


# --- the endpoint --------------------------------------------------------------------------


@require_key(METRICS, INGEST)  # the metrics key kept for compatibility; INGEST_API_KEY is the one to hand out
@endpoint(
    key=None, security=[{"IngestKey": []}, {"ApiKey": []}, {"AdminKey": []}, {"ApiKeyQuery": []}],
    body=EventsBody, responses={201: EventCounts, 200: EventCounts, 400: EventsRefused, 413: ErrorBody},
    tags=["business"],
    descriptions={
        201: "Stored (some may be duplicates).",
        200: "Every event repeated an id already stored; nothing new.",
        400: "Malformed JSON (`invalid_json`), a body of the wrong shape (`invalid_body`), or bad events "
             "(`invalid_events`, with `items`: one entry per bad field). Nothing was stored.",
        413: f"More than {MAX_BATCH} events (`batch_too_large`), or a body larger than MAX_BODY_BYTES "
             "(`payload_too_large`).",
    },
)
def post_events(body: ReceivedEvents) -> tuple[Response, int]:
    """Record business events

    One event, or `{"events": [...]}` with 1 to MAX_BATCH (500) events. Types: payment, ticket,
    user_activity. Every item is validated; one bad item answers 400 listing every bad field and
    stores nothing. Rate limited per key by RATELIMIT_EVENTS.
    """
    try:
        result = current_services().business.record_raw(body.items)
    except InvalidEvents as exc:
        count = len(exc.errors)
        raise ApiError(
            400,
            f"{count} problem{'s' if count != 1 else ''} in the events; nothing was stored",
            "invalid_events",
            items=[error.to_json() for error in exc.errors],
        ) from None
    return jsonify(result.to_json()), 201 if result.accepted else 200

