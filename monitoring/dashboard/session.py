"""The HTML dashboard's sign-in: a signed, expiring token that names the key that was given.

The page never holds the key itself: the login form posts it once, the server identifies it
through the KeyRing (constant time) and answers with this token in an HttpOnly cookie. The
token carries only the key's id (``metrics:3f2a9c1e``, never the key) and is signed with
itsdangerous under a secret derived from the admin key, so

* it is not a constant in the code, and every host sharing the keys accepts it;
* changing the admin key signs everyone out, and changing the metrics key voids the tokens
  that name it (the id no longer matches a configured key).

Cross-site posts are refused by ``same_origin``: a browser sends ``Origin`` (or at least
``Referer``) with a form post, and the host in it must be the host the request was sent to.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from monitoring.clock import Clock
from monitoring.security.keys import ADMIN, ApiKey, KeyRing

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

    def __init__(self, keyring: KeyRing, clock: Clock) -> None:
        self.keyring = keyring
        self.clock = clock

        class ClockedSigner(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock.now())

        self._serializer = URLSafeTimedSerializer(session_secret(keyring), salt=_SALT, signer=ClockedSigner)

    def issue(self, key: ApiKey) -> str:
        return self._serializer.dumps({"key": key.key_id})

    def verify(self, token: str | None) -> Session | None:
        """The session a token stands for, or None (missing, forged, expired, or its key was changed)."""
        if not token:
            return None
        try:
            payload, issued = self._serializer.loads(token, max_age=SESSION_SECONDS, return_timestamp=True)
        except BadSignature:  # also SignatureExpired and BadPayload
            return None
        key_id = payload.get("key") if isinstance(payload, dict) else None
        key = next((k for k in self.keyring.keys if k.key_id == key_id), None)
        return None if key is None else Session(key, issued.timestamp())


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
