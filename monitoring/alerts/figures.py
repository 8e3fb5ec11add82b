"""The figures rules read, as samples: a label set and a value, over a window ending now.

Rules name a figure in one flat namespace:

* six **built-in** figures, read straight from the store with the exact meaning the default
  rules need (a ratio where the threshold is a ratio, ms where it is ms), and cheap enough to
  read every ALERT_EVALUATION_INTERVAL;
* **any exported figure**: the dotted name of a point in the metrics export's Datadog form
  (``api.response_time.p99``, ``health.dependency.response_time``, ``payments.count``,
  ``notifications.deliveries`` ...), whose tags become labels (``route:/tickets/<id>`` is
  ``route="/tickets/<id>"``). Those names are unique across categories, so one name finds
  its figure wherever it comes from, and a category added later is readable without a
  change here. The providers compute whole categories, so a reader computes each category
  once per window per evaluation.

A figure with no data in the window (no requests, no payments) gives no sample, so an alert
on it resolves rather than firing on a made-up 0.

``samples(figure, window, service)``: with a service, the request figures are that service's
(their sample carries the label ``service``), and exported figures come from the categories
that count requests (monitoring.metrics.scope.ScopedProvider), read in that service's scope.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from monitoring.alerts.policy import describe_span
from monitoring.business.events import FAILED
from monitoring.clock import Clock
from monitoring.health.circuit import CLOSED
from monitoring.health.status import DEGRADED, HEALTHY, UNHEALTHY
from monitoring.metrics.categories import CategoryReport, TimeWindow
from monitoring.metrics.rollups import RequestFigures, RequestRollups
from monitoring.metrics.scope import INCLUDE_INTERNAL, ScopedProvider
from monitoring.metrics.system import system_figures
from monitoring.metrics.windows import format_window
from monitoring.store.alerts_tables import alert_rule_status
from monitoring.store.business_tables import payment_events
from monitoring.store.database import Store
from monitoring.store.health_tables import health_results

ERROR_RATE = "error_rate"
API_P95_MS = "api_p95_ms"
PAYMENT_FAILURE_RATE = "payment_failure_rate"
MEMORY_USAGE = "memory_usage_percent"
DEPENDENCY_DOWN = "dependency_down"
DEPENDENCY_RESPONSE_TIME = "dependency_response_time"
RULE_EVALUATION_FAILING = "rule_evaluation_failing"

BUILTIN_FIGURES: dict[str, str] = {
    ERROR_RATE: "Share (0-1) of the monitored app's requests in the window answered with a 5xx; the monitoring "
                "endpoints are left out. No sample when there were no requests.",
    API_P95_MS: "95th percentile response time in ms of the monitored app's requests in the window (within 1 %); "
                "monitoring endpoints left out. No sample when there were no requests.",
    PAYMENT_FAILURE_RATE: "Share (0-1) of the payments recorded in the window that failed. No sample when there "
                          "were none.",
    MEMORY_USAGE: "Memory in use, % of the limit that applies (container, else host), from each host's latest "
                  "sample; label host.",
    DEPENDENCY_DOWN: "Per health-checked dependency (labels service, critical): 1 when its latest check failed or "
                     "its circuit breaker is open or half open, else 0.",
    DEPENDENCY_RESPONSE_TIME: "Per health-checked dependency (labels service, critical): the mean response time in "
                              "ms of its checks in the window that answered (healthy or degraded). No sample when "
                              "none answered.",
    RULE_EVALUATION_FAILING: "Per alert rule (label rule): 1 when its latest evaluation failed (its figure could "
                             "not be read, or its alert could not be rendered or stored), else 0; detail: the "
                             "error. Read from the previous evaluation's status.",
}
# The rule that watches the others; it does not watch itself (its own failure is in the log).
RULE_FAILURE_RULE = "RuleEvaluationFailing"
INCLUDE_NOW = 0.001
_EXPORTED_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")


def is_figure_name(name: str) -> bool:
    return name in BUILTIN_FIGURES or (len(name) <= 100 and _EXPORTED_NAME.fullmatch(name) is not None)


@dataclass(frozen=True)
class Sample:
    """One label set of a figure, its value, and a short public detail ("connection refused")."""

    labels: Mapping[str, str]
    value: float
    detail: str = ""


class FigureUnavailable(RuntimeError):
    """The figure could not be read: its provider failed, or nothing exports it."""


@dataclass
class FigureReader:
    """Reads figures for one evaluation at ``now``; each source is read once per window."""

    store: Store
    clock: Clock
    now: float
    categories: Mapping[str, Callable[[TimeWindow], CategoryReport]]
    health_snapshot: Callable[[], Any] | None = None
    memory_live_within: float = 50.0
    _requests: dict[tuple[float, str | None], RequestFigures] = field(default_factory=dict)
    _reports: dict[tuple[str, float, str | None], CategoryReport | Exception] = field(default_factory=dict)
    _health: Any = None

    def window(self, seconds: float) -> TimeWindow:
        """The ``seconds`` up to and including now (a window's end is exclusive: an event recorded at
        this very instant, as in a test or a burst, still counts)."""
        return TimeWindow(self.now - seconds, self.now + INCLUDE_NOW, format_window(seconds))

    def samples(self, figure: str, window_seconds: float, service: str | None = None) -> list[Sample]:
        """The figure's samples over the window; ``service`` narrows request and error figures to one service."""
        labels = {} if service is None else {"service": service}
        if figure == ERROR_RATE:
            requests = self._request_figures(window_seconds, service)
            return [Sample(labels, requests.errors / requests.count)] if requests.count else []
        if figure == API_P95_MS:
            requests = self._request_figures(window_seconds, service)
            (p95,) = requests.histogram.quantiles((0.95,))
            return [] if p95 is None or not requests.count else [Sample(labels, round(p95 * 1000.0, 3))]
        if service is not None and figure in BUILTIN_FIGURES:
            return []  # not a per-service figure (rules refuse the pair; a stored one reads nothing)
        if figure == PAYMENT_FAILURE_RATE:
            return self._payment_failure_rate(self.window(window_seconds))
        if figure == MEMORY_USAGE:
            figures = system_figures(self.store, self.window(window_seconds), self.memory_live_within)
            return [Sample({"host": h.hostname}, h.memory_percent) for h in figures.host_latest()]
        if figure == DEPENDENCY_DOWN:
            return self._dependencies()
        if figure == DEPENDENCY_RESPONSE_TIME:
            return self._dependency_response_times(self.window(window_seconds))
        if figure == RULE_EVALUATION_FAILING:
            return self._rule_failures()
        return self._exported(figure, window_seconds, service)

    def _rule_failures(self) -> list[Sample]:
        with self.store.read() as conn:
            rows = conn.execute(select(alert_rule_status.c.name, alert_rule_status.c.error)).all()
        return [Sample({"rule": row.name}, 1.0 if row.error else 0.0, row.error or "")
                for row in rows if row.name != RULE_FAILURE_RULE]

    def _request_figures(self, window_seconds: float, service: str | None = None) -> RequestFigures:
        key = (window_seconds, service)
        if key not in self._requests:
            rollups = RequestRollups(self.store, self.clock)
            self._requests[key] = rollups.figures(self.window(window_seconds), include_internal=False,
                                                  service=service)
        return self._requests[key]

    def _payment_failure_rate(self, window: TimeWindow) -> list[Sample]:
        p = payment_events
        with self.store.read() as conn:
            counts: dict[str, int] = dict(
                conn.execute(
                    select(p.c.outcome, func.count())
                    .where(p.c.at >= window.start, p.c.at < window.end)
                    .group_by(p.c.outcome)
                ).all()
            )
        total = sum(int(n) for n in counts.values())
        return [Sample({}, int(counts.get(FAILED, 0)) / total)] if total else []

    def _dependencies(self) -> list[Sample]:
        samples = []
        for name, service in self._snapshot().services.items():
            breaker_open = service.circuit is not None and service.circuit.state != CLOSED
            down = service.status == UNHEALTHY or breaker_open
            detail = "circuit breaker open" if breaker_open else (service.error or service.status)
            samples.append(Sample({"service": name, "critical": str(service.critical).lower()}, float(down),
                                  detail if down else ""))
        return samples

    def _snapshot(self) -> Any:
        if self.health_snapshot is None:
            raise FigureUnavailable("no health checks in this service")
        if self._health is None:
            self._health = self.health_snapshot()
        return self._health

    def _dependency_response_times(self, window: TimeWindow) -> list[Sample]:
        """The window mean of the answered checks: a slow spell shows while it lasts, and a rule
        on it resolves as the slow answers leave the window, not one fast check after recovery."""
        services = self._snapshot().services
        r = health_results.c
        with self.store.read() as conn:
            means = conn.execute(
                select(r.service, func.avg(r.response_time_ms), func.count())
                .where(r.checked_at >= window.start, r.checked_at < window.end, r.status.in_((HEALTHY, DEGRADED)),
                       r.response_time_ms.is_not(None))
                .group_by(r.service)
            ).all()
        return [
            Sample({"service": name, "critical": str(services[name].critical).lower()}, round(float(mean), 1),
                   f"{int(count)} checks")
            for name, mean, count in means
            if name in services and mean is not None
        ]

    def _report(self, category: str, window_seconds: float, service: str | None = None) -> CategoryReport | Exception:
        key = (category, window_seconds, service)
        if key not in self._reports:
            provider = self.categories[category]
            try:
                if service is None:
                    self._reports[key] = provider(self.window(window_seconds))
                else:
                    assert isinstance(provider, ScopedProvider)
                    self._reports[key] = provider.report(self.window(window_seconds), INCLUDE_INTERNAL, service)
            except Exception as exc:  # one failing category must not hide the others' figures
                self._reports[key] = exc
        return self._reports[key]

    def _exported(self, figure: str, window_seconds: float, service: str | None = None) -> list[Sample]:
        found: list[Sample] = []
        failures: list[str] = []
        for category in sorted(self.categories):
            if service is not None and not isinstance(self.categories[category], ScopedProvider):
                continue  # not per service: nothing of it belongs to one service
            report = self._report(category, window_seconds, service)
            if isinstance(report, Exception):
                failures.append(f"{category}: {type(report).__name__}")
                continue
            for point in report.datadog:
                if point.metric == figure:
                    found.append(Sample(labels_from_tags(point.tags), float(point.value)))
        if not found and failures:
            raise FigureUnavailable(f"{figure}: categories failed ({'; '.join(failures)})")
        return found

    def exported_names(self, window_seconds: float) -> set[str]:
        """Every figure the categories export right now (for warnings about a rule's figure)."""
        names: set[str] = set()
        for category in self.categories:
            report = self._report(category, window_seconds)
            if not isinstance(report, Exception):
                names.update(point.metric for point in report.datadog)
        return names


