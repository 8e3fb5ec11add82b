"""Typed settings read from the environment and validated once, at start-up.

The package's own settings: nothing under ``monitoring/`` imports the service's top-level
``config.py`` (which only re-exports these), so a host app with a ``config.py`` of its own
embeds Centinela without a clash.

Every variable is declared once in ``VARIABLES``: its name, default, parser and a
sentence for the README. ``Settings.from_env`` parses them all and raises
``ConfigError`` naming the first bad variable and what it expects, so a typo stops
start-up with one clear line instead of surfacing as a wrong alert weeks later.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

class ConfigError(ValueError):
    """A configuration variable has a value we cannot use."""


# --- parsers: each takes the raw string and returns the value or raises ValueError
# with a message saying what is expected (the variable name is added by the caller).


def _float_between(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"expected a number between {low:g} and {high:g}") from None
        if not (low <= value <= high) or value != value:
            raise ValueError(f"expected a number between {low:g} and {high:g}")
        return value

    return parse


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a positive number") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("expected a positive number")
    return value


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"expected a whole number from {low} to {high}") from None
        if not low <= value <= high:
            raise ValueError(f"expected a whole number from {low} to {high}")
        return value

    return parse


def _text(raw: str) -> str:
    return raw.strip()


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _database_url(raw: str) -> str:
    url = raw.strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    base = scheme.split("+", 1)[0]
    if base not in ("sqlite", "postgresql", "postgres"):
        raise ValueError("expected a sqlite:///path or postgresql://user@host/db URL")
    if base == "postgres":  # Heroku-style alias; SQLAlchemy only knows postgresql
        url = "postgresql" + url[len("postgres"):]
    return url


def _rate_limit(raw: str) -> str:
    from limits import parse_many  # flask-limiter's own grammar, so we accept what it accepts

    try:
        parse_many(raw)
    except ValueError:
        raise ValueError('expected a rate limit such as "120/minute" or "10 per second"') from None
    return raw.strip()


def _storage_uri(raw: str) -> str:
    uri = raw.strip()
    if not uri.split("://", 1)[0] in ("memory", "redis", "rediss", "redis+unix", "memcached", "mongodb"):
        raise ValueError("expected memory:// or redis://host:port/db")
    return uri


def _sentry_dsn(raw: str) -> str:
    from sentry_sdk.utils import BadDsn, Dsn  # sentry-sdk's own parser, so init never fails on it

    dsn = raw.strip()
    try:
        Dsn(dsn)
    except BadDsn:
        raise ValueError("expected a Sentry DSN such as https://PUBLIC_KEY@o0.ingest.sentry.io/PROJECT_ID") from None
    return dsn


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(o.strip() for o in raw.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError("expected a comma-separated list of origins such as https://shop.example")
    return origins


def _optional_url(raw: str) -> str:
    url = raw.strip()
    if url and not url.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return url


def _zone(raw: str) -> str:
    zone = raw.strip()
    if not zone or len(zone) > 64 or not all(c.isalnum() or c in "-_." for c in zone):
        raise ValueError("expected a short name of letters, digits, '-', '_' or '.'")
    return zone


def _url_prefix(raw: str) -> str:
    prefix = raw.strip().rstrip("/")
    if prefix and (not prefix.startswith("/") or not all(c.isalnum() or c in "-_./" for c in prefix)
                   or "//" in prefix):
        raise ValueError("expected a path such as /_centinela (letters, digits, '-', '_', '.', '/')")
    return prefix


def _optional_bool(raw: str) -> bool | None:
    return _bool(raw) if raw.strip() else None


def _names(raw: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    for name in names:
        if len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
            raise ValueError("expected comma-separated names of letters, digits, '-', '_' or '.'")
    return names


def _json_list(raw: str) -> list[Any]:
    try:
        value = json.loads(raw) if raw.strip() else []
    except json.JSONDecodeError as exc:
        raise ValueError(f"expected a JSON list ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, list):
        raise ValueError("expected a JSON list")
    return value


def _health_checks(raw: str) -> list[Any]:
    from monitoring.health.definitions import parse_check_definitions  # stdlib only, names the bad item

    return list(parse_check_definitions(_json_list(raw)))


def _parser_from(module: str, parser: str) -> Callable[[str], Any]:
    """A parser owned by a feature module, imported when first used (those modules import only
    the standard library, so validating here pulls in no Flask or SQLAlchemy)."""

    def parse(raw: str) -> Any:
        return getattr(importlib.import_module(module), parser)(raw)

    return parse


_alerts_policy = functools.partial(_parser_from, "monitoring.alerts.policy")
_notify_routing = functools.partial(_parser_from, "monitoring.notify.routing")
_currencies = functools.partial(_parser_from, "monitoring.business.currencies")
_notify_email = functools.partial(_parser_from, "monitoring.notify.email_settings")
# Imports Apprise (to check each URL) only when APPRISE_URLS is set.
_notify_apprise = functools.partial(_parser_from, "monitoring.notify.apprise_urls")


@dataclass(frozen=True)
class Variable:
    """One environment variable: where it goes, its default and what it means."""

    name: str
    attr: str
    default: str
    parse: Callable[[str], Any]
    doc: str
    secret: bool = False
    empty: Any = ""  # the value when both the variable and its default are empty


VARIABLES: tuple[Variable, ...] = (
    # serving
    Variable("HOST", "host", "127.0.0.1", _text, "Address gunicorn binds to."),
    Variable("PORT", "port", "8000", _int_between(1, 65535), "Port gunicorn binds to."),
    Variable("WORKERS", "workers", "2", _int_between(1, 64), "Number of gunicorn worker processes."),
    Variable("DATABASE_URL", "database_url", "", _database_url,
             "Store URL: sqlite:///path or postgresql://user@host/db. Default: SQLite file var/centinela.db."),
    Variable("VAR_DIR", "var_dir", "", _text, "Directory for the SQLite store and generated keys. Default: var/ in the checkout (service), "
             "the app's instance folder + /centinela (embedded)."),
    Variable("ZONE", "zone", "default", _zone, "Availability zone this instance reports in."),
    Variable("TRUSTED_PROXIES", "trusted_proxies", "0", _int_between(0, 10),
             "Number of proxy hops whose X-Forwarded-For is trusted for the client address."),
    Variable("CORS_ORIGINS", "cors_origins", "", _origins,
             "Comma-separated origins allowed to call the API from a browser. Default: none.", empty=()),
    Variable("URL_PREFIX", "url_prefix", "", _url_prefix,
             "Path under which every Centinela route lives (e.g. /_centinela on a host app). Default: none "
             "(/api/health/..., /api/monitoring/...)."),
    Variable("DASHBOARD_PUBLIC", "dashboard_public", "", _optional_bool,
             "Whether the dashboard's public view, the health details and uptime answer without a key. "
             "Default: true for the service, false for an app that embeds Centinela (/api/health/live and "
             "/ready always answer).", empty=None),
    Variable("READINESS_DEPENDENCIES", "readiness_dependencies", "store,database", _names,
             "Comma-separated dependencies whose outage makes /api/health/ready answer 503 (store: "
             "Centinela's own store). Others lower the health score and alert, but keep instances in rotation."),
    Variable("MAX_BODY_BYTES", "max_body_bytes", "1048576", _int_between(1024, 64 * 1024 * 1024),
             "Largest request body accepted; larger bodies get 413."),
    # keys
    Variable("METRICS_API_KEY", "metrics_api_key", "", _text,
             "Read key for metrics, dashboard data and alert listings. Generated into var/ when unset.", secret=True),
    Variable("ADMIN_API_KEY", "admin_api_key", "", _text,
             "Admin key for configuration changes and alert actions (also grants read). Generated when unset.",
             secret=True),
    # rate limits
    Variable("RATELIMIT_STORAGE_URI", "ratelimit_storage_uri", "memory://", _storage_uri,
             "Where rate-limit counters live. memory:// is per process; use redis:// with several workers or hosts."),
    Variable("RATELIMIT_DEFAULT", "ratelimit_default", "300/minute", _rate_limit,
             "Default limit per client address on every endpoint."),
    Variable("RATELIMIT_HEALTH", "ratelimit_health", "1200/minute", _rate_limit,
             "Limit per client address on /api/health/* (load balancers poll it)."),
    Variable("RATELIMIT_EXPORT", "ratelimit_export", "60/minute", _rate_limit,
             "Limit per API key on the metrics export."),
    Variable("RATELIMIT_EVENTS", "ratelimit_events", "1200/minute", _rate_limit,
             "Limit per API key on POST /api/monitoring/events."),
    Variable("RATELIMIT_LOGIN", "ratelimit_login", "10/minute", _rate_limit,
             "Limit per client address on failed sign-ins to the HTML dashboard."),
    Variable("RATELIMIT_ENABLED", "ratelimit_enabled", "true", _bool, "Turn rate limiting off entirely (tests)."),
    Variable("RATELIMIT_FAIL_OPEN", "ratelimit_fail_open", "false", _bool,
             "Start even when the RATELIMIT_STORAGE_URI storage does not answer (a warning, and a degraded "
             "ratelimit dependency in health, while requests pass unlimited). Default: start-up stops."),
    Variable("RATELIMIT_KEY_PREFIX", "ratelimit_key_prefix", "centinela", _zone,
             "Prefix of the rate-limit counters in their storage (one per Centinela sharing a Redis)."),
    # integrations
    Variable("SENTRY_DSN", "sentry_dsn", "", _sentry_dsn, "Sentry DSN; Sentry is off when unset.", secret=True),
    Variable("SENTRY_ENVIRONMENT", "sentry_environment", "production", _text, "Sentry environment name."),
    Variable("SENTRY_RELEASE", "sentry_release", "", _text,
             "Release name reported to Sentry. Default: centinela@<version> for the service, the host "
             "package's version for an app that embeds Centinela."),
    Variable("SENTRY_TRACES_SAMPLE_RATE", "sentry_traces_sample_rate", "0", _float_between(0, 1),
             "Share of requests (0-1) traced by Sentry performance monitoring; 0 turns tracing off."),
    Variable("USER_ID_HASH_KEY", "user_id_hash_key", "", _text,
             "Key for the HMAC-SHA256 under which user ids are stored. Generated into var/ when unset; "
             "set the same value on every host.", secret=True),
    Variable("ALERT_WEBHOOK_URL", "alert_webhook_url", "", _optional_url,
             "Where alerts are sent (generic webhook or Slack incoming webhook).", secret=True),
    Variable("ESCALATION_WEBHOOK_URL", "escalation_webhook_url", "", _optional_url,
             "Where escalations are sent (webhook, Slack or PagerDuty Events v2).", secret=True),
    # notifications (see Notifications in the README)
    Variable("ALERT_WEBHOOK_KIND", "alert_webhook_kind", "", _notify_routing("parse_url_kind"),
             "What ALERT_WEBHOOK_URL speaks: webhook, slack or pagerduty. Default: from its host."),
    Variable("ESCALATION_WEBHOOK_KIND", "escalation_webhook_kind", "", _notify_routing("parse_url_kind"),
             "What ESCALATION_WEBHOOK_URL speaks: webhook, slack or pagerduty. Default: from its host."),
    Variable("ALERT_WEBHOOK_SECRET", "alert_webhook_secret", "", _text,
             "When set, generic webhook requests carry an HMAC-SHA256 X-Centinela-Signature header.", secret=True),
    Variable("SLACK_WEBHOOK_URL", "slack_webhook_url", "", _optional_url,
             "Slack incoming webhook URL (channel slack).", secret=True),
    Variable("PAGERDUTY_ROUTING_KEY", "pagerduty_routing_key", "", _text,
             "PagerDuty Events v2 integration key, for a PagerDuty URL above or alone (channel pagerduty).",
             secret=True),
    Variable("PAGERDUTY_EVENTS_URL", "pagerduty_events_url", "https://events.pagerduty.com/v2/enqueue", _optional_url,
             "PagerDuty Events v2 endpoint of channel pagerduty (EU accounts: https://events.eu.pagerduty.com/v2/enqueue)."),
    Variable("NOTIFY_ROUTES", "notify_routes", "", _notify_routing("parse_routes"),
             "JSON object from severity to channel names, laid over the default routes.", empty={}),
    Variable("NOTIFY_ESCALATION_CHANNEL", "notify_escalation_channel", "", _notify_routing("parse_channel_name"),
             "Channel escalations go to (none: off). Default: escalation if set, else pagerduty."),
    Variable("NOTIFY_FALLBACK_CHANNEL", "notify_fallback_channel", "", _notify_routing("parse_channel_name"),
             "Channel told when a delivery fails or is given up on. Default: none."),
    Variable("NOTIFY_GIVE_UP_AFTER", "notify_give_up_after", "24h", _notify_routing("parse_duration"),
             "How long a notification is retried before it is given up on (seconds, or 90m, 24h, 2d)."),
    Variable("NOTIFY_TIMEOUT", "notify_timeout", "10", _positive_float,
             "Seconds a notification request may take to connect, and again to answer."),
    Variable("NOTIFY_DELIVERY_INTERVAL", "notify_delivery_interval", "5", _positive_float,
             "Seconds between runs of the leader's notification delivery job."),
    Variable("NOTIFY_BACKOFF_BASE", "notify_backoff_base", "5", _positive_float,
             "Seconds: the first retry waits up to this, doubling per attempt (full jitter)."),
    Variable("NOTIFY_BACKOFF_MAX", "notify_backoff_max", "600", _positive_float,
             "Seconds: the longest wait between retries, unless Retry-After asks for more."),
    Variable("NOTIFY_EXTERNAL_URL", "notify_external_url", "", _optional_url,
             "This Centinela's public URL, for links in notifications (externalURL, PagerDuty client_url)."),
    # secret: the password; the addresses are people's (never in a log line)
    Variable("SMTP_URL", "smtp_url", "", _notify_email("parse_smtp_url"),
             "SMTP server of channel email: smtp://user:pass@host:587 (STARTTLS), smtps://user:pass@host:465 "
             "(TLS), smtp://host:25?starttls=no (a relay beside Centinela).", secret=True),
    Variable("ALERT_EMAIL_FROM", "alert_email_from", "", _notify_email("parse_email_address"),
             "Sender of alert e-mails, e.g. Centinela <alerts@example.com>.", secret=True),
    Variable("ALERT_EMAIL_TO", "alert_email_to", "", _notify_email("parse_email_addresses"),
             "Comma-separated recipients of alert e-mails.", secret=True, empty=()),
    Variable("APPRISE_URLS", "apprise_urls", "", _notify_apprise("parse_apprise_urls"),
             "Apprise URLs separated by spaces or newlines, each optionally name=URL: one channel apprise-<name> "
             "(else apprise-<position>) per URL.", secret=True, empty=()),
    # thresholds (names and defaults from the system description)
    Variable("PAYMENT_FAILURE_THRESHOLD", "payment_failure_threshold", "0.01", _float_between(0, 1),
             "Payment failure rate (0-1) above which the critical payment alert fires."),
    Variable("DB_RESPONSE_THRESHOLD", "db_response_threshold_ms", "1000", _positive_float,
             "Database check latency in ms above which the database is degraded."),
    Variable("API_RESPONSE_THRESHOLD", "api_response_threshold_ms", "2000", _positive_float,
             "API p95 latency in ms above which the slow-API alert fires."),
    Variable("MEMORY_USAGE_THRESHOLD", "memory_usage_threshold", "80", _float_between(0, 100),
             "System memory use in % above which the memory alert fires."),
    Variable("ERROR_RATE_THRESHOLD", "error_rate_threshold", "0.05", _float_between(0, 1),
             "Share of 5xx responses (0-1) above which the error-rate alert fires."),
    Variable("REVENUE_CURRENCIES", "revenue_currencies", "EUR", _currencies("parse_currency_list"),
             "Comma-separated currencies whose revenue counter is exported at 0 before their first payment, so "
             "Prometheus' increase() counts that payment; other currencies appear with their first payment.",
             empty=()),
    Variable("SLA_TARGET", "sla_target", "99.9", _float_between(50, 99.999),
             "Availability objective in % (50-99.999): uptime compliance and the error budget follow from it."),
    Variable("UPTIME_MIN_COVERAGE", "uptime_min_coverage", "1", _float_between(0, 100),
             "Share of the uptime window (in %) health rounds must vouch for before availability gets an SLA "
             "verdict; below it the verdict is \"not enough data\" and the dashboard greys the figure."),
    # intervals and retention
    Variable("METRICS_FLUSH_INTERVAL", "metrics_flush_interval", "5", _positive_float,
             "Seconds between flushes of each process's request metrics to the store."),
    Variable("SYSTEM_SAMPLE_INTERVAL", "system_sample_interval", "15", _positive_float,
             "Seconds between each process's resource samples (CPU, memory, descriptors, threads)."),
    Variable("HEALTH_CHECK_INTERVAL", "health_check_interval", "30", _positive_float,
             "Seconds between health-check rounds."),
    Variable("DASHBOARD_REFRESH_SECONDS", "dashboard_refresh_seconds", "5", _int_between(1, 300),
             "Seconds between the HTML dashboard's refreshes of its figures."),
    Variable("ALERT_EVALUATION_INTERVAL", "alert_evaluation_interval", "15", _positive_float,
             "Seconds between alert-rule evaluations."),
    # alerting engine (see Alerting in the README)
    Variable("ALERT_GROUP_WAIT", "alert_group_wait", "", _alerts_policy("parse_group_wait"),
             "How long a new alert waits for others of its group (0 to 1h): one duration, or a JSON object by "
             "severity. Default: critical 0, high 10s, medium 1m, low and info 5m.", empty={}),
    Variable("ALERT_GROUP_INTERVAL", "alert_group_interval", "", _alerts_policy("parse_group_interval"),
             "How long an alert joining a group already told waits after the group's last notification (0 to 1d): "
             "one duration, or a JSON object by severity. Default: critical 0, high 30s, medium, low and info 5m.",
             empty={}),
    Variable("ALERT_REPEAT_INTERVAL", "alert_repeat_interval", "4h", _alerts_policy("parse_repeat_interval"),
             "How often a firing, unacknowledged alert is sent again (1m to 30d): one duration, or a JSON object "
             "by severity.", empty={}),
    Variable("ALERT_ESCALATION_AFTER", "alert_escalation_after", "", _alerts_policy("parse_escalation_after"),
             "Escalation delay (0 to 7d, or none): one duration, or a JSON object by severity laid over the severity "
             "matrix (critical 0, high 30m, medium 2h, low 24h, info none).", empty={}),
    Variable("ALERT_PAYMENT_FAILURE_RATE_WINDOW", "alert_payment_failure_rate_window", "5m",
             _alerts_policy("parse_window"), "Default window of rules on payment_failure_rate (1m to 30d)."),
    Variable("ALERT_ERROR_RATE_WINDOW", "alert_error_rate_window", "5m", _alerts_policy("parse_window"),
             "Default window of rules on error_rate (1m to 30d)."),
    Variable("ALERT_API_P95_WINDOW", "alert_api_p95_window", "5m", _alerts_policy("parse_window"),
             "Default window of rules on api_p95_ms (1m to 30d)."),
    Variable("ALERT_MEMORY_USAGE_WINDOW", "alert_memory_usage_window", "5m", _alerts_policy("parse_window"),
             "Default window of rules on memory_usage_percent (1m to 30d)."),
    Variable("ALERT_DEPENDENCY_RESPONSE_TIME_WINDOW", "alert_dependency_response_time_window", "3m",
             _alerts_policy("parse_window"), "Default window of rules on dependency_response_time (1m to 30d)."),
    Variable("ALERT_DATABASE_CHECKS", "alert_database_checks", "database", _alerts_policy("parse_check_names"),
             "Comma-separated health checks the Database unavailable rule watches."),
    Variable("LEASE_TTL", "lease_ttl", "15", _positive_float,
             "Seconds a leader lease lasts without renewal; another process takes over after it."),
    Variable("RETENTION_INTERVAL", "retention_interval", "3600", _positive_float,
             "Seconds between retention purges."),
    Variable("METRICS_RETENTION_DAYS", "metrics_retention_days", "30", _int_between(1, 3650),
             "Days request metrics are kept."),
    Variable("ALERT_RETENTION_DAYS", "alert_retention_days", "90", _int_between(1, 3650), "Days alert history is kept."),
    Variable("INCIDENT_RETENTION_DAYS", "incident_retention_days", "365", _int_between(1, 3650),
             "Days incidents are kept."),
    Variable("AUDIT_RETENTION_DAYS", "audit_retention_days", "730", _int_between(1, 3650),
             "Days audit entries are kept."),
    Variable("SCHEDULER_ENABLED", "scheduler_enabled", "true", _bool,
             "Run the background scheduler in this process."),
    Variable("STRIPE_SECRET_KEY", "stripe_secret_key", "", _text,
             "Stripe secret key; when set, the stripe health check calls GET /v1/balance.", secret=True),
    Variable("STRIPE_API_BASE", "stripe_api_base", "https://api.stripe.com", _optional_url,
             "Base URL of the Stripe API (tests point it at a local server)."),
    Variable("BREVO_API_KEY", "brevo_api_key", "", _text,
             "Brevo API key; when set, the brevo health check calls GET /v3/account.", secret=True),
    Variable("BREVO_API_BASE", "brevo_api_base", "https://api.brevo.com", _optional_url,
             "Base URL of the Brevo API (tests point it at a local server)."),
    Variable("BREAKER_FAILURE_THRESHOLD", "breaker_failure_threshold", "5", _int_between(1, 1000),
             "Consecutive failures that open a dependency's circuit breaker."),
    Variable("BREAKER_RESET_TIMEOUT", "breaker_reset_timeout", "30", _positive_float,
             "Seconds an open breaker waits before letting one trial call through."),
    Variable("BREAKER_SUCCESS_THRESHOLD", "breaker_success_threshold", "2", _int_between(1, 1000),
             "Consecutive successful trials that close a half-open breaker."),
    # secret: a check URL may carry a token, so a bad value is shown as (hidden); the message names the item
    Variable("HEALTH_CHECKS", "health_checks", "", _health_checks,
             "JSON list of extra health checks (see Health checks).", secret=True, empty=[]),
)


@dataclass(frozen=True)
class Settings:
    """All configuration, parsed and validated. Build with ``Settings.from_env``."""

    host: str
    port: int
    workers: int
    database_url: str = field(repr=False)  # secret-bearing: never in a repr or log
    var_dir: str
    zone: str
    trusted_proxies: int
    cors_origins: tuple[str, ...]
    url_prefix: str
    dashboard_public: bool | None
    readiness_dependencies: tuple[str, ...]
    max_body_bytes: int
    metrics_api_key: str = field(repr=False)  # secret-bearing: never in a repr or log
    admin_api_key: str = field(repr=False)  # secret-bearing: never in a repr or log
    ratelimit_storage_uri: str = field(repr=False)  # secret-bearing: never in a repr or log
    ratelimit_default: str
    ratelimit_health: str
    ratelimit_export: str
    ratelimit_events: str
    ratelimit_login: str
    ratelimit_enabled: bool
    ratelimit_fail_open: bool
    ratelimit_key_prefix: str
    sentry_dsn: str = field(repr=False)  # secret-bearing: never in a repr or log
    sentry_environment: str
    sentry_release: str
    sentry_traces_sample_rate: float
    user_id_hash_key: str = field(repr=False)  # secret-bearing: never in a repr or log
    alert_webhook_url: str = field(repr=False)  # secret-bearing: never in a repr or log
    escalation_webhook_url: str = field(repr=False)  # secret-bearing: never in a repr or log
    alert_webhook_kind: str
    escalation_webhook_kind: str
    alert_webhook_secret: str = field(repr=False)  # secret-bearing: never in a repr or log
    slack_webhook_url: str = field(repr=False)  # secret-bearing: never in a repr or log
    pagerduty_routing_key: str = field(repr=False)  # secret-bearing: never in a repr or log
    pagerduty_events_url: str
    notify_routes: dict[str, tuple[str, ...]]
    notify_escalation_channel: str
    notify_fallback_channel: str
    notify_give_up_after: float
    notify_timeout: float
    notify_delivery_interval: float
    notify_backoff_base: float
    notify_backoff_max: float
    notify_external_url: str
    smtp_url: str = field(repr=False)  # secret-bearing: never in a repr or log
    alert_email_from: str = field(repr=False)  # an address: never in a repr or log
    alert_email_to: tuple[str, ...] = field(repr=False)  # addresses: never in a repr or log
    apprise_urls: tuple[Any, ...] = field(repr=False)  # AppriseTarget values, secret-bearing
    payment_failure_threshold: float
    db_response_threshold_ms: float
    api_response_threshold_ms: float
    memory_usage_threshold: float
    error_rate_threshold: float
    revenue_currencies: tuple[str, ...]
    sla_target: float
    uptime_min_coverage: float
    metrics_flush_interval: float
    system_sample_interval: float
    health_check_interval: float
    dashboard_refresh_seconds: int
    alert_evaluation_interval: float
    alert_group_wait: dict[str, float | None]
    alert_group_interval: dict[str, float | None]
    alert_repeat_interval: dict[str, float | None]
    alert_escalation_after: dict[str, float | None]
    alert_payment_failure_rate_window: float
    alert_error_rate_window: float
    alert_api_p95_window: float
    alert_memory_usage_window: float
    alert_dependency_response_time_window: float
    alert_database_checks: tuple[str, ...]
    lease_ttl: float
    retention_interval: float
    metrics_retention_days: int
    alert_retention_days: int
    incident_retention_days: int
    audit_retention_days: int
    scheduler_enabled: bool
    stripe_secret_key: str = field(repr=False)  # secret-bearing: never in a repr or log
    stripe_api_base: str
    brevo_api_key: str = field(repr=False)  # secret-bearing: never in a repr or log
    brevo_api_base: str
    breaker_failure_threshold: int
    breaker_reset_timeout: float
    breaker_success_threshold: int
    health_checks: list[Any]

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        default_var_dir: str | Path | None = None,
        **overrides: Any,
    ) -> "Settings":
        """Parse every variable from ``environ`` (default ``os.environ``); raise ConfigError on the first bad one.

        ``default_var_dir`` is where the store and generated keys go when VAR_DIR is unset: the
        service passes its checkout's ``var/``, an embedding app its instance folder; else ``./var``.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for var in VARIABLES:
            raw = env.get(var.name)
            if raw is None or (raw.strip() == "" and var.default == ""):
                raw = var.default
            try:
                values[var.attr] = var.parse(raw) if raw != "" else var.empty
            except ValueError as exc:
                shown = "(hidden)" if var.secret else repr(raw)
                raise ConfigError(f"{var.name}={shown}: {exc}") from None
        values.update(overrides)
        settings = cls(**values)
        return settings.with_defaults(default_var_dir)

    def with_defaults(self, default_var_dir: str | Path | None = None) -> "Settings":
        """Fill the defaults that depend on other settings (paths under VAR_DIR)."""
        var_dir = self.var_dir or str(Path(default_var_dir) if default_var_dir else Path.cwd() / "var")
        database_url = self.database_url or f"sqlite:///{Path(var_dir) / 'centinela.db'}"
        return dataclasses.replace(self, var_dir=var_dir, database_url=_database_url(database_url))

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


def describe_variables() -> list[tuple[str, str, str]]:
    """(name, default, meaning) for every variable: the README's table is checked against it."""
    return [(v.name, v.default, v.doc) for v in VARIABLES]
