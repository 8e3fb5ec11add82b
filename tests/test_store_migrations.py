"""Schema changes by Alembic: the revisions reach the tables' one declaration, a store made by
the code before Alembic upgrades with nothing lost, and a second start changes nothing."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text

import monitoring.store.tables  # noqa: F401
from monitoring.store.database import Store, alembic_config
from monitoring.store.migrations import BASELINE, HEAD
from monitoring.store.schema import metadata

ROOT = Path(__file__).resolve().parents[1]
# The last commit whose store was made by the hand-rolled migrations (the parent of the commit
# that brought Alembic): the store every existing installation has.
BEFORE_ALEMBIC = "816d2da0e2281b3805b55e179e0bef0d8cbd44d5"


def test_head_names_the_newest_revision() -> None:
    scripts = ScriptDirectory.from_config(alembic_config(None))
    assert scripts.get_current_head() == HEAD
    assert scripts.get_revision(BASELINE).down_revision is None


def test_a_migrated_store_matches_the_table_declarations(store_url: str) -> None:
    store = Store(store_url)
    store.migrate()
    with store.read() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    store.dispose()
    assert differences == []


FILL_OLD_STORE = r'''
import json, sys
from monitoring.settings import Settings
from monitoring.services import build_services
from monitoring.alerts.admin import Actor
from monitoring.clock import ManualClock

clock = ManualClock()
settings = Settings.from_env({"DATABASE_URL": sys.argv[1], "VAR_DIR": sys.argv[2], "SCHEDULER_ENABLED": "false",
                              "METRICS_API_KEY": "k-metrics-0123456789", "ADMIN_API_KEY": "k-admin-0123456789"})
services = build_services(settings, clock)
for i in range(30):
    services.metrics.recorder.record("GET", "/tickets/<id>", 500 if i % 10 == 0 else 200, 0.01 * (i + 1))
services.metrics.flush()
services.business.record_payment("succeeded", 1999, "EUR", provider="stripe")
services.business.record_payment("failed", 4500, "EUR", provider="stripe", failure_code="card_declined")
services.health.register("search", lambda: False)
services.health.run_round()
services.alerting.trigger("critical", "payment system down", Actor("admin:test"))
services.audit.record("admin_action", "admin:test", "upgrade.fixture")
try:
    raise ValueError("broken order")
except ValueError as exc:
    services.errors.capture(exc, "POST /checkout")
services.errors.flush()
services.close()
'''


def _old_tree(destination: Path) -> Path:
    """The package as it was before Alembic, from git history."""
    archive = subprocess.run(["git", "archive", "--format=tar", BEFORE_ALEMBIC, "monitoring"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")
    return destination


def _counts(store: Store) -> dict[str, int]:
    """Rows per table of the tables the store has (a later revision may add tables, empty)."""
    with store.read() as conn:
        present = set(inspect(conn).get_table_names())
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in metadata.sorted_tables if table.name in present}


@pytest.mark.slow
def test_a_store_made_before_alembic_upgrades_with_nothing_lost(store_url: str, tmp_path: Path) -> None:
    if subprocess.run(["git", "cat-file", "-e", BEFORE_ALEMBIC], cwd=ROOT).returncode != 0:
        pytest.fail("the repository's history is needed: this test reads the store of an earlier commit")
    old = _old_tree(tmp_path / "old")
    subprocess.run([sys.executable, "-c", FILL_OLD_STORE, store_url, str(tmp_path / "var")], cwd=old,
                   env={**os.environ, "PYTHONPATH": str(old)}, check=True, timeout=120)
    store = Store(store_url)
    with store.read() as conn:
        tables = set(inspect(conn).get_table_names())
    assert "schema_migrations" in tables and "alembic_version" not in tables  # the old layout
    before = _counts(store)
    assert before["request_rollups"] > 0 and before["payment_events"] == 2 and before["alerts"] == 1
    assert before["error_groups"] == 1 and before["audit_log"] >= 1 and before["health_results"] >= 2

    assert store.migrate() == HEAD
    after = _counts(store)
    assert {name: count for name, count in after.items() if name in before} == before  # every row kept
    assert all(after[name] == 0 for name in set(after) - set(before))  # new tables start empty
    with store.read() as conn:
        tables = set(inspect(conn).get_table_names())
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert "schema_migrations" not in tables and version == [HEAD]

    # The figures read back the same through today's code.
    from monitoring.clock import ManualClock
    from monitoring.metrics.categories import TimeWindow
    from monitoring.metrics.rollups import RequestRollups

    clock = ManualClock()
    rollups, hour = RequestRollups(store, clock), TimeWindow(clock.now() - 3600, clock.now() + 60, "1h")
    figures = rollups.figures(hour, include_internal=True)
    assert figures.count == 30
    # Rows from before the service dimension belong to the default service.
    assert rollups.services() == ["app"] and [s.service for s in figures.per_service()] == ["app"]
    assert rollups.figures(hour, include_internal=True, service="app").count == 30
    assert rollups.figures(hour, include_internal=True, service="shop").count == 0
    from monitoring.errors.tracking import error_figures, list_error_groups

    (group,) = list_error_groups(store)
    assert group.service == "app" and list_error_groups(store, service="shop") == []
    errors = error_figures(store, hour, None, service="app")
    assert (errors.count, errors.total, errors.totals) == (1, 1, {"app": 1})
    with store.read() as conn:
        (alert,) = conn.execute(text("SELECT severity, state FROM alerts")).all()
    assert tuple(alert) == ("critical", "firing")

    assert store.migrate() == HEAD  # a second start is a no-op
    assert _counts(store) == after
    store.dispose()


def test_stores_at_head_skip_alembic(sqlite_url: str) -> None:
    """Every worker calls migrate() at start: at head it must not even load the scripts."""
    store = Store(sqlite_url)
    store.migrate()
    script = (
        "import sys\nfrom monitoring.store.database import Store\n"
        f"print(Store({sqlite_url!r}).migrate(), 'alembic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == [HEAD, "False"]
    store.dispose()


