"""APScheduler wiring: per-process jobs run in every worker; global jobs only in the lease holder.

Each gunicorn worker starts its own BackgroundScheduler after the fork (threads do not
survive fork). Global jobs check the leader lease before running and record each run in
``job_runs``, which is how operators (and the tests) see that a job ran once per interval.

Taking over. A process that does not hold the lease tries again the moment the holder's lease
expires (not one heartbeat later), and a process that has just become the leader runs every
global job at once: after the leader is killed, rule evaluation and delivery resume within
LEASE_TTL, not LEASE_TTL plus an evaluation interval.

``call_at`` runs a function once at a given moment in this process (the alerting engine's
dispatch when a group wait ends, so that an alert is sent when it is due, not at the next
evaluation after it).

While the store does not answer (``Store.availability``): no job logs a traceback for it (the
store logs the outage once); global jobs are skipped, except those added with
``during_outage=True`` (the health round), which the process that led when the outage began
keeps running, since only it can observe and keep what happened meanwhile (the others leave
it the lease until a moment after the return); a watch renews the heartbeat four times a
second (a job that exists only during the outage), so the store's return is noticed at once;
and on its return the recovery hooks run (the health rounds kept in memory are written), then
a health round here and now, then every other global job.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update

from monitoring.clock import Clock, isoformat
from monitoring.store.database import Outage, Store, is_store_unavailable
from monitoring.store.lease import LeaderLease
from monitoring.store.schema import instances, job_runs

if TYPE_CHECKING:  # APScheduler loads when the threads start: a worker with SCHEDULER_ENABLED=false never needs it
    from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)

GLOBAL = "global"
PROCESS = "process"
TAKEOVER_JOB = "lease_takeover"
TAKEOVER_MARGIN = 0.05  # seconds after the holder's expiry: its lease is surely over by then
STORE_WATCH_JOB = "store_watch"
STORE_WATCH_INTERVAL = 0.25  # seconds between attempts to reach a store that does not answer (one write)
STORE_OUTAGE_JOB = "store_outage"
STORE_RECOVERY_JOB = "store_recovery"
# After an outage, a process that did not lead leaves the lease this long to the one that did,
# so that the rounds it kept meanwhile are written before anyone runs a newer one.
RECOVERY_LEASE_GRACE = 1.0


@dataclass(frozen=True)
class Instance:
    """This process, as other processes see it in the store."""

    instance_id: str
    zone: str
    hostname: str
    pid: int

    @classmethod
    def current(cls, zone: str) -> Instance:
        hostname = socket.gethostname()
        pid = os.getpid()
        return cls(f"{hostname}:{pid}:{uuid.uuid4().hex[:6]}", zone, hostname, pid)


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[[], object]
    interval: float
    scope: str  # GLOBAL or PROCESS
    during_outage: bool = False  # a global job the last known leader runs while the store is out


class Scheduler:
    """Holds the job list; ``start`` runs them on APScheduler threads in this process.

    Fork-safe: the instance identity and the lease holder belong to the process that runs the
    jobs, so under ``gunicorn --preload`` (the app built in the master, then forked) every
    worker gets its own identity the moment it starts its threads, and nothing started in the
    master is assumed to survive the fork.
    """

    def __init__(self, store: Store, clock: Clock, lease_ttl: float, zone: str) -> None:
        self.store = store
        self.clock = clock
        self.lease_ttl = lease_ttl
        self.zone = zone
        self.jobs: dict[str, Job] = {}
        self._start_hooks: list[Callable[[], object]] = []
        self._scheduler: BackgroundScheduler | None = None
        self._pid: int | None = None
        self._lock = threading.RLock()  # call_at may run inside start() (its first heartbeat)
        self._identity_lock = threading.Lock()  # its own: start() holds _lock while it heartbeats
        self._instance = Instance.current(zone)
        self._lease = LeaderLease(store, self._instance.instance_id, clock, lease_ttl)
        self._leading = False
        self._recovery_hooks: list[Callable[[], object]] = []
        self._recovered_at: float | None = None  # time.monotonic() of the store's last return
        store.availability.on_outage.append(self._store_went_away)
        store.availability.on_recovery.append(self._store_came_back)

    @property
    def instance(self) -> Instance:
        """This process as the store knows it (a forked child gets an identity of its own)."""
        if self._instance.pid != os.getpid():
            with self._identity_lock:
                if self._instance.pid != os.getpid():
                    self._instance = Instance.current(self.zone)
                    self._lease = LeaderLease(self.store, self._instance.instance_id, self.clock, self.lease_ttl)
                    self._leading = False
        return self._instance

    @property
    def instance_id(self) -> str:
        return self.instance.instance_id

    @property
    def lease(self) -> LeaderLease:
        self.instance  # noqa: B018  # a forked child first takes an identity (and lease holder) of its own
        return self._lease

    def add_global(self, name: str, func: Callable[[], object], interval: float, *, during_outage: bool = False) -> None:
        """A job that must run once per interval across all workers and hosts. ``during_outage``: the
        process that led when the store stopped answering keeps running it meanwhile (unrecorded)."""
        self.jobs[name] = Job(name, func, interval, GLOBAL, during_outage)

    def add_process(self, name: str, func: Callable[[], object], interval: float) -> None:
        """A job that runs in every process (flushing its own buffers, sampling itself)."""
        self.jobs[name] = Job(name, func, interval, PROCESS)

    def on_start(self, hook: Callable[[], object]) -> None:
        """Run ``hook`` in each process that starts the threads, before the first job."""
        self._start_hooks.append(hook)

    def on_store_recovery(self, hook: Callable[[], object]) -> None:
        """Run ``hook`` in this process when the store answers again, before the global jobs run."""
        self._recovery_hooks.append(hook)

    # --- running ---------------------------------------------------------------------------

    def run_global(self, name: str) -> bool:
        """Run a global job now if this process is the leader; record the run. True if it ran.

        While the store is out, only ``during_outage`` jobs run, in the process that led when it
        went (its lease cannot be renewed meanwhile), and no run is recorded.
        """
        job = self.jobs[name]
        if self.store.availability.down:
            if not (job.during_outage and (self._leading or self.lease.held())):
                return False
            self._call(job)
            return True
        if not self.lease.held():
            return False
        started = self.clock.now()
        ok, detail = True, ""
        try:
            job.func()
        except Exception as exc:  # a failing job must not kill the scheduler thread
            ok, detail = False, f"{type(exc).__name__}: {exc}"[:500]
            if not self.store.availability.failed(exc):
                log.exception("global job %s failed", name)
        try:
            with self.store.write() as conn:
                conn.execute(
                    job_runs.insert().values(
                        job=name,
                        holder=self.instance_id,
                        started_at=started,
                        finished_at=self.clock.now(),
                        ok=int(ok),
                        detail=detail,
                    )
                )
        except Exception as exc:
            if not is_store_unavailable(exc):
                raise
        return True

    def _call(self, job: Job) -> None:
        """Run a job; a failure is logged with its traceback unless it is the store's outage (logged once)."""
        try:
            job.func()
        except Exception as exc:  # a failing job must not kill the scheduler thread
            if not self.store.availability.failed(exc):
                log.exception("job %s failed", job.name)

    def run_process(self, name: str) -> None:
        self._call(self.jobs[name])

    def heartbeat(self) -> None:
        """Renew or take the lease, and say in the store that this instance is alive."""
        held = False
        try:
            if self._leaves_lease_to_outage_leader():
                held = False
            else:
                held = self.lease.try_acquire()
        except Exception as exc:
            if self.store.availability.failed(exc):
                # Nobody can renew meanwhile: whoever led keeps observing (run_global), and the
                # lease is settled again when the store returns.
                return
            log.exception("lease renewal failed")
        if held and not self._leading:
            self._run_global_jobs_now()
        self._leading = held
        if not held:
            self._watch_lease()
        now = self.clock.now()
        row = {
            "instance_id": self.instance.instance_id,
            "zone": self.zone,
            "hostname": self.instance.hostname,
            "pid": self.instance.pid,
            "started_at": now,
            "last_seen": now,
        }
        try:
            with self.store.write() as conn:
                conn.execute(
                    self.store.insert(instances)
                    .values(**row)
                    .on_conflict_do_update(index_elements=["instance_id"],
                                           set_={"last_seen": now, "zone": self.zone, "stopped_at": None})
                )
        except Exception as exc:
            if not self.store.availability.failed(exc):
                raise

    # --- the store's outages ---------------------------------------------------------------------

    def _leaves_lease_to_outage_leader(self) -> bool:
        """A follower does not take the lease while the store is out, nor just after it returns."""
        if self._leading:
            return False
        if self.store.availability.down:
            return True
        recovered = self._recovered_at
        return recovered is not None and time.monotonic() - recovered < RECOVERY_LEASE_GRACE

    def _watch_store(self) -> None:
        """While the store is out: try it (a real write, the heartbeat) so that its return is seen at once."""
        if self.store.availability.down:
            self.heartbeat()
        else:  # it answers (its recovery already stopped the watch, unless a new outage raced it)
            self._stop_watch()

    def _start_watch(self) -> None:
        """The watch runs only while the store is out: four runs a second of an idle job would cost
        every worker a scheduler wake-up and a pool thread's each time, outage or not."""
        with self._lock:
            scheduler = self._scheduler
            if scheduler is None or self._pid != os.getpid():
                return  # start() adds it if the store is still out by then
            scheduler.add_job(self._watch_store, "interval", seconds=STORE_WATCH_INTERVAL, id=STORE_WATCH_JOB,
                              replace_existing=True)

    def _stop_watch(self) -> None:
        with self._lock:
            scheduler = self._scheduler
            if scheduler is None or self._pid != os.getpid() or self.store.availability.down:
                return
            if scheduler.get_job(STORE_WATCH_JOB) is not None:
                scheduler.remove_job(STORE_WATCH_JOB)

    def _store_went_away(self, _outage: Outage) -> None:
        # A round at once records the moment the outage began (kept in memory until the store returns).
        self.call_at(STORE_OUTAGE_JOB, lambda: self._run_global_jobs_now(during_outage_only=True), self.clock.now())
        self._start_watch()

    def _store_came_back(self, _outage: Outage) -> None:
        self._recovered_at = time.monotonic()
        self.call_at(STORE_RECOVERY_JOB, self.after_store_recovery, self.clock.now())
        self._stop_watch()

    def after_store_recovery(self) -> None:
        """The store answers again: write what was kept meanwhile, settle the lease, then run the
        ``during_outage`` jobs here and now (a health round: health is right at once) and every
        other global job at once on its own thread."""
        for hook in self._recovery_hooks:
            try:
                hook()
            except Exception as exc:
                if not self.store.availability.failed(exc):
                    log.exception("store recovery hook failed")
        was_leading = self._leading
        self.heartbeat()  # a process that takes the lease now runs every global job at once by itself
        if not (was_leading and self._leading):
            return
        for job in list(self.jobs.values()):
            if job.scope == GLOBAL and job.during_outage:
                self.run_global(job.name)
        self._run_global_jobs_now(skip_during_outage=True)

    # --- taking over, one-shot runs ------------------------------------------------------------

    def _run_global_jobs_now(self, during_outage_only: bool = False, skip_during_outage: bool = False) -> None:
        """A new leader does at once what the old one may have left: evaluate, deliver, check."""
        scheduler = self._scheduler
        if scheduler is None or self._pid != os.getpid():
            return  # start() runs them at once anyway
        now = datetime.now(UTC)
        for job in self.jobs.values():
            if job.scope != GLOBAL or (during_outage_only and not job.during_outage) \
                    or (skip_during_outage and job.during_outage):
                continue
            try:
                scheduler.modify_job(job.name, next_run_time=now)
            except Exception:  # the job's own interval still runs it
                log.exception("could not run %s at once", job.name)

    def _watch_lease(self) -> None:
        """Try again the moment the holder's lease expires, rather than up to a heartbeat later."""
        try:
            holder = self.lease.current()
        except Exception as exc:
            if not self.store.availability.failed(exc):
                log.exception("could not read the lease")
            return
        now = self.clock.now()
        if holder is None or holder.holder == self.instance.instance_id:
            return
        expires = max(holder.expires_at, now) + TAKEOVER_MARGIN
        recovered = self._recovered_at
        if recovered is not None:  # not before the grace left to the outage's leader is over
            expires = max(expires, now + RECOVERY_LEASE_GRACE - (time.monotonic() - recovered) + TAKEOVER_MARGIN)
        if expires - now < self.lease_ttl / 3:  # sooner than the next heartbeat
            self.call_at(TAKEOVER_JOB, self.heartbeat, expires)

    def call_at(self, name: str, func: Callable[[], object], at: float) -> bool:
        """Run ``func`` once at ``at`` (epoch seconds; now if past) in this process. An earlier
        request under the same name stands; a later one replaces nothing. False when the
        scheduler does not run here (the caller's regular job covers it)."""
        with self._lock:
            scheduler = self._scheduler
            if scheduler is None or self._pid != os.getpid():
                return False
            when = datetime.fromtimestamp(max(at, self.clock.now()), UTC)
            existing = scheduler.get_job(name)
            if existing is not None and existing.next_run_time is not None and existing.next_run_time <= when:
                return True
            scheduler.add_job(self._run_once, "date", run_date=when, args=[name, func], id=name,
                              replace_existing=True, misfire_grace_time=None)
        return True

    def _run_once(self, name: str, func: Callable[[], object]) -> None:
        try:
            func()
        except Exception as exc:
            if not self.store.availability.failed(exc):
                log.exception("one-shot job %s failed", name)

    def mark_stopped(self) -> None:
        """Say in the store that this instance stopped on purpose: the zones stop listing it at once
        (an instance that vanishes without this is down once its heartbeat is LEASE_TTL old)."""
        now = self.clock.now()
        with self.store.write() as conn:
            conn.execute(update(instances).where(instances.c.instance_id == self.instance_id)
                         .values(stopped_at=now, last_seen=now))

    def start(self) -> None:
        """Start the scheduler threads in this process (after the fork: threads do not survive it)."""
        with self._lock:
            if self._scheduler is not None and self._pid == os.getpid():
                return
            # Inherited from a parent that had started: those threads are gone, forget them.
            self._scheduler = None
            for hook in self._start_hooks:
                try:
                    hook()
                except Exception:
                    log.exception("scheduler start hook failed")
            from apscheduler.schedulers.background import BackgroundScheduler

            scheduler = BackgroundScheduler(daemon=True, job_defaults={"coalesce": True, "max_instances": 1})
            scheduler.add_job(self.heartbeat, "interval", seconds=self.lease_ttl / 3, id="heartbeat")
            started = datetime.now(UTC)
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
            try:
                self.heartbeat()  # take the lease now if it is free, rather than one period later
            except Exception as exc:
                if not self.store.availability.failed(exc):
                    log.warning("first heartbeat failed; the scheduler retries on its interval", exc_info=True)
            scheduler.start()
            self._scheduler = scheduler
            self._pid = os.getpid()
            if self.store.availability.down:  # out since before the start: its outage found no scheduler
                self._start_watch()
            if not self._leading:
                self._watch_lease()

    def shutdown(self, final_jobs: list[Callable[[], object]] | None = None) -> None:
        """Stop the threads, run ``final_jobs`` (the last flushes), release the lease, mark this instance stopped.

        The threads and the lease only in the process that started them: a forked child that
        never started its own has no threads to stop and must not release a lease its parent
        may hold. The final jobs run in any process: they flush what this process recorded.
        """
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
            mine = scheduler is not None and self._pid == os.getpid()
        if mine:
            assert scheduler is not None
            scheduler.shutdown(wait=True)
        for job in final_jobs or ():
            try:
                job()
            except Exception as exc:
                if not self.store.availability.failed(exc):
                    log.exception("final job at shutdown failed")
        if mine:
            try:
                if self.lease.held():
                    self.lease.release()
            except Exception as exc:
                if not self.store.availability.failed(exc):
                    log.exception("lease release failed")
            try:
                self.mark_stopped()
            except Exception as exc:  # the store is gone: the heartbeat times out instead
                if not self.store.availability.failed(exc):
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
