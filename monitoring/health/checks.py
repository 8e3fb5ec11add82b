"""The checks: database (the store), Stripe, Brevo, HEALTH_CHECKS http / tcp items, custom functions.

A check is a name, whether it is critical, a timeout, an optional latency threshold and a
``probe`` that makes one attempt and says what happened (``Probe``). Probes never raise for
an expected failure, and their error text is generic and public: "connection refused",
"timed out after 2s", "HTTP 500". Never a URL, a host, an address, a key or a connection
string: /api/health/check is public.
"""
from __future__ import annotations

import errno
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from monitoring.health.definitions import MAX_TIMEOUT, CheckDefinition, HttpCheckDefinition, TcpCheckDefinition
from monitoring.health.status import DEGRADED, HEALTHY, UNHEALTHY
from monitoring.settings import Settings
from monitoring.store.database import Store

log = logging.getLogger(__name__)

DATASTORE = "datastore"
COMPONENT = "component"

# Stripe and Brevo: an answer slower than this is "degraded"; no answer within the timeout is "unhealthy".
EXTERNAL_API_TIMEOUT = 5.0
EXTERNAL_API_LATENCY_THRESHOLD_MS = 2000.0
DATABASE_MIN_TIMEOUT = 5.0
USER_AGENT = "centinela-health/1"


@dataclass(frozen=True)
class Probe:
    """What one attempt found: the outcome (a status), how long the answer took and why it failed."""

    status: str
    response_time_ms: float | None = None
    error: str = ""

    @classmethod
    def failed(cls, error: str, response_time_ms: float | None = None) -> Probe:
        return cls(UNHEALTHY, response_time_ms, error)


@dataclass(frozen=True)
class Check:
    name: str
    probe: Callable[[], Probe] = field(repr=False, compare=False)
    critical: bool = False
    timeout: float = 5.0
    latency_threshold_ms: float | None = None
    component_type: str = COMPONENT
    kind: str = "custom"  # database | stripe | brevo | http | tcp | custom
    uses_breaker: bool = True  # the database check cannot: the breakers live in the database

    def judge(self, probe: Probe) -> Probe:
        """Apply the latency threshold: an answer slower than it is degraded."""
        threshold = self.latency_threshold_ms
        if (
            probe.status == HEALTHY
            and threshold is not None
            and probe.response_time_ms is not None
            and probe.response_time_ms > threshold
        ):
            error = f"answered in {probe.response_time_ms:.0f} ms, above the {threshold:g} ms threshold"
            return Probe(DEGRADED, probe.response_time_ms, error)
        return probe


# --- probes --------------------------------------------------------------------------------


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps: requests -> urllib3 (``.reason``, ``args[0]``) -> socket."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        wrapped = getattr(current, "reason", None)
        if not isinstance(wrapped, BaseException) and current.args and isinstance(current.args[0], BaseException):
            wrapped = current.args[0]
        current = wrapped if isinstance(wrapped, BaseException) else (current.__cause__ or current.__context__)


def describe_network_error(exc: BaseException, timeout: float) -> str:
    """A public, generic description of why a connection failed: no host, address or URL."""
    import requests
    import urllib3

    causes = list(_causes(exc))
    for cause in causes:  # the socket-level cause, when there is one, says it best
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, (socket.gaierror, urllib3.exceptions.NameResolutionError)):
            return "name resolution failed"
        if isinstance(cause, (requests.exceptions.SSLError, ssl.SSLError)):
            return "TLS handshake failed"
        if isinstance(cause, TimeoutError):
            return f"timed out after {timeout:g}s"
    for cause in causes:
        # urllib3's NewConnectionError subclasses its ConnectTimeoutError (compatibility): not a timeout.
        if isinstance(cause, urllib3.exceptions.NewConnectionError):
            continue
        if isinstance(cause, (requests.Timeout, urllib3.exceptions.TimeoutError)):
            return f"timed out after {timeout:g}s"
    for cause in causes:
        if isinstance(cause, OSError) and cause.errno is not None and cause.errno in errno.errorcode:
            return f"connection failed ({errno.errorcode[cause.errno]})"
    return "connection failed"


def http_probe(
    url: str,
    timeout: float,
    expected_status: int = 200,
    headers: dict[str, str] | None = None,
) -> Callable[[], Probe]:
    """GET ``url``: ``expected_status`` is healthy, 429 is degraded (answering, but throttling us)."""
    sent = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}

    def probe() -> Probe:
        import requests  # on the first HTTP check, not when the app starts (~5 MB a worker)

        started = time.perf_counter()
        try:
            # stream=True: the time to the status line is the response time; the body is not read.
            response = requests.get(url, headers=sent, timeout=timeout, allow_redirects=False, stream=True)
        except requests.RequestException as exc:
            return Probe.failed(describe_network_error(exc, timeout))
        elapsed = _elapsed_ms(started)
        status = response.status_code
        response.close()
        if status == expected_status:
            return Probe(HEALTHY, elapsed)
        if status == 429:
            return Probe(DEGRADED, elapsed, "HTTP 429 (rate limited)")
        return Probe.failed(f"HTTP {status}", elapsed)

    return probe


