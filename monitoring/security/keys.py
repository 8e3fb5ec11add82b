"""API keys: a read key (metrics), an admin key and an ingest key, compared in constant time.

The ingest key (INGEST_API_KEY) only sends telemetry: the OTLP and Sentry-protocol endpoints
and POST /api/monitoring/events take it, every read and admin endpoint refuses it (403). It
is the key that goes into an app's configuration, a browser bundle or a DSN, so it must
unlock nothing else.

A key that is not configured is generated once into VAR_DIR (a private folder, 0700) with
mode 0600, so the service never runs open by default; the log says where it is and its key
id, never its value. Keys are referred to by a key id (role and a short hash), never by their
value, in logs and the audit trail. Generated keys use letters and digits only: some clients
refuse other characters (the JavaScript Sentry SDK rejects a DSN whose key holds a "-").
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import string
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from monitoring.private_files import private_directory

METRICS = "metrics"
ADMIN = "admin"
INGEST = "ingest"
ROLES = (METRICS, ADMIN, INGEST)

_KEY_ALPHABET = string.ascii_letters + string.digits
_KEY_LENGTH = 43  # 43 characters of 62: 256 bits


def generate_key() -> str:
    """A new random key of letters and digits (256 bits)."""
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(_KEY_LENGTH))


def key_id_of(role: str, secret: str) -> str:
    return f"{role}:{hashlib.sha256(secret.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class ApiKey:
    role: str
    secret: str = field(repr=False)
    generated: bool = False
    path: str = ""  # where a generated key is kept

    @property
    def key_id(self) -> str:
        """A stable, non-reversible name for the key: safe for logs and the audit log."""
        return key_id_of(self.role, self.secret)

    def grants(self, role: str) -> bool:
        """The admin key grants read access (and ingest) too; the ingest key grants nothing else."""
        return self.role == role or self.role == ADMIN


def _announcing(announce: Callable[[str, str, str], None], role: str, path: Path) -> Callable[[str], None]:
    """``announce(role, key_id, path)`` bound to one role's key file, as load_or_generate_secret calls it."""
    return lambda secret: announce(role, key_id_of(role, secret), str(path))


def load_or_generate_secret(path: Path, announce: Callable[[str], None] | None) -> tuple[str, bool]:
    """Read the key at ``path``, or create it so that concurrent workers agree on one key.

    The new key is written to a private temporary file first and then hard-linked into place:
    the link either appears with the whole key in it or fails because another process won,
    so no reader ever sees a half-written file.
    """
    private_directory(path.parent)
    if path.exists():
        return _read_key(path), False
    value = generate_key()
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        os.link(temporary, path)
    except FileExistsError:
        return _read_key(path), False
    finally:
        os.unlink(temporary)
    if announce:
        announce(value)
    return value, True


def _read_key(path: Path) -> str:
    value = path.read_text().strip()
    if not value:
        raise RuntimeError(f"{path} is empty; delete it to generate a new key")
    return value


@dataclass(frozen=True)
class KeyRing:
    """The configured keys; identifies a presented key in constant time."""

    keys: tuple[ApiKey, ...]

    @classmethod
    def load(
        cls,
        metrics_key: str,
        admin_key: str,
        var_dir: str,
        announce: Callable[[str, str, str], None] | None = None,
        ingest_key: str = "",
    ) -> KeyRing:
        """Use the configured keys; generate (once) and keep any missing one under ``var_dir``.

        ``announce(role, key_id, path)`` is called for a key this call generated.
        """
        loaded = []
        for role, configured in ((METRICS, metrics_key), (ADMIN, admin_key), (INGEST, ingest_key)):
            if configured:
                loaded.append(ApiKey(role, configured))
                continue
            path = Path(var_dir) / f"{role}-api-key"
            value, generated = load_or_generate_secret(
                path, _announcing(announce, role, path) if announce else None
            )
            loaded.append(ApiKey(role, value, generated=generated, path=str(path)))
        secrets_by_role = {key.role: key.secret for key in loaded}
        if len(set(secrets_by_role.values())) < len(secrets_by_role):
            raise ValueError("METRICS_API_KEY, ADMIN_API_KEY and INGEST_API_KEY must all differ")
        return cls(tuple(loaded))

    def identify(self, presented: str) -> ApiKey | None:
        """The key matching ``presented``; every key is compared, in constant time, whatever matches."""
        presented_bytes = presented.encode()
        match = None
        for key in self.keys:
            if hmac.compare_digest(presented_bytes, key.secret.encode()):
                match = key
        return match

    def get(self, role: str) -> ApiKey:
        return next(k for k in self.keys if k.role == role)
