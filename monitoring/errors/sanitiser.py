"""PII sanitiser applied to everything Centinela stores, logs or sends.

The sanitiser is pure Python (standard library only) and has two entry points:

* :func:`sanitise_text` scrubs one string;
* :func:`sanitise` walks any nested ``dict`` / ``list`` / ``tuple`` / ``set``
  structure (for example a Sentry event) and returns a new, scrubbed copy.
  The input is never mutated.

What is replaced in text
------------------------
* **Secrets and tokens** (the recognisable prefix is kept so the kind of
  credential stays visible):

  - Stripe keys ``sk_live_…``, ``sk_test_…``, ``pk_…``, ``rk_…`` → ``sk_live_[redacted]``;
    webhook secrets ``whsec_…`` → ``whsec_[redacted]``; PaymentIntent /
    SetupIntent client secrets ``pi_…_secret_…`` → ``pi_…_secret_[redacted]``;
  - Brevo keys ``xkeysib-…`` / ``xsmtpsib-…`` → ``xkeysib-[redacted]``;
  - ``Bearer <token>`` → ``Bearer [redacted]``;
  - ``Authorization: <scheme> <credentials>`` (also ``=`` and
    ``Proxy-Authorization``) → the scheme is kept, the credentials redacted;
  - ``Cookie:`` / ``Set-Cookie:`` header values → ``[redacted]``;
  - hyphenated header lines whose name is sensitive (``X-Api-Key: …``);
  - ``name=value`` pairs (query strings, form bodies, logfmt) and quoted
    ``"name": value`` pairs (JSON, Python reprs) whose *name* is sensitive
    according to :func:`is_sensitive_key` → ``name=[redacted]`` /
    ``"name": "[redacted]"``.  Unquoted ``name: value`` prose/YAML is only
    handled for the header shapes above (``Session: started`` is left
    alone);
  - passwords / user info in URLs: ``scheme://user:pass@host`` →
    ``scheme://user:[redacted]@host`` and ``scheme://token@host`` (Sentry
    DSNs) → ``scheme://[redacted]@host``.
* **E-mail addresses** → ``[email]`` (the whole address, domain included).
* **Payment card numbers**: runs of 13–19 ASCII digits, optionally separated
  by single spaces or dashes, that pass the Luhn check → ``[card ****4242]``
  (only the last four digits are kept).  Runs are always taken whole: the
  candidate is the *maximal* sequence of digit groups joined by single
  separators, delimited by non-digits (``(?<![0-9])`` / ``(?![0-9])``), so
  a card number is never carved out of the middle of a contiguous digit run
  and a contiguous run of more than 19 digits is left alone.  When the
  maximal sequence is not itself a card, card-formatted windows inside it
  (one contiguous 13–19 digit group, or groups of 4–6 digits joined by one
  consistent separator, e.g. ``4242 4242 4242 4242`` after an order id) are
  masked too.  Digit runs that fail Luhn (order ids, timestamps, phone
  numbers) are left alone.  Trade-off: ~10% of unrelated 13–19 digit
  sequences pass Luhn by chance (e.g. a date pair ``2024-01-05 2024-01-06``)
  and get masked; we prefer over-masking to leaking card numbers.
* **IP addresses**: IPv4 → last octet zeroed (``203.0.113.77`` →
  ``203.0.113.0``); IPv6 → truncated to the /48 network
  (``2001:db8:abcd:12::1`` → ``2001:db8:abcd::``); IPv4-mapped IPv6 keeps
  the ``::ffff:`` form with the IPv4 rule applied.  Candidates are validated
  with :mod:`ipaddress`, so ``1.2.3`` or ``999.1.1.1`` or ``12:30:45`` are
  untouched.  Dotted quads glued to letters (``v1.2.3.4``) or to further
  dotted numbers (``1.2.3.4.5``) are treated as version strings.  A
  free-standing four-part version such as ``1.2.3.4`` *is* a valid IPv4
  address and is anonymised.

Sensitive-key rule (:func:`is_sensitive_key`)
---------------------------------------------
A key name is split into lower-cased word segments on every
non-alphanumeric character (``_``, ``-``, ``.``, space, …) and on camelCase
boundaries (``apiKey`` → ``api`` ``key``; ``HTTP_AUTHORIZATION`` → ``http``
``authorization``; ``XApiKey`` → ``x`` ``api`` ``key``).  The key is
sensitive when

1. a segment is one of ``key apikey token secret(s) password(s) passwd
   pwd passphrase authorization auth cookie(s) setcookie dsn session
   sessionid sessid jsessionid phpsessid cvv cvc cvv2 cvc2 creditcard
   cardnumber ccnumber credential(s) csrf xsrf privatekey accesskey
   secretkey``, or
2. a segment ends with ``token``, ``secret``, ``password``, ``passwd``,
   ``apikey``, ``cookie`` or ``sessionid`` (``accesstoken``, ``dbpassword``,
   ``xapikey``), or
3. two adjacent segments form ``credit card``, ``card number|num|no``,
   ``cc number`` or ``security code`` (so ``credit_card`` and
   ``cardNumber`` match, but ``card_brand`` and ``card_last4`` do not),

**unless** the name has several segments and its last segment is a
measurement / metadata word (``count counts len length size total limit
type ttl expiry expires duration timeout``): ``token_count``,
``session_timeout`` and ``token_type`` describe a secret, they are not one.
Matching is on whole segments, so ``monkey``, ``keyboard``, ``author``,
``tokenizer``, ``secretary`` and ``passenger`` are harmless.  The plurals
``tokens`` and ``keys`` are deliberately *not* sensitive (``max_tokens``,
``tokens_count``, ``keys`` are nearly always counts or collections), whereas
``secrets``, ``passwords``, ``cookies`` and ``credentials`` are.  ``key`` on
its own is sensitive, so e.g. ``cache_key`` is redacted (over-redaction
is the safe failure).

Structures (:func:`sanitise`)
-----------------------------
* ``str`` → :func:`sanitise_text`; ``bytes`` / ``bytearray`` /
  ``memoryview`` → decoded as UTF-8 (invalid bytes replaced) and returned as
  a sanitised ``str``.
* Mappings → new ``dict``.  String keys are sanitised like text (if two
  keys collapse to the same text, e.g. two e-mail addresses, the later value
  wins).  The value of a sensitive key is replaced by ``"[redacted]"``
  whatever its type (``None``, numbers, nested dicts included).
* ``list`` / ``tuple`` (named tuples keep their type) / ``set`` /
  ``frozenset`` → new containers of the same kind.  A two-item list or
  tuple whose first item is a string with a sensitive name is treated as a
  ``(name, value)`` pair and its value redacted (Sentry sends headers and
  query strings as lists of such pairs): ``["Cookie", "a=b"]`` →
  ``["Cookie", "[redacted]"]``.
* ``int`` → unchanged, except a non-bool int whose decimal form is a
  Luhn-valid 13–19 digit card number, which becomes the masked string.
  ``float``, ``bool``, ``None`` and every other object are returned
  unchanged (convert custom objects to primitives before sanitising).
* Reference cycles become ``"[circular]"``; nesting deeper than
  ``MAX_DEPTH`` becomes ``"[truncated]"``.

Guarantees
----------
``sanitise(sanitise(x)) == sanitise(x)``: every placeholder is inert for
every rule, and because one rule's replacement can occasionally expose a
match for another (masking ``4242…4242pk_test_x`` frees the key from the
digit it was glued to; zeroing an IPv4 octet can change the digit group
next to it), the rule set is re-applied until the text stops changing (at
most ``_MAX_PASSES`` passes; text with nothing to scrub needs one).

Speed: all regexes are precompiled, anchored on a literal or a narrow
character class, and gated by cheap substring checks; a 10 KB log line
takes roughly 0.3–1 ms on a current CPU.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Final

__all__ = [
    "CIRCULAR",
    "EMAIL_PLACEHOLDER",
    "MAX_DEPTH",
    "REDACTED",
    "TRUNCATED",
    "anonymise_ip",
    "is_sensitive_key",
    "luhn_valid",
    "mask_card",
    "sanitise",
    "sanitise_text",
]

REDACTED: Final = "[redacted]"
EMAIL_PLACEHOLDER: Final = "[email]"
CIRCULAR: Final = "[circular]"
TRUNCATED: Final = "[truncated]"
MAX_DEPTH: Final = 64

_CARD_MIN: Final = 13
_CARD_MAX: Final = 19
_MAX_PASSES: Final = 4

# ---------------------------------------------------------------------------
# Luhn and card masking
# ---------------------------------------------------------------------------

# Maps the ASCII digit d to the digit sum of 2*d (as a byte value), so the
# doubled half of the Luhn sum can be computed with bytes.translate + sum.
_LUHN_DOUBLED: Final = bytes.maketrans(b"0123456789", bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]))


def _luhn_digits(digits: str) -> bool:
    """Luhn check for a string already known to be non-empty ASCII digits."""
    raw = digits.encode("ascii")
    kept = raw[-1::-2]
    doubled = raw[-2::-2]
    total = sum(kept) - 48 * len(kept) + sum(doubled.translate(_LUHN_DOUBLED))
    return total % 10 == 0


def luhn_valid(digits: str) -> bool:
    """Return True if *digits* passes the Luhn (mod 10) checksum.

    Spaces and dashes (card number separators) are ignored, so
    ``"4242 4242 4242 4242"`` is valid.  Anything else that is not an ASCII
    digit, an empty string, or a non-string makes the result False.  The
    length is not checked here; card detection additionally requires 13–19
    digits.
    """
    if not isinstance(digits, str):
        return False
    compact = digits.replace(" ", "").replace("-", "")
    if not compact or not (compact.isascii() and compact.isdigit()):
        return False
    return _luhn_digits(compact)


def mask_card(digits: str) -> str:
    """Return the masked form of a card number: ``"[card ****4242]"``.

    Non-digit characters (separators) are ignored.  At most the last four
    digits are kept, and only when the input has at least 13 digits (a real
    card number); shorter input yields ``"[card ****]"`` so that masking
    never reveals most of a short number.
    """
    only_digits = "".join(char for char in str(digits) if "0" <= char <= "9")
    tail = only_digits[-4:] if len(only_digits) >= _CARD_MIN else ""
    return f"[card ****{tail}]"


# A maximal sequence of digit groups joined by single spaces/dashes that
# holds at least 13 digits.  The leading ``[0-9]`` lets the regex engine skip
# quickly to digits; the lookbehind then checks the character *before* that
# first digit is not a digit (so only whole runs are considered).
_CARD_SEQUENCE_RE: Final = re.compile(
    r"[0-9](?<![0-9]{2})(?=(?:[ \-]?[0-9]){12})[0-9]*(?:[ \-][0-9]+)*"
)
_SEPARATOR_SPLIT_RE: Final = re.compile(r"([ \-])")


def _join_groups(groups: list[str], separators: list[str], start: int, stop: int) -> str:
    pieces = [groups[start]]
    for index in range(start + 1, stop):
        pieces.append(separators[index - 1])
        pieces.append(groups[index])
    return "".join(pieces)


def _card_window_end(groups: list[str], separators: list[str], start: int) -> int | None:
    """Index of the last group of the longest card-formatted, Luhn-valid
    window beginning at group *start*, or None.

    A window is card-formatted when it is a single 13–19 digit group, or
    several groups joined by one and the same separator where every group but
    the last has 4–6 digits (4-4-4-4, 4-6-5, 4-4-4-4-3, ...).
    """
    best = None
    count = 0
    first_separator = separators[start] if start < len(separators) else None
    for end in range(start, len(groups)):
        length = len(groups[end])
        count += length
        if count > _CARD_MAX:
            break
        if count >= _CARD_MIN and (end == start or length <= 6):
            if _luhn_digits("".join(groups[start : end + 1])):
                best = end
        if not 4 <= length <= 6 or end >= len(separators) or separators[end] != first_separator:
            break
    return best


def _mask_whole_or_keep(text: str) -> str:
    compact = text.replace(" ", "").replace("-", "")
    if _CARD_MIN <= len(compact) <= _CARD_MAX and _luhn_digits(compact):
        return mask_card(compact)
    return text


def _mask_card_sequence(match: re.Match[str]) -> str:
    text = match.group()
    parts = _SEPARATOR_SPLIT_RE.split(text)
    groups, separators = parts[0::2], parts[1::2]
    digits = "".join(groups)
    if len(digits) <= _CARD_MAX and _luhn_digits(digits):
        return mask_card(digits)
    if len(groups) == 1:
        return text
    pieces: list[str] = []
    leftover_start = 0
    index = 0
    while index < len(groups):
        end = _card_window_end(groups, separators, index)
        if end is None:
            index += 1
            continue
        if leftover_start < index:
            pieces.append(_mask_whole_or_keep(_join_groups(groups, separators, leftover_start, index)))
            pieces.append(separators[index - 1])
        pieces.append(mask_card("".join(groups[index : end + 1])))
        if end + 1 < len(groups):
            pieces.append(separators[end])
        index = leftover_start = end + 1
    if not pieces:
        return text
    if leftover_start < len(groups):
        pieces.append(_mask_whole_or_keep(_join_groups(groups, separators, leftover_start, len(groups))))
    return "".join(pieces)


# ---------------------------------------------------------------------------
# IP addresses
# ---------------------------------------------------------------------------

# IP candidates are matched from their first separator (a literal ``.`` or
# ``:``, so the scan is fast) and the leading group is read backwards: 1–3
# digits for IPv4, 0–4 hex digits for IPv6.  The character before the
# candidate must not be a word character, a dot (or a colon for IPv6), and a
# trailing ``.digit`` / word character rules the candidate out too, so
# ``v1.2.3.4``, ``1.2.3.4.5`` and ``std::move`` are not addresses.  The
# group repetition is possessive: giving back a ``hex:`` group can never
# help (the tail would then be followed by ``:``), and refusing to makes long
# runs of colons linear.
_IPV4_TAIL_RE: Final = re.compile(r"\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?![0-9]|\.[0-9])")
_IPV6_TAIL_RE: Final = re.compile(
    r":(?:[0-9A-Fa-f]{0,4}:){1,6}+"
    r"(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{0,4})"
    r"(?![\w:]|\.[0-9])"
)
_DIGITS: Final = frozenset("0123456789")
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")


def _anonymise_ip_object(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    # Loopback and "any" addresses name no person; keeping them keeps lines like
    # "Listening at: http://127.0.0.1:8000" true.
    if address.is_loopback or address.is_unspecified:
        return str(address)
    if address.version == 4:
        return str(ipaddress.IPv4Address(int(address) & 0xFFFFFF00))
    mapped = address.ipv4_mapped
    if mapped is not None:
        return "::ffff:" + str(ipaddress.IPv4Address(int(mapped) & 0xFFFFFF00))
    return str(ipaddress.IPv6Address((int(address) >> 80) << 80))


def anonymise_ip(address: str) -> str:
    """Anonymise one IP address: IPv4 to its /24, IPv6 to its /48.

    ``"203.0.113.77"`` → ``"203.0.113.0"``, ``"2001:db8:abcd:12::1"`` →
    ``"2001:db8:abcd::"``.  Surrounding whitespace and ``[...]`` brackets
    are accepted; an IPv6 zone (``%eth0``) is dropped; IPv4-mapped IPv6
    addresses keep their ``::ffff:a.b.c.0`` form.  Anything that is not a
    valid address (including non-strings) returns ``"unknown"``.
    """
    if isinstance(address, (bytes, bytearray)):
        address = bytes(address).decode("utf-8", "replace")
    if not isinstance(address, str):
        return "unknown"
    candidate = address.strip()
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    try:
        parsed = ipaddress.ip_address(candidate)
    except ValueError:
        return "unknown"
    return _anonymise_ip_object(parsed)


@lru_cache(maxsize=2048)
def _anonymise_candidate(candidate: str, version: int) -> str | None:
    """Anonymised form of an address candidate, or None if it is not valid.

    Cached: the same few client addresses recur in log after log, and parsing
    with :mod:`ipaddress` is the expensive part.
    """
    parse = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    try:
        return _anonymise_ip_object(parse(candidate))
    except ValueError:
        return None


def _replace_addresses(text: str, version: int) -> str:
    """Anonymise every valid IPv4 (*version* 4) or IPv6 address in *text*."""
    if version == 4:
        tail_re, head_chars, min_head, max_head, boundary = _IPV4_TAIL_RE, _DIGITS, 1, 3, "."
    else:
        tail_re, head_chars, min_head, max_head, boundary = _IPV6_TAIL_RE, _HEX_DIGITS, 0, 4, ".:"
    pieces: list[str] = []
    last = 0
    for match in tail_re.finditer(text):
        start = match.start()
        while start > last and match.start() - start < max_head and text[start - 1] in head_chars:
            start -= 1
        if match.start() - start < min_head:
            continue
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_" or text[start - 1] in boundary):
            continue
        replacement = _anonymise_candidate(text[start : match.end()], version)
        if replacement is None:
            continue
        pieces.append(text[last:start])
        pieces.append(replacement)
        last = match.end()
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


# ---------------------------------------------------------------------------
# Sensitive key names
# ---------------------------------------------------------------------------

_KEY_SEGMENT_RE: Final = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_SENSITIVE_WORDS: Final = frozenset(
    {
        "key", "apikey", "token", "secret", "secrets", "password", "passwords",
        "passwd", "pwd", "passphrase", "authorization", "auth", "cookie",
        "cookies", "setcookie", "dsn", "session", "sessionid", "sessid",
        "jsessionid", "phpsessid", "cvv", "cvc", "cvv2", "cvc2", "creditcard",
        "cardnumber", "ccnumber", "credential", "credentials", "csrf", "xsrf",
        "privatekey", "accesskey", "secretkey",
    }
)
_SENSITIVE_SUFFIXES: Final = ("token", "secret", "password", "passwd", "apikey", "cookie", "sessionid")
# Two adjacent segments that are only sensitive together (``credit_card``).
_SENSITIVE_PAIRS: Final = frozenset(
    {("credit", "card"), ("card", "number"), ("card", "num"), ("card", "no"), ("cc", "number"), ("security", "code")}
)
# Every sensitive name contains (case-insensitively) one of these fragments;
# text rules that depend on a parameter name are skipped when none occurs.
_SENSITIVE_NAME_FRAGMENTS: Final = (
    "key", "token", "secret", "pass", "pwd", "auth", "cookie", "dsn", "sess",
    "cvv", "cvc", "card", "number", "credential", "csrf", "xsrf", "security",
)
_HARMLESS_LAST_SEGMENTS: Final = frozenset(
    {
        "count", "counts", "len", "length", "size", "total", "limit", "type",
        "ttl", "expiry", "expires", "duration", "timeout",
    }
)
_MAX_CACHED_KEY_LENGTH: Final = 128


def _key_is_sensitive(name: str) -> bool:
    segments = [segment.lower() for segment in _KEY_SEGMENT_RE.findall(name)]
    if not segments:
        return False
    if len(segments) > 1 and segments[-1] in _HARMLESS_LAST_SEGMENTS:
        return False
    for index, segment in enumerate(segments):
        if segment in _SENSITIVE_WORDS or segment.endswith(_SENSITIVE_SUFFIXES):
            return True
        if index + 1 < len(segments) and (segment, segments[index + 1]) in _SENSITIVE_PAIRS:
            return True
    return False


_key_is_sensitive_cached = lru_cache(maxsize=4096)(_key_is_sensitive)


def is_sensitive_key(name: str) -> bool:
    """Return True if a mapping key / parameter / header *name* looks secret.

    See the module docstring for the exact rule: word segments (split on
    ``_``, ``-``, ``.``, other punctuation and camelCase) are compared with
    a list of secret-ish words, except when the last segment is a
    measurement word (``token_count``).  Bytes are decoded; any other
    non-string returns False.
    """
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).decode("utf-8", "replace")
    if not isinstance(name, str):
        return False
    if len(name) > _MAX_CACHED_KEY_LENGTH:
        return _key_is_sensitive(name)
    return _key_is_sensitive_cached(name)


# ---------------------------------------------------------------------------
# Secrets and e-mail addresses in free text
# ---------------------------------------------------------------------------
#
# Speed matters (every log line goes through here), so every pattern below
# starts with a literal or a narrow character class, which lets the regex
# engine skip ahead without trying each position; "not glued to a longer
# word" checks are fixed-width lookbehinds placed *after* that first token.

_URL_USERINFO_RE: Final = re.compile(r"://([^\s/?#@]+)@")
_STRIPE_KEY_RE: Final = re.compile(
    r"(_(?:live|test)_)(?<=[spr]k_live_|[spr]k_test_)"
    r"(?<![A-Za-z0-9][spr]k_live_)(?<![A-Za-z0-9][spr]k_test_)[A-Za-z0-9]+"
)
_STRIPE_WEBHOOK_SECRET_RE: Final = re.compile(r"(whsec_)(?<![A-Za-z0-9]whsec_)[A-Za-z0-9+/=]+")
_STRIPE_CLIENT_SECRET_RE: Final = re.compile(
    r"(?<![A-Za-z0-9])((?:pi|seti)_[A-Za-z0-9]+_secret_)[A-Za-z0-9]+"
)
_BREVO_KEY_RE: Final = re.compile(
    r"(x(?:keysib|smtpsib)-)(?<![A-Za-z0-9]xkeysib-)(?<![A-Za-z0-9]xsmtpsib-)[A-Za-z0-9\-]+"
)
_BEARER_RE: Final = re.compile(
    r"([Bb](?<![A-Za-z0-9][Bb])[Ee][Aa][Rr][Ee][Rr])([ \t]+)[A-Za-z0-9\-._~+/]+=*"
)
_EMAIL_DOMAIN_RE: Final = re.compile(r"@(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}")
_EMAIL_LOCAL_EXTRA_CHARS: Final = frozenset("_.%+-")

# Name-driven rules.  The candidate scan runs on an ASCII-lower-cased copy of
# the text and finds a sensitive-looking fragment inside a name that is
# followed by ``=`` or ``:`` (optionally after a closing quote); the full
# name is then read backwards from the separator and checked with
# is_sensitive_key().
_NAMED_VALUE_CANDIDATE_RE: Final = re.compile(
    r"(?:" + "|".join(_SENSITIVE_NAME_FRAGMENTS) + r")[\w\-.\[\]]*(?:[\"'][ \t]*:|[ \t]*[:=])"
)
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_KV_NAME_EXTRA_CHARS: Final = frozenset("_-.[]")
_QUOTED_NAME_EXTRA_CHARS: Final = frozenset("_-.")
_HEADER_NAME_EXTRA_CHARS: Final = frozenset("-")
_HEADER_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*")
_KV_VALUE_RE: Final = re.compile(
    r"(?!=)(\"(?:[^\"\\\r\n]|\\.)*\"|'(?:[^'\\\r\n]|\\.)*'|[^\s&;,\"'<>(){}]+)"
)
_QUOTED_VALUE_RE: Final = re.compile(
    r"[ \t]*(\"(?:[^\"\\\r\n]|\\.)*\"|'(?:[^'\\\r\n]|\\.)*'|[^\s,{}\[\]\"']+)"
)
_HEADER_VALUE_RE: Final = re.compile(r"[ \t]*([^\s,;\"']+)")
_COOKIE_VALUE_RE: Final = re.compile(r"[ \t]*([^\s;,\"']+(?:;[ \t]*[^\s;,\"']+)*)")
_AUTH_VALUE_RE: Final = re.compile(
    r"[ \t]*(?:(?:Bearer|Basic|Digest|Token|Negotiate|NTLM|ApiKey|Bot|JWT|HMAC|MAC|AWS4-HMAC-SHA256)"
    r"[ \t]+)?([^\s,;\"']+)",
    re.IGNORECASE,
)
_AUTH_HEADER_NAMES: Final = frozenset({"authorization", "proxy-authorization"})
_COOKIE_HEADER_NAMES: Final = frozenset({"cookie", "set-cookie"})
_PREFIX_REPLACEMENT: Final = r"\1" + REDACTED
_BEARER_REPLACEMENT: Final = r"\1\2" + REDACTED


def _replace_userinfo(match: re.Match[str]) -> str:
    user, colon, _password = match.group(1).partition(":")
    if colon:
        return f"://{user}:{REDACTED}@"
    return f"://{REDACTED}@"


def _replace_emails(text: str) -> str:
    """Replace every e-mail address with ``[email]``.

    The domain is matched forwards from each ``@`` (a literal, so the scan is
    fast) and the local part, the maximal run of ``[\\w.%+-]`` characters just
    before the ``@``, is read backwards.
    """
    pieces: list[str] = []
    last = 0
    for match in _EMAIL_DOMAIN_RE.finditer(text):
        start = match.start()
        while start > last and (text[start - 1].isalnum() or text[start - 1] in _EMAIL_LOCAL_EXTRA_CHARS):
            start -= 1
        if start == match.start():
            continue
        pieces.append(text[last:start])
        pieces.append(EMAIL_PLACEHOLDER)
        last = match.end()
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def _scan_name_back(text: str, end: int, extra: frozenset[str], ascii_only: bool) -> int:
    start = end
    while start > 0:
        char = text[start - 1]
        if char in extra or (char.isalnum() and (char.isascii() or not ascii_only)):
            start -= 1
        else:
            break
    return start


def _is_name_start(char: str) -> bool:
    return char == "_" or ("a" <= char <= "z") or ("A" <= char <= "Z")


def _redacted_value(value: str, default_quote: str) -> str:
    if value[:1] in ("'", '"'):
        return f"{value[0]}{REDACTED}{value[0]}"
    return f"{default_quote}{REDACTED}{default_quote}"


def _named_value_redaction(text: str, separator: int) -> tuple[int, str] | None:
    """Redaction for the value after the ``=``/``:`` at index *separator*.

    Returns ``(value_end, replacement)`` where the replacement covers
    ``text[separator:value_end]``, or None when the name is not sensitive or
    the shape is not recognised.  Shapes:

    * ``"name": value`` / ``'name': value``  (JSON, Python reprs)
    * ``name=value``  (query strings, forms, logfmt; spaces around ``=``
      only when there are spaces before it, as in ``password = x``)
    * ``Authorization: <scheme> <credentials>`` (also with ``=``),
      ``Cookie:`` / ``Set-Cookie:``, and hyphenated headers ``X-Api-Key:``.
    """
    name_end = separator
    while name_end > 0 and text[name_end - 1] in " \t":
        name_end -= 1
    spaced = name_end != separator
    is_equals = text[separator] == "="

    if not is_equals and name_end > 0 and text[name_end - 1] in "\"'":
        quote = text[name_end - 1]
        name_start = _scan_name_back(text, name_end - 1, _QUOTED_NAME_EXTRA_CHARS, ascii_only=False)
        name = text[name_start : name_end - 1]
        if not name or not _is_name_start(name[0]) or name_start == 0 or text[name_start - 1] != quote:
            return None
        if not is_sensitive_key(name):
            return None
        value = _QUOTED_VALUE_RE.match(text, separator + 1)
        if value is None:
            return None
        gap = text[separator : value.start(1)]
        return value.end(), gap + _redacted_value(value.group(1), quote)

    if is_equals:
        name_start = _scan_name_back(text, name_end, _KV_NAME_EXTRA_CHARS, ascii_only=False)
    else:
        name_start = _scan_name_back(text, name_end, _HEADER_NAME_EXTRA_CHARS, ascii_only=True)
        if name_start > 0 and (text[name_start - 1].isalnum() or text[name_start - 1] in "_-"):
            return None  # glued to a longer word: not a header name
    name = text[name_start:name_end]
    if not name or not _is_name_start(name[0]):
        return None
    lowered = name.lower()

    if lowered in _AUTH_HEADER_NAMES:
        value = _AUTH_VALUE_RE.match(text, separator + 1)
        if value is None:
            return None
        return value.end(), text[separator : value.start(1)] + REDACTED

    if is_equals:
        position = separator + 1
        if spaced:
            while position < len(text) and text[position] in " \t":
                position += 1
        value = _KV_VALUE_RE.match(text, position)
        if value is None or not is_sensitive_key(name):
            return None
        return value.end(), text[separator:position] + _redacted_value(value.group(1), "")

    if lowered in _COOKIE_HEADER_NAMES:
        value = _COOKIE_VALUE_RE.match(text, separator + 1)
    elif "-" in name and _HEADER_NAME_RE.fullmatch(name) and is_sensitive_key(name):
        value = _HEADER_VALUE_RE.match(text, separator + 1)
    else:
        return None
    if value is None:
        return None
    return value.end(), text[separator : value.start(1)] + REDACTED


def _redact_named_values(text: str, lowered: str) -> str:
    pieces: list[str] = []
    last = 0
    for candidate in _NAMED_VALUE_CANDIDATE_RE.finditer(lowered):
        separator = candidate.end() - 1
        if separator < last:
            continue  # inside a value that was just redacted
        redaction = _named_value_redaction(text, separator)
        if redaction is None:
            continue
        value_end, replacement = redaction
        pieces.append(text[last:separator])
        pieces.append(replacement)
        last = value_end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def _ascii_lower(text: str) -> str:
    """Lower-case copy of *text* with exactly the same length and indices."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text.translate(_ASCII_LOWER)


