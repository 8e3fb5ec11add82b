"""Render CategoryReports as JSON, Prometheus text / OpenMetrics, or a Datadog series body.

The exporters only render what the category providers give them; a new category never
needs a change here.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitoring.clock import isoformat
from monitoring.metrics.categories import CategoryReport, TimeWindow

if TYPE_CHECKING:  # prometheus_client is imported with the first Prometheus family built (an export)
    from prometheus_client.metrics_core import Metric

FORMATS = ("json", "prometheus", "datadog")


@dataclass(frozen=True)
class Unavailable:
    """A known category that has no figures in this answer, and why."""

    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"available": False, "reason": self.reason}


Section = CategoryReport | Unavailable


def render_json(timestamp: float, window: TimeWindow, sections: Mapping[str, Section]) -> dict[str, Any]:
    """``{"timestamp", "window", <category>: {...}, ...}`` in the order the categories were asked for."""
    body: dict[str, Any] = {
        "timestamp": isoformat(timestamp),
        "window": {
            "label": window.label,
            "from": isoformat(window.start),
            "to": isoformat(window.end),
            "seconds": window.seconds,
        },
    }
    for name, section in sections.items():
        body[name] = section.to_json() if isinstance(section, Unavailable) else section.json
    return body


class ReportCollector:  # a prometheus_client Collector (a Protocol)
    """A prometheus_client collector over reports already computed from the store (no per-worker registry)."""

    def __init__(self, sections: Mapping[str, Section]) -> None:
        self.sections = sections

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import GaugeMetricFamily

        available = GaugeMetricFamily(
            "centinela_metrics_category_available",
            "1 when the category's figures are in this exposition, 0 when its provider is missing or failed.",
            labels=["category"],
        )
        for name, section in self.sections.items():
            available.add_metric([name], 0.0 if isinstance(section, Unavailable) else 1.0)
        yield available
        for section in self.sections.values():
            if isinstance(section, CategoryReport):
                yield from section.prometheus


def render_prometheus(sections: Mapping[str, Section], accept: str | None) -> tuple[bytes, str]:
    """The exposition and its content type: OpenMetrics when ``accept`` asks for it, else text 0.0.4."""
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReportCollector(sections))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def render_datadog(sections: Mapping[str, Section], timestamp: float, host: str,
                   tags: Sequence[str] = ()) -> dict[str, Any]:
    """A body for Datadog's ``POST /api/v1/series``: ``{"series": [{metric, points, type, host, tags}]}``."""
    series: list[dict[str, Any]] = []
    at = int(timestamp)
    for section in sections.values():
        if not isinstance(section, CategoryReport):
            continue
        for point in section.datadog:
            value = float(point.value)
            if math.isnan(value) or math.isinf(value):
                continue
            item: dict[str, Any] = {
                "metric": point.metric,
                "points": [[at, value]],
                "type": point.type,
                "host": host,
                "tags": [*tags, *point.tags],
            }
            if point.interval is not None:
                item["interval"] = point.interval
            series.append(item)
    return {"series": series}
