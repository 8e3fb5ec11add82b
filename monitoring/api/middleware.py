"""Request timing for the monitored Flask app, into the RequestRecorder.

Installed by ``Monitoring(app)``, so the Centinela service and any host app that calls
``Monitoring(app)`` are measured the same way.

It is a thin WSGI wrapper around ``app.wsgi_app`` plus one after_request hook:

* The time runs from the moment Flask is called to the moment it returns the response
  (routing, every hook, the view, teardown).
* The hook (the last after_request hook to run) leaves the URL rule and the status of the
  response in the WSGI environ. The route is recorded as the rule's template with converters
  dropped (``/tickets/<id>``), never the raw path; a request that matched no rule (404, 405)
  is recorded as ``<unmatched>``.
* An exception that escapes Flask, or a response our hook never saw (another after_request
  hook failed, so Flask answered 500 itself), is recorded as a 500.
* Centinela's own endpoints (every route of a ``centinela_*`` blueprint, wherever URL_PREFIX
  puts them) are recorded with ``internal=True`` so SLO and alert figures can leave them out.
* The first request a process serves starts this process's scheduler (flush, sampling, the
  lease) when it has not started yet: under ``gunicorn --preload`` the app is built in the
  master, and threads started there would not survive the fork. The check is one pid
  comparison per request.

The request path does no I/O: ``RequestRecorder.record`` updates an in-memory histogram under
a lock, and the scheduler's per-process flush job writes it to the store.
"""
from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any, cast

from flask import Flask, Request, Response, request
from werkzeug.local import LocalProxy
from werkzeug.routing import Rule

from monitoring.metrics.recorder import DEFAULT_SERVICE, UNMATCHED_ROUTE, RequestRecorder
from monitoring.security.pii import sanitise_text

log = logging.getLogger(__name__)

_OUTCOME = "centinela.request_outcome"
# Every Centinela blueprint's name starts so (and no host blueprint's may: names are unique).
INTERNAL_BLUEPRINT_PREFIX = "centinela_"
_CONVERTER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def route_template(rule: str) -> str:
    """``/tickets/<int:ticket_id>`` -> ``/tickets/<ticket_id>``: the label, without converter noise."""
    return _CONVERTER.sub(r"<\1>", rule)


def is_internal_endpoint(endpoint: str | None) -> bool:
    """Centinela's own endpoints, which SLO and alert figures leave out."""
    return endpoint is not None and endpoint.startswith(INTERNAL_BLUEPRINT_PREFIX)


def install_request_hooks(
    app: Flask, recorder: RequestRecorder, start_process: Callable[[], object] | None = None,
    service: str = DEFAULT_SERVICE,
) -> None:
    """Time every request of ``app`` into ``recorder`` (no I/O on the request path), under ``service``.

    ``start_process`` runs once in each process, on its first request (see the module docstring).
    """
    # (URL rule, endpoint) -> (template, internal); Rule objects themselves are unhashable.
    labels: dict[tuple[str, str] | None, tuple[str, bool]] = {None: (UNMATCHED_ROUTE, False)}
    perf_counter = time.perf_counter
    getpid = os.getpid
    record = recorder.record
    inner = app.wsgi_app
    # One context lookup, not a proxy hop per attribute. Flask declares ``request`` as the Request
    # it stands for; it is the werkzeug LocalProxy that has _get_current_object.
    get_request = cast("LocalProxy[Request]", request)._get_current_object
    started_in: list[int] = [getpid() if start_process is None else -1]

    def label(rule: Rule | None) -> tuple[str, bool]:
        key = None if rule is None else (rule.rule, rule.endpoint)
        found = labels.get(key)
        if found is None:
            assert rule is not None
            # Once per URL rule: rules are written by developers, but they pass the sanitiser
            # like everything else we store.
            template = sanitise_text(route_template(rule.rule))
            found = labels[key] = (template, is_internal_endpoint(rule.endpoint))
        return found

    def start_this_process() -> None:
        started_in[0] = getpid()
        if start_process is None:  # a forked child of a process with nothing to start
            return
        try:
            start_process()
        except Exception:  # monitoring that cannot start must not fail the request
            log.exception("could not start Centinela's scheduler in this process")

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
            record(environ.get("REQUEST_METHOD", "GET"), route, status, elapsed, internal, service)
        except Exception:  # measuring must never be what breaks a response
            log.exception("request metrics: could not record a request")

    def timed_wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
        if started_in[0] != getpid():
            start_this_process()
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
    # Replacing wsgi_app is Flask's documented way to wrap it; mypy sees a method assigned to.
    app.wsgi_app = timed_wsgi_app  # type: ignore[method-assign]


def _match_rule(app: Flask, environ: dict[str, Any]) -> Rule | None:
    """The URL rule matched again, for the rare request our hook never saw."""
    try:
        rule, _ = app.url_map.bind_to_environ(environ).match(return_rule=True)
        return rule
    except Exception:
        return None
