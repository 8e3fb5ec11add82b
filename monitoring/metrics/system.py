"""Resource utilisation: each process samples itself (psutil) on an interval and writes the
sample to the store, so any worker can report every worker and the total.

Memory is container-aware: when the process runs under a cgroup memory limit smaller than
the host's memory, ``system.memory.usage`` is the cgroup's working set (usage less inactive
page cache, as the kubelet and ``docker stats`` count it) over that limit, because that is
the figure the OOM killer acts on; otherwise it is the host's used memory over its total.
"""
from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
from sqlalchemy import and_, func, select

from monitoring.clock import Clock
from monitoring.metrics.categories import TimeWindow
from monitoring.store.database import Store
from monitoring.store.metrics_tables import system_samples
from monitoring.store.schema import instances

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
SAMPLE_RETENTION_SECONDS = 48 * 3600.0
# cgroup v1 reports "no limit" as a huge page-aligned number rather than "max".
_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class MemoryReading:
    used_bytes: int
    limit_bytes: int
    percent: float
    source: str  # "cgroup-v2" | "cgroup-v1" | "host"


def _read_int(path: Path) -> int | None:
    try:
        raw = path.read_text().strip()
    except OSError:
        return None
    if raw == "max":
        return _UNLIMITED
    try:
        return int(raw)
    except ValueError:
        return None


def _stat_value(path: Path, name: str) -> int:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _cgroup_paths(proc_cgroup: str) -> tuple[str | None, str | None]:
    """This process's cgroup v2 path and cgroup v1 memory path, from /proc/self/cgroup."""
    v2 = v1 = None
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def _candidates(base: Path, cgroup_path: str | None) -> list[Path]:
    """The process's own cgroup directory first, then the mount's root (what a container sees)."""
    dirs = []
    if cgroup_path and cgroup_path != "/":
        dirs.append(base / cgroup_path.lstrip("/"))
    dirs.append(base)
    return dirs


