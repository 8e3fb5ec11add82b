"""Error tracking: unhandled exceptions grouped by fingerprint, counted over time, one trace per group.

Capture happens on the request thread (the Flask adapter calls ``ErrorTracker.capture``
from the ``got_request_exception`` signal), so it only touches memory: the fingerprint, a
sanitised trace for a group not yet pending, and counters. Every process flushes its
pending captures to the store on the per-process flush job (and at worker exit); the store
then holds, per fingerprint, the count, first and last seen, one sanitised message and stack
trace (a recent occurrence's: each flush brings the first it captured, and the newest flush
wins), and counts per 10-second bucket for rates over any window.

The fingerprint is the exception type plus the innermost frame of *our* code: the
deepest frame that is not in the standard library or an installed package, named by
module and function (not file path or line, which differ between hosts and deploys).
A ``KeyError`` raised inside ``json`` from ``checkout()`` groups under ``checkout``.

Services. Every group belongs to one service: the embedded app's SERVICE_NAME, or the
service an ingested error came from. The fingerprint hashes the service too, so two
services' groups never merge, except for DEFAULT_SERVICE, whose fingerprints are the ones
stored before the dimension existed (its groups keep counting where they were). Two ways in:

* ``capture(exc, route="", service=DEFAULT_SERVICE)``: a live exception (the Flask adapter).
* ``record_error(service=..., fingerprint=..., exception_type=..., ...)``: an error already
  decoded, grouped and sanitised elsewhere (ingest's IngestedError: an OTLP exception event
  or a Sentry event). Memory only, like capture; the same flush writes both.

Reads take ``service`` (None: every service combined; an unknown name: no errors).
"""
from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
import site
import sysconfig
import threading
import traceback
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select

from monitoring.clock import Clock, isoformat
from monitoring.metrics.categories import CategoryReport, DatadogPoint, TimeWindow
from monitoring.metrics.scope import INCLUDE_INTERNAL
from monitoring.security.pii import sanitise_text
from monitoring.store.database import Store
from monitoring.store.errors_tables import error_counts, error_groups, error_totals
from monitoring.store.metrics_tables import DEFAULT_SERVICE, SERVICE_LENGTH

if TYPE_CHECKING:  # prometheus_client is imported with the first Prometheus family built (an export)
    from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

BUCKET_SECONDS = 10
MAX_TRACE_CHARS = 16_000
MAX_MESSAGE_CHARS = 1_000
# A storm of distinct exceptions must not grow memory without bound between two flushes;
# beyond this many pending groups, further new fingerprints are counted as dropped.
MAX_PENDING_GROUPS = 1_000
TOP_GROUPS = 10


# --- fingerprints ---------------------------------------------------------------------------


