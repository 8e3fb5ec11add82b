"""Typed settings read from the environment and validated once, at start-up.

The package's own settings: nothing under ``monitoring/`` imports the service's top-level
``config.py`` (which only re-exports these), so a host app with a ``config.py`` of its own
embeds Centinela without a clash.

Every setting is declared once, as a field of its section's dataclass::

    port: int = setting("PORT", 8000, int_between(1, 65535), "Port gunicorn binds to.")

which says its environment variable, its default (as the README shows it), the parser that
reads and bounds it, the sentence of the README's configuration table and whether it is
secret. Everything else is derived from those declarations: ``Settings.from_env`` (raising
``ConfigError`` naming the first bad variable and what it expects, so a typo stops start-up
with one clear line instead of surfacing as a wrong alert weeks later), overrides (a text
override is read like the environment, a typed one checked against the same bounds), the
redaction of secrets (never in a repr, an error or ``describe()``) and the configuration table
(``configuration_table()``; ``python -m monitoring.settings table`` prints it).

Settings come in sections (``settings.server``, ``settings.notify``, ...) so a feature can take
only its own. The flat spelling ``settings.port`` still reads the same value: every setting's
name is unique across sections, so either spelling names one thing.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitoring.durations import DAY, MINUTE, parse_duration


class ConfigError(ValueError):
    """A configuration variable has a value we cannot use."""


# --- parsers: each reads the text of a variable (or of a text override) and returns the value,
# or raises ValueError saying what is expected (the variable name is added by the caller); most
# also check a typed override by the same rule.


@dataclass(frozen=True)
class Parser:
    """How one setting is read: from text (the environment), and from a typed override."""

    read: Callable[[str], Any]
    check: Callable[[Any], Any] | None = None  # a typed value; None: only text is accepted
    empty: Any = ""  # the value when both the variable and its default are empty

    def __call__(self, raw: Any) -> Any:
        if isinstance(raw, str):
            return self.read(raw)
        if self.check is None:
            raise ValueError(f"expected the value as text, as in the environment (got {type(raw).__name__})")
        return self.check(raw)


def _number(raw: Any, expected: str) -> float:
    """A typed override's number (bool is not one, though Python says so)."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError(expected)
    return float(raw)


