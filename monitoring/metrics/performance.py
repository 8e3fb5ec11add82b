"""The ``performance`` and ``system`` metric categories: figures from the store, given three ways.

JSON keeps the system description's names and units (``api.response_time.p95`` in ms,
``errors.rate`` in 5xx responses per minute, ``system.memory.usage`` in %). Prometheus gets
base units and conventional names: the request counters and latency histogram are running
totals since the store began (from ``request_routes``), so Prometheus itself takes rates and
``histogram_quantile`` over whatever range it likes; resource figures are gauges. Datadog
gets the window's figures under the JSON names.

Services: JSON has the figures of the answer's scope (one service, or all combined) and
``services``, the same figures per service; every route says its service. Prometheus
request families carry a ``service`` label, Datadog points per route and per service a
``service:<name>`` tag (the overall points stay untagged, as before).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from monitoring.clock import isoformat, parse_timestamp
from monitoring.metrics.categories import CategoryReport, DatadogPoint, TimeWindow
from monitoring.metrics.histogram import PROMETHEUS_BUCKETS, RELATIVE_ACCURACY, LatencyHistogram
from monitoring.metrics.recorder import UNMATCHED_ROUTE, RequestAggregate
from monitoring.metrics.rollups import RequestFigures, RequestRollups, RouteFigures, RouteTotal, ServiceFigures
from monitoring.metrics.scope import INCLUDE_INTERNAL, INTERNAL_NOTE, scope_name
from monitoring.metrics.system import SystemFigures, SystemSample, system_figures
from monitoring.store.database import Store
from monitoring.store.metrics_tables import DEFAULT_SERVICE

if TYPE_CHECKING:  # prometheus_client is imported with the first Prometheus family built (an export)
    from prometheus_client.metrics_core import Metric

STATUS_LABELS = {0: "other", 1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _percentiles_ms(histogram: LatencyHistogram) -> tuple[float | None, float | None, float | None]:
    p50, p95, p99 = histogram.quantiles((0.5, 0.95, 0.99))
    return _ms(p50), _ms(p95), _ms(p99)


def _status_json(status: list[int]) -> dict[str, int]:
    """Responses per status class; ``other`` only when a status outside 100..599 was sent."""
    counts = {STATUS_LABELS[cls]: status[cls] for cls in (1, 2, 3, 4, 5)}
    if status[0]:
        counts["other"] = status[0]
    return counts


def _route_json(route: RouteFigures) -> dict[str, Any]:
    p50, p95, p99 = _percentiles_ms(route.histogram)
    return {
        "service": route.service,
        "method": route.method,
        "route": route.route,
        "internal": route.internal,
        "count": route.count,
        "errors": route.errors,
        "p50": p50,
        "p95": p95,
        "p99": p99,
        "mean": _ms(route.histogram.sum / route.count) if route.count else None,
        "max": _ms(route.histogram.max),
        "status": _status_json(route.status),
    }


def _service_json(service: ServiceFigures, seconds: float) -> dict[str, Any]:
    p50, p95, p99 = _percentiles_ms(service.histogram)
    return {
        "service": service.service,
        "requests.count": service.count,
        "requests.per_second": round(service.count / seconds, 4),
        "errors.count": service.errors,
        "errors.share": round(service.errors / service.count, 6) if service.count else 0.0,
        "api.response_time.p50": p50,
        "api.response_time.p95": p95,
        "api.response_time.p99": p99,
        "status": _status_json(service.status),
    }


def performance_json(figures: RequestFigures) -> dict[str, Any]:
    """The JSON figures; percentiles in ms, rates per second and per minute over the covered interval."""
    count, errors = figures.count, figures.errors
    seconds = figures.covered_seconds
    p50, p95, p99 = _percentiles_ms(figures.histogram)
    return {
        "api.response_time.p50": p50,
        "api.response_time.p95": p95,
        "api.response_time.p99": p99,
        "api.response_time.mean": _ms(figures.histogram.sum / count) if count else None,
        "requests.count": count,
        "requests.per_second": round(count / seconds, 4),
        "requests.per_minute": round(count * 60.0 / seconds, 3),
        "errors.count": errors,
        "errors.rate": round(errors * 60.0 / seconds, 4),
        "errors.share": round(errors / count, 6) if count else 0.0,
        "status": _status_json(figures.status),
        "scope": {
            "internal": scope_name(figures.include_internal),
            "internalRequests": figures.internal_count,
            "note": None if figures.include_internal else INTERNAL_NOTE,
            "coveredFrom": isoformat(figures.covered_from),
            "coveredSeconds": round(seconds, 3),
            "percentileRelativeError": RELATIVE_ACCURACY,
        },
        "service": figures.service,
        "services": [_service_json(service, seconds) for service in figures.per_service()],
        "routes": [_route_json(route) for route in figures.routes],
    }


def performance_prometheus(totals: list[RouteTotal], default_service: str = DEFAULT_SERVICE) -> list[Metric]:
    """A counter per service, method, route, status class and internal flag; a histogram (le in seconds) per route.

    Series exist before their first request, at 0, so that rate() and increase() see the first one
    and dashboards do not show "No data" on a fresh service: every status class of every route, and
    ``GET <unmatched>`` of the monitored app (``default_service``), the one route every app has.
    """
    from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily

    requests = CounterMetricFamily(
        "centinela_http_requests",
        "HTTP requests handled by the monitored app since the store began, all workers and hosts.",
        labels=["service", "method", "route", "status", "internal"],
    )
    durations = HistogramMetricFamily(
        "centinela_http_request_duration_seconds",
        "Time Flask took to handle an HTTP request, all workers and hosts.",
        labels=["service", "method", "route", "internal"],
        unit="seconds",
    )
    unmatched = ("GET", UNMATCHED_ROUTE, False, default_service)
    if not any((t.method, t.route, t.internal, t.service) == unmatched for t in totals):
        totals = [*totals, RouteTotal("GET", UNMATCHED_ROUTE, False, RequestAggregate(), None, default_service)]
    for total in totals:
        internal = "true" if total.internal else "false"
        for cls, count in enumerate(total.aggregate.status):
            if count or cls:  # "other" (a status outside 100..599) only once one was sent
                requests.add_metric([total.service, total.method, total.route, STATUS_LABELS[cls], internal], count,
                                    created=total.created_at)
        histogram = total.aggregate.histogram
        buckets = [(_le(le), float(n)) for le, n in histogram.cumulative_buckets(PROMETHEUS_BUCKETS)]
        buckets.append(("+Inf", float(histogram.count)))
        durations.add_metric([total.service, total.method, total.route, internal], buckets, histogram.sum)
    return [requests, durations]


def _le(bound: float) -> str:
    return repr(float(bound))


def _response_time_points(histogram: LatencyHistogram, tags: tuple[str, ...]) -> list[DatadogPoint]:
    names = ("api.response_time.p50", "api.response_time.p95", "api.response_time.p99")
    return [DatadogPoint(name, value, tags=tags)
            for name, value in zip(names, _percentiles_ms(histogram), strict=False) if value is not None]


def performance_datadog(figures: RequestFigures) -> list[DatadogPoint]:
    """The window's figures under the JSON names, overall and per route (tags ``method:`` and ``route:``)."""
    seconds = figures.covered_seconds
    interval = max(1, int(round(seconds)))
    points = _response_time_points(figures.histogram, ())
    points += [
        DatadogPoint("requests.per_second", figures.count / seconds),
        DatadogPoint("requests.count", float(figures.count), "count", interval=interval),
        DatadogPoint("errors.rate", figures.errors * 60.0 / seconds),
        DatadogPoint("errors.share", figures.errors / figures.count if figures.count else 0.0),
    ]
    for route in figures.routes:
        tags = (f"service:{route.service}", f"method:{route.method}", f"route:{route.route}")
        points += _response_time_points(route.histogram, tags)
        points.append(DatadogPoint("requests.count", float(route.count), "count", tags, interval))
        points.append(DatadogPoint("errors.count", float(route.errors), "count", tags, interval))
    services = figures.per_service()
    for service in services if len(services) > 1 else ():  # one service: its figures are the overall ones
        service_tags = (f"service:{service.service}",)
        points += _response_time_points(service.histogram, service_tags)
        points.append(DatadogPoint("requests.count", float(service.count), "count", service_tags, interval))
        points.append(DatadogPoint("errors.count", float(service.errors), "count", service_tags, interval))
    return points