def _library_directories() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    directories = {paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib") if name in paths}
    try:
        directories.update(site.getsitepackages())
    except AttributeError:  # some embedded interpreters have no site.getsitepackages
        pass
    user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    if user_site:
        directories.add(user_site)
    return tuple(os.path.join(os.path.realpath(d), "") for d in directories if d)


_LIBRARY_DIRECTORIES = _library_directories()


@functools.lru_cache(maxsize=4096)  # realpath costs a few system calls; a trace repeats its files
def is_our_code(filename: str) -> bool:
    """True for a frame of the monitored app; False for the standard library and installed packages."""
    if not filename or filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    path = os.path.realpath(filename)
    if path.startswith(_LIBRARY_DIRECTORIES):
        return False
    parts = path.split(os.sep)
    return "site-packages" not in parts and "dist-packages" not in parts


@dataclass(frozen=True)
class Fingerprint:
    """What groups an exception: its type and the innermost frame of our code."""

    key: str  # 16 hex digits of SHA-256 over type, module and function
    exception_type: str
    module: str
    function: str
    line: int  # for display only: edits elsewhere in the file must not split a group

    @property
    def location(self) -> str:
        return f"{self.module}:{self.function}" if self.module else "(no frame)"


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def fingerprint(exc: BaseException, service: str = DEFAULT_SERVICE) -> Fingerprint:
    """The exception's group: its type plus the innermost frame of our code (or the innermost frame).

    The key hashes ``service`` too, except for DEFAULT_SERVICE (whose keys predate services).
    """
    chosen: tuple[str, str, int] | None = None
    innermost: tuple[str, str, int] | None = None
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        frame = (module, getattr(code, "co_qualname", code.co_name), tb.tb_lineno)
        innermost = frame
        if is_our_code(code.co_filename):
            chosen = frame
        tb = tb.tb_next
    module, function, line = chosen or innermost or ("", "", 0)
    exception_type = _type_name(exc)
    grouped = f"{exception_type}\0{module}\0{function}"
    if service != DEFAULT_SERVICE:
        grouped = f"{service}\0{grouped}"
    key = hashlib.sha256(grouped.encode("utf-8", "replace")).hexdigest()[:16]
    return Fingerprint(key, exception_type, module, function, line)


def _safe_message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not break capture
        text = "(message unavailable)"
    return sanitise_text(text)[:MAX_MESSAGE_CHARS]


def _safe_trace(exc: BaseException) -> str:
    try:
        text = "".join(traceback.format_exception(exc))
    except Exception:
        text = f"{_type_name(exc)} (stack trace unavailable)"
    text = sanitise_text(text)
    if len(text) > MAX_TRACE_CHARS:  # keep the innermost part, where the error is
        text = "[... truncated ...]\n" + text[-MAX_TRACE_CHARS:]
    return text


# --- capture and flush ----------------------------------------------------------------------


@dataclass
class _PendingGroup:
    fingerprint: Fingerprint
    message: str
    stack_trace: str
    route: str
    first_seen: float
    last_seen: float
    count: int = 0
    buckets: dict[float, int] = field(default_factory=dict)
    service: str = DEFAULT_SERVICE

    def add(self, at: float, count: int = 1) -> None:
        bucket = math.floor(at / BUCKET_SECONDS) * BUCKET_SECONDS
        self.buckets[bucket] = self.buckets.get(bucket, 0) + count
        self.count += count
        self.first_seen = min(self.first_seen, at)
        self.last_seen = max(self.last_seen, at)

    def absorb(self, newer: _PendingGroup) -> None:
        """Merge a later batch of the same group into this one (after a failed flush)."""
        for bucket, count in newer.buckets.items():
            self.buckets[bucket] = self.buckets.get(bucket, 0) + count
        self.count += newer.count
        self.first_seen = min(self.first_seen, newer.first_seen)
        if newer.last_seen >= self.last_seen:
            self.last_seen = newer.last_seen
            self.message, self.stack_trace, self.route = newer.message, newer.stack_trace, newer.route
            self.fingerprint = newer.fingerprint


class ErrorTracker:
    """Per-process capture buffer over the store; ``flush`` is the per-process job."""

    def __init__(self, store: Store, clock: Clock, max_pending_groups: int = MAX_PENDING_GROUPS) -> None:
        self.store = store
        self.clock = clock
        self.max_pending_groups = max_pending_groups
        self.dropped = 0  # captures refused because too many distinct groups were pending
        self._pending: dict[str, _PendingGroup] = {}
        self._lock = threading.Lock()

    def capture(self, exc: BaseException, route: str = "", service: str = DEFAULT_SERVICE) -> Fingerprint:
        """Count one unhandled exception of ``service`` (memory only; the store sees it at the next flush)."""
        now = self.clock.now()
        service = service[:SERVICE_LENGTH]
        found = fingerprint(exc, service)
        with self._lock:
            group = self._pending.get(found.key)
            if group is not None:
                group.add(now)
                return found
            if len(self._pending) >= self.max_pending_groups:
                self.dropped += 1
                return found
        # Formatting and sanitising the trace happens outside the lock, once per group per flush.
        fresh = _PendingGroup(found, _safe_message(exc), _safe_trace(exc), route[:300], now, now, service=service)
        fresh.add(now)
        self._add_fresh(fresh)
        return found

    def record_error(self, *, service: str, fingerprint: str, exception_type: str, message: str,
                     stack_trace: str = "", at: float | None = None, route: str = "",
                     module: str = "", function: str = "", line: int = 0) -> bool:
        """Count one error grouped elsewhere (an ingested one); False when refused as over the pending bound.

        ``fingerprint`` is the group's key (up to 32 characters; ingest's are 16 hex digits
        that hash the service). The texts must be sanitised already (ingest's are); they
        are only cut to the stored lengths here. ``at`` is when it happened, epoch seconds
        (default: now); ``module``/``function`` name where, for display (``where``).
        Memory only: the next ``flush`` writes it, with the captured ones.
        """
        at = self.clock.now() if at is None else at
        key = fingerprint[:32]
        with self._lock:
            group = self._pending.get(key)
            if group is not None:
                group.add(at)
                return True
            if len(self._pending) >= self.max_pending_groups:
                self.dropped += 1
                return False
        found = Fingerprint(key, exception_type[:200], module[:200], function[:200], line)
        message = message[:MAX_MESSAGE_CHARS]
        if len(stack_trace) > MAX_TRACE_CHARS:
            stack_trace = "[... truncated ...]\n" + stack_trace[-MAX_TRACE_CHARS:]
        fresh = _PendingGroup(found, message, stack_trace, route[:300], at, at, service=service[:SERVICE_LENGTH])
        fresh.add(at)
        self._add_fresh(fresh)
        return True

    def _add_fresh(self, fresh: _PendingGroup) -> None:
        with self._lock:
            group = self._pending.get(fresh.fingerprint.key)
            if group is None:
                self._pending[fresh.fingerprint.key] = fresh
            else:
                group.absorb(fresh)

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(group.count for group in self._pending.values())

    def flush(self) -> int:
        """Write pending captures to the store in one transaction; return how many were written.

        On failure (store down) the captures go back into the buffer for the next flush.
        """
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            self._write(sorted(pending.values(), key=lambda g: g.fingerprint.key))
        except Exception:
            with self._lock:
                for key, group in pending.items():
                    newer = self._pending.get(key)
                    if newer is not None:
                        group.absorb(newer)
                    self._pending[key] = group
            raise
        return sum(group.count for group in pending.values())

    def _write(self, groups: list[_PendingGroup]) -> None:
        t = error_groups
        upsert = self.store.insert(t)
        newer = upsert.excluded.last_seen >= t.c.last_seen
        latest = {
            name: case((newer, upsert.excluded[name]), else_=t.c[name])
            for name in ("exception_type", "module", "function", "line", "message", "stack_trace", "route")
        }
        counts = self.store.insert(error_counts)
        totals = self.store.insert(error_totals)
        with self.store.write() as conn:
            conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=["fingerprint"],
                    set_={
                        **latest,
                        "count": t.c.count + upsert.excluded.count,
                        "first_seen": case((upsert.excluded.first_seen < t.c.first_seen, upsert.excluded.first_seen),
                                           else_=t.c.first_seen),
                        "last_seen": case((newer, upsert.excluded.last_seen), else_=t.c.last_seen),
                    },
                ),
                [
                    {
                        "fingerprint": g.fingerprint.key,
                        "service": g.service,
                        "exception_type": g.fingerprint.exception_type[:200],
                        "module": g.fingerprint.module[:200],
                        "function": g.fingerprint.function[:200],
                        "line": g.fingerprint.line,
                        "message": g.message,
                        "stack_trace": g.stack_trace,
                        "route": g.route,
                        "count": g.count,
                        "first_seen": g.first_seen,
                        "last_seen": g.last_seen,
                    }
                    for g in groups
                ],
            )
            conn.execute(
                counts.on_conflict_do_update(
                    index_elements=["fingerprint", "bucket_start"],
                    set_={"count": error_counts.c.count + counts.excluded.count},
                ),
                [
                    {"fingerprint": g.fingerprint.key, "bucket_start": bucket, "count": count}
                    for g in groups
                    for bucket, count in sorted(g.buckets.items())
                ],
            )
            per_service: dict[str, int] = {}
            for g in groups:
                per_service[g.service] = per_service.get(g.service, 0) + g.count
            conn.execute(
                totals.on_conflict_do_update(
                    index_elements=["name", "service"], set_={"value": error_totals.c.value + totals.excluded.value}
                ),
                [{"name": "errors", "service": service, "value": value} for service, value in sorted(per_service.items())],
            )


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorGroup:
    """One fingerprint as stored: all-time count, first and last seen, the latest sanitised trace."""

    fingerprint: str
    exception_type: str
    module: str
    function: str
    line: int
    message: str
    stack_trace: str
    route: str
    count: int
    first_seen: float
    last_seen: float
    count_in_window: int | None = None
    service: str = DEFAULT_SERVICE

    @property
    def where(self) -> str:
        if not self.module:
            return ""
        return f"{self.module}:{self.function}" if self.function else self.module

    def to_json(self, include_trace: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "fingerprint": self.fingerprint,
            "service": self.service,
            "type": self.exception_type,
            "where": self.where,
            "line": self.line,
            "route": self.route,
            "message": self.message,
            "count": self.count,
            "firstSeen": isoformat(self.first_seen),
            "lastSeen": isoformat(self.last_seen),
        }
        if self.count_in_window is not None:
            body["countInWindow"] = self.count_in_window
        if include_trace:
            body["stackTrace"] = self.stack_trace
        return body


