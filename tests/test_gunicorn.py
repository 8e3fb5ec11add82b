"""With a real gunicorn: redacted access logs, and global jobs that run once across workers."""
from __future__ import annotations

import http.client
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ADMIN_KEY, METRICS_KEY

pytestmark = pytest.mark.slow

KEYS = {"METRICS_API_KEY": METRICS_KEY, "ADMIN_API_KEY": ADMIN_KEY}


def test_access_log_never_contains_a_key(gunicorn_server: Callable[..., Any]) -> None:
    server = gunicorn_server(env={**KEYS, "SCHEDULER_ENABLED": "false"}, workers=1)
    requests.get(f"{server.url}/api/monitoring/metrics?api_key={METRICS_KEY}", timeout=5)
    requests.get(f"{server.url}/api/monitoring/audit?format=json&api_key={ADMIN_KEY}", timeout=5)
    requests.get(f"{server.url}/api/monitoring/metrics", headers={"X-API-Key": METRICS_KEY}, timeout=5)
    requests.get(f"{server.url}/api/monitoring/audit?api_key=wrong-guess-123", timeout=5)
    server.stop()
    log = server.log()
    assert "/api/monitoring/metrics?api_key=[redacted]" in log  # the request was logged, redacted
    assert METRICS_KEY not in log and ADMIN_KEY not in log and "wrong-guess-123" not in log


def test_nobody_can_forge_an_access_log_line(gunicorn_server: Callable[..., Any]) -> None:
    """The request line is written as the client sent it (percent-encoded), and a key in it is
    masked in place: %0a stays %0a, so no second, genuine-looking line appears."""
    server = gunicorn_server(env={**KEYS, "SCHEDULER_ENABLED": "false"}, workers=1)
    forged = ("/api/health/live?api_key=x&y=%0a10.9.8.7%20%22POST%20/api/monitoring/alerts%20HTTP/1.1%22"
              "%20200%2012%201ms%20%22forged%22")
    encoded_key = f"/api/monitoring/metrics?api%5Fkey={METRICS_KEY}&x=%0d%0a"
    for path in (forged, encoded_key):  # exactly these bytes (requests would normalise the escapes)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("GET", path)
        assert connection.getresponse().status == 200
        connection.close()
    server.stop()
    lines = server.log().splitlines()
    assert not [line for line in lines if line.startswith("10.9.8.7")]  # no forged line
    (logged,) = [line for line in lines if "/api/health/live?api_key=" in line]
    assert "api_key=[redacted]&y=%0a10.9.8.7%20%22post" in logged.lower()  # as received, still encoded
    (metrics,) = [line for line in lines if "/api/monitoring/metrics?" in line]
    assert "api%5fkey=[redacted]&x=%0d%0a" in metrics.lower() and METRICS_KEY not in server.log()


def _post_chunked(port: int, path: str, content_type: str, body: bytes) -> tuple[int, bytes]:
    """A POST with Transfer-Encoding: chunked and no Content-Length, as real SDKs send it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest("POST", path)
    for name, value in (("Content-Type", content_type), ("Transfer-Encoding", "chunked"),
                        ("X-API-Key", METRICS_KEY), ("Origin", f"http://127.0.0.1:{port}")):
        connection.putheader(name, value)
    connection.endheaders()
    try:
        for start in range(0, len(body), 4096):
            chunk = body[start:start + 4096]
            connection.send(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        connection.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered (413) and closed before the whole body was sent: read that answer
    response = connection.getresponse()
    status, data = response.status, response.read()
    connection.close()
    return status, data


def test_chunked_bodies_past_the_limit_are_413_everywhere(gunicorn_server: Callable[..., Any]) -> None:
    server = gunicorn_server(env={**KEYS, "SCHEDULER_ENABLED": "false", "MAX_BODY_BYTES": "2048"}, workers=1)
    event = b'{"type": "ticket", "operation": "purchased", "ticket_type": "%s"}'
    status, body = _post_chunked(server.port, "/api/monitoring/events", "application/json", event % (b"x" * 100_000))
    assert status == 413 and b'"payload_too_large"' in body
    assert _post_chunked(server.port, "/api/monitoring/events", "application/json", event % b"day")[0] == 201
    exactly = b'{"type": "ticket", "operation": "purchased", "ticket_type": "a", "id": "%s"}'
    fits = exactly % (b"k" * (2048 - len(exactly % b"")))
    assert len(fits) == 2048 and _post_chunked(server.port, "/api/monitoring/events", "application/json",
                                                fits)[0] == 400  # read whole: the id is too long, not too large
    status, _ = _post_chunked(server.port, "/api/monitoring/dashboard/login", "application/x-www-form-urlencoded",
                              b"key=" + b"x" * 100_000)
    assert status == 413  # not a sign-in with the form silently emptied (401)


def _job_runs(db: Path, job: str) -> list[tuple[str, float]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT holder, started_at FROM job_runs WHERE job = ? ORDER BY started_at", (job,)
        ).fetchall()


def test_global_job_runs_once_per_interval_and_moves_when_the_leader_is_killed(
    gunicorn_server: Callable[..., Any],
) -> None:
    ttl, interval = 3.0, 1.0
    server = gunicorn_server(
        env={**KEYS, "LEASE_TTL": str(ttl), "RETENTION_INTERVAL": str(interval)}, workers=3
    )
    db = Path(server.env["VAR_DIR"]) / "centinela.db"
    time.sleep(6)  # let real workers run real scheduler ticks
    runs = _job_runs(db, "retention")
    holders = {holder for holder, _ in runs}
    assert len(holders) == 1, runs
    steady = [t for _, t in runs][1:]
    gaps = [b - a for a, b in zip(steady, steady[1:], strict=False)]
    assert gaps and min(gaps) > interval * 0.5, gaps  # never twice in one interval
    assert 3 <= len(runs) <= 8, len(runs)

    leader_pid = int(next(iter(holders)).split(":")[1])
    assert leader_pid in server.worker_pids()
    killed_at = time.time()
    os.kill(leader_pid, signal.SIGKILL)

    deadline = killed_at + ttl + 10
    new_holder = None
    while time.time() < deadline and new_holder is None:
        after = [(h, t) for h, t in _job_runs(db, "retention") if t > killed_at and h not in holders]
        if after:
            new_holder, took_over_at = after[0]
        time.sleep(0.2)
    assert new_holder is not None, "no worker took over"
    assert took_over_at - killed_at <= ttl + interval + 1.5
    # and still only one runner afterwards
    time.sleep(3)
    later = [(h, t) for h, t in _job_runs(db, "retention") if t > took_over_at]
    assert {h for h, _ in later} <= {new_holder}


def test_system_metrics_name_the_leader(gunicorn_server: Callable[..., Any]) -> None:
    server = gunicorn_server(env={**KEYS, "LEASE_TTL": "3"}, workers=2)
    seen = set()
    for _ in range(6):
        body = requests.get(
            f"{server.url}/api/monitoring/metrics?category=system", headers={"X-API-Key": METRICS_KEY}, timeout=5
        ).json()
        scheduler = body["system"]["scheduler"]
        assert scheduler["leader"] is not None
        seen.add(scheduler["leader"]["holder"])
    assert len(seen) == 1  # every worker names the same leader