class PerformanceProvider:
    """``monitoring.metric_categories["performance"]``: request figures over a window."""

    def __init__(self, rollups: RequestRollups, service_name: str = DEFAULT_SERVICE) -> None:
        self.rollups = rollups
        self.service_name = service_name  # the embedded app's SERVICE_NAME: its zero series exist from the start

    def __call__(self, window: TimeWindow) -> CategoryReport:
        return self.report(window, INCLUDE_INTERNAL)

    def report(self, window: TimeWindow, include_internal: bool, service: str | None = None) -> CategoryReport:
        """The figures of one service (or all combined when None), in the caller's scope."""
        figures = self.rollups.figures(window, include_internal, service)
        return CategoryReport(
            json=performance_json(figures),
            prometheus=performance_prometheus(self.rollups.totals(service),
                                              self.service_name if service is None else service),
            datadog=performance_datadog(figures),
        )


# --- system -----------------------------------------------------------------------------


def _worker_json(sample: SystemSample) -> dict[str, Any]:
    return {
        "instance": sample.instance,
        "hostname": sample.hostname,
        "pid": sample.pid,
        "sampledAt": isoformat(sample.at),
        "cpuPercent": sample.process_cpu_percent,
        "rssBytes": sample.process_rss_bytes,
        "openFds": sample.open_fds,
        "threads": sample.threads,
    }