def _apply_rules(text: str) -> str:
    """One pass of every rule, in order: secrets, e-mails, IPs, cards."""
    lowered = _ascii_lower(text)
    if "://" in text:
        text = _URL_USERINFO_RE.sub(_replace_userinfo, text)
    if "_live_" in text or "_test_" in text:
        text = _STRIPE_KEY_RE.sub(_PREFIX_REPLACEMENT, text)
    if "whsec_" in text:
        text = _STRIPE_WEBHOOK_SECRET_RE.sub(_PREFIX_REPLACEMENT, text)
    if "_secret_" in text:
        text = _STRIPE_CLIENT_SECRET_RE.sub(_PREFIX_REPLACEMENT, text)
    if "sib-" in text:
        text = _BREVO_KEY_RE.sub(_PREFIX_REPLACEMENT, text)
    if "bearer" in lowered:
        text = _BEARER_RE.sub(_BEARER_REPLACEMENT, text)
    if ("=" in text or ":" in text) and any(fragment in lowered for fragment in _SENSITIVE_NAME_FRAGMENTS):
        text = _redact_named_values(text, _ascii_lower(text))
    if "@" in text:
        text = _replace_emails(text)
    if "::" in text or text.count(":") >= 7:
        text = _replace_addresses(text, 6)
    if "." in text:
        text = _replace_addresses(text, 4)
    return _CARD_SEQUENCE_RE.sub(_mask_card_sequence, text)


