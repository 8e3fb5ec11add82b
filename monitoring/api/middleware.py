"""Request timing for the monitored Flask app, into the RequestRecorder.

Installed by ``Monitoring(app)`` (through the metrics module's install), so the Centinela
service and any host app that calls ``Monitoring(app)`` are measured the same way.

It is a thin WSGI wrapper around ``app.wsgi_app`` plus one after_request hook:

* The time runs from the moment Flask is called to the moment it returns the response
  (routing, every hook, the view, teardown).
* The hook (the last after_request hook to run) leaves the URL rule and the status of the
  response in the WSGI environ. The route is recorded as the rule's template with converters
  dropped (``/tickets/<id>``), never the raw path; a request that matched no rule (404, 405)
  is recorded as ``<unmatched>``.
* An exception that escapes Flask, or a response our hook never saw (another after_request
  hook failed, so Flask answered 500 itself), is recorded as a 500.
* Monitoring endpoints (/api/monitoring/*, /api/health/*, /api/openapi.json) are recorded
  with ``internal=True`` so SLO and alert figures can leave them out.

The request path does no I/O: ``RequestRecorder.record`` updates an in-memory histogram under
a lock, and the scheduler's per-process flush job writes it to the store.
"""
from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from werkzeug.routing import Rule

from monitoring.errors.sanitiser import sanitise_text
from monitoring.metrics.recorder import UNMATCHED_ROUTE, RequestRecorder
from monitoring.metrics.rollups import RequestRollups, flush_recorder

if TYPE_CHECKING:
    from monitoring.extension import Monitoring

log = logging.getLogger(__name__)

RECORDER_KEY = "centinela.request_recorder"
_OUTCOME = "centinela.request_outcome"
INTERNAL_PREFIXES = ("/api/monitoring/", "/api/health/")
INTERNAL_ROUTES = frozenset({"/api/monitoring", "/api/health", "/api/openapi.json"})
_CONVERTER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def route_template(rule: str) -> str:
    """``/tickets/<int:ticket_id>`` -> ``/tickets/<ticket_id>``: the label, without converter noise."""
    return _CONVERTER.sub(r"<\1>", rule)


def is_internal_route(template: str) -> bool:
    """The monitoring endpoints themselves, which SLO and alert figures leave out."""
    return template in INTERNAL_ROUTES or template.startswith(INTERNAL_PREFIXES)


def install_request_hooks(app: Flask, recorder: RequestRecorder) -> None:
    """Time every request of ``app`` into ``recorder`` (no I/O on the request path)."""
    # URL rule string -> (template, internal); Rule objects themselves are unhashable.
    labels: dict[str | None, tuple[str, bool]] = {None: (UNMATCHED_ROUTE, False)}
    perf_counter = time.perf_counter
    record = recorder.record
    inner = app.wsgi_app
    get_request = request._get_current_object  # one context lookup, not a proxy hop per attribute

    def label(rule: Rule | None) -> tuple[str, bool]:
        key = None if rule is None else rule.rule
        found = labels.get(key)
        if found is None:
            # Once per URL rule: rules are written by developers, but they pass the sanitiser
            # like everything else we store.
            template = sanitise_text(route_template(key))  # type: ignore[arg-type]
            found = labels[key] = (template, is_internal_route(template))
        return found

    def finish(environ: dict[str, Any], started: float, escaped: bool) -> None:
        elapsed = perf_counter() - started
        try:
            outcome = environ.pop(_OUTCOME, None)
            if outcome is None or escaped:
                rule = outcome[0] if outcome is not None else _match_rule(app, environ)
                status = 500
            else:
                rule, status = outcome
            route, internal = label(rule)
            record(environ.get("REQUEST_METHOD", "GET"), route, status, elapsed, internal)
        except Exception:  # measuring must never be what breaks a response
            log.exception("request metrics: could not record a request")

    def timed_wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
        started = perf_counter()
        try:
            response = inner(environ, start_response)
        except BaseException:
            finish(environ, started, escaped=True)
            raise
        finish(environ, started, escaped=False)
        return response

    def note_outcome(response: Response) -> Response:
        current = get_request()
        current.environ[_OUTCOME] = (current.url_rule, response.status_code)
        return response

    # Flask runs after_request hooks last-registered first: first in the list runs last, so
    # the status is the one the other hooks settled on.
    app.after_request_funcs.setdefault(None, []).insert(0, note_outcome)
    app.wsgi_app = timed_wsgi_app  # type: ignore[method-assign]


def _match_rule(app: Flask, environ: dict[str, Any]) -> Rule | None:
    """The URL rule matched again, for the rare request our hook never saw."""
    try:
        rule, _ = app.url_map.bind_to_environ(environ).match(return_rule=True)
        return rule  # type: ignore[no-any-return]
    except Exception:
        return None


def install(monitoring: "Monitoring", app: Flask) -> RequestRecorder:
    """Hooks on ``app``, and this process's flush: on the scheduler's interval and at worker exit."""
    rollups = RequestRollups(monitoring.store, monitoring.clock)
    recorder = RequestRecorder(monitoring.clock)
    app.extensions[RECORDER_KEY] = recorder
    install_request_hooks(app, recorder)

    def flush() -> int:
        return flush_recorder(recorder, rollups)

    monitoring.scheduler.add_process("metrics_flush", flush, monitoring.settings.metrics_flush_interval)
    monitoring.on_shutdown(flush)
    return recorder


def request_recorder(app: Flask) -> RequestRecorder:
    """The recorder the hooks of ``app`` write to."""
    return app.extensions[RECORDER_KEY]
