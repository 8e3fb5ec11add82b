"""Dependencies that must answer at start-up: the store (DATABASE_URL) and a shared rate-limit
storage (RATELIMIT_STORAGE_URI).

A service that starts without them serves 503s (no store) or silently unlimited requests (no
rate-limit storage), so start-up stops with one line that names the variable and the address
(its password hidden): ``DependencyUnavailable``. The service's gunicorn prints it and exits
non-zero (gunicorn.conf.py); an app that embeds Centinela gets it from ``Monitoring(app)``.
RATELIMIT_FAIL_OPEN=true starts anyway without the rate-limit storage: one warning, and a
degraded ``ratelimit`` dependency in health while it does not answer.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from monitoring.security.rate_limits import RateLimits, StorageUnavailable
from monitoring.store.database import Store, describe_unavailability, is_store_unavailable

log = logging.getLogger(__name__)


class DependencyUnavailable(RuntimeError):
    """A dependency that must answer at start-up does not: the message is the one line to show."""

    def __init__(self, variable: str, address: str, reason: str, advice: str) -> None:
        self.variable = variable
        self.address = address
        self.reason = reason
        super().__init__(f"{variable}={address} does not answer ({reason}): {advice}")


@dataclass(frozen=True)
class RateLimitStorageCheck:
    """What the start-up found about the rate-limit storage."""

    answered: bool
    reason: str = ""


def hide_password(url: str) -> str:
    """``redis://:secret@host:6379/0`` -> ``redis://:***@host:6379/0`` (any scheme with userinfo)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(hidden)"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def check_store(store: Store) -> None:
    """Raise DependencyUnavailable when the store cannot be reached (one real round trip).

    Made before the store's own bookkeeping sees it, so that a store absent at start-up is this
    one line, not also an outage in the log.
    """
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar_one()
    except SQLAlchemyError as error:
        if not is_store_unavailable(error):
            raise
        raise DependencyUnavailable(
            "DATABASE_URL", store.describe(), describe_unavailability(error),
            "start the database or point DATABASE_URL at one that answers",
        ) from None
    except OSError as error:  # a SQLite path whose directory cannot be made
        raise DependencyUnavailable(
            "DATABASE_URL", store.describe(), error.strerror or type(error).__name__,
            "point DATABASE_URL at a writable path",
        ) from None


def check_rate_limit_storage(
    limits: RateLimits, uri: str, fail_open: bool, *, warn: bool = True
) -> RateLimitStorageCheck:
    """Raise DependencyUnavailable when a shared rate-limit storage does not answer, unless
    ``fail_open`` (RATELIMIT_FAIL_OPEN=true): then warn (unless ``warn`` is false: gunicorn's
    master leaves it to the workers that serve) and carry on with limits off."""
    if not limits.enabled or not limits.shared:
        return RateLimitStorageCheck(True)
    try:
        limits.check_storage()
    except StorageUnavailable as error:
        reason = str(error) or "no answer"
        if not fail_open:
            raise DependencyUnavailable(
                "RATELIMIT_STORAGE_URI", hide_password(uri), reason,
                "start it, point RATELIMIT_STORAGE_URI at one that answers, or set RATELIMIT_FAIL_OPEN=true "
                "to start without rate limits",
            ) from None
        if warn:
            log.warning(
            "RATELIMIT_STORAGE_URI=%s does not answer (%s); starting anyway (RATELIMIT_FAIL_OPEN=true): "
            "requests pass unlimited until it answers", hide_password(uri), reason,
            )
        limits.note_unavailable_at_start()
        return RateLimitStorageCheck(False, reason)
    return RateLimitStorageCheck(True)