def sanitise_text(text: str) -> str:
    """Return *text* with e-mails, card numbers, secrets and IPs scrubbed.

    ``bytes`` are accepted and decoded as UTF-8 with replacement characters.
    The result is always a plain ``str`` and the function is idempotent.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8", "replace")
    elif not isinstance(text, str):
        raise TypeError(f"sanitise_text() expects str or bytes, not {type(text).__name__}")
    text = str.__str__(text)
    if not text:
        return text
    result = _apply_rules(text)
    for _ in range(_MAX_PASSES - 1):
        if result == text:
            break
        text, result = result, _apply_rules(result)
    return result


# ---------------------------------------------------------------------------
# Structures
# ---------------------------------------------------------------------------


def _sanitise_int(value: int) -> object:
    magnitude = -value if value < 0 else value
    if 10 ** (_CARD_MIN - 1) <= magnitude < 10**_CARD_MAX:
        digits = str(magnitude)
        if _luhn_digits(digits):
            return mask_card(digits)
    return value


def _sanitise_name(name: object, depth: int, active: set[int]) -> tuple[object, bool]:
    """Sanitise a mapping key / pair name; report whether its value is secret.

    Both the original and the sanitised name are checked so that the result
    is stable when sanitised again.
    """
    if isinstance(name, (str, bytes, bytearray)):
        clean = sanitise_text(name)
        return clean, is_sensitive_key(name) or is_sensitive_key(clean)
    return _sanitise(name, depth, active), False


def _rebuild_sequence(original: list | tuple, items: list[object]) -> list | tuple:
    if isinstance(original, list):
        return items
    if hasattr(original, "_fields"):
        try:
            return type(original)(*items)
        except TypeError:
            pass
    return tuple(items)


def _sanitise(value: object, depth: int, active: set[int]) -> object:
    if isinstance(value, str):
        return sanitise_text(value)
    if value is None or isinstance(value, (bool, float, complex)):
        return value
    if isinstance(value, int):
        return _sanitise_int(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return sanitise_text(value)
    if not isinstance(value, (Mapping, list, tuple, set, frozenset)):
        return value
    identity = id(value)
    if identity in active:
        return CIRCULAR
    if depth >= MAX_DEPTH:
        return TRUNCATED
    active.add(identity)
    try:
        child_depth = depth + 1
        if isinstance(value, Mapping):
            result: dict[object, object] = {}
            for key, item in value.items():
                clean_key, sensitive = _sanitise_name(key, child_depth, active)
                result[clean_key] = REDACTED if sensitive else _sanitise(item, child_depth, active)
            return result
        if isinstance(value, (list, tuple)):
            if len(value) == 2 and isinstance(value[0], (str, bytes, bytearray)):
                name, sensitive = _sanitise_name(value[0], child_depth, active)
                if sensitive:  # a (name, value) pair such as a Sentry header
                    return _rebuild_sequence(value, [name, REDACTED])
            items = [_sanitise(item, child_depth, active) for item in value]
            return _rebuild_sequence(value, items)
        members = (_sanitise(item, child_depth, active) for item in value)
        return frozenset(members) if isinstance(value, frozenset) else set(members)
    finally:
        active.discard(identity)


def sanitise(value: object) -> object:
    """Return a scrubbed copy of *value* (str, bytes, or nested containers).

    Dicts, lists, tuples, sets and frozensets are rebuilt recursively (the
    input is never mutated); values stored under sensitive keys become
    ``"[redacted]"``; strings go through :func:`sanitise_text`; ints that
    are Luhn-valid 13–19 digit card numbers are masked; other scalars and
    unknown objects are returned unchanged.  Idempotent.
    """
    return _sanitise(value, 0, set())
