"""A real SMTP server on 127.0.0.1 for the e-mail channel's tests (aiosmtpd, in its own thread).

It records every message it was sent (also the ones it refused, with the reply it gave), and
answers what the test says: a queue of replies to DATA (``respond_sequence``), refusals of
single recipients (``refuse_recipient``), and optionally TLS (STARTTLS or implicit, with a
certificate from a throwaway CA: ``TestCA``) and a login.

Typical use::

    with RecordingSMTPServer() as smtp:
        smtp.respond_sequence(["451 4.3.0 Try again later"])
        ... deliver ...
        (mail,) = smtp.wait_for(1)
        assert mail.message["Subject"] == "[CRITICAL] Firing: ..."
"""
from __future__ import annotations

import collections
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

LOCALHOST = "127.0.0.1"


class TestCA:
    """A CA of its own and a certificate for 127.0.0.1 and localhost. ``trust(monkeypatch)``
    makes this process's default TLS context trust it (SSL_CERT_FILE, as an operator would)."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert(LOCALHOST, "localhost")
        self.bundle = directory / "test-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.bundle))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        return context

    def trust(self, monkeypatch: Any) -> None:
        monkeypatch.setenv("SSL_CERT_FILE", str(self.bundle))


@dataclass(frozen=True)
class ReceivedMail:
    """One DATA the server was sent, and what it answered."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    reply: str
    tls: bool
    login: str | None
    received_at: float

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("2")

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def part(self, subtype: str) -> str:
        """The decoded text of the text/<subtype> part."""
        found = self.message.get_body(preferencelist=(subtype,))
        assert found is not None and found.get_content_type() == f"text/{subtype}", f"no text/{subtype} part"
        return str(found.get_content())


class _Handler:
    def __init__(self, owner: RecordingSMTPServer) -> None:
        self.owner = owner

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        refusal = self.owner._refusal_of(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return self.owner._record(session, envelope)


class _EphemeralController(Controller):
    """aiosmtpd's Controller on a port the kernel picks (no race for a 'free' port)."""

    async def _bind(self) -> Any:
        server = await self.loop.create_server(self._factory_invoker, host=self.hostname, port=0,
                                               ssl=self.ssl_context)
        self.port = server.sockets[0].getsockname()[1]
        return server

    def _create_server(self) -> Any:
        return self._bind()


class RecordingSMTPServer:
    """``tls``: None (plain; STARTTLS not offered), "starttls" (offered) or "implicit" (smtps).
    ``logins``: user → password; when given, AUTH is offered (also without TLS when
    ``auth_without_tls``, which a loopback relay may do)."""

    def __init__(self, *, tls: str | None = None, ca: TestCA | None = None, logins: dict[str, str] | None = None,
                 auth_without_tls: bool = False) -> None:
        self._lock = threading.Condition()
        self._received: list[ReceivedMail] = []
        self._replies: collections.deque[str] = collections.deque()
        self._refusals: dict[str, str] = {}
        self.logins = dict(logins or {})
        self.implicit_tls = tls == "implicit"
        kwargs: dict[str, Any] = {"server_hostname": "localhost", "ready_timeout": 10.0}
        if tls is not None:
            assert ca is not None, "TLS needs a TestCA"
            if tls == "starttls":
                kwargs["tls_context"] = ca.server_context()
            elif tls == "implicit":
                kwargs["ssl_context"] = ca.server_context()
            else:
                raise ValueError(tls)
        if logins is not None:
            kwargs["authenticator"] = self._authenticate
            # aiosmtpd counts only STARTTLS as TLS for AUTH; an implicit-TLS connection is TLS too.
            kwargs["auth_require_tls"] = not auth_without_tls and not self.implicit_tls
        self._controller = _EphemeralController(_Handler(self), hostname=LOCALHOST, **kwargs)

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> RecordingSMTPServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> RecordingSMTPServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def url(self, scheme: str = "smtp", login: str = "", query: str = "") -> str:
        return f"{scheme}://{login + '@' if login else ''}{LOCALHOST}:{self.port}{'?' + query if query else ''}"

    # -- behaviour -----------------------------------------------------------

    def respond_sequence(self, replies: Iterable[str]) -> None:
        """Replies to the next DATA commands, one each; then "250 OK: queued"."""
        with self._lock:
            self._replies = collections.deque(replies)

    def refuse_recipient(self, address: str, reply: str) -> None:
        with self._lock:
            self._refusals[address] = reply

    # -- what arrived ----------------------------------------------------------

    @property
    def received(self) -> list[ReceivedMail]:
        """Every DATA, accepted or refused, oldest first."""
        with self._lock:
            return list(self._received)

    @property
    def accepted(self) -> list[ReceivedMail]:
        return [m for m in self.received if m.accepted]

    def wait_for(self, n: int = 1, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until ``n`` messages were accepted; return the accepted ones."""
        with self._lock:
            if not self._lock.wait_for(lambda: sum(m.accepted for m in self._received) >= n, timeout):
                raise AssertionError(f"expected {n} accepted message(s) within {timeout}s, got "
                                     f"{[m.reply for m in self._received]}")
            return [m for m in self._received if m.accepted]

    # -- handler callbacks -------------------------------------------------------

    def _refusal_of(self, address: str) -> str | None:
        with self._lock:
            return self._refusals.get(address)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self.logins.get(login) == password:
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    def _record(self, session: Any, envelope: Any) -> str:
        with self._lock:
            reply = self._replies.popleft() if self._replies else "250 2.0.0 OK: queued as C3N71N3LA"
            login = session.auth_data if session.authenticated else None
            self._received.append(ReceivedMail(
                mail_from=envelope.mail_from, rcpt_tos=tuple(envelope.rcpt_tos),
                data=bytes(envelope.original_content or envelope.content or b""), reply=reply,
                tls=self.implicit_tls or session.ssl is not None, login=login if isinstance(login, str) else None,
                received_at=time.time(),
            ))
            self._lock.notify_all()
            return reply