def float_between(low: float, high: float) -> Parser:
    expected = f"expected a number between {low:g} and {high:g}"

    def bounded(value: float) -> float:
        if not (low <= value <= high):  # also refuses NaN
            raise ValueError(expected)
        return value

    def read(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(expected) from None
        return bounded(value)

    return Parser(read, lambda raw: bounded(_number(raw, expected)))


def _positive(value: float) -> float:
    if not 0 < value < float("inf"):  # also refuses NaN
        raise ValueError("expected a positive number")
    return value


def _read_positive(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a positive number") from None
    return _positive(value)


positive_float = Parser(_read_positive, lambda raw: _positive(_number(raw, "expected a positive number")))


def int_between(low: int, high: int) -> Parser:
    expected = f"expected a whole number from {low} to {high}"

    def bounded(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(expected)
        return value

    def read(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(expected) from None
        return bounded(value)

    def check(raw: Any) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(expected)
        return bounded(raw)

    return Parser(read, check)


text = Parser(str.strip)
path = Parser(str.strip, lambda raw: os.fspath(raw).strip())  # VAR_DIR: a Path is fine too


def duration_between(low: float, high: float) -> Parser:
    """A duration (monitoring/durations.py: ``90``, ``5m``, ``1h30m``), within [low, high] seconds."""
    return Parser(lambda raw: parse_duration(raw, low, high), lambda raw: parse_duration(raw, low, high))


def _positive_duration(raw: Any) -> float:
    expected = "expected a positive duration such as 3600, 90m, 24h or 2d"
    try:
        seconds = parse_duration(raw)
    except ValueError:
        raise ValueError(expected) from None
    if seconds <= 0:
        raise ValueError(expected)
    return seconds


positive_duration = Parser(_positive_duration, _positive_duration)


def _read_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _check_bool(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise ValueError("expected true or false")
    return raw


boolean = Parser(_read_bool, _check_bool)
# Unset means "the default of the kind of app": the service and an embedding app differ.
optional_boolean = Parser(lambda raw: _read_bool(raw) if raw.strip() else None,
                          lambda raw: None if raw is None else _check_bool(raw), empty=None)


def _read_database_url(raw: str) -> str:
    url = raw.strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    base = scheme.split("+", 1)[0]
    if base not in ("sqlite", "postgresql", "postgres"):
        raise ValueError("expected a sqlite:///path or postgresql://user@host/db URL")
    if base == "postgres":  # Heroku-style alias; SQLAlchemy only knows postgresql
        url = "postgresql" + url[len("postgres"):]
    return url


database_url = Parser(_read_database_url)


# The RATELIMIT_* defaults (below), known to parse: reading them needs no ``limits``, which a
# worker with RATELIMIT_ENABLED=false then never loads (3 MB).
_DEFAULT_RATE_LIMITS = frozenset({"300/minute", "1200/minute", "60/minute", "6000/minute", "600/minute", "10/minute"})


def _read_rate_limit(raw: str) -> str:
    if raw in _DEFAULT_RATE_LIMITS:
        return raw
    from limits import parse_many  # flask-limiter's own grammar, so we accept what it accepts

    try:
        parse_many(raw)
    except ValueError:
        raise ValueError('expected a rate limit such as "120/minute" or "10 per second"') from None
    return raw.strip()


rate_limit = Parser(_read_rate_limit)


def _read_storage_uri(raw: str) -> str:
    uri = raw.strip()
    if uri.split("://", 1)[0] not in ("memory", "redis", "rediss", "redis+unix", "memcached", "mongodb"):
        raise ValueError("expected memory:// or redis://host:port/db")
    return uri


storage_uri = Parser(_read_storage_uri)


def _read_sentry_dsn(raw: str) -> str:
    from sentry_sdk.utils import BadDsn, Dsn  # sentry-sdk's own parser, so init never fails on it

    dsn = raw.strip()
    try:
        Dsn(dsn)
    except BadDsn:
        raise ValueError("expected a Sentry DSN such as https://PUBLIC_KEY@o0.ingest.sentry.io/PROJECT_ID") from None
    return dsn


sentry_dsn = Parser(_read_sentry_dsn)


def _comma_list(read: Callable[[str], Any]) -> Callable[[Any], Any]:
    """A typed override of a comma-separated setting: a list or tuple of its items."""

    def check(raw: Any) -> Any:
        if not isinstance(raw, (list, tuple)) or not all(isinstance(item, str) for item in raw):
            raise ValueError("expected a list of text items, or one comma-separated text")
        return read(",".join(raw))

    return check


def _read_origins(raw: str) -> tuple[str, ...]:
    found = tuple(o.strip() for o in raw.split(",") if o.strip())
    for origin in found:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError("expected a comma-separated list of origins such as https://shop.example")
    return found


origins = Parser(_read_origins, _comma_list(_read_origins), empty=())


def _read_optional_url(raw: str) -> str:
    url = raw.strip()
    if url and not url.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return url


optional_url = Parser(_read_optional_url)


def _read_short_name(raw: str) -> str:
    name = raw.strip()
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError("expected a short name of letters, digits, '-', '_' or '.'")
    return name


short_name = Parser(_read_short_name)


def _read_url_prefix(raw: str) -> str:
    prefix = raw.strip().rstrip("/")
    if prefix and (not prefix.startswith("/") or not all(c.isalnum() or c in "-_./" for c in prefix)
                   or "//" in prefix):
        raise ValueError("expected a path such as /_centinela (letters, digits, '-', '_', '.', '/')")
    return prefix


url_prefix = Parser(_read_url_prefix)


def _read_service_name(raw: str) -> str:
    name = raw.strip()
    if len(name) > 100 or not name.isprintable():
        raise ValueError("expected a service name of at most 100 printable characters")
    return name


service_name_text = Parser(_read_service_name)


def _read_names(raw: str) -> tuple[str, ...]:
    found = tuple(n.strip() for n in raw.split(",") if n.strip())
    for name in found:
        if len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
            raise ValueError("expected comma-separated names of letters, digits, '-', '_' or '.'")
    return found


names = Parser(_read_names, _comma_list(_read_names), empty=())


def _json_list(raw: str) -> list[Any]:
    try:
        value = json.loads(raw) if raw.strip() else []
    except json.JSONDecodeError as exc:
        raise ValueError(f"expected a JSON list ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, list):
        raise ValueError("expected a JSON list")
    return value


def _check_definitions(items: Any) -> list[Any]:
    from monitoring.health.definitions import parse_check_definitions  # stdlib only, names the bad item

    if not isinstance(items, list):
        raise ValueError("expected a JSON list")
    return list(parse_check_definitions(items))


health_checks = Parser(lambda raw: _check_definitions(_json_list(raw)), _check_definitions, empty=[])


def feature(module: str, function: str, *, empty: Any = "", typed: str = "") -> Parser:
    """A parser owned by a feature module, imported when first used (those modules import only
    the standard library, so validating here pulls in no Flask or SQLAlchemy).

    ``typed`` says which typed overrides it takes: ``comma`` (a list of items), ``json`` (a JSON
    object, or a number of seconds), or none (text only).
    """

    def read(raw: str) -> Any:
        return getattr(importlib.import_module(module), function)(raw)

    def json_or_seconds(raw: Any) -> Any:
        if isinstance(raw, (dict, list)):
            return read(json.dumps(raw))
        return read(repr(_number(raw, "expected a JSON object by severity, or a duration in seconds")))

    checks: dict[str, Callable[[Any], Any]] = {"comma": _comma_list(read), "json": json_or_seconds}
    return Parser(read, checks.get(typed), empty)


def _alerts(function: str, **kwargs: Any) -> Parser:
    return feature("monitoring.alerts.policy", function, **kwargs)


def _notify(function: str, **kwargs: Any) -> Parser:
    return feature("monitoring.notify.routing", function, **kwargs)


def _email(function: str, **kwargs: Any) -> Parser:
    return feature("monitoring.notify.email_settings", function, **kwargs)


# --- declarations


@dataclass(frozen=True)
class Variable:
    """One setting's declaration: its environment variable, default, parser and meaning.

    ``attr`` and ``section`` are filled in from the dataclass field that carries it.
    """

    name: str
    default: str  # as written in the environment, and in the README; "" is unset
    parser: Parser
    doc: str
    secret: bool = False
    attr: str = ""
    section: str = ""

    def read(self, raw: str | None) -> Any:
        """The value for the variable's text (None: unset), or ValueError."""
        if raw is None or (not raw.strip() and self.default == ""):
            raw = self.default
        return self.parser(raw) if raw != "" else self.parser.empty

    def shown(self, raw: Any) -> str:
        """How a value of this variable appears in an error: never a secret."""
        return "(hidden)" if self.secret else repr(raw)


_DECLARATION = "centinela.setting"


def _default_text(default: str | int | float | bool) -> str:
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def setting(name: str, default: str | int | float | bool, parser: Parser, doc: str, *, secret: bool = False) -> Any:
    """A section's field, declared once: ``setting("PORT", 8000, int_between(1, 65535), "Port ...")``.

    ``default`` is read like the variable's own text, so it obeys the same bounds; a secret is
    left out of the repr and shown as (hidden) in errors.
    """
    declaration = Variable(name, _default_text(default), parser, doc, secret)
    return field(repr=not secret, metadata={_DECLARATION: declaration})


@dataclass(frozen=True)
class ServerSettings:
    """How this process serves HTTP: address, workers, zone, proxies, CORS, URL prefix, body limit."""

    host: str = setting("HOST", "127.0.0.1", text, "Address gunicorn binds to.")
    port: int = setting("PORT", 8000, int_between(1, 65535), "Port gunicorn binds to.")
    workers: int = setting("WORKERS", 2, int_between(1, 64), "Number of gunicorn worker processes.")
    zone: str = setting("ZONE", "default", short_name, "Availability zone this instance reports in.")
    service_name: str = setting(  # "": the Flask app's import name, filled in by Monitoring.init_app
        "SERVICE_NAME", "", service_name_text,
        "Service the embedded app's requests and errors count under (at most 100 printable characters; see "
        "[Services](services.md)). Default: the Flask app's import name (`app` for the Centinela service).")
    trusted_proxies: int = setting(
        "TRUSTED_PROXIES", 0, int_between(0, 10),
        "Number of proxy hops whose X-Forwarded-For is trusted for the client address.")
    cors_origins: tuple[str, ...] = setting(
        "CORS_ORIGINS", "", origins, "Comma-separated origins allowed to call the API from a browser. Default: none.")
    url_prefix: str = setting(
        "URL_PREFIX", "", url_prefix,
        "Path under which every Centinela route lives (e.g. `/_centinela` on a host app). Default: none "
        "(`/api/health/...`, `/api/monitoring/...`).")
    max_body_bytes: int = setting(
        "MAX_BODY_BYTES", 1024 * 1024, int_between(1024, 64 * 1024 * 1024),
        "Largest request body accepted by Centinela's routes (every route of the service); larger bodies get 413.")


@dataclass(frozen=True)
class StoreSettings:
    """Where the data lives."""

    database_url: str = setting(
        "DATABASE_URL", "", database_url,
        "Store URL: sqlite:///path or postgresql://user@host/db. Default: SQLite file var/centinela.db.",
        secret=True)  # a PostgreSQL URL may carry its password
    var_dir: str = setting(
        "VAR_DIR", "", path,
        "Directory for the SQLite store and generated keys (created 0700). Default: `var/` in the checkout "
        "(service), the app's instance folder + `/centinela` (embedded).")


@dataclass(frozen=True)
class KeySettings:
    """The API keys, and the key user ids are hashed under."""

    metrics_api_key: str = setting(
        "METRICS_API_KEY", "", text,
        "Read key for metrics, dashboard data and alert listings. Generated into var/ when unset.", secret=True)
    admin_api_key: str = setting(
        "ADMIN_API_KEY", "", text,
        "Admin key for configuration changes and alert actions (also grants read). Generated when unset.",
        secret=True)
    ingest_api_key: str = setting(
        "INGEST_API_KEY", "", text,
        "Ingest-only key: sends telemetry (OTLP, Sentry protocol, events) and reads nothing. Generated when unset.",
        secret=True)
    user_id_hash_key: str = setting(
        "USER_ID_HASH_KEY", "", text,
        "Key for the HMAC-SHA256 under which user ids are stored. Generated into var/ when unset; set the same "
        "value on every host.", secret=True)


@dataclass(frozen=True)
class RateLimitSettings:
    """Rate limits of Centinela's own endpoints."""

    ratelimit_storage_uri: str = setting(
        "RATELIMIT_STORAGE_URI", "memory://", storage_uri,
        "Where rate-limit counters live. memory:// is per process; use redis:// with several workers or hosts.",
        secret=True)  # a Redis URL may carry its password
    ratelimit_default: str = setting(
        "RATELIMIT_DEFAULT", "300/minute", rate_limit, "Default limit per client address on every endpoint.")
    ratelimit_health: str = setting(
        "RATELIMIT_HEALTH", "1200/minute", rate_limit,
        "Limit per client address on /api/health/* (load balancers poll it).")
    ratelimit_export: str = setting(
        "RATELIMIT_EXPORT", "60/minute", rate_limit, "Limit per API key on the metrics export.")
    ratelimit_events: str = setting(
        "RATELIMIT_EVENTS", "1200/minute", rate_limit, "Limit per API key on POST /api/monitoring/events.")
    ratelimit_ingest: str = setting(
        "RATELIMIT_INGEST", "6000/minute", rate_limit,
        "Limit per ingest key on the OTLP and Sentry-protocol endpoints (every browser of an app shares one key).")
    ratelimit_ingest_address: str = setting(
        "RATELIMIT_INGEST_ADDRESS", "600/minute", rate_limit,
        "Limit per client address on the OTLP and Sentry-protocol endpoints.")
    ratelimit_login: str = setting(
        "RATELIMIT_LOGIN", "10/minute", rate_limit,
        "Limit per client address on failed sign-ins to the HTML dashboard.")
    ratelimit_enabled: bool = setting(
        "RATELIMIT_ENABLED", True, boolean, "Turn rate limiting off entirely (tests).")
    ratelimit_fail_open: bool = setting(
        "RATELIMIT_FAIL_OPEN", False, boolean,
        "Start even when the RATELIMIT_STORAGE_URI storage does not answer (a warning, and a degraded "
        "ratelimit dependency in health, while requests pass unlimited). Default: start-up stops.")
    ratelimit_key_prefix: str = setting(
        "RATELIMIT_KEY_PREFIX", "centinela", short_name,
        "Prefix of the rate-limit counters in their storage (one per Centinela sharing a Redis).")


@dataclass(frozen=True)
class IngestSettings:
    """Telemetry from any app: OTLP/HTTP and the Sentry protocol (see docs/any-language.md)."""

    ingest_endpoints: bool | None = setting(
        "INGEST_ENDPOINTS", "", optional_boolean,
        "Serve the OTLP (/v1/traces, /v1/metrics) and Sentry (/api/<project>/envelope/) endpoints. Default: on "
        "for the Centinela service, off in an embedding app (whose own routes may use those paths).")
    sentry_projects: dict[str, str] = setting(
        "SENTRY_PROJECTS", "", feature("monitoring.ingest.projects", "parse_sentry_projects", empty={}),
        'JSON object mapping a Sentry project (the DSN\'s last part) to a service, e.g. `{"1": "shop"}`. '
        "Other projects get 404.")
    ingest_max_services: int = setting(
        "INGEST_MAX_SERVICES", 20, int_between(1, 1000),
        "Distinct services ingest records; later ones are counted as `<other>`.")
    ingest_max_routes: int = setting(
        "INGEST_MAX_ROUTES", 250, int_between(1, 10000),
        "Distinct routes per ingested service; later ones are counted as `<other>`.")


@dataclass(frozen=True)
class DashboardSettings:
    """The HTML dashboard and who may read it."""

    dashboard_public: bool | None = setting(
        "DASHBOARD_PUBLIC", "", optional_boolean,
        "Whether the dashboard's public view, the health details and uptime answer without a key. Default: "
        "`true` for the service, `false` for an app that embeds Centinela (`/api/health/live` and `/ready` "
        "always answer).")
    dashboard_refresh_seconds: int = setting(
        "DASHBOARD_REFRESH_SECONDS", 5, int_between(1, 300),
        "Seconds between the HTML dashboard's refreshes of its figures.")


@dataclass(frozen=True)
class SentrySettings:
    """Reporting Centinela's own errors to Sentry."""

    sentry_dsn: str = setting("SENTRY_DSN", "", sentry_dsn, "Sentry DSN; Sentry is off when unset.", secret=True)
    sentry_environment: str = setting("SENTRY_ENVIRONMENT", "production", text, "Sentry environment name.")
    sentry_release: str = setting(
        "SENTRY_RELEASE", "", text,
        "Release name reported to Sentry. Default: `centinela@<version>` for the service, the host package's "
        "`<name>@<version>` for an app that embeds Centinela.")
    sentry_traces_sample_rate: float = setting(
        "SENTRY_TRACES_SAMPLE_RATE", 0, float_between(0, 1),
        "Share of requests (0-1) traced by Sentry performance monitoring; 0 turns tracing off.")


@dataclass(frozen=True)
class NotifySettings:
    """Where notifications go and how they are delivered (see Notifications in the README)."""

    alert_webhook_url: str = setting(
        "ALERT_WEBHOOK_URL", "", optional_url,
        "Where alerts are sent (generic webhook or Slack incoming webhook).", secret=True)
    escalation_webhook_url: str = setting(
        "ESCALATION_WEBHOOK_URL", "", optional_url,
        "Where escalations are sent (webhook, Slack or PagerDuty Events v2).", secret=True)
    alert_webhook_kind: str = setting(
        "ALERT_WEBHOOK_KIND", "", _notify("parse_url_kind"),
        "What ALERT_WEBHOOK_URL speaks: webhook, slack or pagerduty. Default: from its host.")
    escalation_webhook_kind: str = setting(
        "ESCALATION_WEBHOOK_KIND", "", _notify("parse_url_kind"),
        "What ESCALATION_WEBHOOK_URL speaks: webhook, slack or pagerduty. Default: from its host.")
    alert_webhook_secret: str = setting(
        "ALERT_WEBHOOK_SECRET", "", text,
        "When set, generic webhook requests carry an HMAC-SHA256 `X-Centinela-Signature` header (see "
        "Notifications).", secret=True)
    slack_webhook_url: str = setting(
        "SLACK_WEBHOOK_URL", "", optional_url, "Slack incoming webhook URL (channel `slack`).", secret=True)
    pagerduty_routing_key: str = setting(
        "PAGERDUTY_ROUTING_KEY", "", text,
        "PagerDuty Events v2 integration key, for a PagerDuty URL above or alone (channel `pagerduty`).",
        secret=True)
    pagerduty_events_url: str = setting(
        "PAGERDUTY_EVENTS_URL", "https://events.pagerduty.com/v2/enqueue", optional_url,
        "PagerDuty Events v2 endpoint of channel `pagerduty` (EU accounts: "
        "`https://events.eu.pagerduty.com/v2/enqueue`).")
    notify_routes: dict[str, tuple[str, ...]] = setting(
        "NOTIFY_ROUTES", "", _notify("parse_routes", empty={}, typed="json"),
        "JSON object from severity to channel names, laid over the default routes (see Notifications).")
    notify_escalation_channel: str = setting(
        "NOTIFY_ESCALATION_CHANNEL", "", _notify("parse_channel_name"),
        "Channel escalations go to (`none`: off). Default: `escalation` if set, else `pagerduty`.")
    notify_fallback_channel: str = setting(
        "NOTIFY_FALLBACK_CHANNEL", "", _notify("parse_channel_name"),
        "Channel told when a delivery fails or is given up on. Default: none.")
    notify_give_up_after: float = setting(
        "NOTIFY_GIVE_UP_AFTER", "24h", positive_duration,
        "How long a notification is retried before it is given up on (seconds, or `90m`, `24h`, `2d`).")
    notify_timeout: float = setting(
        "NOTIFY_TIMEOUT", 10, positive_float,
        "Seconds a notification request may take to connect, and again to answer.")
    notify_delivery_interval: float = setting(
        "NOTIFY_DELIVERY_INTERVAL", 5, positive_float,
        "Seconds between runs of the leader's notification delivery job.")
    notify_backoff_base: float = setting(
        "NOTIFY_BACKOFF_BASE", 5, positive_float,
        "Seconds: the first retry waits up to this, doubling per attempt (full jitter).")
    notify_backoff_max: float = setting(
        "NOTIFY_BACKOFF_MAX", 600, positive_float,
        "Seconds: the longest wait between retries, unless `Retry-After` asks for more.")
    notify_external_url: str = setting(
        "NOTIFY_EXTERNAL_URL", "", optional_url,
        "This Centinela's public URL, for links in notifications (`externalURL`, PagerDuty `client_url`, the "
        "dashboard and acknowledge links of e-mails and Apprise notices).")
    smtp_url: str = setting(
        "SMTP_URL", "", _email("parse_smtp_url"),
        "SMTP server of channel `email`: `smtp://user:pass@host:587` (STARTTLS, required), "
        "`smtps://user:pass@host:465` (TLS), `smtp://host:25?starttls=no` (a relay beside Centinela). See "
        "[E-mail](notifications.md#e-mail).", secret=True)
    # The addresses are people's: secret too, never in a log line.
    alert_email_from: str = setting(
        "ALERT_EMAIL_FROM", "", _email("parse_email_address"),
        "Sender of alert e-mails, e.g. `Centinela <alerts@example.com>`.", secret=True)
    alert_email_to: tuple[str, ...] = setting(
        "ALERT_EMAIL_TO", "", _email("parse_email_addresses", empty=(), typed="comma"),
        "Comma-separated recipients of alert e-mails.", secret=True)
    # AppriseTarget values; Apprise is imported (to check each URL) only when APPRISE_URLS is set.
    apprise_urls: tuple[Any, ...] = setting(
        "APPRISE_URLS", "", feature("monitoring.notify.apprise_urls", "parse_apprise_urls", empty=()),
        "Apprise URLs separated by spaces or newlines, each optionally `name=URL`: one channel `apprise-<name>` "
        "(else `apprise-<position>`) per URL. See [Apprise](notifications.md#apprise-telegram-teams-and-a-hundred-more).",
        secret=True)


# The default window of a built-in rule's figure: the bounds of a rule's own window (alerts/rules.py).
ALERT_WINDOW = duration_between(MINUTE, 30 * DAY)


@dataclass(frozen=True)
class AlertSettings:
    """The built-in rules' thresholds and windows, and how firing alerts are told (see Alerting)."""

    payment_failure_threshold: float = setting(
        "PAYMENT_FAILURE_THRESHOLD", 0.01, float_between(0, 1),
        "Payment failure rate (0-1) above which the critical payment alert fires.")
    api_response_threshold_ms: float = setting(
        "API_RESPONSE_THRESHOLD", 2000, positive_float,
        "API p95 latency in ms above which the slow-API alert fires.")
    memory_usage_threshold: float = setting(
        "MEMORY_USAGE_THRESHOLD", 80, float_between(0, 100),
        "System memory use in % above which the memory alert fires.")
    error_rate_threshold: float = setting(
        "ERROR_RATE_THRESHOLD", 0.05, float_between(0, 1),
        "Share of 5xx responses (0-1) above which the error-rate alert fires.")
    alert_evaluation_interval: float = setting(
        "ALERT_EVALUATION_INTERVAL", 15, positive_float, "Seconds between alert-rule evaluations.")
    alert_group_wait: dict[str, float | None] = setting(
        "ALERT_GROUP_WAIT", "", _alerts("parse_group_wait", empty={}, typed="json"),
        "How long a new alert waits for others of its group (0 to 1h): one duration, or a JSON object by "
        "severity. Default: critical 0, high 10s, medium 1m, low and info 5m.")
    alert_group_interval: dict[str, float | None] = setting(
        "ALERT_GROUP_INTERVAL", "", _alerts("parse_group_interval", empty={}, typed="json"),
        "How long an alert joining a group already told waits after the group's last notification (0 to 1d): "
        "one duration, or a JSON object by severity. Default: critical 0, high 30s, medium, low and info 5m.")
    alert_repeat_interval: dict[str, float | None] = setting(
        "ALERT_REPEAT_INTERVAL", "4h", _alerts("parse_repeat_interval", empty={}, typed="json"),
        "How often a firing, unacknowledged alert is sent again (1m to 30d): one duration, or a JSON object "
        "by severity.")
    alert_escalation_after: dict[str, float | None] = setting(
        "ALERT_ESCALATION_AFTER", "", _alerts("parse_escalation_after", empty={}, typed="json"),
        "Escalation delay (0 to 7d, or none): one duration, or a JSON object by severity laid over the severity "
        "matrix (critical 0, high 30m, medium 2h, low 24h, info none).")
    alert_payment_failure_rate_window: float = setting(
        "ALERT_PAYMENT_FAILURE_RATE_WINDOW", "5m", ALERT_WINDOW,
        "Default window of rules on payment_failure_rate (1m to 30d).")
    alert_error_rate_window: float = setting(
        "ALERT_ERROR_RATE_WINDOW", "5m", ALERT_WINDOW,
        "Default window of rules on error_rate (1m to 30d).")
    alert_api_p95_window: float = setting(
        "ALERT_API_P95_WINDOW", "5m", ALERT_WINDOW,
        "Default window of rules on api_p95_ms (1m to 30d).")
    alert_memory_usage_window: float = setting(
        "ALERT_MEMORY_USAGE_WINDOW", "5m", ALERT_WINDOW,
        "Default window of rules on memory_usage_percent (1m to 30d).")
    alert_dependency_response_time_window: float = setting(
        "ALERT_DEPENDENCY_RESPONSE_TIME_WINDOW", "3m", ALERT_WINDOW,
        "Default window of rules on dependency_response_time (1m to 30d).")
    alert_database_checks: tuple[str, ...] = setting(
        "ALERT_DATABASE_CHECKS", "database", _alerts("parse_check_names", typed="comma"),
        "Comma-separated health checks the Database unavailable rule watches.")


@dataclass(frozen=True)
class HealthSettings:
    """Health checks, their thresholds and circuit breakers, and what readiness depends on."""

    health_check_interval: float = setting(
        "HEALTH_CHECK_INTERVAL", 30, positive_float, "Seconds between health-check rounds.")
    readiness_dependencies: tuple[str, ...] = setting(
        "READINESS_DEPENDENCIES", "store,database", names,
        "Dependencies whose outage makes `/api/health/ready` answer 503 (`store`: Centinela's own store). "
        "Others lower the health score and alert, but keep instances in rotation.")
    db_response_threshold_ms: float = setting(
        "DB_RESPONSE_THRESHOLD", 1000, positive_float,
        "Database check latency in ms above which the database is degraded.")
    stripe_secret_key: str = setting(
        "STRIPE_SECRET_KEY", "", text,
        "Stripe secret key; when set, the stripe health check calls GET /v1/balance.", secret=True)
    stripe_api_base: str = setting(
        "STRIPE_API_BASE", "https://api.stripe.com", optional_url,
        "Base URL of the Stripe API (tests point it at a local server).")
    brevo_api_key: str = setting(
        "BREVO_API_KEY", "", text,
        "Brevo API key; when set, the brevo health check calls GET /v3/account.", secret=True)
    brevo_api_base: str = setting(
        "BREVO_API_BASE", "https://api.brevo.com", optional_url,
        "Base URL of the Brevo API (tests point it at a local server).")
    breaker_failure_threshold: int = setting(
        "BREAKER_FAILURE_THRESHOLD", 5, int_between(1, 1000),
        "Consecutive failures that open a dependency's circuit breaker.")
    breaker_reset_timeout: float = setting(
        "BREAKER_RESET_TIMEOUT", 30, positive_float,
        "Seconds an open breaker waits before letting one trial call through.")
    breaker_success_threshold: int = setting(
        "BREAKER_SUCCESS_THRESHOLD", 2, int_between(1, 1000),
        "Consecutive successful trials that close a half-open breaker.")
    # Secret: a check URL may carry a token, so a bad value is shown as (hidden); the message names the item.
    health_checks: list[Any] = setting(
        "HEALTH_CHECKS", "", health_checks, "JSON list of extra health checks (see Health checks).", secret=True)


@dataclass(frozen=True)
class UptimeSettings:
    """The availability objective and how much evidence a verdict needs."""

    sla_target: float = setting(
        "SLA_TARGET", 99.9, float_between(50, 99.999),
        "Availability objective in % (50-99.999): uptime compliance and the error budget follow from it.")
    uptime_min_coverage: float = setting(
        "UPTIME_MIN_COVERAGE", 1, float_between(0, 100),
        "Share of the uptime window (in %) health rounds must vouch for before availability gets an SLA verdict; "
        "below it the verdict is \"not enough data\" and the dashboard greys the figure.")


@dataclass(frozen=True)
class MetricsSettings:
    """How often each process hands its figures to the store, and which currencies it always exports."""

    metrics_flush_interval: float = setting(
        "METRICS_FLUSH_INTERVAL", 5, positive_float,
        "Seconds between flushes of each process's request metrics to the store.")
    system_sample_interval: float = setting(
        "SYSTEM_SAMPLE_INTERVAL", 15, positive_float,
        "Seconds between each process's resource samples (CPU, memory, descriptors, threads).")
    revenue_currencies: tuple[str, ...] = setting(
        "REVENUE_CURRENCIES", "EUR",
        feature("monitoring.business.currencies", "parse_currency_list", empty=(), typed="comma"),
        "Comma-separated currencies whose revenue counter is exported at 0 before their first payment, so "
        "Prometheus' increase() counts that payment; other currencies appear with their first payment.")


@dataclass(frozen=True)
class SchedulerSettings:
    """The background jobs: whether this process runs them, and the leader lease."""

    scheduler_enabled: bool = setting(
        "SCHEDULER_ENABLED", True, boolean, "Run the background scheduler in this process.")
    lease_ttl: float = setting(
        "LEASE_TTL", 15, positive_float,
        "Seconds a leader lease lasts without renewal; another process takes over after it.")


@dataclass(frozen=True)
class RetentionSettings:
    """How long each kind of record is kept, and how often the purge runs."""

    retention_interval: float = setting(
        "RETENTION_INTERVAL", 3600, positive_float, "Seconds between retention purges.")
    metrics_retention_days: int = setting(
        "METRICS_RETENTION_DAYS", 30, int_between(1, 3650), "Days request metrics are kept.")
    alert_retention_days: int = setting(
        "ALERT_RETENTION_DAYS", 90, int_between(1, 3650), "Days alert history is kept.")
    incident_retention_days: int = setting(
        "INCIDENT_RETENTION_DAYS", 365, int_between(1, 3650), "Days incidents are kept.")
    audit_retention_days: int = setting(
        "AUDIT_RETENTION_DAYS", 730, int_between(1, 3650), "Days audit entries are kept.")


@dataclass(frozen=True)
class Settings:
    """All configuration, parsed and validated, by section. Build with ``Settings.from_env``.

    ``settings.notify.smtp_url`` and ``settings.smtp_url`` are the same value: new code takes
    its section; the flat spelling stays for the call sites that predate sections.
    """

    server: ServerSettings
    store: StoreSettings
    keys: KeySettings
    ratelimit: RateLimitSettings
    ingest: IngestSettings
    dashboard: DashboardSettings
    sentry: SentrySettings
    notify: NotifySettings
    alerts: AlertSettings
    health: HealthSettings
    uptime: UptimeSettings
    metrics: MetricsSettings
    scheduler: SchedulerSettings
    retention: RetentionSettings

    def __getattr__(self, name: str) -> Any:
        """The flat spelling: ``settings.port`` is ``settings.server.port``."""
        variable = _BY_ATTR.get(name)
        if variable is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(object.__getattribute__(self, variable.section), name)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        default_var_dir: str | Path | None = None,
        **overrides: Any,
    ) -> Settings:
        """Parse every variable from ``environ`` (default ``os.environ``); raise ConfigError on the first bad one.

        ``overrides`` (by setting name, ``port=9000``, or variable name, ``PORT="9000"``) replace
        the environment's value and are parsed and bounded like it. ``default_var_dir`` is where
        the store and generated keys go when VAR_DIR is unset: the service passes its checkout's
        ``var/``, an embedding app its instance folder; else ``./var``.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for variable in VARIABLES:
            raw = env.get(variable.name)
            try:
                values[variable.attr] = variable.read(raw)
            except ValueError as exc:
                raise ConfigError(f"{variable.name}={variable.shown(raw)}: {exc}") from None
        values.update(_parse_overrides(overrides))
        return cls._assemble(values).with_defaults(default_var_dir)

    @classmethod
    def _assemble(cls, values: Mapping[str, Any]) -> Settings:
        sections: dict[str, Any] = {}
        for section in dataclasses.fields(cls):
            kind: Any = _SECTION_TYPES[section.name]
            sections[section.name] = kind(**{f.name: values[f.name] for f in dataclasses.fields(kind)})
        return cls(**sections)

    def with_defaults(self, default_var_dir: str | Path | None = None) -> Settings:
        """Fill the defaults that depend on other settings (paths under VAR_DIR)."""
        var_dir = self.store.var_dir or str(Path(default_var_dir) if default_var_dir else Path.cwd() / "var")
        database = self.store.database_url or f"sqlite:///{Path(var_dir) / 'centinela.db'}"
        store = dataclasses.replace(self.store, var_dir=var_dir, database_url=_read_database_url(database))
        return dataclasses.replace(self, store=store)

    def replace(self, **changes: Any) -> Settings:
        """These settings with some changed, by setting or variable name, parsed like overrides."""
        values = {v.attr: getattr(getattr(self, v.section), v.attr) for v in VARIABLES}
        values.update(_parse_overrides(changes))
        return self._assemble(values)

    def describe(self) -> dict[str, str]:
        """Every variable's effective value as text, for a person reading the configuration:
        a secret is "(hidden)" when set."""
        described = {}
        for variable in VARIABLES:
            value = getattr(getattr(self, variable.section), variable.attr)
            described[variable.name] = ("(hidden)" if value else "") if variable.secret else _as_text(value)
        return described


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)) and all(isinstance(item, str) for item in value):
        return ",".join(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _parse_overrides(overrides: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(attr, value) of each override, parsed like the environment; ConfigError names a bad one."""
    for key, raw in overrides.items():
        variable = _BY_ATTR.get(key) or _BY_NAME.get(key)
        if variable is None:
            raise ConfigError(f"{key}: no such setting (settings are named like port or PORT)")
        try:
            yield variable.attr, variable.read(raw) if isinstance(raw, str) else variable.parser(raw)
        except ValueError as exc:
            label = variable.name if key == variable.name else f"{key} ({variable.name})"
            raise ConfigError(f"{label}={variable.shown(raw)}: {exc}") from None


def _declarations() -> tuple[Variable, ...]:
    """Every declaration, section by section, each told its field and section."""
    found: list[Variable] = []
    for section in dataclasses.fields(Settings):
        for declared in dataclasses.fields(_SECTION_TYPES[section.name]):
            variable = declared.metadata.get(_DECLARATION)
            if variable is None:
                raise TypeError(f"{section.name}.{declared.name} is not declared with setting()")
            found.append(dataclasses.replace(variable, attr=declared.name, section=section.name))
    return tuple(found)


_SECTION_TYPES: dict[str, type] = {
    f.name: globals()[f.type] if isinstance(f.type, str) else f.type for f in dataclasses.fields(Settings)
}
VARIABLES: tuple[Variable, ...] = _declarations()
_BY_ATTR = {v.attr: v for v in VARIABLES}
_BY_NAME = {v.name: v for v in VARIABLES}
if len(_BY_ATTR) != len(VARIABLES) or len(_BY_NAME) != len(VARIABLES) or set(_BY_ATTR) & set(_SECTION_TYPES):
    raise TypeError("every setting needs its own field name and variable, unlike any section's")


def describe_variables() -> list[tuple[str, str, str]]:
    """(name, default, meaning) for every variable, section by section."""
    return [(v.name, v.default, v.doc) for v in VARIABLES]


def configuration_table() -> str:
    """The README's configuration table, generated from the declarations."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{v.name}` | {f'`{v.default}`' if v.default else '(unset)'} | {v.doc} |" for v in VARIABLES]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    # python -m monitoring.settings table: the configuration table, for the README.
    # python -m monitoring.settings show: this environment's effective settings, secrets hidden.
    command = sys.argv[1] if len(sys.argv) > 1 else "table"
    if command == "show":
        try:
            current = Settings.from_env()
        except ConfigError as error:
            sys.exit(f"centinela: configuration error: {error}")
        print("\n".join(f"{name}={value}" for name, value in current.describe().items()))
    else:
        print(configuration_table(), end="")
