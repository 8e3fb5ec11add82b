"""The composition root: every feature of one Centinela, built in one place, in one order.

``build_services(settings, clock)`` assembles the store, keys, audit log and scheduler, then
each feature from the parts it needs, and returns them in a typed ``Services`` container.
Nothing here imports Flask: a test (or a script, or a worker process) builds the alerting
engine, the health service or the uptime service exactly as the HTTP layer does, without an
app. The Flask extension (``monitoring.extension.Monitoring``) calls this once per app and
its blueprints only read from the container, so two apps in one process keep their own
state.

Each feature contributes its jobs to the scheduler, its retention rules and its metric
category here, where the order between features is visible: health before uptime (uptime
folds the health rounds), notifications before alerting (the engine enqueues into the
outbox), everything before the dashboard (which reads them all).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from monitoring.alerts.engine import AlertEngine
from monitoring.alerts.inhibition import Inhibitions
from monitoring.alerts.policy import AlertPolicy
from monitoring.alerts.report import AlertsProvider
from monitoring.alerts.rules import RuleBook
from monitoring.alerts.silences import Silences
from monitoring.business import BusinessEvents
from monitoring.business.events import BusinessRecorder, UserIdHasher
from monitoring.business.figures import BusinessProvider
from monitoring.clock import Clock, SystemClock
from monitoring.dashboard.data import DashboardSources, sources_of
from monitoring.dashboard.session import DashboardSessions
from monitoring.dependencies import check_rate_limit_storage, check_store
from monitoring.durations import DAY
from monitoring.errors.sentry import SentryReporter
from monitoring.errors.tracking import ErrorsProvider, ErrorTracker
from monitoring.health.results import ServiceHealth
from monitoring.health.service import HealthService
from monitoring.health.status import DEGRADED
from monitoring.ingest.cardinality import CardinalityBounds, CardinalityGuard
from monitoring.ingest.cumulative import CumulativeTracker
from monitoring.ingest.sink import IngestSink, ShedGate
from monitoring.metrics.categories import CategoryProvider
from monitoring.metrics.performance import PerformanceProvider, SystemProvider
from monitoring.metrics.recorder import RequestRecorder
from monitoring.metrics.rollups import RequestRollups, flush_recorder
from monitoring.metrics.system import SAMPLE_RETENTION_SECONDS, SystemSampler
from monitoring.notify.figures import delivery_report
from monitoring.notify.outbox import Outbox
from monitoring.scheduler import Scheduler
from monitoring.security.audit import AuditLog
from monitoring.security.keys import KeyRing
from monitoring.security.rate_limits import RateLimits
from monitoring.settings import Settings
from monitoring.store.alerts_tables import alert_events, alert_silences, alerts
from monitoring.store.business_tables import payment_events, ticket_events, user_activity_events
from monitoring.store.database import Store
from monitoring.store.errors_tables import error_counts, error_groups
from monitoring.store.health_tables import health_events, health_results
from monitoring.store.metrics_tables import DEFAULT_SERVICE, system_samples
from monitoring.store.notify_tables import notify_deliveries
from monitoring.store.retention import RetentionRule, purge_expired
from monitoring.store.schema import audit_log, dashboard_sessions, instances, job_runs
from monitoring.store.uptime_tables import incidents, maintenance_windows, uptime_segments
from monitoring.uptime.service import UptimeService

# Job names, as job_runs and the system metrics show them.
HEALTH_JOB = "health_checks"
DELIVERY_JOB = "notify_delivery"
EVALUATION_JOB = "alert_evaluation"
DISPATCH_TIMER = "alert_dispatch"
ROUND_EVALUATION = "alert_evaluation_after_health_round"
DOWNSAMPLE_JOB = "metrics_downsample"
RETENTION_JOB = "retention"
FLUSH_JOB = "metrics_flush"
ERRORS_FLUSH_JOB = "errors_flush"
SAMPLE_JOB = "system_sample"

# Leader-only: dropping old minute rows needs doing once, not once per worker.
DOWNSAMPLE_INTERVAL = 600.0
# Instances silent this long are dead processes: the zones stop listing them.
INSTANCE_RETENTION_SECONDS = 7 * DAY


@dataclass
class Metrics:
    """Request metrics (recorded in this process, flushed to the rollups) and resource samples."""

    recorder: RequestRecorder
    rollups: RequestRollups
    sampler: SystemSampler

    def flush(self) -> int:
        """Write this process's buffered requests to the store (the per-process flush job)."""
        return flush_recorder(self.recorder, self.rollups)


