"""/api/monitoring/events: business events from apps in any language (ingest key, or the metrics key).

The body is one event object, or ``{"events": [...]}`` with at most MAX_BATCH events. Every
item is validated first; if any is bad the answer is 400 listing each bad field and nothing
is stored. Otherwise the batch is stored in one transaction: 201 with the counts (200 when
every event was a repeat of an id already stored).
"""
from __future__ import annotations

from typing import Any

from flask import jsonify

from monitoring.api.auth import require_key
from monitoring.api.blueprint import api_key_or_address, centinela_blueprint
from monitoring.api.errors import ApiError, json_body
from monitoring.business.events import (
    EVENT_TYPES,
    MAX_AMOUNT_MINOR,
    MAX_BATCH,
    MAX_QUANTITY,
    PAYMENT_OUTCOMES,
    TICKET_OPERATIONS,
    InvalidEvents,
)
from monitoring.extension import current_services
from monitoring.security.keys import INGEST, METRICS

# Per key (RATELIMIT_EVENTS) instead of the default: an app posting events is one client
# whatever addresses its workers use.
bp = centinela_blueprint("centinela_events", __name__, "/api/monitoring", budgets=[("events", api_key_or_address)])


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


@bp.post("/events")
@require_key(METRICS, INGEST)  # the metrics key kept for compatibility; INGEST_API_KEY is the one to hand out
def post_events():  # type: ignore[no-untyped-def]
    items = _items(json_body())
    try:
        result = current_services().business.record_raw(items)
    except InvalidEvents as exc:
        count = len(exc.errors)
        raise ApiError(
            400,
            f"{count} problem{'s' if count != 1 else ''} in the events; nothing was stored",
            "invalid_events",
            items=[error.to_json() for error in exc.errors],
        ) from None
    return jsonify(result.to_json()), 201 if result.accepted else 200


_TIMESTAMP = {"type": "string", "format": "date-time",
              "description": "RFC 3339 with an offset; default: when received. At most 5 minutes ahead, "
                             "and no older than METRICS_RETENTION_DAYS."}
_ID = {"type": "string", "maxLength": 128, "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]*$",
       "description": "Idempotency key: an event whose id is already stored is ignored (counted as a duplicate)."}
_LABEL = {"type": "string", "minLength": 1, "maxLength": 64}

EVENT_SCHEMA = {
    "oneOf": [
        {
            "type": "object",
            "title": "payment",
            "required": ["type", "outcome", "amount", "currency"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": "payment"},
                "id": _ID,
                "timestamp": _TIMESTAMP,
                "outcome": {"enum": list(PAYMENT_OUTCOMES)},
                "amount": {"type": "integer", "minimum": 0, "maximum": MAX_AMOUNT_MINOR,
                           "description": "Integer minor units of the currency (1999 EUR is 19.99 euros)."},
                "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$", "description": "ISO 4217 code."},
                "provider": _LABEL,
                "failure_code": {**_LABEL, "description": "Only for failed payments."},
            },
        },
        {
            "type": "object",
            "title": "ticket",
            "required": ["type", "operation"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": "ticket"},
                "id": _ID,
                "timestamp": _TIMESTAMP,
                "operation": {"enum": list(TICKET_OPERATIONS)},
                "ticket_type": _LABEL,
                "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY, "default": 1},
            },
        },
        {
            "type": "object",
            "title": "user_activity",
            "required": ["type", "user_id", "action"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": "user_activity"},
                "id": _ID,
                "timestamp": _TIMESTAMP,
                "user_id": {"type": ["string", "integer"],
                            "description": "Stored only as a keyed HMAC-SHA256 (USER_ID_HASH_KEY)."},
                "action": _LABEL,
            },
        },
    ]
}

_COUNTS = {
    "type": "object",
    "required": ["accepted", "duplicates"],
    "properties": {"accepted": {"type": "integer"}, "duplicates": {"type": "integer"}},
}

OPENAPI_PATHS = {
    "/api/monitoring/events": {
        "post": {
            "summary": "Record business events",
            "description": f"One event, or `{{\"events\": [...]}}` with 1 to {MAX_BATCH} events. Types: "
            f"{', '.join(EVENT_TYPES)}. Every item is validated; one bad item answers 400 listing every bad "
            "field and stores nothing. Rate limited per key by RATELIMIT_EVENTS.",
            "tags": ["business"],
            "security": [{"IngestKey": []}, {"ApiKey": []}, {"AdminKey": []}, {"ApiKeyQuery": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                EVENT_SCHEMA,
                                {
                                    "type": "object",
                                    "required": ["events"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "events": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH,
                                                   "items": EVENT_SCHEMA}
                                    },
                                },
                            ]
                        }
                    }
                },
            },
            "responses": {
                "201": {"description": "Stored (some may be duplicates).",
                        "content": {"application/json": {"schema": _COUNTS}}},
                "200": {"description": "Every event repeated an id already stored; nothing new.",
                        "content": {"application/json": {"schema": _COUNTS}}},
                "400": {
                    "description": "Malformed JSON (`invalid_json`), a body of the wrong shape (`invalid_body`), "
                    "or bad events (`invalid_events`, with `items`: one entry per bad field). Nothing was stored.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "allOf": [
                                    {"$ref": "#/components/schemas/Error"},
                                    {
                                        "type": "object",
                                        "properties": {
                                            "error": {
                                                "type": "object",
                                                "properties": {
                                                    "items": {
                                                        "type": "array",
                                                        "items": {
                                                            "type": "object",
                                                            "required": ["index", "field", "message"],
                                                            "properties": {
                                                                "index": {"type": "integer"},
                                                                "field": {"type": ["string", "null"]},
                                                                "message": {"type": "string"},
                                                            },
                                                        },
                                                    }
                                                },
                                            }
                                        },
                                    },
                                ]
                            }
                        }
                    },
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "413": {
                    "description": f"More than {MAX_BATCH} events (`batch_too_large`), or a body larger than "
                    "MAX_BODY_BYTES (`payload_too_large`).",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
                "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
                "429": {"$ref": "#/components/responses/RateLimited"},
            },
        }
    }
}