def _group(row: Any, count_in_window: int | None = None) -> ErrorGroup:
    return ErrorGroup(
        row.fingerprint, row.exception_type, row.module, row.function, int(row.line), row.message,
        row.stack_trace, row.route, int(row.count), float(row.first_seen), float(row.last_seen), count_in_window,
        row.service,
    )


def list_error_groups(store: Store, since: float | None = None, limit: int = 50,
                      service: str | None = None) -> list[ErrorGroup]:
    """Groups last seen at or after ``since`` (all when None), most recently seen first; of one service or all."""
    query = select(error_groups).order_by(error_groups.c.last_seen.desc(), error_groups.c.fingerprint).limit(limit)
    if since is not None:
        query = query.where(error_groups.c.last_seen >= since)
    if service is not None:
        query = query.where(error_groups.c.service == service)
    with store.read() as conn:
        return [_group(row) for row in conn.execute(query)]


@dataclass(frozen=True)
class ErrorFigures:
    """Errors over a window: count, errors per minute, share of requests, the busiest groups."""

    window: TimeWindow
    count: int
    total: int  # every error captured since the store began (the Prometheus counter), in the service scope
    requests: int | None  # requests served in the window; None while request metrics are unavailable
    top_groups: list[ErrorGroup]
    service: str | None = None  # the one service read, or None for every service
    totals: dict[str, int] = field(default_factory=dict)  # the running total per service (Prometheus)
    per_service: dict[str, int] = field(default_factory=dict)  # errors in the window per service

    @property
    def rate_per_minute(self) -> float:
        return self.count * 60.0 / self.window.seconds if self.window.seconds > 0 else 0.0

    @property
    def share(self) -> float | None:
        """Errors per request (0-1), or None when the request count is unknown or zero."""
        if not self.requests:
            return None
        return min(1.0, self.count / self.requests)