@dataclass
class Ingest:
    """Telemetry from apps in any language (OTLP, Sentry protocol): one guard, one tracker, one sink per app."""

    projects: dict[str, str]  # SENTRY_PROJECTS: project -> service
    guard: CardinalityGuard
    cumulative: CumulativeTracker
    sink: IngestSink
    gate: ShedGate


@dataclass
class Services:
    """One Centinela: its parts and features, built by ``build_services``."""

    settings: Settings
    clock: Clock
    store: Store
    keyring: KeyRing
    audit: AuditLog
    scheduler: Scheduler
    limits: RateLimits
    metrics: Metrics
    health: HealthService
    uptime: UptimeService
    errors: ErrorTracker
    sentry: SentryReporter
    business: BusinessEvents
    outbox: Outbox
    alerting: AlertEngine
    dashboard: DashboardSources
    sessions: DashboardSessions
    ingest: Ingest
    # Category name -> provider: what the metrics export, the alert figures and the dashboard read.
    categories: dict[str, CategoryProvider] = field(default_factory=dict)
    retention: list[RetentionRule] = field(default_factory=list)
    # Run at shutdown after the scheduler stops (final flushes), in order.
    shutdown_hooks: list[Callable[[], object]] = field(default_factory=list)

    @property
    def service_name(self) -> str:
        """The service the embedded app's requests and errors count under (SERVICE_NAME)."""
        return self.settings.service_name or DEFAULT_SERVICE

    def purge_expired(self) -> dict[str, int]:
        """The retention job: delete what each kind of data has outlived."""
        return purge_expired(self.store, self.retention, self.clock.now())

    def close(self) -> None:
        """Stop the scheduler (final flush, lease released) and close the store's connections."""
        self.scheduler.shutdown(final_jobs=self.shutdown_hooks)
        self.store.dispose()


RATE_LIMIT_SERVICE = "ratelimit"


def rate_limit_health(limits: RateLimits, now: float) -> ServiceHealth | None:
    """The rate-limit storage as a health dependency, listed while it fails: degraded (requests pass
    unlimited), never critical."""
    if not limits.failing:
        return None
    return ServiceHealth(RATE_LIMIT_SERVICE, DEGRADED, False, "datastore", None, now,
                         "rate-limit storage does not answer: requests are not limited", None)


def announce_generated_key(role: str, key_id: str, path: str) -> None:
    """Said once, when a key is first generated: where it is, never its value (logs outlive secrets)."""
    import sys

    print(f"centinela: generated the {role} API key {key_id} (in {path}, mode 0600)", file=sys.stderr, flush=True)


def seed_cardinality_guard(guard: CardinalityGuard, rollups: RequestRollups, own_service: str) -> None:
    """Admit the services and routes the store already holds, in one order, before any new one:
    every worker (and host) then keeps the same names at the bound, and a restart keeps them."""
    try:
        known = rollups.routes_by_service()
    except Exception:  # a store down at start-up: the guard fills as telemetry arrives
        import logging

        logging.getLogger(__name__).warning("could not read known services to seed the ingest bounds", exc_info=True)
        return
    for service in sorted(known):
        if service == own_service:
            continue  # the embedded app's own requests are not ingested: they take no slot
        for route in sorted(known[service]):
            guard.admit(service, route)


