"""The store stops answering mid-run, for real, and comes back: what users and operators see.

PostgreSQL: the app's store belongs to a role of its own (made here, not a superuser); the
outage is ``ALTER ROLE ... CONNECTION LIMIT 0`` plus ``pg_terminate_backend`` of that role's
backends, so every new connection is refused ("too many connections for role"), exactly as a
database that stops letting the service in. SQLite: the tests run as root, for whom chmod
changes nothing, so the store file and its WAL are made immutable with ``chattr +i`` (the
-shm file is left alone: SQLite maps it into memory, and an immutable one kills the process
with SIGBUS); reads still work, every write fails, as on a read-only disk.

Shown: no 500 during the outage (events, alerts, uptime, health), 503 ``store_unavailable``
with Retry-After in the one error shape, one log line when it goes and one when it returns
(no traceback), the rounds kept meanwhile written afterwards, so that uptime shows the outage
as down time and as an incident with its cause. Time is a ManualClock; the scheduler's jobs are
called as its threads would call them. The last test shows the same on a real gunicorn
(slow): its own threads notice the return and run a health round at once, so /check is right
within one second of it.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from monitoring.clock import ManualClock, parse_timestamp
from monitoring.services import HEALTH_JOB
from monitoring.settings import Settings
from tests.conftest import ADMIN_HEADERS, METRICS_HEADERS, METRICS_KEY
from tests.support.gunicorn import GunicornServer

INTERVAL = 30.0
EVENTS = "/api/monitoring/events"
PAYMENT = {"type": "payment", "outcome": "succeeded", "amount": 1999, "currency": "EUR", "provider": "stripe"}


# --- making the store go away --------------------------------------------------------------------


class PostgresRoleOutage:
    """A schema and a non-superuser role that owns the app's store; ``cut()`` and ``restore()``."""

    def __init__(self, base_url: str) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.role = f"centinela_outage_{suffix}"
        self.schema = f"outage_{suffix}"
        self.admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
        url = make_url(base_url).set(username=self.role, password=None)
        self.url = (url.render_as_string(hide_password=False)
                    + f"?options=-csearch_path%3D{self.schema}&application_name={self.schema}")

    def create(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE ROLE "{self.role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE'))
            conn.execute(text(f'CREATE SCHEMA "{self.schema}" AUTHORIZATION "{self.role}"'))

    def cut(self) -> None:
        """No new connection for the role, and its open ones ended."""
        with self.admin.connect() as conn:
            conn.execute(text(f'ALTER ROLE "{self.role}" CONNECTION LIMIT 0'))
            self._terminate(conn)

    def restore(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'ALTER ROLE "{self.role}" CONNECTION LIMIT -1'))

    def _terminate(self, conn: Any) -> None:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE usename = :role AND pid <> pg_backend_pid()"), {"role": self.role})

    def drop(self) -> None:
        """Whatever happened: the role's backends ended, its schema and the role itself gone."""
        with self.admin.connect() as conn:
            conn.execute(text(f'ALTER ROLE "{self.role}" CONNECTION LIMIT 0'))
            self._terminate(conn)
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            conn.execute(text(f'DROP OWNED BY "{self.role}" CASCADE'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{self.role}"'))
        self.admin.dispose()


@pytest.fixture
def postgres_outage() -> Iterator[PostgresRoleOutage]:
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set: the PostgreSQL outage is not tested")
    outage = PostgresRoleOutage(base)
    outage.create()
    try:
        yield outage
    finally:
        outage.drop()


class ImmutableSqliteFile:
    """The SQLite store file and its WAL made immutable (root ignores file modes, not ``chattr +i``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: list[Path] = []

    def cut(self) -> None:
        self.files = [p for p in (self.path, Path(f"{self.path}-wal")) if p.exists()]
        for file in self.files:
            subprocess.run(["chattr", "+i", str(file)], check=True, capture_output=True)

    def restore(self) -> None:
        for file in self.files:
            subprocess.run(["chattr", "-i", str(file)], check=False, capture_output=True)


@pytest.fixture
def sqlite_outage(tmp_path: Path) -> Iterator[ImmutableSqliteFile]:
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    probe = tmp_path / "chattr-probe"
    probe.write_text("x")
    if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode != 0:
        pytest.skip("this file system has no immutable flag (chattr +i)")
    subprocess.run(["chattr", "-i", str(probe)], check=True)
    outage = ImmutableSqliteFile(tmp_path / "store.db")
    try:
        yield outage
    finally:
        outage.restore()  # never leave an immutable file behind: tmp_path could not be removed


# --- the app, driven as its scheduler would drive it -------------------------------------------------


class Service:
    """The Centinela service on a ManualClock; ``tick()`` is one health interval of the leader's work."""

    def __init__(self, settings: Settings, clock: ManualClock) -> None:
        self.app = create_app(settings, clock=clock)
        self.monitoring = self.app.extensions["centinela"]
        self.scheduler = self.monitoring.scheduler
        self.clock = clock
        self.client = self.app.test_client()

    def tick(self) -> None:
        """What the scheduler's threads do in one interval: the heartbeat, then the health job."""
        self.clock.advance(INTERVAL)
        self.scheduler.heartbeat()
        self.scheduler.run_global(HEALTH_JOB)

    def close(self) -> None:
        self.monitoring.shutdown()
        self.monitoring.store.dispose()


@pytest.fixture
def start_service(make_settings: Callable[..., Settings], clock: ManualClock) -> Iterator[Callable[[str], Service]]:
    started: list[Service] = []

    def start(database_url: str) -> Service:
        service = Service(make_settings({"DATABASE_URL": database_url, "HEALTH_CHECK_INTERVAL": str(INTERVAL)}), clock)
        started.append(service)
        return service

    yield start
    for service in started:
        service.close()


def assert_store_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"] == "5"
    assert response.get_json() == {"error": {
        "code": "store_unavailable", "message": "the store does not answer; retry after the time in Retry-After"}}


def centinela_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("monitoring", "apscheduler")) and r.levelno >= logging.WARNING]


