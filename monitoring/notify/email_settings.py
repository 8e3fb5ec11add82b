"""The e-mail channel's settings: SMTP_URL, ALERT_EMAIL_FROM and ALERT_EMAIL_TO, parsed with the
standard library only (config.py validates them at start-up, so a bad value stops it).

SMTP_URL and what each form does:

* ``smtps://user:pass@host:465``: TLS from the first byte (implicit TLS), certificate verified.
* ``smtp://user:pass@host:587``: STARTTLS, required and verified: a server that does not offer
  it is not sent to (the delivery fails and is retried), so a password or an alert never
  crosses the network in clear because a server, or someone in between, dropped STARTTLS.
* ``smtp://host:25?starttls=no``: plain SMTP, no TLS at all: for a relay you run beside
  Centinela (a local Postfix, a sidecar) whose certificate would not verify, or none. A
  password is refused here unless the host is a loopback address, where nothing leaves the
  machine. Without ``?starttls=no`` an ``smtp://`` URL always wants STARTTLS, port 25 or not.

User and password are percent-decoded (a Brevo login ``123abc@smtp-brevo.com`` is written
``123abc%40smtp-brevo.com``). The default port is 465 for smtps and 587 for smtp.
Certificates are verified against the system's CAs (``SSL_CERT_FILE`` names another bundle).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.utils import formataddr, getaddresses
from urllib.parse import parse_qs, unquote, urlsplit

TLS = "tls"  # smtps://: implicit TLS
STARTTLS = "starttls"
PLAIN = "none"  # smtp://...?starttls=no
DEFAULT_PORTS = {"smtps": 465, "smtp": 587}
MAX_RECIPIENTS = 50


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to send: host, port, the TLS mode, and the login (never shown)."""

    host: str
    port: int
    security: str  # TLS | STARTTLS | PLAIN
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        """Raise ValueError saying what is wrong, never echoing the URL (it holds the password)."""
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError("expected smtp://user:password@host:587 (STARTTLS), smtps://user:password@host:465 "
                             "(TLS) or smtp://host:25?starttls=no (a relay beside Centinela)")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise ValueError("the port must be a number from 1 to 65535") from None
        if parts.path not in ("", "/") or parts.fragment:
            raise ValueError("an SMTP URL has no path: smtp://user:password@host:port")
        try:
            query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError:
            raise ValueError("the only parameter is starttls=no") from None
        unknown = sorted(set(query) - {"starttls"})
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r}: the only parameter is starttls=no")
        security = TLS if scheme == "smtps" else STARTTLS
        if "starttls" in query:
            if query["starttls"] != ["no"]:
                raise ValueError("starttls takes one value, no (smtp:// uses STARTTLS unless told starttls=no)")
            if scheme == "smtps":
                raise ValueError("starttls=no applies to smtp:// only (smtps:// is TLS from the first byte)")
            security = PLAIN
        username = unquote(parts.username or "")
        password = unquote(parts.password or "")
        if password and not username:
            raise ValueError("a password needs a user: smtp://user:password@host")
        host = parts.hostname
        if security == PLAIN and password and not is_loopback(host):
            raise ValueError("a password is never sent without TLS: use smtp:// (STARTTLS) or smtps://, "
                             "or starttls=no only towards a relay on this machine")
        return cls(host=host, port=port, security=security, username=username, password=password)

    @property
    def shown(self) -> str:
        """The target as the configuration view and the logs show it: no user, no password."""
        scheme = "smtps" if self.security == TLS else "smtp"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}" + ("?starttls=no" if self.security == PLAIN else "")


def parse_smtp_url(raw: str) -> str:
    """SMTP_URL: validated, kept as given (the channel parses it again into an SmtpTarget)."""
    SmtpTarget.parse(raw)
    return raw.strip()


def _address(name: str, address: str, what: str) -> str:
    """One mailbox, formatted ``Name <local@domain>``; ValueError without echoing it."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or "@" in local or not address.isascii() or any(c.isspace() for c in address):
        raise ValueError(f"{what} is not an e-mail address such as alerts@example.com")
    if "." not in domain and domain.lower() != "localhost" or domain.startswith(".") or domain.endswith(".") \
            or ".." in domain:
        raise ValueError(f"{what} has no usable domain (expected name@example.com)")
    try:
        Address(display_name=name, addr_spec=address)  # the e-mail package's own check
    except (ValueError, IndexError):
        raise ValueError(f"{what} is not an e-mail address such as alerts@example.com") from None
    return formataddr((name, address))


def _mailboxes(raw: str) -> list[tuple[str, str]]:
    # getaddresses reads RFC 5322 lists: "Ops <ops@x.example>, on-call@x.example", quoted commas kept.
    return [(name.strip(), address.strip()) for name, address in getaddresses([raw]) if name or address]


def parse_email_address(raw: str) -> str:
    """ALERT_EMAIL_FROM: one mailbox (``Centinela <alerts@example.com>`` or ``alerts@example.com``)."""
    found = _mailboxes(raw)
    if len(found) != 1:
        raise ValueError("expected one address such as Centinela <alerts@example.com>")
    return _address(*found[0], what="the address")


def parse_email_addresses(raw: str) -> tuple[str, ...]:
    """ALERT_EMAIL_TO: a comma-separated list of mailboxes."""
    found = _mailboxes(raw)
    if not found:
        raise ValueError("expected comma-separated addresses such as oncall@example.com, ops@example.com")
    if len(found) > MAX_RECIPIENTS:
        raise ValueError(f"at most {MAX_RECIPIENTS} addresses (use a mailing list for more)")
    return tuple(_address(name, address, what=f"entry {i}") for i, (name, address) in enumerate(found, 1))


def address_of(mailbox: str) -> str:
    """``alerts@example.com`` out of ``Centinela <alerts@example.com>``."""
    return getaddresses([mailbox])[0][1]


def mask_address(mailbox: str) -> str:
    """``o***@example.com``: enough to tell which address is set, not a person's whole address."""
    local, _, domain = address_of(mailbox).rpartition("@")
    return f"{local[:1]}***@{domain}"
