"""Sending one e-mail over SMTP with smtplib, and reading what the server replied.

The reply becomes a ``SendResult`` with ``protocol`` SMTP: the reply code as its status and the
server's words as its answer, so the outbox retries a 4xx reply ("try again later"), fails a
5xx reply with the server's answer kept, and retries when no reply came (refused, timeout, a
TLS failure, STARTTLS not offered). Every socket operation is bounded by ``timeout``. A
connection is opened per message: alerts are rare, and a pooled connection is one more thing
a dead server can leave half-open.
"""
from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from typing import Any

from monitoring.notify.channel import SMTP
from monitoring.notify.email_settings import STARTTLS, TLS, SmtpTarget
from monitoring.notify.transport import MAX_ANSWER_BYTES, SendResult
from monitoring.security.pii import sanitise_text


class _KeepsDataReply(smtplib.SMTP):
    """smtplib's send_message does everything right (SMTPUTF8, refused recipients, RSET after a
    refusal) but drops the server's reply to DATA, which is the answer the listing shows."""

    data_reply: tuple[int, bytes] | None = None

    def data(self, msg: Any) -> tuple[int, bytes]:
        reply = super().data(msg)
        self.data_reply = reply
        return reply


class _SMTP(_KeepsDataReply):
    pass


class _SMTPS(_KeepsDataReply, smtplib.SMTP_SSL):
    pass


def _reply_text(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return sanitise_text(" ".join(f"{code} {text}".split()))[:MAX_ANSWER_BYTES]


class SmtpSender:
    """Delivers an EmailMessage to ``target``; ``helo_name`` is what EHLO says (the sender's
    domain: a name the operator controls, and no reverse DNS lookup of our own host)."""

    def __init__(self, target: SmtpTarget, timeout: float, helo_name: str) -> None:
        self.target = target
        self.timeout = timeout
        self.helo_name = helo_name

    def send(self, message: EmailMessage, sender: str, recipients: Sequence[str]) -> SendResult:
        started = time.perf_counter()

        def result(status: int | None, answer: str = "", error: str = "") -> SendResult:
            latency = round((time.perf_counter() - started) * 1000, 1)
            return SendResult(status=status, latency_ms=latency, body=answer, error=sanitise_text(error)[:500],
                              protocol=SMTP)

        try:
            refused, reply = self._converse(message, sender, recipients)
        except smtplib.SMTPRecipientsRefused as exc:  # every recipient refused
            return self._all_refused(exc.recipients, recipients, result)
        except smtplib.SMTPResponseException as exc:  # greeting, EHLO, AUTH, MAIL or DATA refused
            return result(exc.smtp_code, _reply_text(exc.smtp_code, exc.smtp_error), f"SMTP {exc.smtp_code}")
        except smtplib.SMTPNotSupportedError as exc:  # no STARTTLS, or no AUTH, offered
            return result(None, error=str(exc))
        except (TimeoutError, ssl.SSLError, smtplib.SMTPException, OSError) as exc:
            return result(None, error=_no_reply(exc, self.timeout))
        code, text = reply
        answer = _reply_text(code, text)
        if refused:  # the others have it; a retry would send them a second copy
            order = {address: i for i, address in enumerate(recipients, 1)}
            answer += "; " + "; ".join(
                f"recipient {order.get(address, '?')} of {len(recipients)} refused: {_reply_text(c, r)}"
                for address, (c, r) in sorted(refused.items(), key=lambda item: order.get(item[0], 0))
            )
        return result(code, answer[:MAX_ANSWER_BYTES], "" if 200 <= code < 300 else f"SMTP {code}")

    def _converse(
        self, message: EmailMessage, sender: str, recipients: Sequence[str]
    ) -> tuple[dict[str, tuple[int, bytes]], tuple[int, bytes]]:
        target = self.target
        context = ssl.create_default_context()  # CERT_REQUIRED and the host name checked
        client: _SMTP | _SMTPS
        if target.security == TLS:
            client = _SMTPS(target.host, target.port, local_hostname=self.helo_name, timeout=self.timeout,
                            context=context)
        else:
            client = _SMTP(target.host, target.port, local_hostname=self.helo_name, timeout=self.timeout)
        try:
            client.ehlo()
            if target.security == STARTTLS:
                if not client.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError(
                        "the server does not offer STARTTLS, which smtp:// requires (smtps:// for TLS "
                        "from the start, ?starttls=no only for a relay beside Centinela)")
                client.starttls(context=context)
                client.ehlo()
            if target.username:
                client.login(target.username, target.password)
            refused = client.send_message(message, from_addr=sender, to_addrs=list(recipients))
            return refused, client.data_reply or (250, b"")
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):  # the message is already accepted, or it is not
                client.close()

    @staticmethod
    def _all_refused(
        refusals: dict[str, tuple[int, bytes]], recipients: Sequence[str],
        result: Callable[[int | None, str, str], SendResult],
    ) -> SendResult:
        order = {address: i for i, address in enumerate(recipients, 1)}
        codes = [code for code, _ in refusals.values()]
        # Worth another try while any recipient was refused only for now.
        code = next((c for c in codes if 400 <= c < 500), codes[0])
        answer = "; ".join(
            f"recipient {order.get(address, '?')} of {len(recipients)} refused: {_reply_text(c, r)}"
            for address, (c, r) in sorted(refusals.items(), key=lambda item: order.get(item[0], 0))
        )
        return result(code, answer[:MAX_ANSWER_BYTES], f"SMTP {code}")


def _no_reply(exc: BaseException, timeout: float) -> str:
    """Why no reply came, without the host's address book: the exception's own words."""
    # smtplib reports a read that timed out as a disconnection; the timeout is its context.
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return f"timeout after {timeout:g}s"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or type(exc).__name__}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"the server closed the connection: {exc}"[:200]
    return f"connection failed: {exc}"[:200] if str(exc) else f"connection failed: {type(exc).__name__}"
