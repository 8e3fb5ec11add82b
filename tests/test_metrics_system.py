"""Resource sampling: cgroup-aware memory, samples in the store, per worker and in total."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from monitoring.clock import ManualClock
from monitoring.metrics.categories import TimeWindow
from monitoring.metrics.performance import SystemProvider
from monitoring.metrics.system import SystemSampler, read_memory, system_figures
from monitoring.store.database import Store

GIB = 1 << 30


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store(store_url)
    store.migrate()
    yield store
    store.dispose()


def write(directory: Path, **files: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name.replace("_", ".", 1)).write_text(content)


def test_cgroup_v2_limit_gives_the_working_set_over_the_limit(tmp_path: Path) -> None:
    write(tmp_path, memory_max=str(2 * GIB), memory_current=str(GIB), memory_stat=f"anon 1\ninactive_file {GIB // 4}\n")
    reading = read_memory(tmp_path, proc_cgroup="0::/\n")
    assert reading.source == "cgroup-v2"
    assert (reading.used_bytes, reading.limit_bytes) == (GIB * 3 // 4, 2 * GIB)
    assert reading.percent == 37.5


def test_cgroup_v2_of_this_process_is_found_from_proc_self_cgroup(tmp_path: Path) -> None:
    write(tmp_path / "kubepods" / "pod1", memory_max=str(GIB), memory_current=str(GIB // 2), memory_stat="")
    reading = read_memory(tmp_path, proc_cgroup="0::/kubepods/pod1\n")
    assert (reading.source, reading.percent) == ("cgroup-v2", 50.0)


def test_cgroup_v1_limit(tmp_path: Path) -> None:
    write(
        tmp_path / "memory",
        memory_limit_in_bytes=str(GIB),
        memory_usage_in_bytes=str(GIB // 2 + GIB // 8),
        memory_stat=f"cache 5\ntotal_inactive_file {GIB // 8}\n",
    )
    reading = read_memory(tmp_path, proc_cgroup="4:memory:/\n0::/\n")
    assert (reading.source, reading.used_bytes, reading.percent) == ("cgroup-v1", GIB // 2, 50.0)


@pytest.mark.parametrize(
    "files",
    [
        {"memory_max": "max", "memory_current": "12345"},  # v2 without a limit
        {"memory/memory.limit_in_bytes": "9223372036854771712", "memory/memory.usage_in_bytes": "12345"},  # v1
        {},  # no cgroup files at all (not Linux, or not mounted)
    ],
)
def test_without_a_cgroup_limit_the_host_memory_is_used(tmp_path: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = tmp_path / (name if "/" in name else name.replace("_", ".", 1))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    reading = read_memory(tmp_path, proc_cgroup="4:memory:/\n0::/\n")
    host = psutil.virtual_memory()
    assert reading.source == "host" and reading.limit_bytes == host.total
    assert 0 < reading.percent < 100


def test_a_sample_describes_this_process(store: Store, clock: ManualClock, tmp_path: Path) -> None:
    sampler = SystemSampler(store, clock, "host:1:a", cgroup_root=tmp_path)
    sampler.prime()
    deadline = time.perf_counter() + 0.2
    while time.perf_counter() < deadline:  # burn some CPU so the primed reading has something to show
        sum(range(1000))
    sample = sampler.sample()
    process = psutil.Process()
    assert sample.process_cpu_percent > 0  # primed: not psutil's meaningless first 0.0
    assert abs(sample.process_rss_bytes - process.memory_info().rss) < 50 * 1024 * 1024
    assert sample.open_fds == pytest.approx(process.num_fds(), abs=20)
    assert sample.threads >= 1 and sample.at == clock.now()
    assert sample.memory_source == "host" and sample.store_bytes >= 0


def test_figures_are_per_live_worker_and_in_total(store: Store, clock: ManualClock, tmp_path: Path) -> None:
    workers = [SystemSampler(store, clock, f"host:{i}:x", cgroup_root=tmp_path) for i in range(3)]
    for sampler in workers:
        sampler.sample()
    clock.advance(15)
    for sampler in workers[:2]:  # the third worker stopped sampling: it exited
        sampler.sample()
    clock.advance(50)
    live = [workers[0].sample(), workers[1].sample()]

    figures = system_figures(store, TimeWindow(clock.now() - 300, clock.now(), "5m"), live_within=50)
    assert [w.instance for w in figures.workers] == ["host:0:x", "host:1:x"]
    assert [w.at for w in figures.workers] == [clock.now(), clock.now()]  # the latest sample of each
    assert figures.samples_in_window == 7
    assert figures.memory_percent_max is not None and figures.memory_percent_avg is not None

    report = SystemProvider(store, lambda: {"jobs": []}, 15)(TimeWindow(clock.now() - 300, clock.now(), "5m"))
    assert report.json["process.memory.rss"] == sum(s.process_rss_bytes for s in live)
    assert report.json["process.threads"] == sum(s.threads for s in live)
    assert [w["instance"] for w in report.json["workers"]] == ["host:0:x", "host:1:x"]
    assert len(report.json["hosts"]) == 1


def test_no_samples_yet_gives_nulls_not_errors(store: Store, clock: ManualClock) -> None:
    report = SystemProvider(store, lambda: {"jobs": []}, 15)(TimeWindow(clock.now() - 60, clock.now(), "1m"))
    assert report.json["system.memory.usage"] is None and report.json["workers"] == []
    assert report.datadog == []


def test_samples_are_purged_after_48_hours(app, monitoring, clock: ManualClock) -> None:  # type: ignore[no-untyped-def]
    monitoring.scheduler.run_process("system_sample")
    clock.advance(47 * 3600)
    assert monitoring.services.purge_expired().get("system_samples") == 0
    clock.advance(2 * 3600)
    assert monitoring.services.purge_expired()["system_samples"] == 1
