"""Error tracking for the monitored Flask app, and /api/monitoring/errors (metrics key).

``install`` connects the capture to Flask's ``got_request_exception`` signal, flushes the
captures on the per-process job, registers the ``errors`` metric category, and starts
Sentry when SENTRY_DSN is set.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, jsonify, request
from flask.signals import got_request_exception

from monitoring.api.auth import require_key
from monitoring.api.middleware import route_template
from monitoring.api.params import int_arg, time_arg
from monitoring.errors.sentry import init_sentry, sentry_options
from monitoring.errors.tracking import ErrorsProvider, ErrorTracker, list_error_groups
from monitoring.extension import Monitoring, current_monitoring
from monitoring.security.keys import METRICS
from monitoring.store.errors_tables import error_counts, error_groups
from monitoring.store.retention import RetentionRule

log = logging.getLogger(__name__)

DAY = 86400.0
MAX_LIMIT = 200
TRACKER_KEY = "centinela.error_tracker"

bp = Blueprint("error_tracking", __name__, url_prefix="/api/monitoring")


def install(monitoring: Monitoring, app: Flask) -> None:
    settings = monitoring.settings
    assert settings is not None
    tracker = ErrorTracker(monitoring.store, monitoring.clock)
    app.extensions[TRACKER_KEY] = tracker

    def on_exception(sender: Flask, exception: BaseException, **extra: Any) -> None:
        try:
            tracker.capture(exception, _route_label())
        except Exception:  # capture must never turn one error into two
            log.warning("error tracking could not capture an exception", exc_info=True)

    got_request_exception.connect(on_exception, app, weak=False)
    monitoring.on_shutdown(lambda: got_request_exception.disconnect(on_exception, app))

    monitoring.scheduler.add_process("errors_flush", tracker.flush, settings.metrics_flush_interval)
    max_age = settings.metrics_retention_days * DAY
    monitoring.retention_rules += [
        RetentionRule(error_groups, error_groups.c.last_seen, max_age),
        RetentionRule(error_counts, error_counts.c.bucket_start, max_age),
    ]

    monitoring.metric_categories["errors"] = ErrorsProvider(monitoring.store, monitoring.clock)

    options = sentry_options(settings)
    if options is not None:
        init_sentry(options)


def _route_label() -> str:
    """``GET /tickets/<ticket_id>``: the request metrics' own route label, never the raw path."""
    rule = request.url_rule
    return f"{request.method} {route_template(rule.rule) if rule is not None else '<unmatched>'}"


def tracker_of(app: Flask) -> ErrorTracker:
    """The app's error tracker (tests and the dashboard flush or read through it)."""
    return app.extensions[TRACKER_KEY]






@bp.get("/errors")
@require_key(METRICS)
def errors():  # type: ignore[no-untyped-def]
    monitoring = current_monitoring()
    groups = list_error_groups(monitoring.store, since=time_arg("since"), limit=int_arg("limit", 50, 1, MAX_LIMIT))
    return jsonify({"groups": [group.to_json() for group in groups]})


_GROUP = {
    "type": "object",
    "properties": {
        "fingerprint": {"type": "string", "description": "Hash of the exception type and the innermost frame of "
                                                        "the app's own code."},
        "type": {"type": "string"},
        "where": {"type": "string", "description": "module:function of that frame."},
        "line": {"type": "integer", "description": "Line of the latest occurrence."},
        "route": {"type": "string", "description": "Method and URL rule of the latest occurrence."},
        "message": {"type": "string", "description": "Sanitised."},
        "count": {"type": "integer"},
        "firstSeen": {"type": "string", "format": "date-time"},
        "lastSeen": {"type": "string", "format": "date-time"},
        "stackTrace": {"type": "string", "description": "Sanitised trace of the latest occurrence."},
    },
}

OPENAPI_PATHS = {
    "/api/monitoring/errors": {
        "get": {
            "summary": "Error groups",
            "description": "Unhandled exceptions of the monitored app grouped by fingerprint, most recently seen "
            "first, each with its count, first and last seen and one sanitised stack trace. Captures reach the "
            "store on the next flush (METRICS_FLUSH_INTERVAL).",
            "tags": ["errors"],
            "security": [{"ApiKey": []}, {"AdminKey": []}, {"ApiKeyQuery": []}],
            "parameters": [
                {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"},
                 "description": "Only groups last seen at or after this time."},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50}},
            ],
            "responses": {
                "200": {
                    "description": "The groups.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["groups"],
                                "properties": {"groups": {"type": "array", "items": _GROUP}},
                            }
                        }
                    },
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "429": {"$ref": "#/components/responses/RateLimited"},
            },
        }
    }
}