def outage_requests(service: Service) -> dict[str, Any]:
    """What users send during the outage: every answer by what was asked."""
    client = service.client
    return {
        "POST events": client.post(EVENTS, json=PAYMENT, headers=METRICS_HEADERS),
        "GET alerts": client.get("/api/monitoring/alerts?action=active", headers=METRICS_HEADERS),
        "POST alerts": client.post("/api/monitoring/alerts", json={"action": "acknowledge", "id": 1, "comment": "looking"}, headers=ADMIN_HEADERS),
        "GET uptime": client.get("/api/monitoring/uptime"),
        "GET incidents": client.get("/api/monitoring/uptime/incidents"),
        "GET check": client.get("/api/health/check"),
        "GET ready": client.get("/api/health/ready"),
        "GET live": client.get("/api/health/live"),
        "GET metrics": client.get("/api/monitoring/metrics", headers=METRICS_HEADERS),
        "GET prometheus": client.get("/api/monitoring/metrics?format=prometheus", headers=METRICS_HEADERS),
        "GET dashboard": client.get("/api/monitoring/dashboard", headers=METRICS_HEADERS),
    }


def assert_recorded_as_down_time(service: Service, outage_rounds: int, cause: str) -> None:
    uptime = service.client.get("/api/monitoring/uptime?window=24h").get_json()
    assert uptime["uptime"]["downSeconds"] == outage_rounds * INTERVAL
    assert uptime["status"] == "healthy"
    history = service.client.get("/api/monitoring/uptime/incidents").get_json()["incidents"]
    assert len(history) == 1
    (incident,) = history
    assert incident["status"] == "resolved" and incident["durationSeconds"] == outage_rounds * INTERVAL
    assert incident["services"] == ["database"] and incident["cause"] == cause


# --- PostgreSQL ---------------------------------------------------------------------------------


