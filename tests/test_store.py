"""The store on SQLite and PostgreSQL: schema, concurrency at start-up, lease, retention."""
from __future__ import annotations

import threading

from sqlalchemy import func, select, text

from monitoring.clock import ManualClock
from monitoring.store.database import Store
from monitoring.store.lease import LeaderLease
from monitoring.store.migrations import HEAD
from monitoring.store.retention import RetentionRule, purge_expired
from monitoring.store.schema import audit_log, metadata


def test_migrate_creates_every_table_and_is_idempotent(store_url: str) -> None:
    store = Store(store_url)
    assert store.migrate() == HEAD
    assert store.migrate() == HEAD
    with store.read() as conn:
        for table in metadata.sorted_tables:
            conn.execute(select(func.count()).select_from(table)).scalar_one()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
    store.dispose()


def test_many_processes_starting_at_once_migrate_safely(store_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def start() -> None:
        store = Store(store_url)  # a separate engine each, as separate workers would have
        try:
            barrier.wait()
            store.migrate()
        except BaseException as exc:  # noqa: BLE001 - the assertion below reports it
            errors.append(exc)
        finally:
            store.dispose()

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store = Store(store_url)
    with store.read() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
    store.dispose()


def test_sqlite_store_uses_wal(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    store.migrate()
    with store.read() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    store.dispose()


def test_each_sqlite_connection_keeps_a_small_page_cache(sqlite_url: str) -> None:
    """Up to 16 pooled connections per worker, each with SQLite's default 2 MB cache, made a
    worker's RSS grow with the store (bench_soak); every connection of the pool gets 256 KiB."""
    store = Store(sqlite_url)
    store.migrate()
    with store.read() as first, store.read() as second:
        assert first.connection.dbapi_connection is not second.connection.dbapi_connection
        for conn in (first, second):
            assert conn.execute(text("PRAGMA cache_size")).scalar_one() == -256
    store.dispose()


def test_write_rolls_back_on_error(store_url: str) -> None:
    store = Store(store_url)
    store.migrate()
    try:
        with store.write() as conn:
            conn.execute(audit_log.insert().values(at=1, kind="admin_action", actor="a", action="x"))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(audit_log)).scalar_one() == 0
    store.dispose()


def test_lease_is_held_by_one_holder_until_it_expires(store_url: str) -> None:
    clock = ManualClock()
    store = Store(store_url, clock)
    store.migrate()
    first = LeaderLease(store, "host:1", clock, ttl=15)
    second = LeaderLease(store, "host:2", clock, ttl=15)

    assert first.try_acquire() is True
    assert second.try_acquire() is False
    assert first.held() and not second.held()
    generation = first.current().generation

    clock.advance(10)
    assert first.try_acquire() is True  # renewal keeps it
    clock.advance(10)
    assert second.try_acquire() is False  # renewed at t=10, so still valid at t=20

    clock.advance(16)  # first stopped renewing (it died)
    assert not first.held()
    assert second.try_acquire() is True
    assert first.try_acquire() is False
    holder = second.current()
    assert holder.holder == "host:2" and holder.generation == generation + 1
    store.dispose()


def test_leader_stops_acting_before_its_lease_expires(store_url: str) -> None:
    clock = ManualClock()
    store = Store(store_url, clock)
    store.migrate()
    lease = LeaderLease(store, "host:1", clock, ttl=10)
    lease.try_acquire()
    clock.advance(7.9)
    assert lease.held()
    clock.advance(0.2)  # within the last 20 % of the lease: another may take over soon
    assert not lease.held()
    store.dispose()


def test_release_hands_over_at_once(store_url: str) -> None:
    clock = ManualClock()
    store = Store(store_url, clock)
    store.migrate()
    first = LeaderLease(store, "a", clock, ttl=30)
    second = LeaderLease(store, "b", clock, ttl=30)
    assert first.try_acquire()
    first.release()
    assert second.try_acquire()
    store.dispose()


def test_concurrent_acquirers_never_both_win(store_url: str) -> None:
    clock = ManualClock()
    stores = [Store(store_url, clock) for _ in range(5)]
    stores[0].migrate()
    leases = [LeaderLease(s, f"holder-{i}", clock, ttl=15) for i, s in enumerate(stores)]
    barrier = threading.Barrier(len(leases))
    won: list[str] = []

    def contend(lease: LeaderLease) -> None:
        barrier.wait()
        if lease.try_acquire():
            won.append(lease.holder)

    threads = [threading.Thread(target=contend, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    for store in stores:
        store.dispose()


def test_retention_purges_only_expired_rows(store_url: str) -> None:
    clock = ManualClock()
    store = Store(store_url, clock)
    store.migrate()
    day = 86400.0
    now = clock.now()
    with store.write() as conn:
        for age_days in (1, 29, 31, 400):
            conn.execute(
                audit_log.insert().values(at=now - age_days * day, kind="admin_action", actor="a", action=str(age_days))
            )
    removed = purge_expired(store, [RetentionRule(audit_log, audit_log.c.at, 30 * day)], now, batch=1)
    assert removed == {"audit_log": 2}
    with store.read() as conn:
        left = sorted(int(r) for r in conn.execute(select(audit_log.c.action)).scalars())
    assert left == [1, 29]
    store.dispose()
