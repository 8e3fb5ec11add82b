"""One definition of which requests count (monitoring.metrics.scope), used by every category:
the errors and performance categories of one answer count the same requests, with the monitoring
endpoints left out by default and counted by both with include_internal=true."""
from __future__ import annotations

from typing import Any

from monitoring.clock import ManualClock
from tests.conftest import METRICS_HEADERS

METRICS = "/api/monitoring/metrics?window=1h"


def test_errors_and_performance_count_the_same_requests(app: Any, clock: ManualClock) -> None:
    client = app.test_client()
    for i in range(7):
        assert client.get(f"/tickets/{i}").status_code == 404  # the monitored app's traffic
    for _ in range(5):
        client.get("/api/health/live")  # a load balancer polling: the monitoring endpoints
    app.extensions["centinela"].scheduler.run_process("metrics_flush")
    clock.advance(60)

    body = client.get(METRICS, headers=METRICS_HEADERS).get_json()
    assert body["performance"]["requests.count"] == body["errors"]["requests.count"] == 7
    assert body["performance"]["scope"]["internal"] == "excluded"

    # The metrics reads themselves are monitoring requests too: flush them before the wider read.
    app.extensions["centinela"].scheduler.run_process("metrics_flush")
    clock.advance(60)
    wide = client.get(METRICS + "&include_internal=true", headers=METRICS_HEADERS).get_json()
    assert wide["performance"]["requests.count"] == wide["errors"]["requests.count"] == 7 + 5 + 1
    assert wide["performance"]["scope"]["internal"] == "included"

    dashboard = client.get("/api/monitoring/dashboard/data", headers=METRICS_HEADERS).get_json()
    assert dashboard["errors"]["requests.count"] == dashboard["performance"]["requests.count"] == 7
