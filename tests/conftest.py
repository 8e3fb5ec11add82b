"""Shared fixtures: the app on SQLite and (when TEST_DATABASE_URL is set) PostgreSQL, an
injected clock, keys, and a real gunicorn for the tests where workers matter."""
from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from app import create_app
from monitoring.clock import ManualClock
from monitoring.settings import Settings
from tests.support.gunicorn import GunicornServer

METRICS_KEY = "test-metrics-key-0123456789abcdef"
ADMIN_KEY = "test-admin-key-fedcba9876543210"
INGEST_KEY = "test_ingest_key_0a1b2c3d4e5f6789"  # letters, digits and "_": it goes into DSNs

STORE_KINDS = ["sqlite", "postgresql"]


def _postgres_schema_url(base: str) -> Iterator[str]:
    """A fresh PostgreSQL schema per test, so parallel runs and tests never see each other's rows.

    Every connection made with the URL carries the schema's name as its application_name, so the
    teardown can end exactly this test's connections (a gunicorn worker still writing, a pool not
    yet disposed) and no one else's: helpers and CI runs share the database.
    """
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}&application_name={schema}"
    finally:
        _drop_schema(admin, schema)
        admin.dispose()


DROP_ATTEMPTS = 5


def _drop_schema(admin: Engine, schema: str) -> None:
    """End the schema's own connections, then drop it.

    A connection still inside a transaction on the schema's tables (a worker's scheduler thread)
    makes DROP SCHEMA wait for its locks or deadlock with it; terminating them first leaves none.
    A process that reconnects between the two statements is ended on the next attempt.
    """
    for attempt in range(1, DROP_ATTEMPTS + 1):
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE application_name = :name AND pid <> pg_backend_pid()"),
                {"name": schema},
            )
            conn.execute(text("SET lock_timeout = '10s'"))
            try:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                return
            except DBAPIError:  # DeadlockDetected or LockNotAvailable: someone came back; end them again
                if attempt == DROP_ATTEMPTS:
                    raise


@pytest.fixture(autouse=True)
def responses_follow_the_openapi_document(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every JSON answer read through the test client is checked against the served document."""
    from flask.testing import FlaskClient

    from tests.support.contract import checking_open

    monkeypatch.setattr(FlaskClient, "open", checking_open(FlaskClient.open))


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """Each store test runs on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL store tests skipped")
    yield from _postgres_schema_url(base)


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_settings(tmp_path: Any, sqlite_url: str) -> Callable[..., Settings]:
    """Settings as the environment would give them, with test keys, a temp var dir and no scheduler."""

    def build(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        base_env = {
            "METRICS_API_KEY": METRICS_KEY,
            "ADMIN_API_KEY": ADMIN_KEY,
            "INGEST_API_KEY": INGEST_KEY,
            "VAR_DIR": str(tmp_path / "var"),
            "DATABASE_URL": sqlite_url,
            "SCHEDULER_ENABLED": "false",
        }
        base_env.update(env or {})
        return Settings.from_env(base_env, **overrides)

    return build


@pytest.fixture
def make_app(make_settings: Callable[..., Settings], clock: ManualClock) -> Iterator[Callable[..., Any]]:
    """Build apps the way create_app does, from an env dict; each is shut down after the test."""
    apps: list[Any] = []

    def build(env: dict[str, str] | None = None) -> Any:
        application = create_app(make_settings(env or {}), clock=clock)
        apps.append(application)
        return application

    yield build
    for application in apps:
        application.extensions["centinela"].shutdown()
        application.extensions["centinela"].store.dispose()


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def monitoring(app: Any) -> Any:
    return app.extensions["centinela"]


METRICS_HEADERS = {"X-API-Key": METRICS_KEY}
ADMIN_HEADERS = {"X-Admin-Key": ADMIN_KEY}
INGEST_HEADERS = {"X-API-Key": INGEST_KEY}


@pytest.fixture
def gunicorn_server(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Callable[..., GunicornServer]]:
    """Start real gunicorn processes the way `make run` does; all are stopped after the test."""
    if "store_url" in request.fixturenames:
        # Set the store up first, so that it is torn down last: the processes stop before their
        # PostgreSQL schema is dropped, whatever order the test names its fixtures in.
        request.getfixturevalue("store_url")
    started: list[GunicornServer] = []

    def start(
        env: dict[str, str] | None = None, workers: int = 2, name: str = "gunicorn", args: tuple[str, ...] = (),
        app: str = "wsgi:app",
    ) -> GunicornServer:
        server = GunicornServer(tmp_path / name, env=env or {}, workers=workers, args=args, app=app)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
    report = getattr(request.node, "call_report", None)
    if report is not None and report.failed:  # what the processes said, beside the failure
        for server in started:
            tail = "\n".join(server.log().splitlines()[-80:])
            sys.stderr.write(f"\n--- {server.log_path} (last 80 lines) ---\n{tail}\n")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.call_report = report  # type: ignore[attr-defined]  # read by gunicorn_server's teardown
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``--dist loadgroup``), the tests that start real gunicorn processes
    (marker ``slow``) run one after another on one worker while the others share the rest: two
    gunicorn stories at once on two cores starve each other's timers, and several of them measure
    real time (notices within 2 s, health right within 1 s)."""
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.xdist_group("real-processes"))
