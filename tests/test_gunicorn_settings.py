"""Under every common gunicorn setting (a real gunicorn each): sync and gthread workers,
``--preload`` (the app built in the master, then forked), ``--max-requests`` recycling, and a
clean stop within a few seconds. Every request reaches the store, and the scheduler runs in
the workers, never in the master."""
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
REQUESTS = 40

SETTINGS = {
    "sync": (),
    "preload": ("--preload",),
    "gthread": ("--worker-class", "gthread", "--threads", "4"),
    # Each worker exits after 15 requests: what it recorded must be flushed on the way out.
    "max-requests": ("--max-requests", "15", "--max-requests-jitter", "0"),
}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_every_request_reaches_the_store_and_gunicorn_stops_promptly(
    gunicorn_server: Callable[..., Any], setting: str
) -> None:
    server = gunicorn_server(
        env={
            "METRICS_API_KEY": METRICS_KEY,
            "ADMIN_API_KEY": ADMIN_KEY,
            "METRICS_FLUSH_INTERVAL": "1",
            "HEALTH_CHECK_INTERVAL": "1",
            "RATELIMIT_DEFAULT": "100000/minute",
            "RATELIMIT_EXPORT": "100000/minute",
        },
        workers=2,
        args=SETTINGS[setting],
    )
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(lambda i: requests.get(f"{server.url}/tickets/{i}", timeout=30).status_code,
                                 range(REQUESTS)))
    assert statuses == [404] * REQUESTS

    def metrics() -> dict[str, Any]:
        response = requests.get(f"{server.url}/api/monitoring/metrics?window=1h", headers=HEADERS, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    deadline = time.monotonic() + 20
    while metrics()["performance"]["requests.count"] != REQUESTS and time.monotonic() < deadline:
        time.sleep(0.25)
    body = metrics()
    assert body["performance"]["requests.count"] == REQUESTS, server.log()

    # The workers run the scheduler (the master never does): the leader's health job has run,
    # and every instance that answered is a worker of its own.
    jobs = {job["name"]: job for job in body["system"]["scheduler"]["jobs"]}
    deadline = time.monotonic() + 10
    while jobs["health_checks"]["lastRun"] is None and time.monotonic() < deadline:
        time.sleep(0.25)
        jobs = {job["name"]: job for job in metrics()["system"]["scheduler"]["jobs"]}
    assert jobs["health_checks"]["lastRun"] is not None
    # A recycled worker boots again before it answers: on a loaded machine that can take seconds.
    instances = {requests.get(f"{server.url}/api/health/live", timeout=30).json()["instance"] for _ in range(20)}
    pids = {int(instance.split(":")[1]) for instance in instances}
    assert server.process.pid not in pids
    if setting != "max-requests":  # recycled workers come and go
        assert pids <= set(server.worker_pids())

    assert server.stop() < 5, server.log()
    assert "Traceback" not in server.log()