def test_a_postgresql_outage_answers_503_logs_once_and_is_recorded_as_down_time(
    postgres_outage: PostgresRoleOutage, start_service: Callable[[str], Service], caplog: pytest.LogCaptureFixture,
) -> None:
    service = start_service(postgres_outage.url)
    service.tick()
    service.tick()
    assert service.client.get("/api/health/check").status_code == 200
    caplog.set_level(logging.WARNING)
    caplog.clear()

    postgres_outage.cut()
    answers = outage_requests(service)
    for _ in range(4):  # the leader goes on checking: four rounds kept in memory
        service.tick()
    answers.update({f"{name} again": response for name, response in outage_requests(service).items()})

    assert not [name for name, response in answers.items() if response.status_code >= 500
                and response.status_code != 503], "no 500 during the outage"
    for name in ("POST events", "GET alerts", "POST alerts", "GET uptime", "GET incidents", "GET metrics",
                 "GET prometheus", "GET dashboard"):
        assert_store_unavailable(answers[name])
        assert_store_unavailable(answers[f"{name} again"])
    check = answers["GET check again"]
    assert check.status_code == 503
    store = check.get_json()["services"]["store"]
    assert (store["status"], store["critical"], store["error"]) == ("unhealthy", True, "store unavailable")
    assert answers["GET ready"].get_json()["error"]["reasons"] == ["store unavailable"]
    assert answers["GET live"].status_code == 200
    assert service.monitoring.health.pending_rounds == 4

    # One line when it went, no traceback: not per request, not per job.
    during = centinela_records(caplog)
    assert [r.getMessage() for r in during] == [during[0].getMessage()]
    assert "store unavailable" in during[0].getMessage() and "too many connections" in during[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)
    caplog.clear()

    postgres_outage.restore()
    service.scheduler.heartbeat()  # the store watch: a real write, which finds it back
    service.scheduler.after_store_recovery()  # what the watch then schedules at once
    assert service.monitoring.health.pending_rounds == 0
    service.tick()  # the round the recovery runs

    messages = [r.getMessage() for r in centinela_records(caplog)]
    assert len(messages) == 2 and messages[0].startswith("store answers again")
    assert messages[1] == "wrote 4 health rounds kept while the store was unavailable"
    check = service.client.get("/api/health/check")
    assert check.status_code == 200 and "store" not in check.get_json()["services"]
    assert_recorded_as_down_time(service, 4, "critical dependency down: database (too many connections)")
    assert service.client.post(EVENTS, json=PAYMENT, headers=METRICS_HEADERS).status_code == 201


# --- SQLite ----------------------------------------------------------------------------------------


def test_a_sqlite_store_that_refuses_writes_answers_503_for_writes_and_is_recorded_as_down_time(
    sqlite_outage: ImmutableSqliteFile, start_service: Callable[[str], Service], caplog: pytest.LogCaptureFixture,
) -> None:
    service = start_service(f"sqlite:///{sqlite_outage.path}")
    service.tick()
    service.tick()
    caplog.set_level(logging.WARNING)
    caplog.clear()

    sqlite_outage.cut()
    answers = outage_requests(service)
    for _ in range(3):
        service.tick()
    answers.update({f"{name} again": response for name, response in outage_requests(service).items()})

    assert not [name for name, response in answers.items() if response.status_code >= 500
                and response.status_code != 503], "no 500 during the outage"
    assert_store_unavailable(answers["POST events"])
    assert_store_unavailable(answers["POST events again"])
    # Reads still work; health and readiness say that the store does not take writes.
    assert answers["GET uptime again"].status_code == 200 and answers["GET alerts again"].status_code == 200
    check = answers["GET check again"]
    assert check.status_code == 503 and check.get_json()["services"]["store"]["status"] == "unhealthy"
    assert answers["GET ready again"].get_json()["error"]["reasons"] == ["store unavailable"]
    assert service.monitoring.health.pending_rounds == 3
    during = centinela_records(caplog)
    assert len(during) == 1 and "store unavailable" in during[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)
    caplog.clear()

    sqlite_outage.restore()
    service.scheduler.heartbeat()
    service.scheduler.after_store_recovery()
    service.tick()

    messages = [r.getMessage() for r in centinela_records(caplog)]
    assert messages[0].startswith("store answers again") and len(messages) == 2
    assert service.client.get("/api/health/check").status_code == 200
    # The database's own probe (SELECT 1) got through, but the rounds could not be written: down.
    assert_recorded_as_down_time(service, 3, "critical dependency down: database (store unavailable)")
    assert service.client.post(EVENTS, json=PAYMENT, headers=METRICS_HEADERS).status_code == 201


# --- the parts ----------------------------------------------------------------------------------------


def test_a_wrong_query_is_not_an_outage(make_app: Callable[..., Any]) -> None:
    """Bad SQL raises the same class as an outage on SQLite: it stays a bug, never "unavailable"."""
    from sqlalchemy.exc import OperationalError

    monitoring = make_app().extensions["centinela"]
    with pytest.raises(OperationalError):
        with monitoring.store.read() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
    assert not monitoring.store.availability.down


def test_the_kept_rounds_are_bounded(
    make_settings: Callable[..., Settings], clock: ManualClock, caplog: pytest.LogCaptureFixture, tmp_path: Path,
) -> None:
    from monitoring.health.service import HealthService
    from monitoring.store.database import Store

    settings = make_settings()
    store = Store(settings.database_url, clock)
    store.migrate()
    health = HealthService(store, clock, settings, max_pending_rounds=3)
    results = health.run_round()
    caplog.set_level(logging.WARNING)
    for _ in range(5):
        health._keep(results)  # noqa: SLF001  # what a round does when the store refuses it
    assert health.pending_rounds == 3
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("store still unavailable: keeping only the latest 3 health rounds") == 1
    store.dispose()


