"""APScheduler wiring: per-process jobs run in every worker; global jobs only in the lease holder.

Each gunicorn worker starts its own BackgroundScheduler after the fork (threads do not
survive fork). Global jobs check the leader lease before running and record each run in
``job_runs``, which is how operators (and the tests) see that a job ran once per interval.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import func, select, update

from monitoring.clock import Clock, isoformat
from monitoring.store.database import Store
from monitoring.store.lease import LeaderLease
from monitoring.store.schema import instances, job_runs

log = logging.getLogger(__name__)

GLOBAL = "global"
PROCESS = "process"


@dataclass(frozen=True)
class Instance:
    """This process, as other processes see it in the store."""

    instance_id: str
    zone: str
    hostname: str
    pid: int

    @classmethod
    def current(cls, zone: str) -> "Instance":
        hostname = socket.gethostname()
        pid = os.getpid()
        return cls(f"{hostname}:{pid}:{uuid.uuid4().hex[:6]}", zone, hostname, pid)


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[[], object]
    interval: float
    scope: str  # GLOBAL or PROCESS


class Scheduler:
    """Holds the job list; ``start`` runs them on APScheduler threads in this process."""

    def __init__(self, store: Store, clock: Clock, lease_ttl: float, zone: str) -> None:
        self.store = store
        self.clock = clock
        self.lease_ttl = lease_ttl
        self.zone = zone
        self.jobs: dict[str, Job] = {}
        self._scheduler: BackgroundScheduler | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self.instance = Instance.current(zone)
        self.lease = LeaderLease(store, self.instance.instance_id, clock, lease_ttl)

    def add_global(self, name: str, func: Callable[[], object], interval: float) -> None:
        """A job that must run once per interval across all workers and hosts."""
        self.jobs[name] = Job(name, func, interval, GLOBAL)

    def add_process(self, name: str, func: Callable[[], object], interval: float) -> None:
        """A job that runs in every process (flushing its own buffers, sampling itself)."""
        self.jobs[name] = Job(name, func, interval, PROCESS)

    # --- running ---------------------------------------------------------------------------

    def run_global(self, name: str) -> bool:
        """Run a global job now if this process is the leader; record the run. True if it ran."""
        job = self.jobs[name]
        if not self.lease.held():
            return False
        started = self.clock.now()
        ok, detail = True, ""
        try:
            job.func()
        except Exception as exc:  # a failing job must not kill the scheduler thread
            ok, detail = False, f"{type(exc).__name__}: {exc}"[:500]
            log.exception("global job %s failed", name)
        with self.store.write() as conn:
            conn.execute(
                job_runs.insert().values(
                    job=name,
                    holder=self.instance.instance_id,
                    started_at=started,
                    finished_at=self.clock.now(),
                    ok=int(ok),
                    detail=detail,
                )
            )
        return True

    def run_process(self, name: str) -> None:
        try:
            self.jobs[name].func()
        except Exception:
            log.exception("job %s failed", name)

    def heartbeat(self) -> None:
        """Renew or take the lease, and say in the store that this instance is alive."""
        try:
            self.lease.try_acquire()
        except Exception:
            log.exception("lease renewal failed")
        now = self.clock.now()
        row = {
            "instance_id": self.instance.instance_id,
            "zone": self.zone,
            "hostname": self.instance.hostname,
            "pid": self.instance.pid,
            "started_at": now,
            "last_seen": now,
        }
        with self.store.write() as conn:
            conn.execute(
                self.store.insert(instances)
                .values(**row)
                .on_conflict_do_update(index_elements=["instance_id"],
                                       set_={"last_seen": now, "zone": self.zone, "stopped_at": None})
            )

    def mark_stopped(self) -> None:
        """Say in the store that this instance stopped on purpose: the zones stop listing it at once
        (an instance that vanishes without this is down once its heartbeat is LEASE_TTL old)."""
        now = self.clock.now()
        with self.store.write() as conn:
            conn.execute(update(instances).where(instances.c.instance_id == self.instance.instance_id)
                         .values(stopped_at=now, last_seen=now))

    def start(self) -> None:
        """Start the scheduler threads in this process (call after fork)."""
        with self._lock:
            if self._scheduler is not None and self._pid == os.getpid():
                return
            scheduler = BackgroundScheduler(daemon=True, job_defaults={"coalesce": True, "max_instances": 1})
            scheduler.add_job(self.heartbeat, "interval", seconds=self.lease_ttl / 3, id="heartbeat")
            started = datetime.now(timezone.utc)
            for job in self.jobs.values():
                target = self.run_global if job.scope == GLOBAL else self.run_process
                options = {}
                if job.scope == GLOBAL:
                    # Global jobs run once at start too (in the leader): health results exist
                    # from the first seconds, not one HEALTH_CHECK_INTERVAL later. (Passing
                    # next_run_time=None instead would add the job paused.)
                    options["next_run_time"] = started
                scheduler.add_job(
                    target,
                    "interval",
                    seconds=job.interval,
                    args=[job.name],
                    id=job.name,
                    misfire_grace_time=max(1, int(job.interval)),
                    **options,
                )
            self.heartbeat()  # take the lease now if it is free, rather than one period later
            scheduler.start()
            self._scheduler = scheduler
            self._pid = os.getpid()

    def shutdown(self) -> None:
        """Stop the threads, run the process jobs one last time (final flush), release the lease, and
        mark this instance stopped."""
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
        if scheduler is None or self._pid != os.getpid():
            return
        scheduler.shutdown(wait=True)
        for job in self.jobs.values():
            if job.scope == PROCESS:
                self.run_process(job.name)
        try:
            if self.lease.held():
                self.lease.release()
        except Exception:
            log.exception("lease release failed")
        try:
            self.mark_stopped()
        except Exception:  # the store is gone: the heartbeat times out instead
            log.exception("could not mark this instance stopped")

    @property
    def running(self) -> bool:
        return self._scheduler is not None and self._pid == os.getpid()

    def describe(self) -> dict[str, object]:
        """Who leads, which jobs exist and when each global job last ran: for the system metrics.

        Facts from the store only, never about the answering process (its id, whether it leads):
        every worker answers the same.
        """
        holder = self.lease.current()
        with self.store.read() as conn:
            last_runs = {
                row.job: row.last
                for row in conn.execute(
                    select(job_runs.c.job, func.max(job_runs.c.started_at).label("last")).group_by(job_runs.c.job)
                )
            }
        return {
            "leader": {
                "holder": holder.holder,
                "since": isoformat(holder.acquired_at),
                "expiresAt": isoformat(holder.expires_at),
                "generation": holder.generation,
            }
            if holder and holder.expires_at > self.clock.now()
            else None,
            "jobs": [
                {
                    "name": job.name,
                    "scope": job.scope,
                    "intervalSeconds": job.interval,
                    "lastRun": isoformat(last_runs.get(job.name)) if job.scope == GLOBAL else None,
                }
                for job in sorted(self.jobs.values(), key=lambda j: j.name)
            ],
        }
