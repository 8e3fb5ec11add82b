"""The Flask extension: ``Monitoring(app)`` or ``Monitoring().init_app(app)``.

Modelled on sentry-python's Flask integration: it adds Centinela's blueprints (under
URL_PREFIX), one WSGI wrapper that times the app's requests, and a ``got_request_exception``
receiver that captures its errors, and changes nothing else of the app. Its JSON errors,
body limit, rate limits and CORS apply to its own blueprints only; the host's error pages,
limits, hooks, logging and OpenAPI stay the host's. Everything it builds comes from one
composition root (``monitoring.services.build_services``) and hangs off this object, kept in
``app.extensions["centinela"]``: two apps in one process keep their own state.

The scheduler's threads start in the process that serves requests, never at import: on the
first request, or from a gunicorn ``post_worker_init`` hook (``Monitoring.of(app).start()``),
so ``gunicorn --preload`` (the app built in the master, then forked) works.
"""
from __future__ import annotations

import atexit
import logging
import threading
import weakref
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from flask import Flask, current_app
from flask.signals import got_request_exception

from monitoring.clock import Clock
from monitoring.settings import Settings

if TYPE_CHECKING:
    from monitoring.alerts.engine import AlertEngine
    from monitoring.business import BusinessEvents
    from monitoring.errors.tracking import ErrorTracker
    from monitoring.health.circuit import Permit
    from monitoring.health.service import HealthService
    from monitoring.notify.outbox import Outbox
    from monitoring.scheduler import Scheduler
    from monitoring.security.audit import AuditLog
    from monitoring.security.keys import KeyRing
    from monitoring.services import Services
    from monitoring.store.database import Store
    from monitoring.uptime.service import UptimeService

log = logging.getLogger(__name__)

EXTENSION_KEY = "centinela"

# The view modules, in registration order: their blueprints are declared in monitoring.api.routes
# (the ingest modules' in the module, as ``bp``).
API_MODULES = (
    "monitoring.api.health",
    "monitoring.api.uptime",
    "monitoring.api.metrics",
    "monitoring.api.audit",
    "monitoring.api.alerts",
    "monitoring.api.events",
    "monitoring.api.error_tracking",
    "monitoring.api.dashboard",
    "monitoring.api.otlp",
    "monitoring.api.sentry_ingest",
    "monitoring.api.openapi",
)
# Served by the Centinela service, and by an embedding app only with INGEST_ENDPOINTS=true:
# /v1/traces or /api/<id>/store/ may be the host's own routes.
INGEST_MODULES = ("monitoring.api.otlp", "monitoring.api.sentry_ingest")