# --- a real gunicorn -----------------------------------------------------------------------------------


GUNICORN_INTERVAL = 2.0
OUTAGE_SECONDS = 8.0


def _served(server: GunicornServer) -> dict[str, requests.Response]:
    headers = {"X-API-Key": METRICS_KEY}
    base = server.url
    return {
        "POST events": requests.post(base + EVENTS, json=PAYMENT, headers=headers, timeout=10),
        "GET alerts": requests.get(base + "/api/monitoring/alerts?action=active", headers=headers, timeout=10),
        "GET uptime": requests.get(base + "/api/monitoring/uptime", timeout=10),
        "GET incidents": requests.get(base + "/api/monitoring/uptime/incidents", timeout=10),
        "GET check": requests.get(base + "/api/health/check", timeout=10),
    }


def _right_since(server: GunicornServer, moment: float) -> bool:
    """/check says healthy from a round taken after ``moment``, without the store listed as failing."""
    body = requests.get(server.url + "/api/health/check", timeout=5).json()
    database = body["services"]["database"]
    return (body["status"] == "healthy" and "store" not in body["services"]
            and database["checkedAt"] is not None and parse_timestamp(database["checkedAt"]) >= moment)


@pytest.mark.slow
def test_a_postgresql_outage_under_gunicorn_is_down_time_and_health_is_right_within_a_second_of_its_end(
    postgres_outage: PostgresRoleOutage, gunicorn_server: Callable[..., GunicornServer],
) -> None:
    server = gunicorn_server({
        "DATABASE_URL": postgres_outage.url, "METRICS_API_KEY": METRICS_KEY, "ADMIN_API_KEY": "admin-" + METRICS_KEY,
        "HEALTH_CHECK_INTERVAL": str(GUNICORN_INTERVAL), "LEASE_TTL": "3", "METRICS_FLUSH_INTERVAL": "1",
    }, workers=2)
    deadline = time.monotonic() + 20
    while not _right_since(server, 0):  # polling a real server until its first round is stored
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    time.sleep(GUNICORN_INTERVAL)  # one more healthy round before the outage
    log_before = len(server.log().splitlines())

    postgres_outage.cut()
    cut_at = time.time()
    answers: list[tuple[str, requests.Response]] = []
    while time.time() - cut_at < OUTAGE_SECONDS:
        answers += list(_served(server).items())
        time.sleep(0.25)
    postgres_outage.restore()
    restored_at = time.time()
    # Right on every worker (each has its own watch, so one may see the return a moment after the
    # other): six answers in a row, from whichever worker takes each connection, all right.
    while not all(_right_since(server, restored_at) for _ in range(6)):
        time.sleep(0.02)
    right_after = time.time() - restored_at

    assert right_after <= 1.0, f"health was right {right_after:.2f}s after the store returned"
    assert not [(name, r.status_code) for name, r in answers if r.status_code >= 500 and r.status_code != 503]
    refused = [(name, r) for name, r in answers if name != "GET check" and r.status_code == 503]
    assert len(refused) >= len(answers) * 0.6  # after the first moments, every one of them
    for name, response in refused:
        assert response.headers["Retry-After"] == "5", name
        assert response.json()["error"]["code"] == "store_unavailable", name
    assert all(r.status_code == 503 for name, r in answers[-5:] if name == "GET check")

    uptime = requests.get(server.url + "/api/monitoring/uptime?window=24h", timeout=5).json()
    assert OUTAGE_SECONDS - 2 * GUNICORN_INTERVAL <= uptime["uptime"]["downSeconds"] <= OUTAGE_SECONDS + GUNICORN_INTERVAL
    incidents = requests.get(server.url + "/api/monitoring/uptime/incidents", timeout=5).json()["incidents"]
    assert len(incidents) == 1 and incidents[0]["status"] == "resolved"
    assert incidents[0]["cause"].startswith("critical dependency down: database (")

    # The log: a line per worker when it went and when it came back, never a traceback.
    lines = server.log().splitlines()[log_before:]
    own = [line for line in lines if not line.startswith("127.0.0.1 ")]  # access lines are one per request
    assert not [line for line in lines if "Traceback" in line]
    assert 1 <= sum("store unavailable (" in line for line in own) <= 2
    assert 1 <= sum("store answers again" in line for line in own) <= 2
    assert len(own) <= 8, "\n".join(own)
