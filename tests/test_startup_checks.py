"""Dependencies that must answer are checked at start-up: a store (DATABASE_URL) or a shared
rate-limit storage (RATELIMIT_STORAGE_URI) that does not answer stops start-up with one line
naming the variable and the address, its password hidden; RATELIMIT_FAIL_OPEN=true starts
without the rate-limit storage, says so once, and health shows ``ratelimit`` degraded.

Both ways users start Centinela: the service under gunicorn (one line on stderr, exit 2, no
traceback) and a Flask app that embeds it (``Monitoring(app)`` raises DependencyUnavailable).
The addresses are real closed ports on this machine.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from flask import Flask

from monitoring.dependencies import DependencyUnavailable, hide_password
from monitoring.extension import Monitoring
from monitoring.settings import Settings
from tests.conftest import METRICS_HEADERS, METRICS_KEY
from tests.support.gunicorn import GunicornServer
from tests.support.receiver import free_port

ROOT = Path(__file__).resolve().parents[1]


def start_gunicorn(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Start the service the way `make run` does and wait for it to stop by itself."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    return subprocess.run(
        [str(gunicorn), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path / "var"), "PORT": str(free_port()),
             "DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'centinela.db'}", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def centinela_lines(stderr: str) -> list[str]:
    """What Centinela itself said (gunicorn's own "[INFO] Starting gunicorn" line aside)."""
    return [line for line in stderr.splitlines() if line.strip() and "[INFO]" not in line]


# --- under gunicorn ------------------------------------------------------------------------------


def test_a_rate_limit_redis_that_does_not_answer_stops_gunicorn_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    result = start_gunicorn(tmp_path, {"RATELIMIT_STORAGE_URI": f"redis://:s3cr3t-redis@127.0.0.1:{port}/0"})
    assert result.returncode == 2
    assert centinela_lines(result.stderr) == [
        f"centinela: RATELIMIT_STORAGE_URI=redis://:***@127.0.0.1:{port}/0 does not answer (connection refused): "
        "start it, point RATELIMIT_STORAGE_URI at one that answers, or set RATELIMIT_FAIL_OPEN=true to start "
        "without rate limits"
    ]
    assert "Traceback" not in result.stderr and "s3cr3t-redis" not in result.stderr + result.stdout


def test_a_postgresql_store_that_does_not_answer_stops_gunicorn_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    result = start_gunicorn(tmp_path, {"DATABASE_URL": f"postgresql://centinela:hunter2@127.0.0.1:{port}/prod"})
    assert result.returncode == 2
    lines = centinela_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"centinela: DATABASE_URL=postgresql://centinela:***@127.0.0.1:{port}/prod does not "
                               "answer (")
    assert "Connection refused" in lines[0] and lines[0].endswith(
        "start the database or point DATABASE_URL at one that answers")
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr + result.stdout


@pytest.mark.slow
def test_with_fail_open_gunicorn_starts_and_health_shows_ratelimit_degraded(
    gunicorn_server: Callable[..., GunicornServer],
) -> None:
    port = free_port()
    server = gunicorn_server({"RATELIMIT_STORAGE_URI": f"redis://:s3cr3t-redis@127.0.0.1:{port}/0",
                              "RATELIMIT_FAIL_OPEN": "true", "METRICS_API_KEY": METRICS_KEY}, workers=2)
    for _ in range(4):  # whichever worker answers
        body = requests.get(server.url + "/api/health/check", timeout=5).json()
        ratelimit = body["services"]["ratelimit"]
        assert (ratelimit["status"], ratelimit["critical"]) == ("degraded", False)
        assert ratelimit["error"] == "rate-limit storage does not answer: requests are not limited"
    metrics = requests.get(server.url + "/api/monitoring/metrics", headers=METRICS_HEADERS, timeout=10)
    assert metrics.status_code == 200 and "X-RateLimit-Limit" not in metrics.headers  # unlimited, as said
    log = server.log()
    warnings = [line for line in log.splitlines() if "RATELIMIT_FAIL_OPEN=true" in line]
    assert 1 <= len(warnings) <= 2  # one per worker, where the limits are applied
    assert f"127.0.0.1:{port}/0 does not answer (connection refused); starting anyway" in warnings[0]
    assert "s3cr3t-redis" not in log and "Traceback" not in log


