"""APPRISE_URLS, read with the standard library (config.py validates it at start-up), and the
masking that keeps the secrets inside Apprise URLs out of everything Centinela shows or logs.

Entries are separated by whitespace (spaces, tabs or newlines): Apprise URLs may hold commas
(``mailto://...?to=a@x.example,b@x.example``, several Telegram chats, ntfy tags) but never an
unescaped space, so whitespace is the one separator that needs no quoting rules, and a
newline-separated list reads well in a .env file or a YAML block. Each entry is a URL, or
``name=URL`` to name its channel: ``telegram=tgram://...`` is channel ``apprise-telegram``; an
entry without a name is ``apprise-<position>`` (``apprise-1``...). Name the entries when you
may reorder them: a delivery waiting for ``apprise-2`` goes to whatever entry 2 is after a
restart.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from monitoring.notify.channel import APPRISE_PREFIX, APPRISE_TARGET_NAME
from monitoring.security.pii import sanitise_text

MAX_TARGETS = 20
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}://")
_NAMED = re.compile(r"([A-Za-z0-9][A-Za-z0-9_-]{0,23})=([A-Za-z][A-Za-z0-9+.-]{0,31}://.+)", re.S)
# Any URL in a log line: scheme, "://", up to the next space or quote.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{1,31}://[^\s'\"<>]+")
# A long run of token characters with both letters and digits (bot tokens, webhook ids and
# signatures, UUIDs): Apprise names some outside a URL ("The Telegram Bot Token specified
# (...) is invalid").
_TOKEN_IN_TEXT = re.compile(r"(?<![A-Za-z0-9_\-:])[A-Za-z0-9_\-:]{20,}(?![A-Za-z0-9_\-:])")
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class AppriseTarget:
    """One entry of APPRISE_URLS: its channel name and the URL (never shown: it holds tokens)."""

    channel: str
    url: str = field(repr=False)
    position: int = 0

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0].lower()


def split_apprise_urls(raw: str) -> tuple[AppriseTarget, ...]:
    """The entries, named; ValueError saying which entry is wrong, never echoing it."""
    entries = raw.split()
    if len(entries) > MAX_TARGETS:
        raise ValueError(f"at most {MAX_TARGETS} URLs")
    targets: list[AppriseTarget] = []
    for position, entry in enumerate(entries, 1):
        named = _NAMED.fullmatch(entry)
        if named:
            name, url = named.group(1).lower(), named.group(2)
        elif _SCHEME.match(entry):
            name, url = str(position), entry
        else:
            raise ValueError(f"entry {position} is not an Apprise URL (scheme://...) nor name=URL; "
                             "separate entries with spaces or newlines")
        if not APPRISE_TARGET_NAME.fullmatch(name):
            raise ValueError(f"entry {position}: a name is 1 to 24 letters, digits, '-' or '_'")
        channel = APPRISE_PREFIX + name
        if any(t.channel == channel for t in targets):
            raise ValueError(f"entry {position}: channel {channel} is named twice")
        targets.append(AppriseTarget(channel, url, position))
    return tuple(targets)


def parse_apprise_urls(raw: str) -> tuple[AppriseTarget, ...]:
    """APPRISE_URLS: each entry named, and each URL one that Apprise can use (checked by Apprise)."""
    targets = split_apprise_urls(raw)
    try:
        from monitoring.notify.apprise_channel import check_apprise_url
    except ImportError:
        raise ValueError("the apprise package is not installed (pip install 'centinela[apprise]')") from None
    for target in targets:
        check_apprise_url(target)
    return targets


def _real_host(host: str) -> bool:
    """A host name or address, as opposed to a token that an Apprise URL keeps where a host goes
    (a Telegram bot token, an ntfy topic, a Discord webhook id)."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.split(".")
    return len(labels) >= 2 and all(_HOST_LABEL.fullmatch(label) for label in labels) and labels[-1].isalpha()


def mask_apprise_url(url: str) -> str:
    """``scheme://host/***``: the scheme says the service, a real host is kept (ntfy.sh, a Teams
    workflow host, 127.0.0.1), everything else is hidden: user, password, the whole path (an
    https URL's first segment too: Telegram's API puts the bot token there), the query, and a
    "host" that is really a token or a topic."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        host = (parts.hostname or "").lower()
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        host, port = "", ""
    shown = (f"[{host}]" if ":" in host else host) if host and _real_host(host) else ("***" if host else "")
    hidden = "/***" if parts.path.strip("/") or parts.query else ""
    return f"{scheme}://{shown}{port if shown != '***' else ''}{hidden}"


def scrub_apprise_text(text: str) -> str:
    """A line Apprise logged, safe to show and log: URLs masked, token-like strings redacted,
    then the PII sanitiser."""
    text = _URL_IN_TEXT.sub(lambda m: mask_apprise_url(m.group(0)), text)
    text = _TOKEN_IN_TEXT.sub(
        lambda m: "[redacted]" if re.search(r"[A-Za-z]", m.group(0)) and re.search(r"\d", m.group(0)) else m.group(0),
        text,
    )
    return sanitise_text(text)
