"""Zones list the instances that run: one that stopped cleanly leaves at once, one that vanished is
down once its heartbeat times out; on SQLite and PostgreSQL, and with a real gunicorn."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from monitoring.clock import ManualClock
from monitoring.scheduler import Scheduler
from monitoring.store.database import Store
from monitoring.uptime.zones import zone_statuses
from tests.conftest import ADMIN_KEY, METRICS_KEY

LEASE_TTL = 15.0
DAY = 86400.0


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store(store_url)
    store.migrate()
    yield store
    store.dispose()


def listed(store: Store, clock: ManualClock) -> dict[str, str]:
    return {i.instance_id: ("up" if i.up else "down")
            for zone in zone_statuses(store, clock.now(), LEASE_TTL) for i in zone.instances}


def test_a_clean_stop_leaves_at_once_and_a_lost_instance_goes_down_after_the_ttl(store: Store) -> None:
    clock = ManualClock()
    stopping, lost, staying = (Scheduler(store, clock, LEASE_TTL, "eu-west-1a") for _ in range(3))
    for scheduler in (stopping, lost, staying):
        scheduler.heartbeat()
    assert set(listed(store, clock).values()) == {"up"} and len(listed(store, clock)) == 3

    stopping.mark_stopped()  # what the scheduler's shutdown does at a clean exit
    assert stopping.instance.instance_id not in listed(store, clock)  # gone at once, not "down" for a day

    clock.advance(LEASE_TTL - 1)
    staying.heartbeat()
    assert listed(store, clock)[lost.instance.instance_id] == "up"  # within the heartbeat's time-out
    clock.advance(2)
    staying.heartbeat()
    assert listed(store, clock) == {lost.instance.instance_id: "down", staying.instance.instance_id: "up"}
    clock.advance(DAY)
    staying.heartbeat()
    assert listed(store, clock) == {staying.instance.instance_id: "up"}


def test_the_scheduler_marks_its_instance_stopped_when_it_shuts_down(store: Store) -> None:
    clock = ManualClock()
    scheduler = Scheduler(store, clock, LEASE_TTL, "eu-west-1a")
    scheduler.start()  # its first heartbeat is written at start
    assert listed(store, clock) == {scheduler.instance.instance_id: "up"}
    scheduler.shutdown()
    assert listed(store, clock) == {}


def test_a_store_made_before_the_column_gets_it(tmp_path: Any) -> None:
    from alembic import command

    from monitoring.store.database import alembic_config
    from monitoring.store.migrations import HEAD

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:  # the schema as revision 0002 left it, with an instance in it
        command.upgrade(alembic_config(conn), "0002")
        conn.execute(text("INSERT INTO instances (instance_id, zone, hostname, pid, started_at, last_seen) "
                          "VALUES ('old:1:a', 'eu', 'old', 1, 1.0, 2.0)"))
    engine.dispose()
    store = Store(url)
    assert store.migrate() == HEAD
    with store.read() as conn:
        assert conn.execute(text("SELECT instance_id, stopped_at FROM instances")).all() == [("old:1:a", None)]
    store.dispose()


@pytest.mark.slow
def test_stopping_gunicorn_leaves_no_instance_in_the_zones(gunicorn_server: Callable[..., Any],
                                                          store_url: str) -> None:
    server = gunicorn_server(env={"METRICS_API_KEY": METRICS_KEY, "ADMIN_API_KEY": ADMIN_KEY,
                                  "DATABASE_URL": store_url, "ZONE": "eu-west-1a"}, workers=2)
    deadline = time.monotonic() + 15
    while True:
        zones = requests.get(server.url + "/api/monitoring/uptime", timeout=5).json()["zones"]
        if zones and zones[0]["instancesUp"] == 2:
            break
        assert time.monotonic() < deadline, zones
        time.sleep(0.2)  # the workers' first heartbeats land on their own
    server.stop()  # SIGTERM: the workers exit cleanly
    store = Store(store_url)
    try:
        assert zone_statuses(store, time.time(), LEASE_TTL) == []
        with store.read() as conn:
            rows = conn.execute(text("SELECT stopped_at FROM instances")).all()
        assert len(rows) == 2 and all(stopped is not None for (stopped,) in rows)
    finally:
        store.dispose()