# --- embedded: Monitoring(app) ----------------------------------------------------------------------------


def test_an_embedded_monitoring_refuses_to_start_without_its_rate_limit_redis(
    make_settings: Callable[..., Settings],
) -> None:
    port = free_port()
    settings = make_settings({"RATELIMIT_STORAGE_URI": f"redis://user:s3cr3t-redis@127.0.0.1:{port}/0"})
    with pytest.raises(DependencyUnavailable) as raised:
        Monitoring(Flask("shop"), settings=settings)
    error = raised.value
    assert (error.variable, error.address, error.reason) == (
        "RATELIMIT_STORAGE_URI", f"redis://user:***@127.0.0.1:{port}/0", "connection refused")
    assert "s3cr3t-redis" not in str(error) and "\n" not in str(error)
    assert error.__cause__ is None and error.__suppress_context__  # one line, not a chain of driver errors


def test_an_embedded_monitoring_refuses_to_start_without_its_store(make_settings: Callable[..., Settings]) -> None:
    port = free_port()
    settings = make_settings({"DATABASE_URL": f"postgresql://centinela:hunter2@127.0.0.1:{port}/prod"})
    with pytest.raises(DependencyUnavailable) as raised:
        Monitoring(Flask("shop"), settings=settings)
    assert raised.value.variable == "DATABASE_URL"
    assert str(raised.value).startswith(f"DATABASE_URL=postgresql://centinela:***@127.0.0.1:{port}/prod does not answer")
    assert "hunter2" not in str(raised.value)


def test_an_embedded_monitoring_with_fail_open_starts_and_says_ratelimit_is_degraded(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    settings = make_settings({"RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{port}/0", "RATELIMIT_FAIL_OPEN": "true",
                              "DASHBOARD_PUBLIC": "true"})
    app = Flask("shop")
    monitoring = Monitoring(app, settings=settings)
    try:
        assert [r.getMessage() for r in caplog.records if "RATELIMIT_FAIL_OPEN" in r.getMessage()] == [
            f"RATELIMIT_STORAGE_URI=redis://127.0.0.1:{port}/0 does not answer (connection refused); starting anyway "
            "(RATELIMIT_FAIL_OPEN=true): requests pass unlimited until it answers"]
        body = app.test_client().get("/api/health/check").get_json()
        assert body["services"]["ratelimit"]["status"] == "degraded"
        ready = app.test_client().get("/api/health/ready")
        assert ready.status_code == 200  # not a readiness dependency unless READINESS_DEPENDENCIES names it
    finally:
        monitoring.shutdown()
        monitoring.store.dispose()


def test_ratelimit_named_in_readiness_dependencies_takes_the_instance_out_while_it_fails(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings({"RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{free_port()}/0",
                              "RATELIMIT_FAIL_OPEN": "true", "READINESS_DEPENDENCIES": "store,ratelimit"})
    app = Flask("shop")
    monitoring = Monitoring(app, settings=settings)
    try:
        ready = app.test_client().get("/api/health/ready")
        assert ready.status_code == 503
        assert ready.get_json()["error"]["reasons"] == [
            "dependency ratelimit is degraded (rate-limit storage does not answer: requests are not limited)"]
    finally:
        monitoring.shutdown()
        monitoring.store.dispose()


def test_a_redis_that_answers_passes_the_check(make_settings: Callable[..., Settings]) -> None:
    uri = os.environ.get("TEST_REDIS_URL")
    if not uri:
        pytest.skip("TEST_REDIS_URL is not set")
    app = Flask("shop")
    monitoring = Monitoring(app, settings=make_settings({"RATELIMIT_STORAGE_URI": uri}))
    try:
        assert "ratelimit" not in app.test_client().get("/api/health/check", headers=METRICS_HEADERS).get_json()["services"]
    finally:
        monitoring.shutdown()
        monitoring.store.dispose()


@pytest.mark.parametrize("url, shown", [
    ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
    ("redis://user:pw@h/0", "redis://user:***@h/0"),
    ("redis://h:6379/0", "redis://h:6379/0"),
    ("rediss://u:p%40ss@h:1/2", "rediss://u:***@h:1/2"),
    ("memory://", "memory://"),
])
def test_passwords_are_hidden_in_addresses(url: str, shown: str) -> None:
    assert hide_password(url) == shown
