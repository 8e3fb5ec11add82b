"""The HTML dashboard's sign-in: a signed, expiring token that names the key that was given.

The page never holds the key itself: the login form posts it once, the server identifies it
through the KeyRing (constant time) and answers with this token in an HttpOnly cookie. The
token carries only the key's id (``metrics:3f2a9c1e``, never the key) and is signed with
itsdangerous under a secret derived from the admin key, so

* it is not a constant in the code, and every host sharing the keys accepts it;
* changing the admin key signs everyone out, and changing the metrics key voids the tokens
  that name it (the id no longer matches a configured key);
* it names a session row in the store: signing out revokes that row, so a copied cookie
  stops working at once, on every worker and host (a signature alone cannot be taken back).

Cross-site posts are refused by ``same_origin``: a browser sends ``Origin`` (or at least
``Referer``) with a form post, and the host in it must be the host the request was sent to.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select, update

from monitoring.clock import Clock
from monitoring.security.keys import ADMIN, ApiKey, KeyRing
from monitoring.store.database import Store
from monitoring.store.schema import dashboard_sessions

COOKIE_NAME = "centinela_dashboard"
SESSION_SECONDS = 12 * 3600
_SECRET_LABEL = b"centinela dashboard session v1"
_SALT = "centinela.dashboard.session"


def session_secret(keyring: KeyRing) -> bytes:
    """HMAC-SHA256 of a fixed label under the admin key: secret as long as the admin key is."""
    return hmac.new(keyring.get(ADMIN).secret.encode(), _SECRET_LABEL, hashlib.sha256).digest()


@dataclass(frozen=True)
class Session:
    key: ApiKey
    issued_at: float

    @property
    def expires_at(self) -> float:
        return self.issued_at + SESSION_SECONDS


class DashboardSessions:
    """Issue and verify session tokens; time comes from the injected clock (tests drive expiry)."""

    def __init__(self, keyring: KeyRing, clock: Clock, store: Store) -> None:
        self.keyring = keyring
        self.clock = clock
        self.store = store

        class ClockedSigner(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock.now())

        self._serializer = URLSafeTimedSerializer(session_secret(keyring), salt=_SALT, signer=ClockedSigner)

    def issue(self, key: ApiKey) -> str:
        session_id = secrets.token_hex(16)
        now = self.clock.now()
        with self.store.write() as conn:
            conn.execute(dashboard_sessions.insert().values(
                id=session_id, key_id=key.key_id, issued_at=now, expires_at=now + SESSION_SECONDS))
        return self._serializer.dumps({"key": key.key_id, "sid": session_id})

    def verify(self, token: str | None) -> Session | None:
        """The session a token stands for, or None (missing, forged, expired, signed out, or its key
        was changed)."""
        found = self._payload(token)
        if found is None:
            return None
        key_id, session_id, issued = found
        key = next((k for k in self.keyring.keys if k.key_id == key_id), None)
        if key is None:
            return None
        with self.store.read() as conn:
            row = conn.execute(select(dashboard_sessions.c.key_id, dashboard_sessions.c.expires_at,
                                      dashboard_sessions.c.revoked_at)
                               .where(dashboard_sessions.c.id == session_id)).first()
        if row is None or row.revoked_at is not None or row.key_id != key_id or row.expires_at <= self.clock.now():
            return None
        return Session(key, issued)

    def revoke(self, token: str | None) -> bool:
        """Sign the session out everywhere; False when the token names no live session."""
        found = self._payload(token)
        if found is None:
            return False
        with self.store.write() as conn:
            changed = conn.execute(update(dashboard_sessions)
                                   .where(dashboard_sessions.c.id == found[1], dashboard_sessions.c.revoked_at.is_(None))
                                   .values(revoked_at=self.clock.now())).rowcount
        return bool(changed)

    def _payload(self, token: str | None) -> tuple[str, str, float] | None:
        if not token:
            return None
        try:
            payload, issued = self._serializer.loads(token, max_age=SESSION_SECONDS, return_timestamp=True)
        except BadSignature:  # also SignatureExpired and BadPayload
            return None
        if not isinstance(payload, dict):
            return None
        key_id, session_id = payload.get("key"), payload.get("sid")
        if not isinstance(key_id, str) or not isinstance(session_id, str):
            return None  # a token from before sessions lived in the store: sign in again
        return key_id, session_id, issued.timestamp()


def same_origin(origin: str | None, referer: str | None, host: str) -> bool:
    """A browser's form post came from a page of ``host``: its Origin (else its Referer) names that host.

    Neither header: refused, since every browser this form serves sends at least one of them on a
    POST, and a client that strips both has no business posting a login form.
    """
    source = origin if origin and origin != "null" else referer
    if not source:
        return False
    netloc = urlsplit(source).netloc
    return bool(netloc) and hmac.compare_digest(netloc.lower().encode(), host.lower().encode())