def tcp_probe(host: str, port: int, timeout: float) -> Callable[[], Probe]:
    """Open a TCP connection and close it: the service accepts connections."""

    def probe() -> Probe:
        started = time.perf_counter()
        try:
            with socket.create_connection((host, port), timeout=timeout):
                elapsed = _elapsed_ms(started)
        except OSError as exc:
            return Probe.failed(describe_network_error(exc, timeout))
        return Probe(HEALTHY, elapsed)

    return probe


def database_probe(store: Store) -> Callable[[], Probe]:
    """One real round trip to the store."""

    def probe() -> Probe:
        try:
            seconds = store.ping()
        except Exception as exc:  # any driver error: the store did not answer
            if not store.availability.failed(exc):  # an outage is logged once, by the store itself
                log.warning("database health check failed: %s", type(exc).__name__)
            return Probe.failed(_database_error(exc))
        return Probe(HEALTHY, seconds * 1000.0)

    return probe


def _database_error(exc: BaseException) -> str:
    # Driver messages carry the host, port, user and database name: say only what kind of failure.
    text = str(exc).lower()
    if "timeout" in text or "timed out" in text:
        return "timed out"
    if "refused" in text:
        return "connection refused"
    if "locked" in text or "busy" in text:
        return "database is locked"
    if "authentication" in text or "password" in text:
        return "authentication failed"
    if "too many connections" in text or "connection limit" in text:
        return "too many connections"
    if "terminat" in text or "closed the connection" in text or "shutting down" in text:
        return "connection terminated"
    if "does not exist" in text and "database" in text:
        return "no such database"
    if "unable to open" in text or "disk i/o" in text or "readonly" in text or "read-only" in text:
        return "store file not usable"
    return "query failed"


def custom_probe(fn: Callable[[], Any]) -> Callable[[], Probe]:
    """Run a host-app function: True / None is healthy, False unhealthy, or it returns a status name.

    An exception is unhealthy; only its type is reported (its message may name hosts).
    """

    def probe() -> Probe:
        started = time.perf_counter()
        try:
            outcome = fn()
        except Exception as exc:
            log.warning("custom health check raised %s", type(exc).__name__, exc_info=True)
            return Probe.failed(f"check raised {type(exc).__name__}", _elapsed_ms(started))
        elapsed = _elapsed_ms(started)
        if outcome is None or outcome is True or outcome == HEALTHY:
            return Probe(HEALTHY, elapsed)
        if outcome == DEGRADED:
            return Probe(DEGRADED, elapsed, "check reported degraded")
        if outcome is False or outcome == UNHEALTHY:
            return Probe.failed("check reported unhealthy", elapsed)
        return Probe.failed("check returned an unexpected value", elapsed)

    return probe


# --- the configured set ----------------------------------------------------------------------


def database_check(store: Store, threshold_ms: float) -> Check:
    return Check(
        name="database",
        probe=database_probe(store),
        critical=True,
        timeout=min(MAX_TIMEOUT, max(DATABASE_MIN_TIMEOUT, 2 * threshold_ms / 1000.0)),
        latency_threshold_ms=threshold_ms,
        component_type=DATASTORE,
        kind="database",
        uses_breaker=False,
    )


def stripe_check(api_base: str, secret_key: str) -> Check:
    url = api_base.rstrip("/") + "/v1/balance"
    return Check(
        name="stripe",
        probe=http_probe(url, EXTERNAL_API_TIMEOUT, headers={"Authorization": f"Bearer {secret_key}"}),
        critical=True,  # no payments, no ticket sales
        timeout=EXTERNAL_API_TIMEOUT,
        latency_threshold_ms=EXTERNAL_API_LATENCY_THRESHOLD_MS,
        kind="stripe",
    )


def brevo_check(api_base: str, api_key: str) -> Check:
    url = api_base.rstrip("/") + "/v3/account"
    return Check(
        name="brevo",
        probe=http_probe(url, EXTERNAL_API_TIMEOUT, headers={"api-key": api_key}),
        critical=False,  # e-mail can be sent later; sales go on without it
        timeout=EXTERNAL_API_TIMEOUT,
        latency_threshold_ms=EXTERNAL_API_LATENCY_THRESHOLD_MS,
        kind="brevo",
    )


def check_from_definition(definition: CheckDefinition) -> Check:
    """A HEALTH_CHECKS item as a Check."""
    if isinstance(definition, HttpCheckDefinition):
        probe = http_probe(definition.url, definition.timeout, definition.expected_status)
    elif isinstance(definition, TcpCheckDefinition):
        probe = tcp_probe(definition.host, definition.port, definition.timeout)
    else:  # pragma: no cover - the parser only makes the two
        raise TypeError(definition)
    return Check(
        name=definition.name,
        probe=probe,
        critical=definition.critical,
        timeout=definition.timeout,
        latency_threshold_ms=definition.latency_threshold_ms,
        kind=definition.type,
    )


def configured_checks(store: Store, settings: Settings) -> list[Check]:
    """Every dependency the settings name. An unconfigured dependency is not checked (nor failing)."""
    checks = [database_check(store, settings.db_response_threshold_ms)]
    if settings.stripe_secret_key:
        checks.append(stripe_check(settings.stripe_api_base, settings.stripe_secret_key))
    if settings.brevo_api_key:
        checks.append(brevo_check(settings.brevo_api_base, settings.brevo_api_key))
    checks += [check_from_definition(d) for d in settings.health_checks]
    return checks
