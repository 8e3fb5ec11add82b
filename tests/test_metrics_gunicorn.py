"""With a real `gunicorn -w 3`: figures come from the store, so every worker answers the same."""
from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.conftest import ADMIN_KEY, METRICS_KEY

pytestmark = pytest.mark.slow

HEADERS = {"X-API-Key": METRICS_KEY}


def test_600_requests_read_back_as_600_from_whichever_worker_answers(
    gunicorn_server: Callable[..., Any], store_url: str
) -> None:
    server = gunicorn_server(
        env={
            "METRICS_API_KEY": METRICS_KEY,
            "ADMIN_API_KEY": ADMIN_KEY,
            "DATABASE_URL": store_url,
            "METRICS_FLUSH_INTERVAL": "1",
            "RATELIMIT_DEFAULT": "100000/minute",
            "RATELIMIT_EXPORT": "100000/minute",
        },
        workers=3,
    )

    def visit(i: int) -> int:
        # Ticket pages the service does not have: 404s, all under the one <unmatched> route,
        # and not internal, so the default figures count exactly these (and not our own reads).
        return requests.get(f"{server.url}/tickets/{i}?ref=mail", timeout=10).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(visit, range(600)))
    assert statuses == [404] * 600

    def read() -> dict[str, Any]:
        response = requests.get(f"{server.url}/api/monitoring/metrics?window=1h", headers=HEADERS, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    # Real processes flush on their own timers: wait one flush interval and a margin.
    deadline = time.monotonic() + 15
    while read()["performance"]["requests.count"] != 600 and time.monotonic() < deadline:
        time.sleep(0.25)

    answers = []
    for _ in range(20):
        body = read()
        performance = body["performance"]
        answers.append(performance["requests.count"])
        assert [(r["route"], r["count"]) for r in performance["routes"]] == [("<unmatched>", 600)]
        assert performance["status"]["4xx"] == 600
    assert answers == [600] * 20, answers
    assert len(server.worker_pids()) == 3

    # The Prometheus counter agrees, whichever worker renders it.
    for _ in range(5):
        exposition = requests.get(
            f"{server.url}/api/monitoring/metrics?format=prometheus", headers=HEADERS, timeout=10
        ).text
        assert 'route="<unmatched>",service="app",status="4xx"} 600.0' in exposition