def build_services(
    settings: Settings,
    clock: Clock | None = None,
    *,
    announce_key: Callable[[str, str, str], None] = announce_generated_key,
    default_release: str = "",
) -> Services:
    """Build every feature of one Centinela from its settings (and an injected clock in tests).

    ``default_release`` is the Sentry release when SENTRY_RELEASE is unset: the embedding app's
    own version, so its errors are never reported as Centinela's.
    """
    clock = clock or SystemClock()
    store = Store(settings.database_url, clock)
    # The store and a shared rate-limit storage must answer: DependencyUnavailable, one line, if not.
    check_store(store)
    store.migrate()
    limits = RateLimits.from_settings(settings.ratelimit)
    check_rate_limit_storage(limits, settings.ratelimit_storage_uri, settings.ratelimit_fail_open)
    keyring = KeyRing.load(settings.metrics_api_key, settings.admin_api_key, settings.var_dir, announce_key,
                           ingest_key=settings.ingest_api_key)
    audit = AuditLog(store, clock)
    scheduler = Scheduler(store, clock, settings.lease_ttl, settings.zone)
    categories: dict[str, CategoryProvider] = {}
    retention: list[RetentionRule] = [
        RetentionRule(audit_log, audit_log.c.at, settings.audit_retention_days * DAY),
        RetentionRule(job_runs, job_runs.c.started_at, settings.metrics_retention_days * DAY),
        RetentionRule(instances, instances.c.last_seen, INSTANCE_RETENTION_SECONDS),
        RetentionRule(dashboard_sessions, dashboard_sessions.c.expires_at, DAY),
    ]
    shutdown_hooks: list[Callable[[], object]] = []

    # --- request metrics and resource samples ------------------------------------------------
    metrics_retention = settings.metrics_retention_days * DAY
    metrics = Metrics(
        recorder=RequestRecorder(clock),
        rollups=RequestRollups(store, clock, retention_seconds=metrics_retention),
        sampler=SystemSampler(store, clock, lambda: scheduler.instance_id),
    )
    scheduler.add_process(FLUSH_JOB, metrics.flush, settings.metrics_flush_interval)
    shutdown_hooks.append(metrics.flush)
    # Drops minute rows after 48 h and every row after METRICS_RETENTION_DAYS (the rollups'
    # composite key does not fit the generic retention rule).
    scheduler.add_global(DOWNSAMPLE_JOB, metrics.rollups.downsample, DOWNSAMPLE_INTERVAL)
    scheduler.add_process(SAMPLE_JOB, metrics.sampler.sample, settings.system_sample_interval)
    scheduler.on_start(metrics.sampler.prime)  # psutil's first cpu_percent() is 0.0: prime it per process
    retention.append(RetentionRule(system_samples, system_samples.c.at, SAMPLE_RETENTION_SECONDS))
    categories["system"] = SystemProvider(store, scheduler.describe, settings.system_sample_interval)
    service_name = settings.service_name or DEFAULT_SERVICE
    categories["performance"] = PerformanceProvider(metrics.rollups, service_name)

    # --- health checks and circuit breakers ------------------------------------------------
    health = HealthService(store, clock, settings)
    # While the store is out, the leader of the moment it went keeps checking and keeps the rounds
    # in memory; they are written when it returns (then a round runs at once).
    scheduler.add_global(HEALTH_JOB, health.run_exclusive_round, settings.health_check_interval, during_outage=True)
    scheduler.on_store_recovery(health.save_pending)
    health.live_dependencies.append(lambda now: rate_limit_health(limits, now))
    retention += [
        RetentionRule(health_results, health_results.c.checked_at, metrics_retention),
        RetentionRule(health_events, health_events.c.at, settings.incident_retention_days * DAY),
    ]
    categories["health"] = health.report

    # --- uptime, incidents, SLA, maintenance: folds every health round ----------------------
    uptime = UptimeService(store, clock, settings, lambda: health.snapshot().status)
    health.round_listeners.append(uptime.on_health_round)
    incident_retention = settings.incident_retention_days * DAY
    retention += [
        RetentionRule(incidents, incidents.c.ended_at, incident_retention),  # an open incident is kept
        RetentionRule(uptime_segments, uptime_segments.c.last_at, incident_retention),
        RetentionRule(maintenance_windows, maintenance_windows.c.ends_at, incident_retention),
    ]
    categories["uptime"] = uptime.category_report

    # --- error tracking (and Sentry, when SENTRY_DSN is set) --------------------------------
    errors = ErrorTracker(store, clock)
    scheduler.add_process(ERRORS_FLUSH_JOB, errors.flush, settings.metrics_flush_interval)
    shutdown_hooks.append(errors.flush)
    retention += [
        RetentionRule(error_groups, error_groups.c.last_seen, metrics_retention),
        RetentionRule(error_counts, error_counts.c.bucket_start, metrics_retention),
    ]
    categories["errors"] = ErrorsProvider(store, clock, service_name)
    sentry = SentryReporter.from_settings(settings.sentry, default_release)

    # --- ingest: OTLP and Sentry-protocol telemetry into the same recorder and error groups --
    guard = CardinalityGuard(CardinalityBounds(settings.ingest_max_services, settings.ingest_max_routes))
    seed_cardinality_guard(guard, metrics.rollups, service_name)
    ingest = Ingest(
        projects=dict(settings.sentry_projects),
        guard=guard,
        # Cumulative OTLP points become deltas here, per process (see its docstring).
        cumulative=CumulativeTracker(clock),
        sink=IngestSink(metrics.recorder, errors, guard, clock),
        gate=ShedGate(),
    )

    # --- business events --------------------------------------------------------------------
    business = BusinessEvents(
        BusinessRecorder(
            store, clock, UserIdHasher.load(settings.user_id_hash_key, settings.var_dir),
            max_age_seconds=metrics_retention,
        )
    )
    retention += [RetentionRule(t, t.c.at, metrics_retention) for t in (payment_events, ticket_events,
                                                                        user_activity_events)]
    categories["business"] = BusinessProvider(store, settings.revenue_currencies)

    # --- notifications: the outbox and its delivery --------------------------------------
    outbox = Outbox.from_settings(store, clock, settings)
    if outbox.prompt is not None:  # let the sends in flight finish at worker exit (each is bounded)
        shutdown_hooks.append(lambda: outbox.prompt.shutdown())  # type: ignore[union-attr]
    scheduler.add_global(
        DELIVERY_JOB, lambda: outbox.deliver_due(still_leader=scheduler.lease.held), settings.notify_delivery_interval
    )
    alert_retention = settings.alert_retention_days * DAY
    retention += [
        # Kept like alert history, and never deleted while it may still be retried.
        RetentionRule(notify_deliveries, notify_deliveries.c.created_at,
                      max(alert_retention, settings.notify_give_up_after + DAY)),
        RetentionRule(alerts, alerts.c.resolved_at, alert_retention),  # open alerts are kept
        RetentionRule(alert_events, alert_events.c.at, alert_retention),
        RetentionRule(alert_silences, alert_silences.c.ends_at, alert_retention),
    ]

    # --- alerting: rules over every category above, into the outbox -----------------------
    alerting = AlertEngine(
        store, clock, audit, outbox,
        policy=AlertPolicy.from_settings(settings.alerts),
        # The seed's rules, and one per dependency the health checks watch (derived rules).
        rulebook=RuleBook.from_settings(store, clock, audit, settings.alerts, health.checks),
        silences=Silences(store, clock, audit),
        inhibitions=Inhibitions(store, clock, audit),
        maintenance=uptime.calendar,
        # The dict itself: the alerts category added below is read too.
        categories=categories,
        health_snapshot=health.snapshot,
        memory_live_within=3 * settings.system_sample_interval + 5,
        external_url=settings.notify_external_url,
        leading=scheduler.lease.held,
    )
    # A dispatch at the moment something falls due (a group wait ends), in this process.
    alerting.wake_at = lambda at: scheduler.call_at(DISPATCH_TIMER, alerting.dispatch_due, at)
    scheduler.add_global(EVALUATION_JOB, alerting.evaluate, settings.alert_evaluation_interval)
    # A round that sees Stripe fail is evaluated at once, not an evaluation interval later.
    health.round_listeners.append(lambda _results: scheduler.call_at(
        ROUND_EVALUATION, lambda: scheduler.run_global(EVALUATION_JOB), clock.now()))
    categories["alerts"] = AlertsProvider(store, lambda window: delivery_report(outbox, window))

    services = Services(
        settings=settings,
        clock=clock,
        store=store,
        keyring=keyring,
        audit=audit,
        scheduler=scheduler,
        limits=limits,
        metrics=metrics,
        health=health,
        uptime=uptime,
        errors=errors,
        sentry=sentry,
        business=business,
        outbox=outbox,
        alerting=alerting,
        dashboard=sources_of(store, clock, categories, metrics.rollups, uptime, alerting,
                             settings.dashboard_refresh_seconds),
        sessions=DashboardSessions(keyring, clock, store),
        ingest=ingest,
        categories=categories,
        retention=retention,
        shutdown_hooks=shutdown_hooks,
    )
    scheduler.add_global(RETENTION_JOB, services.purge_expired, settings.retention_interval)
    return services