class Monitoring:
    """One Centinela inside one Flask app."""

    def __init__(
        self,
        app: Flask | None = None,
        settings: Settings | None = None,
        clock: Clock | None = None,
        *,
        url_prefix: str | None = None,
        standalone: bool = False,
    ) -> None:
        """``standalone`` is the Centinela service itself (``create_app``): its pages are public
        by default (DASHBOARD_PUBLIC) and its Sentry release is Centinela's own."""
        self._settings = settings
        self._clock = clock
        self._url_prefix = url_prefix
        self.standalone = standalone
        self.cors_options: Any = None
        self.openapi_document: dict[str, Any] | None = None  # built on first request, then kept
        self.dashboard_memo: Any = None
        self._start_lock = threading.Lock()
        self._services: Services | None = None
        if app is not None:
            self.init_app(app)

    # --- wiring ------------------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        from monitoring.api.middleware import install_request_hooks
        from monitoring.api.routes import blueprint_of
        from monitoring.services import build_services

        settings = self._settings or Settings.from_env(default_var_dir=Path(app.instance_path) / "centinela")
        if self._url_prefix is not None:
            settings = settings.replace(url_prefix=self._url_prefix.rstrip("/"))
        if not settings.service_name:
            settings = settings.replace(service_name=app.import_name[:100])
        default_release = centinela_release() if self.standalone else host_release(app)
        services = self._services = build_services(settings, self._clock, default_release=default_release)
        app.extensions[EXTENSION_KEY] = self

        for name in self.api_modules:
            bp = blueprint_of(name)  # a view module is imported on its first request
            app.register_blueprint(bp, url_prefix=settings.url_prefix + (bp.url_prefix or ""))
        if settings.cors_origins:
            # flask-cors' own option handling and header logic, without its app-wide hooks and
            # without reading the host's CORS_* config: CORS_ORIGINS is Centinela's setting.
            from flask_cors.core import DEFAULT_OPTIONS, serialize_options

            self.cors_options = serialize_options({
                **DEFAULT_OPTIONS,
                "origins": list(settings.cors_origins),
                "allow_headers": ["Content-Type", "X-API-Key", "X-Admin-Key"],
                "max_age": 600,
            })

        install_request_hooks(app, services.metrics.recorder, self.start if settings.scheduler_enabled else None,
                              service=services.service_name)
        got_request_exception.connect(_capture_exception, app, weak=False)
        services.sentry.start()
        if settings.scheduler_enabled:
            # Workers exit through sys.exit, so atexit runs there too; the scheduler only stops
            # (and flushes) in the process that started it. A weak reference: an app that is
            # gone needs no shutdown.
            reference = weakref.ref(self)

            def shutdown_if_alive() -> None:
                monitoring = reference()
                if monitoring is not None:
                    monitoring.shutdown()

            atexit.register(shutdown_if_alive)

    @staticmethod
    def of(app: Flask) -> Monitoring:
        """The extension of ``app`` (KeyError if it has none)."""
        # Flask types app.extensions as dict[str, Any]; init_app puts this class there.
        return cast(Monitoring, app.extensions[EXTENSION_KEY])

    # --- what a host app uses ------------------------------------------------------------

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("Monitoring is not initialised: call Monitoring(app) or init_app(app) first")
        return self._services

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def clock(self) -> Clock:
        return self.services.clock

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def keyring(self) -> KeyRing:
        return self.services.keyring

    @property
    def audit(self) -> AuditLog:
        return self.services.audit

    @property
    def scheduler(self) -> Scheduler:
        return self.services.scheduler

    @property
    def health(self) -> HealthService:
        """``centinela.health.register("search", fn, critical=False)`` adds a custom check."""
        return self.services.health

    @property
    def uptime(self) -> UptimeService:
        return self.services.uptime

    @property
    def business(self) -> BusinessEvents:
        """``centinela.business.record_payment("succeeded", 1999, "EUR")`` and friends."""
        return self.services.business

    @property
    def errors(self) -> ErrorTracker:
        return self.services.errors

    @property
    def outbox(self) -> Outbox:
        return self.services.outbox

    @property
    def alerting(self) -> AlertEngine:
        return self.services.alerting

    @property
    def api_modules(self) -> tuple[str, ...]:
        """The blueprint modules this app serves (the ingest ones per INGEST_ENDPOINTS)."""
        configured = self.settings.ingest_endpoints
        if self.standalone if configured is None else configured:
            return API_MODULES
        return tuple(name for name in API_MODULES if name not in INGEST_MODULES)

    @property
    def public(self) -> bool:
        """Whether the dashboard's public view, health details and uptime answer without a key."""
        configured = self.settings.dashboard_public
        return self.standalone if configured is None else configured

    def breaker(self, name: str, ignore: tuple[type[BaseException], ...] = ()) -> AbstractContextManager[Permit]:
        """``with centinela.breaker("stripe"): ...``: guard the app's own call with the dependency's
        shared circuit breaker; raises CircuitOpenError while it is open."""
        return self.services.health.breaker(name, ignore)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start this process's scheduler threads (idempotent; a forked worker starts its own)."""
        if not self.settings.scheduler_enabled:
            return
        with self._start_lock:
            self.services.scheduler.start()

    def shutdown(self) -> None:
        """Called when a worker exits: stop the threads, final flushes, lease released."""
        services = self._services
        if services is None:
            return
        services.scheduler.shutdown(final_jobs=services.shutdown_hooks)
        services.sentry.stop()


def _capture_exception(sender: Flask, exception: BaseException, **extra: Any) -> None:
    """got_request_exception: the host's (and our own) unhandled errors into error tracking."""
    from flask import request

    from monitoring.api.middleware import route_template

    try:
        rule = request.url_rule
        route = f"{request.method} {route_template(rule.rule) if rule is not None else '<unmatched>'}"
        services = Monitoring.of(sender).services
        services.errors.capture(exception, route, services.service_name)
    except Exception:  # capture must never turn one error into two
        log.warning("error tracking could not capture an exception", exc_info=True)


def current_monitoring() -> Monitoring:
    """The extension of the app handling the current request."""
    return cast(Monitoring, current_app.extensions[EXTENSION_KEY])  # see Monitoring.of


def current_services() -> Services:
    return current_monitoring().services


def centinela_release() -> str:
    return f"centinela@{package_version('centinela') or 'dev'}"


def host_release(app: Flask) -> str:
    """``<package>@<version>`` of the app's own installed package, or "" (Sentry then finds one)."""
    package = app.import_name.split(".", 1)[0]
    version = package_version(package)
    return f"{package}@{version}" if version else ""


def package_version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except (PackageNotFoundError, ValueError):
        return None