def requests_in_window(store: Store, clock: Clock, window: TimeWindow,
                       include_internal: bool = INCLUDE_INTERNAL, service: str | None = None) -> int | None:
    """Requests the monitored app served in the window, from the request-metrics rollups.

    The one place the errors figures depend on the request metrics, counting the requests
    every category counts (monitoring.metrics.scope): the ``errors`` and ``performance``
    categories of one answer report the same ``requests.count``.
    """
    try:
        from monitoring.metrics.rollups import RequestRollups
    except ImportError:  # request metrics not installed: the share is reported as unknown
        return None
    return RequestRollups(store, clock).counts(window, include_internal=include_internal, service=service).count


def error_services(store: Store) -> list[str]:
    """Every service with error groups in the store (the service index's leading column)."""
    with store.read() as conn:
        return [row[0] for row in conn.execute(
            select(error_groups.c.service).distinct().order_by(error_groups.c.service))]


def error_figures(store: Store, window: TimeWindow, requests: int | None, top: int = TOP_GROUPS,
                  service: str | None = None) -> ErrorFigures:
    """Counts from the 10-second buckets whose start lies in the window (widened to whole buckets).

    ``service`` keeps one service's groups (None: every service); the counts of a group are
    found by its fingerprint, the groups of a service by the (service, last_seen) index.
    """
    c, g = error_counts, error_groups
    in_window = (c.c.bucket_start >= math.floor(window.start / BUCKET_SECONDS) * BUCKET_SECONDS) & (
        c.c.bucket_start < window.end
    )
    per_group_query = select(c.c.fingerprint, func.sum(c.c.count).label("in_window")).where(in_window)
    if service is not None:
        # A group last seen before the window has no bucket in it: only groups seen since count.
        per_group_query = per_group_query.where(c.c.fingerprint.in_(
            select(g.c.fingerprint).where(g.c.service == service, g.c.last_seen >= window.start - BUCKET_SECONDS)
            .scalar_subquery()))
    per_group = per_group_query.group_by(c.c.fingerprint).subquery()
    totals_query = select(error_totals.c.service, error_totals.c.value).where(error_totals.c.name == "errors")
    if service is not None:
        totals_query = totals_query.where(error_totals.c.service == service)
    with store.read() as conn:
        per_service = {
            row.service: int(row.in_window)
            for row in conn.execute(
                select(g.c.service, func.sum(per_group.c.in_window).label("in_window"))
                .join(per_group, per_group.c.fingerprint == g.c.fingerprint)
                .group_by(g.c.service)
            )
        }
        totals = {row.service: int(row.value) for row in conn.execute(totals_query)}
        rows = conn.execute(
            select(g, per_group.c.in_window)
            .join(per_group, per_group.c.fingerprint == g.c.fingerprint)
            .order_by(per_group.c.in_window.desc(), g.c.last_seen.desc())
            .limit(top)
        ).all()
    top_groups = [_group(row, int(row.in_window)) for row in rows]
    return ErrorFigures(window, sum(per_service.values()), sum(totals.values()), requests, top_groups,
                        service, totals, per_service)