def _host_json(sample: SystemSample) -> dict[str, Any]:
    return {
        "hostname": sample.hostname,
        "sampledAt": isoformat(sample.at),
        "cpuPercent": sample.system_cpu_percent,
        "memoryPercent": sample.memory_percent,
        "memoryUsedBytes": sample.memory_used_bytes,
        "memoryLimitBytes": sample.memory_limit_bytes,
        "memorySource": sample.memory_source,
    }


def system_json(figures: SystemFigures, scheduler: dict[str, Any], sample_interval: float) -> dict[str, Any]:
    hosts = figures.host_latest()
    workers = figures.workers
    latest = figures.latest
    return {
        "system.memory.usage": max((h.memory_percent for h in hosts), default=None),
        "system.memory.usage.avg": figures.memory_percent_avg,
        "system.memory.usage.max": figures.memory_percent_max,
        "system.cpu.usage": max((h.system_cpu_percent for h in hosts), default=None),
        "process.cpu.usage": round(sum(w.process_cpu_percent for w in workers), 2) if workers else None,
        "process.memory.rss": sum(w.process_rss_bytes for w in workers) if workers else None,
        "process.open_fds": sum(w.open_fds for w in workers) if workers else None,
        "process.threads": sum(w.threads for w in workers) if workers else None,
        "store.size": latest.store_bytes if latest else None,
        "hosts": [_host_json(h) for h in hosts],
        "workers": [_worker_json(w) for w in workers],
        "samples": {"inWindow": figures.samples_in_window, "intervalSeconds": sample_interval},
        "scheduler": scheduler,
    }


def _gauge(name: str, documentation: str, labels: list[str], rows: list[tuple[list[str], float]], unit: str = "") -> Metric:
    from prometheus_client.metrics_core import GaugeMetricFamily

    family = GaugeMetricFamily(name, documentation, labels=labels, unit=unit)
    for values, value in rows:
        family.add_metric(values, value)
    return family


def _host_rows(hosts: list[SystemSample], attr: str, scale: float = 1.0,
               unsampled: tuple[str, ...] = ()) -> list[tuple[list[str], float]]:
    """One row per host; a running host with no sample yet is NaN (known, not measured yet), never absent."""
    rows = [([h.hostname], getattr(h, attr) * scale) for h in hosts]
    return sorted(rows + [([host], math.nan) for host in unsampled])


def _worker_rows(workers: list[SystemSample], attr: str, scale: float = 1.0) -> list[tuple[list[str], float]]:
    return [([w.hostname, w.instance], getattr(w, attr) * scale) for w in workers]


