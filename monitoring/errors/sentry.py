"""Sentry: initialised when SENTRY_DSN is set, with every event, breadcrumb and transaction
passing the PII sanitiser before it leaves the process.

sentry-sdk keeps one client per process. ``init_sentry`` is idempotent (the same options
twice is a no-op; new options close the old client first) and ``shutdown_sentry`` turns it
off again; whether the running client is ours is read off the client itself (our scrubbing
hook), so no module state is needed. ``SentryReporter`` is what one Centinela holds: it
starts Sentry when SENTRY_DSN is set and nobody else in the process has, leaves a host app's
own Sentry alone, and stops only a client it started. Sending happens on sentry-sdk's
background thread: a slow, failing or absent Sentry never delays or fails a request, and a
hook that cannot scrub an event drops it rather than send it unscrubbed.
"""
from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from monitoring.security.pii import sanitise
from monitoring.settings import SentrySettings

if TYPE_CHECKING:  # sentry-sdk is imported only when Sentry is configured (see SentryReporter.start)
    from sentry_sdk.client import BaseClient
    from sentry_sdk.types import Breadcrumb, BreadcrumbHint, Event, Hint

log = logging.getLogger(__name__)

# Loggers whose error records describe an exception the Flask integration already sends
# (from got_request_exception): reporting them again would make two Sentry issues of one error.
DUPLICATE_REPORTING_LOGGERS = ("monitoring.api.errors",)


@dataclass(frozen=True)
class SentryOptions:
    dsn: str
    environment: str
    release: str | None  # None: sentry-sdk finds one (SENTRY_RELEASE, a git checkout, ...)
    traces_sample_rate: float  # 0 turns performance tracing off
    shutdown_timeout: float = 2.0  # seconds a worker waits at exit for unsent events

    def __repr__(self) -> str:  # the DSN carries the project's key
        return (
            f"SentryOptions(dsn=[redacted], environment={self.environment!r}, release={self.release!r}, "
            f"traces_sample_rate={self.traces_sample_rate!r})"
        )


def sentry_options(settings: SentrySettings, default_release: str = "") -> SentryOptions | None:
    """The options from the settings, or None when SENTRY_DSN is unset (Sentry off).

    The release is SENTRY_RELEASE, else ``default_release`` (an embedding app's own version,
    so its errors are never filed under Centinela's), else whatever sentry-sdk detects.
    """
    if not settings.sentry_dsn:
        return None
    return SentryOptions(
        dsn=settings.sentry_dsn,
        environment=settings.sentry_environment,
        release=settings.sentry_release or default_release or None,
        traces_sample_rate=settings.sentry_traces_sample_rate,
    )


def scrub_event(event: Event, hint: Hint | None = None) -> Event | None:
    """before_send / before_send_transaction: the whole event through the sanitiser, or dropped."""
    try:
        # sanitise() is typed object -> object: a mapping comes back as a dict of the same keys,
        # but a secret value becomes "[redacted]" whatever the event's schema says it is.
        return sanitise(event)  # type: ignore[return-value]
    except Exception:
        log.warning("a Sentry event was dropped: it could not be sanitised")
        return None


def scrub_breadcrumb(crumb: Breadcrumb, hint: BreadcrumbHint | None = None) -> Breadcrumb | None:
    """before_breadcrumb: breadcrumbs carry log messages and URLs, so they are sanitised too."""
    try:
        # As in scrub_event: the scrubbed copy of a dict is a dict (sanitise() says object).
        return sanitise(crumb)  # type: ignore[return-value]
    except Exception:
        return None


def _running_options(client: BaseClient) -> SentryOptions | None:
    """The options of the process's client if it is one of ours (our scrubbing hook), else None."""
    if not client.is_active() or client.options.get("before_send") is not scrub_event:
        return None
    options = client.options.get("centinela_options")
    return options if isinstance(options, SentryOptions) else None


def init_sentry(options: SentryOptions) -> bool:
    """Start sentry-sdk with these options; False when it already runs with exactly them."""
    import sentry_sdk
    from sentry_sdk.integrations.logging import ignore_logger

    if _running_options(sentry_sdk.get_client()) == options:
        return False
    _close_client(options.shutdown_timeout)
    with warnings.catch_warnings():
        # sentry-sdk 2.x calls send_default_pii deprecated (in favour of data_collection) but
        # still honours it; we set it explicitly so that no SDK default can ever turn PII on.
        warnings.filterwarnings("ignore", message="The send_default_pii option is deprecated",
                                category=DeprecationWarning)
        _start_client(options)
    # Remembered on the client itself: what it runs with is a fact about it, not about us.
    sentry_sdk.get_client().options["centinela_options"] = options
    for name in DUPLICATE_REPORTING_LOGGERS:
        ignore_logger(name)
    return True


def _start_client(options: SentryOptions) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration

    sentry_sdk.init(
        dsn=options.dsn,
        environment=options.environment,
        release=options.release,
        send_default_pii=False,
        before_send=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
        before_send_transaction=scrub_event,
        # None, not 0: with None the SDK creates no spans at all, so tracing costs nothing when off.
        traces_sample_rate=options.traces_sample_rate or None,
        shutdown_timeout=options.shutdown_timeout,
        # No sentry-trace / baggage on outbound calls: by default the SDK adds them to every
        # request (webhooks, Slack, PagerDuty, the Stripe and Brevo checks), and baggage names
        # the DSN's public key. An empty list matches no URL; the SDK never adds them to the
        # configured Sentry itself either.
        trace_propagation_targets=[],
        # Transactions named by URL rule (/tickets/<id>), never by the raw path.
        integrations=[FlaskIntegration(transaction_style="url")],
    )


def _close_client(timeout: float) -> None:
    import sentry_sdk

    client = sentry_sdk.get_client()
    if client.is_active():
        client.close(timeout=timeout)
    sentry_sdk.get_global_scope().set_client(None)


def shutdown_sentry(timeout: float = 2.0) -> None:
    """Send what is queued (waiting at most ``timeout`` seconds) and turn Sentry off in this process."""
    _close_client(timeout)


def sentry_active() -> bool:
    """Whether the process's Sentry client is one Centinela started."""
    return _running_options_now() is not None


class SentryReporter:
    """One Centinela's Sentry: started when SENTRY_DSN is set, never over a host app's own client."""

    def __init__(self, options: SentryOptions | None) -> None:
        self.options = options
        self._started = False
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: SentrySettings, default_release: str = "") -> SentryReporter:
        return cls(sentry_options(settings, default_release))

    def start(self) -> bool:
        """Start Sentry for this process if configured and nobody else has; True when it runs ours."""
        if self.options is None:
            return False  # sentry-sdk is not even imported (nearly 3 MB a worker)
        import sentry_sdk

        with self._lock:
            client = sentry_sdk.get_client()
            if client.is_active() and _running_options(client) is None:
                log.info("Sentry is already set up by the host app: Centinela leaves it as it is")
                return False
            init_sentry(self.options)
            self._started = True
            return True

    def stop(self, timeout: float | None = None) -> None:
        """Close the client only if it is still the one this reporter started."""
        with self._lock:
            if self._started and self.options is not None and _running_options_now() == self.options:
                shutdown_sentry(self.options.shutdown_timeout if timeout is None else timeout)
            self._started = False


def _running_options_now() -> SentryOptions | None:
    import sentry_sdk

    return _running_options(sentry_sdk.get_client())
