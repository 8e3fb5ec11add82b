"""The contract between the figures and the metrics export.

Each endpoint family registers, in its ``install()``, a provider per category
(``monitoring.metric_categories["health"] = provider``). The export (JSON, Prometheus,
Datadog) calls every provider for the requested window and only renders what it gets: a
new category never needs a change to an exporter.

A provider computes its figures once and gives them three ways, because the three formats
name and scale things differently: JSON keeps the system description's names and units
(``api.response_time.p95`` in ms), Prometheus wants base units and conventional names
(``centinela_http_request_duration_seconds``), Datadog keeps the dotted names.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # prometheus_client is imported with the first Prometheus family built (an export)
    from prometheus_client.metrics_core import Metric


@dataclass(frozen=True)
class TimeWindow:
    """The half-open interval [start, end) in epoch seconds, and how the caller wrote it (``5m``)."""

    start: float
    end: float
    label: str

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class DatadogPoint:
    """One Datadog series point: metric name, value, type and tags (``route:/tickets/<id>``)."""

    metric: str
    value: float
    type: Literal["gauge", "count", "rate"] = "gauge"
    tags: tuple[str, ...] = ()
    interval: int | None = None  # seconds, for count and rate


@dataclass
class CategoryReport:
    """What one category contributes to each export format."""

    json: dict[str, Any]
    prometheus: list[Metric] = field(default_factory=list)
    datadog: list[DatadogPoint] = field(default_factory=list)


CategoryProvider = Callable[[TimeWindow], CategoryReport]