def system_prometheus(figures: SystemFigures, scheduler: dict[str, Any]) -> list[Metric]:
    """Gauges in base units (ratios, bytes); ``worker`` rather than ``instance``, which Prometheus sets itself."""
    hosts, workers, unsampled = figures.host_latest(), figures.workers, figures.unsampled_hosts
    host, worker = ["host"], ["host", "worker"]
    metrics: list[Metric] = [
        _gauge("centinela_system_memory_usage_ratio", "Memory in use over the limit that applies (cgroup or host).",
               host, _host_rows(hosts, "memory_percent", 0.01, unsampled), unit="ratio"),
        _gauge("centinela_system_memory_used_bytes", "Memory in use (cgroup working set or host used).",
               host, _host_rows(hosts, "memory_used_bytes", unsampled=unsampled), unit="bytes"),
        _gauge("centinela_system_memory_limit_bytes", "Memory limit that applies (cgroup limit or host total).",
               host, _host_rows(hosts, "memory_limit_bytes", unsampled=unsampled), unit="bytes"),
        _gauge("centinela_system_cpu_usage_ratio", "Host CPU busy share over all CPUs.",
               host, _host_rows(hosts, "system_cpu_percent", 0.01, unsampled), unit="ratio"),
        _gauge("centinela_process_cpu_usage_ratio", "Worker CPU use as a share of one CPU.",
               worker, _worker_rows(workers, "process_cpu_percent", 0.01), unit="ratio"),
        _gauge("centinela_process_resident_memory_bytes", "Worker resident set size.",
               worker, _worker_rows(workers, "process_rss_bytes"), unit="bytes"),
        _gauge("centinela_process_open_fds", "Worker open file descriptors.", worker, _worker_rows(workers, "open_fds")),
        _gauge("centinela_process_threads", "Worker threads.", worker, _worker_rows(workers, "threads")),
    ]
    latest = figures.latest
    if latest is not None:
        metrics.append(_gauge("centinela_store_size_bytes", "Disk used by the store.", [],
                              [([], float(latest.store_bytes))], unit="bytes"))
    last_runs = [
        ([job["name"]], parse_timestamp(job["lastRun"])) for job in scheduler.get("jobs", []) if job.get("lastRun")
    ]
    metrics.append(_gauge("centinela_scheduler_job_last_run_timestamp_seconds",
                          "When each leader-only job last ran (epoch seconds).", ["job"], last_runs, unit="seconds"))
    return metrics


def system_datadog(figures: SystemFigures) -> list[DatadogPoint]:
    points: list[DatadogPoint] = []
    tags: tuple[str, ...]
    for host in figures.host_latest():
        tags = (f"hostname:{host.hostname}",)
        points.append(DatadogPoint("system.memory.usage", host.memory_percent, tags=tags))
        points.append(DatadogPoint("system.cpu.usage", host.system_cpu_percent, tags=tags))
    for worker in figures.workers:
        tags = (f"hostname:{worker.hostname}", f"worker:{worker.instance}")
        points.append(DatadogPoint("process.cpu.usage", worker.process_cpu_percent, tags=tags))
        points.append(DatadogPoint("process.memory.rss", float(worker.process_rss_bytes), tags=tags))
        points.append(DatadogPoint("process.open_fds", float(worker.open_fds), tags=tags))
        points.append(DatadogPoint("process.threads", float(worker.threads), tags=tags))
    if figures.latest is not None:
        points.append(DatadogPoint("store.size", float(figures.latest.store_bytes)))
    return points


class SystemProvider:
    """``monitoring.metric_categories["system"]``: resources from the stored samples, and the scheduler."""

    def __init__(self, store: Store, describe_scheduler: Callable[[], dict[str, Any]], sample_interval: float) -> None:
        self.store = store
        self.describe_scheduler = describe_scheduler
        self.sample_interval = sample_interval

    def __call__(self, window: TimeWindow) -> CategoryReport:
        # A process that missed three samples in a row is gone (or stuck): not in the totals.
        figures = system_figures(self.store, window, live_within=3 * self.sample_interval + 5)
        scheduler = self.describe_scheduler()
        return CategoryReport(
            json=system_json(figures, scheduler, self.sample_interval),
            prometheus=system_prometheus(figures, scheduler),
            datadog=system_datadog(figures),
        )