def labels_from_tags(tags: tuple[str, ...]) -> dict[str, str]:
    """Datadog tags (``route:/x``) as labels; a tag without a value becomes a label with an empty value."""
    labels: dict[str, str] = {}
    for tag in tags:
        name, _, value = tag.partition(":")
        labels[re.sub(r"[^a-z0-9_]", "_", name.lower())] = value
    return labels


def _percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def _plain(value: float) -> str:
    return f"{value:.4g}"


def reading(figure: str, value: float | None, labels: Mapping[str, str], window_seconds: float) -> str:
    """What a figure reads now, for people: ``payment failure rate 0.0 % over 5 m``; with no
    value (no data in the window), what is missing: ``no payments over 5 m``."""
    window = describe_span(window_seconds)
    service = labels.get("service", "the dependency")
    if figure == PAYMENT_FAILURE_RATE:
        return f"no payments over {window}" if value is None else f"payment failure rate {_percent(value)} over {window}"
    if figure == ERROR_RATE:
        return f"no requests over {window}" if value is None else f"error rate {_percent(value)} over {window}"
    if figure == API_P95_MS:
        return f"no requests over {window}" if value is None else f"API p95 {value:.0f} ms over {window}"
    if figure == MEMORY_USAGE:
        host = labels.get("host", "the host")
        return f"no memory sample from {host}" if value is None else f"memory usage {value:.1f} % on {host}"
    if figure == DEPENDENCY_DOWN:
        if value is None:
            return f"{service} is no longer checked"
        return f"{service} answers again" if value == 0 else f"{service} is still failing"
    if figure == DEPENDENCY_RESPONSE_TIME:
        if value is None:
            return f"no answered {service} checks over {window}"
        return f"{service} mean response time {value:.0f} ms over {window}"
    return f"no {figure} over {window}" if value is None else f"{figure} {_plain(value)} over {window}"