def read_memory(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> MemoryReading:
    """Memory in use and the limit that matters: the cgroup's when it is below the host's memory."""
    host = psutil.virtual_memory()
    if proc_cgroup is None:
        try:
            proc_cgroup = PROC_SELF_CGROUP.read_text()
        except OSError:
            proc_cgroup = ""
    v2_path, v1_path = _cgroup_paths(proc_cgroup)
    for directory in _candidates(cgroup_root, v2_path):
        limit, usage = _read_int(directory / "memory.max"), _read_int(directory / "memory.current")
        if limit is not None and usage is not None:
            if limit < host.total:
                working = max(usage - _stat_value(directory / "memory.stat", "inactive_file"), 0)
                return MemoryReading(working, limit, round(100.0 * working / limit, 2), "cgroup-v2")
            break
    for directory in _candidates(cgroup_root / "memory", v1_path):
        limit = _read_int(directory / "memory.limit_in_bytes")
        usage = _read_int(directory / "memory.usage_in_bytes")
        if limit is not None and usage is not None:
            if limit < host.total:
                working = max(usage - _stat_value(directory / "memory.stat", "total_inactive_file"), 0)
                return MemoryReading(working, limit, round(100.0 * working / limit, 2), "cgroup-v1")
            break
    used = host.total - host.available
    return MemoryReading(used, host.total, round(host.percent, 2), "host")


@dataclass(frozen=True)
class SystemSample:
    """One process's resources at one moment, plus the host's (as that process sees them)."""

    at: float
    instance: str
    hostname: str
    pid: int
    process_cpu_percent: float
    process_rss_bytes: int
    open_fds: int
    threads: int
    system_cpu_percent: float
    memory_used_bytes: int
    memory_limit_bytes: int
    memory_percent: float
    memory_source: str
    store_bytes: int


class SystemSampler:
    """Samples this process on the scheduler's per-process job and writes the sample to the store."""

    def __init__(
        self, store: Store, clock: Clock, instance: str | Callable[[], str], cgroup_root: Path = CGROUP_ROOT
    ) -> None:
        self.store = store
        self.clock = clock
        # A callable for the scheduler's identity, which a forked worker renews.
        self._instance = instance if callable(instance) else (lambda: instance)
        self.hostname = socket.gethostname()
        self.cgroup_root = cgroup_root
        self._lock = threading.Lock()
        self._process: psutil.Process | None = None
        self._pid: int | None = None

    def _current_process(self) -> psutil.Process:
        # psutil's first cpu_percent() is 0.0 (no previous reading): prime once per process,
        # after any fork, so the first stored sample is already a real figure.
        pid = os.getpid()
        if self._process is None or self._pid != pid:
            self._process = psutil.Process(pid)
            self._process.cpu_percent(None)
            psutil.cpu_percent(None)
            self._pid = pid
        return self._process

    def prime(self) -> None:
        """Take the first CPU reading now, so the next sample covers a real interval."""
        with self._lock:
            self._current_process()

    def read(self) -> SystemSample:
        """A sample of this process and its host, without touching the store's tables."""
        with self._lock:
            process = self._current_process()
            with process.oneshot():
                cpu = process.cpu_percent(None)
                rss = process.memory_info().rss
                try:
                    fds = process.num_fds()
                except (AttributeError, psutil.Error):  # not on Windows
                    fds = 0
                threads = process.num_threads()
            system_cpu = psutil.cpu_percent(None)
        memory = read_memory(self.cgroup_root)
        try:
            store_bytes = self.store.size_bytes()
        except Exception:  # a sample without the store size beats no sample
            store_bytes = 0
        return SystemSample(
            at=self.clock.now(),
            instance=self._instance(),
            hostname=self.hostname,
            pid=os.getpid(),
            process_cpu_percent=round(cpu, 2),
            process_rss_bytes=int(rss),
            open_fds=int(fds),
            threads=int(threads),
            system_cpu_percent=round(system_cpu, 2),
            memory_used_bytes=memory.used_bytes,
            memory_limit_bytes=memory.limit_bytes,
            memory_percent=memory.percent,
            memory_source=memory.source,
            store_bytes=int(store_bytes),
        )

    def sample(self) -> SystemSample:
        """The job: read and store one sample."""
        sample = self.read()
        with self.store.write() as conn:
            conn.execute(system_samples.insert().values(**asdict(sample)))
        return sample


@dataclass(frozen=True)
class SystemFigures:
    """The latest sample of every live process, and the memory figures over the window."""

    workers: list[SystemSample]
    memory_percent_avg: float | None
    memory_percent_max: float | None
    system_cpu_percent_avg: float | None
    samples_in_window: int
    # Hosts whose processes heartbeat but have not sampled yet (a fresh start): known, not measured.
    unsampled_hosts: tuple[str, ...] = ()

    @property
    def latest(self) -> SystemSample | None:
        return max(self.workers, key=lambda s: s.at) if self.workers else None

    def host_latest(self) -> list[SystemSample]:
        """One latest sample per host (host figures are the same from every process on it)."""
        by_host: dict[str, SystemSample] = {}
        for sample in self.workers:
            if sample.hostname not in by_host or sample.at > by_host[sample.hostname].at:
                by_host[sample.hostname] = sample
        return sorted(by_host.values(), key=lambda s: s.hostname)


def system_figures(store: Store, window: TimeWindow, live_within: float) -> SystemFigures:
    """From the store: each process whose latest sample is newer than ``live_within`` seconds, and window stats.

    A process that has not sampled for ``live_within`` seconds has exited (or hangs) and is
    not counted in the totals.
    """
    t = system_samples
    live_since = window.end - live_within
    with store.read() as conn:
        latest_at = (
            select(t.c.instance, func.max(t.c.at).label("at"))
            .where(t.c.at >= live_since, t.c.at <= window.end)
            .group_by(t.c.instance)
            .subquery()
        )
        rows = conn.execute(
            select(t).join(latest_at, and_(t.c.instance == latest_at.c.instance, t.c.at == latest_at.c.at))
        ).mappings().all()
        stats = conn.execute(
            select(
                func.avg(t.c.memory_percent), func.max(t.c.memory_percent), func.avg(t.c.system_cpu_percent), func.count()
            ).where(t.c.at >= window.start, t.c.at <= window.end)
        ).one()
        i = instances.c
        running_hosts = {row[0] for row in conn.execute(
            select(i.hostname).where(i.last_seen >= live_since, i.last_seen <= window.end, i.stopped_at.is_(None))
            .distinct())}
    seen: dict[str, SystemSample] = {}
    for row in rows:
        values = {k: v for k, v in row.items() if k != "id"}
        seen[values["instance"]] = SystemSample(**values)
    workers = sorted(seen.values(), key=lambda s: (s.hostname, s.pid, s.instance))
    avg_memory, max_memory, avg_cpu, count = stats
    return SystemFigures(
        workers=workers,
        memory_percent_avg=None if avg_memory is None else round(float(avg_memory), 2),
        memory_percent_max=None if max_memory is None else round(float(max_memory), 2),
        system_cpu_percent_avg=None if avg_cpu is None else round(float(avg_cpu), 2),
        samples_in_window=int(count),
        unsampled_hosts=tuple(sorted(running_hosts - {w.hostname for w in workers})),
    )