# --- the ``errors`` metric category ---------------------------------------------------------


def errors_report(figures: ErrorFigures, default_service: str = DEFAULT_SERVICE) -> CategoryReport:
    """JSON under the system description's names (``errors.rate`` in errors/min), Prometheus in
    base units, Datadog under ``errors.unhandled.*`` (the performance category already sends
    ``errors.rate`` for 5xx responses, and Datadog series share one namespace).

    The Prometheus counter has a ``service`` label (one series per service; the embedded app's
    ``default_service`` at 0 before its first error, so rate() sees the first one); Datadog
    gets the window's count per service, tagged ``service:<name>``.
    """
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

    share = figures.share
    body = {
        "errors.count": figures.count,
        "errors.rate": round(figures.rate_per_minute, 4),
        "errors.share": None if share is None else round(share, 6),
        "errors.total": figures.total,
        "requests.count": figures.requests,
        "service": figures.service,
        "services": [{"service": name, "errors.count": count}
                     for name, count in sorted(figures.per_service.items(), key=lambda item: (-item[1], item[0]))],
        "groups": [group.to_json(include_trace=False) for group in figures.top_groups],
    }
    total = CounterMetricFamily(
        "centinela_errors",
        "Unhandled exceptions captured in the monitored app since the store began, all workers and hosts.",
        labels=["service"],
    )
    totals = dict(figures.totals)
    if figures.service is None:
        totals.setdefault(default_service, 0)
    elif not totals:
        totals[figures.service] = 0
    for name, value in sorted(totals.items()):
        total.add_metric([name], value)
    prometheus: list[Metric] = [total]
    if share is not None:
        ratio = GaugeMetricFamily(
            "centinela_error_share_ratio",
            "Unhandled exceptions per request served over the window (0-1).",
            labels=["window"],
        )
        ratio.add_metric([figures.window.label], share)
        prometheus.append(ratio)
    interval = max(1, int(round(figures.window.seconds)))
    datadog = [
        DatadogPoint("errors.unhandled.rate", figures.rate_per_minute),
        DatadogPoint("errors.unhandled.count", float(figures.count), "count", interval=interval),
    ]
    if share is not None:
        datadog.append(DatadogPoint("errors.unhandled.share", share))
    datadog += [DatadogPoint("errors.unhandled.count", float(count), "count", (f"service:{name}",), interval)
                for name, count in sorted(figures.per_service.items())
                if len(figures.per_service) > 1]  # one service: its count is the overall one
    return CategoryReport(json=body, prometheus=prometheus, datadog=datadog)


class ErrorsProvider:
    """``monitoring.metric_categories["errors"]``."""

    def __init__(self, store: Store, clock: Clock, service_name: str = DEFAULT_SERVICE) -> None:
        self.store = store
        self.clock = clock
        self.service_name = service_name  # the embedded app's SERVICE_NAME

    def __call__(self, window: TimeWindow) -> CategoryReport:
        return self.report(window, INCLUDE_INTERNAL)

    def report(self, window: TimeWindow, include_internal: bool, service: str | None = None) -> CategoryReport:
        """The figures, with requests counted in the caller's scope (monitoring.metrics.scope.ScopedProvider)."""
        requests = requests_in_window(self.store, self.clock, window, include_internal, service)
        return errors_report(error_figures(self.store, window, requests, service=service), self.service_name)
