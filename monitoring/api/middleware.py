"""Request timing for the monitored Flask app, into the RequestRecorder.

Installed by ``Monitoring(app)``, so the Centinela service and any host app that calls
``Monitoring(app)`` are measured the same way.

It is one thin WSGI wrapper around ``app.wsgi_app``, and adds no hook to the app:

* The time runs from the moment Flask is called to the moment it returns the response
  (routing, every hook, the view, teardown).
* The wrapper hands Flask a ``start_response`` of its own, which Flask calls once the response
  is final (after every after_request hook and error handler) and while the request is still
  current: it notes the request's URL rule and the status sent. The route
  is recorded as the rule's template with converters dropped (``/tickets/<id>``), never the
  raw path; a request that matched no rule (404, 405) is recorded as ``<unmatched>``.
* An exception that escapes Flask is recorded as a 500 (an after_request hook of the app that
  fails is already one: Flask answers 500 itself).
* Centinela's own endpoints (every route of a ``centinela_*`` blueprint, wherever URL_PREFIX
  puts them) are recorded with ``internal=True`` so SLO and alert figures can leave them out.
* The first request a process serves starts this process's scheduler (flush, sampling, the
  lease) when it has not started yet: under ``gunicorn --preload`` the app is built in the
  master, and threads started there would not survive the fork. The check is one attribute
  read per request (an at-fork hook sets it again in each child).

The request path does no I/O: ``RequestRecorder.record`` updates an in-memory histogram under
a lock, and the scheduler's per-process flush job writes it to the store.
"""
from __future__ import annotations

import logging
import os
import re
import time
import weakref
from collections.abc import Callable
from typing import Any

from flask import Flask
from werkzeug.routing import Rule

from monitoring.metrics.recorder import DEFAULT_SERVICE, UNMATCHED_ROUTE, RequestRecorder
from monitoring.security.pii import sanitise_text

log = logging.getLogger(__name__)

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
    # id(URL rule) -> (the rule, template, internal): Rule objects are unhashable, and the rule
    # kept in the value both pins its id and is checked against the rule looked up.
    labels: dict[int, tuple[Rule, str, bool]] = {}
    # Status line -> code: an app sends a handful of distinct lines ("200 OK", "404 NOT FOUND").
    codes: dict[str, int] = {}
    perf_counter = time.perf_counter
    record = recorder.record
    inner = app.wsgi_app
    start = _ProcessStart(start_process)

    def finish(environ: dict[str, Any], rule: Rule | None, status: str | None, elapsed: float, escaped: bool) -> None:
        try:
            if status is None:  # Flask never started a response: the exception escaped it
                rule, code = _match_rule(app, environ), 500
            elif escaped:
                code = 500
            else:
                code = codes.get(status) or _status_code(codes, status)
            if rule is None:
                route, internal = UNMATCHED_ROUTE, False
            else:
                found = labels.get(id(rule))
                if found is None or found[0] is not rule:
                    # Once per URL rule: rules are written by developers, but they pass the
                    # sanitiser like everything else we store.
                    found = labels[id(rule)] = (rule, sanitise_text(route_template(rule.rule)),
                                                is_internal_endpoint(rule.endpoint))
                route, internal = found[1], found[2]
            record(environ.get("REQUEST_METHOD", "GET"), route, code, elapsed, internal, service)
        except Exception:  # measuring must never be what breaks a response
            log.exception("request metrics: could not record a request")

    def timed_wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
        if start.pending:
            start.run()
        # What Flask's start_response call says, in this call's own variables: no environ key
        # to write and pop per request, and nothing of ours in a host's environ.
        noted_rule: Rule | None = None
        noted_status: str | None = None

        def noting_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            # Flask calls this once the response is final (after every after_request hook and
            # error handler), while the request is still current: its URL rule is at hand.
            nonlocal noted_rule, noted_status
            try:
                noted_rule = environ["werkzeug.request"].url_rule
            except (KeyError, AttributeError):  # not answered through a Flask request
                noted_rule = _match_rule(app, environ)
            noted_status = status
            # Passed on as Flask called it: a server's start_response may take exc_info only when given.
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        started = perf_counter()
        try:
            response = inner(environ, noting_start_response)
        except BaseException:
            finish(environ, noted_rule, noted_status, perf_counter() - started, escaped=True)
            raise
        finish(environ, noted_rule, noted_status, perf_counter() - started, escaped=False)
        return response

    # Replacing wsgi_app is Flask's documented way to wrap it; mypy sees a method assigned to.
    app.wsgi_app = timed_wsgi_app  # type: ignore[method-assign]


class _ProcessStart:
    """Whether this process has yet to run ``start_process``: set again in a forked child by an
    at-fork hook, so a request pays one attribute read rather than a getpid() system call."""

    __slots__ = ("__weakref__", "pending", "start_process")

    def __init__(self, start_process: Callable[[], object] | None) -> None:
        self.start_process = start_process
        self.pending = start_process is not None
        if start_process is not None:
            # At-fork hooks cannot be removed: a weak reference, so that an app that is gone
            # leaves only a no-op behind.
            reference = weakref.ref(self)

            def after_fork_in_child() -> None:
                alive = reference()
                if alive is not None:
                    alive.pending = True

            os.register_at_fork(after_in_child=after_fork_in_child)

    def run(self) -> None:
        self.pending = False
        if self.start_process is None:
            return
        try:
            self.start_process()
        except Exception:  # monitoring that cannot start must not fail the request
            log.exception("could not start Centinela's scheduler in this process")


def _status_code(codes: dict[str, int], status: str) -> int:
    """``"404 NOT FOUND"`` -> 404, remembered for the next request (the first 64 lines)."""
    code = int(status[:3])
    if len(codes) < 64:
        codes[status] = code
    return code


def _match_rule(app: Flask, environ: dict[str, Any]) -> Rule | None:
    """The URL rule matched again, for a request whose response Flask never started."""
    try:
        rule, _ = app.url_map.bind_to_environ(environ).match(return_rule=True)
        return rule
    except Exception:
        return None
