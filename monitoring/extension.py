"""The Flask extension: ``Monitoring(app)`` or ``Monitoring().init_app(app)``.

It wires the store, keys, audit log, rate limits, CORS, JSON errors, the API blueprints
and the scheduler into any Flask app: the Centinela service itself, or a host app that
wants its own requests monitored.
"""
from __future__ import annotations

import atexit
import importlib
import logging
import sys
from typing import Any, Callable

from flask import Flask, current_app, request

from config import Settings
from monitoring.clock import Clock, SystemClock
from monitoring.security.keys import KeyRing
from monitoring.security.audit import AuditLog
from monitoring.security.log_redaction import install_log_redaction
from monitoring.store.database import Store
from monitoring.store.retention import RetentionRule, purge_expired
from monitoring.store.schema import audit_log, job_runs
from monitoring.scheduler import Scheduler

log = logging.getLogger(__name__)

DAY = 86400.0
EXTENSION_KEY = "centinela"


def announce_generated_key(role: str, value: str, path: str) -> None:
    """Shown once, when a key is first generated: the operator needs it to read the API."""
    print(
        f"centinela: generated the {role} API key (kept in {path}, mode 0600): {value}",
        file=sys.stderr,
        flush=True,
    )


class Monitoring:
    """Everything one process needs; kept in ``app.extensions['centinela']``."""

    def __init__(
        self,
        app: Flask | None = None,
        settings: Settings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.retention_rules: list[RetentionRule] = []
        # Category name -> provider, filled by each family's install(); read by the metrics export.
        self.metric_categories: dict[str, Any] = {}
        self._shutdown_hooks: list[Callable[[], None]] = []
        # The features, set by their blueprint's install(): health checks and breakers,
        # uptime and maintenance calendar, notification outbox, alerting engine.
        self.health: Any = None
        self.uptime: Any = None
        self.outbox: Any = None
        self.alerting: Any = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        settings = self.settings = self.settings or Settings.from_env()
        install_log_redaction()
        self.store = Store(settings.database_url, self.clock)
        self.store.migrate()
        self.keyring = KeyRing.load(
            settings.metrics_api_key, settings.admin_api_key, settings.var_dir, announce_generated_key
        )
        self.audit = AuditLog(self.store, self.clock)
        self.scheduler = Scheduler(self.store, self.clock, settings.lease_ttl, settings.zone)

        app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
        app.extensions[EXTENSION_KEY] = self

        if settings.trusted_proxies:
            from werkzeug.middleware.proxy_fix import ProxyFix

            app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)  # type: ignore[method-assign]

        from monitoring.api import API_MODULES
        from monitoring.api.errors import register_error_handlers
        from monitoring.security.rate_limits import init_rate_limits

        register_error_handlers(app)
        app.before_request(_refuse_oversized_body)
        modules = [importlib.import_module(name) for name in API_MODULES]
        self.limiter = init_rate_limits(app, settings, frozenset(module.bp.name for module in modules))
        # Each endpoint family brings its blueprint and, through install(), its jobs, limits,
        # retention rules and metric categories: adding a family touches only its own module.
        for module in modules:
            app.register_blueprint(module.bp)
            install = getattr(module, "install", None)
            if install is not None:
                install(self, app)
        if settings.cors_origins:
            from flask_cors import CORS

            CORS(
                app,
                resources={r"/api/*": {"origins": list(settings.cors_origins)}},
                allow_headers=["Content-Type", "X-API-Key", "X-Admin-Key"],
                max_age=600,
            )

        self.retention_rules += [
            RetentionRule(audit_log, audit_log.c.at, settings.audit_retention_days * DAY),
            RetentionRule(job_runs, job_runs.c.started_at, settings.metrics_retention_days * DAY),
        ]
        self.scheduler.add_global("retention", self.purge_expired, settings.retention_interval)
        if settings.scheduler_enabled:
            self.scheduler.start()
            atexit.register(self.shutdown)

    def purge_expired(self) -> dict[str, int]:
        """The retention job: delete what each kind of data has outlived."""
        return purge_expired(self.store, self.retention_rules, self.clock.now())

    def breaker(self, name: str) -> Any:
        """Guard the host app's own call with the dependency's shared circuit breaker:
        ``with monitoring.breaker("stripe"): ...`` raises CircuitOpenError while it is open."""
        from monitoring.health import breaker

        return breaker(name)

    def on_shutdown(self, hook: Callable[[], None]) -> None:
        self._shutdown_hooks.append(hook)

    def shutdown(self) -> None:
        """Called when a worker exits: final flush, lease release."""
        self.scheduler.shutdown()
        for hook in self._shutdown_hooks:
            try:
                hook()
            except Exception:
                log.exception("shutdown hook failed")


def _refuse_oversized_body() -> None:
    """413 from the declared length alone, for every endpoint, before anything reads the body."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and limit is not None and request.content_length > limit:
        from werkzeug.exceptions import RequestEntityTooLarge

        raise RequestEntityTooLarge()


def current_monitoring() -> Monitoring:
    """The extension of the app handling the current request."""
    return current_app.extensions[EXTENSION_KEY]

