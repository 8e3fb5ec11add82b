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
  - ``name=value`` pairs (query strings, form bodies, logfmt), quoted
    ``"name": value`` / ``'name': value`` / ``"name"=value`` pairs (JSON,
    Python reprs; also ``\"name\": \"value\"``, JSON inside a JSON string)
    and bare ``name: value`` / ``name:value`` (prose, YAML, log lines) whose
    *name* is sensitive according to :func:`is_sensitive_key`, in any case
    (``Password: x``) → the name stays, the value (one token or one quoted
    string) becomes ``[redacted]``.  For the bare colon form a few values
    that describe rather than are a secret are kept (``Session: started``,
    ``token: expired``, type names as in ``def f(token: str)``), as are
    names ending in ``Error`` / ``Exception`` / ``Warning`` (``KeyError:
    'user_id'``), names right after ``/`` (paths, URLs), ``::`` (scope
    operators) and logger prefixes (``INFO:app.auth:message``).  SQL bind
    placeholders (``password_hash = ?``, ``token = :token``) are kept in
    every form;
  - passwords / user info in URLs: ``scheme://user:pass@host`` →
    ``scheme://user:[redacted]@host`` and ``scheme://token@host`` (Sentry
    DSNs) → ``scheme://[redacted]@host``;
  - JWTs anywhere (``eyJ…`` header, payload, signature; five-part JWEs too)
    → ``[jwt]`` (after a sensitive name, ``jwt=[redacted]``).
* **E-mail addresses** → ``[email]`` (the whole address, domain included).
* **IBANs**: a known country code, its exact length and valid mod-97 check
  digits, written contiguous or in groups of four separated by single
  spaces, upper case, standing alone → ``[iban DE****3000]`` (country code
  and last four characters kept).
* **International phone numbers**: ``+``, a country code and 8–15 digits in
  all (E.164), with single spaces/dashes and an area code in parentheses
  (``+34 612 345 678``, ``+1 (415) 555-0100``, ``+442071234567``) →
  ``[phone]``; after ``+1`` exactly ten digits whose area code does not
  start with 0 or 1.  Anything without the ``+`` is left alone: domestic
  numbers (``020 7946 0958``, ``(415) 555-0100``), order, ticket and
  invoice numbers, ids, dates, times, versions, amounts.  A ``+`` glued to
  a word or a number running on into a fraction (``+12.5``) is not a phone.
* **Payment card numbers**: 13–19 ASCII digits that pass the Luhn check,
  written contiguous or in the usual groups (groups of 4–6 digits joined by
  one consistent space or dash, the last group shorter: 4-4-4-4, 4-6-5,
  4-4-4-4-3) → ``[card ****4242]`` (only the last four digits are kept).
  The candidate is the *maximal* sequence of digit groups joined by single
  separators, so a card number is never carved out of the middle of a
  contiguous digit run and a contiguous run of more than 19 digits is left
  alone; card-formatted windows inside a longer sequence are masked
  (``Order 1234567 4242 4242 4242 4242``).  Digits glued to a letter or
  ``_`` (``card4242…x``, ``ref4242…``) or to a decimal point (the fraction
  of ``12.345678901234523``, the integer part of ``4242…4242.5``) are not
  cards.  Digit runs that fail Luhn (order ids, timestamps) are left alone.
  Trade-off: ~10% of unrelated 13–19 digit numbers standing alone in a
  card layout pass Luhn by chance and get masked; we prefer over-masking to
  leaking card numbers.
* **IP addresses**: IPv4 → last octet zeroed (``203.0.113.77`` →
  ``203.0.113.0``); IPv6 → truncated to the /48 network
  (``2001:db8:abcd:12::1`` → ``2001:db8:abcd::``); IPv4-mapped IPv6 keeps
  the ``::ffff:`` form with the IPv4 rule applied.  Loopback and
  unspecified addresses are kept.  Candidates are validated
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
   secretkey jwt``, or
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
match for another (in ``4242…4242+34 612 345 678`` the phone number is
glued to the card until the card is masked; zeroing an IPv4 octet can
change the digit group next to it), the rule set is re-applied until the text stops changing (at
most ``_MAX_PASSES`` passes; text with nothing to scrub needs one).

Speed: all regexes are precompiled, anchored on a literal or a narrow
character class, and gated by cheap substring checks; a 10 KB log line
takes roughly 0.3–1 ms on a current CPU.  Every pattern is linear in its
input (repetitions are bounded or possessive, alternatives start with
different characters), so hostile input such as 100 KB of digits, spaces,
``=`` or ``:`` takes time in proportion to its length
(bench/bench_sanitiser.py prints the figures).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Final

__all__ = [
    "CIRCULAR",
    "EMAIL_PLACEHOLDER",
    "JWT_PLACEHOLDER",
    "MAX_DEPTH",
    "PHONE_PLACEHOLDER",
    "REDACTED",
    "TRUNCATED",
    "anonymise_ip",
    "iban_valid",
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
# Regions that could hold such a sequence: 13 or more digits, spaces and
# dashes starting with a digit.  Finding these first and running the precise
# pattern only inside them halves the cost of the card rule on ordinary log
# lines, whose digits are mostly short runs (timestamps, status codes).
_CARD_REGION_RE: Final = re.compile(r"[0-9][0-9 \-]{12,}")
_SEPARATOR_SPLIT_RE: Final = re.compile(r"([ \-])")


def _glued_before(text: str, start: int) -> bool:
    """True if the digits at *start* continue a word or a decimal number."""
    if start == 0:
        return False
    char = text[start - 1]
    if char.isalnum() or char == "_":
        return True
    return char == "." and start >= 2 and text[start - 2].isdigit()


def _glued_after(text: str, end: int) -> bool:
    """True if the digits ending at *end* run on into a word or a fraction."""
    if end >= len(text):
        return False
    char = text[end]
    if char.isalnum() or char == "_":
        return True
    return char == "." and end + 1 < len(text) and text[end + 1].isdigit()


def _join_groups(groups: list[str], separators: list[str], start: int, stop: int) -> str:
    pieces = [groups[start]]
    for index in range(start + 1, stop):
        pieces.append(separators[index - 1])
        pieces.append(groups[index])
    return "".join(pieces)


def _card_window_end(groups: list[str], separators: list[str], start: int, last: int) -> int | None:
    """Index of the last group of the longest card-formatted, Luhn-valid
    window beginning at group *start* and ending at or before group *last*,
    or None.

    A window is card-formatted when it is a single 13–19 digit group, or
    several groups joined by one and the same separator where every group but
    the last has 4–6 digits (4-4-4-4, 4-6-5, 4-4-4-4-3, ...).
    """
    best = None
    count = 0
    first_separator = separators[start] if start < len(separators) else None
    for end in range(start, last + 1):
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


def _mask_card_sequence(match: re.Match[str]) -> str:
    """Mask the card-formatted windows of one maximal digit sequence.

    A window touching an end of the sequence is skipped when the digits there
    are glued to a letter or a decimal point (``card4242…``, ``12.3456…``).
    """
    text = match.group()
    glued_before = _glued_before(match.string, match.start())
    glued_after = _glued_after(match.string, match.end())
    if " " not in text and "-" not in text:  # one contiguous run: the common case
        if glued_before or glued_after or len(text) > _CARD_MAX or not _luhn_digits(text):
            return text
        return mask_card(text)
    parts = _SEPARATOR_SPLIT_RE.split(text)
    groups, separators = parts[0::2], parts[1::2]
    last = len(groups) - (2 if glued_after else 1)
    pieces: list[str] = []
    leftover_start = 0
    index = 1 if glued_before else 0
    while index <= last:
        length = len(groups[index])
        # A window starts with a 4-6 digit group or is one 13-19 digit group.
        end = None if length < 4 or 6 < length < _CARD_MIN else _card_window_end(groups, separators, index, last)
        if end is None:
            index += 1
            continue
        if leftover_start < index:
            pieces.append(_join_groups(groups, separators, leftover_start, index))
            pieces.append(separators[index - 1])
        pieces.append(mask_card("".join(groups[index : end + 1])))
        if end + 1 < len(groups):
            pieces.append(separators[end])
        index = leftover_start = end + 1
    if not pieces:
        return text
    if leftover_start < len(groups):
        pieces.append(_join_groups(groups, separators, leftover_start, len(groups)))
    return "".join(pieces)


def _mask_cards(text: str) -> str:
    pieces: list[str] = []
    last = 0
    for region in _CARD_REGION_RE.finditer(text):
        for match in _CARD_SEQUENCE_RE.finditer(text, region.start(), region.end()):
            replacement = _mask_card_sequence(match)
            if replacement == match.group():
                continue
            pieces.append(text[last : match.start()])
            pieces.append(replacement)
            last = match.end()
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


# ---------------------------------------------------------------------------
# IBANs
# ---------------------------------------------------------------------------

# IBAN length per country (ISO 13616 registry).  The length and the mod-97
# check digits together make a random upper-case code extremely unlikely to
# be taken for an IBAN.
_IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}
# Country code and check digits.  Written out rather than as ``[A-Z]{2}``, and
# with the "not glued to a word" check done in Python, because a pattern that
# starts with a plain character set lets the regex engine skip ahead quickly:
# this scan runs over every text, and the difference is about 2x.
_IBAN_START_RE: Final = re.compile(r"[A-Z][A-Z][0-9][0-9]")
_IBAN_BODY_RE: Final = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]+")


def iban_valid(candidate: str) -> bool:
    """Return True if *candidate* is an IBAN: known country, its length, mod-97 == 1.

    Spaces are ignored; letters must be upper case.
    """
    if not isinstance(candidate, str):
        return False
    compact = candidate.replace(" ", "")
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not _IBAN_BODY_RE.fullmatch(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _iban_end(text: str, start: int) -> int | None:
    """End index of the IBAN written at *start* (contiguous, or in groups of
    four separated by single spaces), or None."""
    length = _IBAN_LENGTHS.get(text[start : start + 2])
    if length is None:
        return None
    if text[start + 4 : start + 5] == " ":
        end = start + length + (length - 1) // 4
        candidate = text[start:end]
        if candidate[4::5].strip(" "):
            return None  # not in groups of four
    else:
        end = start + length
        candidate = text[start:end]
    compact = candidate.replace(" ", "")
    if len(compact) != length or not _IBAN_BODY_RE.fullmatch(compact):
        return None
    if end < len(text) and (text[end].isalnum() or text[end] == "_"):
        return None
    return end


def _mask_iban(compact: str) -> str:
    return f"[iban {compact[:2]}****{compact[-4:]}]"


def _replace_ibans(text: str) -> str:
    pieces: list[str] = []
    last = 0
    for match in _IBAN_START_RE.finditer(text):
        start = match.start()
        if start < last or (start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_")):
            continue
        end = _iban_end(text, start)
        if end is None:
            continue
        candidate = text[start:end]
        if not iban_valid(candidate):
            continue
        pieces.append(text[last:start])
        pieces.append(_mask_iban(candidate.replace(" ", "")))
        last = end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


# ---------------------------------------------------------------------------
# International phone numbers and JWTs
# ---------------------------------------------------------------------------

# ``+`` and a country code, then digits, single spaces/dashes before a digit,
# and an area code in parentheses (``+1 (415) 555-0100``, ``+49 (0)30 123456``).
# Every alternative starts with a different character and the repetition is
# possessive, so a long hostile run is read once.  A number glued to a word
# or running on into a fraction (``+12.5``) is not a phone number; neither is
# anything without the ``+`` (order numbers, ids, domestic numbers).
# The bounded lookahead (eight digits, at most two separator characters
# apart) skips most lone plus signs (``+1``, ``+12.5%``) without a callback.
_PHONE_RE: Final = re.compile(
    r"\+(?<![\w+.]\+)(?=[1-9](?:[ \-()]{0,2}[0-9]){7})"
    r"[1-9](?:[0-9]|[ \-](?=[0-9(])|\([0-9]{1,4}\)(?:[ \-](?=[0-9]))?)*+(?!\w|\.[0-9])"
)
_PHONE_MIN_DIGITS: Final = 8
_PHONE_MAX_DIGITS: Final = 15  # E.164
PHONE_PLACEHOLDER: Final = "[phone]"


def _is_phone_number(digits: str) -> bool:
    if not _PHONE_MIN_DIGITS <= len(digits) <= _PHONE_MAX_DIGITS:
        return False
    if digits[0] == "1":
        # North America (+1): exactly ten digits follow and the area code does
        # not start with 0 or 1, so counts such as "+100000000 rows" are kept.
        return len(digits) == 11 and digits[1] not in "01"
    return True


def _mask_phone(match: re.Match[str]) -> str:
    number = match.group()
    digits = "".join(char for char in number if "0" <= char <= "9")
    return PHONE_PLACEHOLDER if _is_phone_number(digits) else number


# A JWT (JWS: header.payload.signature; JWE: five parts).  The header is a
# base64url JSON object, so it always starts with ``eyJ`` (``{"``).
_JWT_RE: Final = re.compile(
    r"eyJ(?<![A-Za-z0-9_\-]eyJ)[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{2,}\.[A-Za-z0-9_\-]*"
    r"(?:\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)?"
)
JWT_PLACEHOLDER: Final = "[jwt]"


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
        "privatekey", "accesskey", "secretkey", "jwt",
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
    "cvv", "cvc", "card", "number", "credential", "csrf", "xsrf", "security", "jwt",
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


def is_sensitive_key(name: str | bytes | bytearray) -> bool:
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
# followed by ``=`` or ``:`` (optionally after a closing quote, possibly
# escaped as in JSON held inside a JSON string); the full name is then read
# backwards from the separator and checked with is_sensitive_key().  The run
# of name characters after the fragment is bounded and possessive: with an
# unbounded run, every fragment in a long separator-free run of name
# characters (``:keykeykey…``) rescanned the rest of the run, which made
# 10 KB take seconds.
_MAX_NAME_TAIL: Final = 64
_NAMED_VALUE_CANDIDATE_RE: Final = re.compile(
    r"(?:" + "|".join(_SENSITIVE_NAME_FRAGMENTS) + r")"
    r"[\w\-.\[\]]{0," + str(_MAX_NAME_TAIL) + r"}+(?:\\?[\"'][ \t]*[:=]|[ \t]*[:=])"
)
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_KV_NAME_EXTRA_CHARS: Final = frozenset("_-.[]")
_QUOTED_NAME_EXTRA_CHARS: Final = frozenset("_-.")
# Names before a bare colon: ASCII words joined by ``_`` or ``-``.  No dot, so
# ``auth.py:42`` (a stack-trace position) names ``py``, not ``auth.py``.
_COLON_NAME_EXTRA_CHARS: Final = frozenset("_-")
_HEADER_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*")
_KV_VALUE_RE: Final = re.compile(
    r"(?!=)(\"(?:[^\"\\\r\n]|\\.)*\"|'(?:[^'\\\r\n]|\\.)*'|[^\s&;,\"'<>(){}]+)"
)
_QUOTED_VALUE_RE: Final = re.compile(
    r"[ \t]*(\"(?:[^\"\\\r\n]|\\.)*\"|'(?:[^'\\\r\n]|\\.)*'|[^\s,{}\[\]\"']+)"
)
# The value after ``\"name\":`` in JSON held inside a JSON string: ``\"…\"``.
_ESCAPED_QUOTED_VALUE_RE: Final = re.compile(
    r"[ \t]*(\\\"(?:[^\"\\\r\n]|\\[^\"\r\n])*\\\"|[^\s,{}\[\]\"'\\]+)"
)
_HEADER_VALUE_RE: Final = re.compile(r"[ \t]*([^\s,;\"']+)")
_COOKIE_VALUE_RE: Final = re.compile(r"[ \t]*([^\s;,\"']+(?:;[ \t]*[^\s;,\"']+)*)")
_AUTH_SCHEMES: Final = r"(?:Bearer|Basic|Digest|Token|Negotiate|NTLM|ApiKey|Bot|JWT|HMAC|MAC|AWS4-HMAC-SHA256)"
_QUOTED_STRING: Final = r"\"(?:[^\"\\\r\n]|\\.)*\"|'(?:[^'\\\r\n]|\\.)*'"
_AUTH_VALUE_RE: Final = re.compile(
    r"[ \t]*(?:" + _AUTH_SCHEMES + r"[ \t]+)?(" + _QUOTED_STRING + r"|[^\s,;\"']+)", re.IGNORECASE
)
# ``name: value`` in prose, YAML, log lines: one token or one quoted string;
# an authorisation scheme word before the credentials is kept.
_COLON_VALUE_RE: Final = re.compile(
    r"[ \t]*(?:" + _AUTH_SCHEMES + r"[ \t]+)?(" + _QUOTED_STRING + r"|[^\s,;\"'<>(){}]+)", re.IGNORECASE
)
# A bare-colon name whose last word is one of these names an exception or a
# warning (``KeyError: 'user_id'``, ``TokenExpiredError: …``), not a secret.
_COLON_NAME_HARMLESS_LAST_SEGMENTS: Final = frozenset({"error", "errors", "exception", "warning"})
# Values after a bare colon that describe a secret rather than being one
# (``Session: started``, ``token: expired``, ``def check(token: str)``).
_DESCRIPTIVE_COLON_VALUES: Final = frozenset(
    {
        "started", "ended", "expired", "created", "closed", "opened", "revoked", "refreshed",
        "renewed", "rotated", "invalid", "missing", "required", "none", "null", "true", "false",
        "ok", "valid", "empty", "unset", "str", "bytes", "int", "bool", "float", "dict", "any",
        "optional",
    }
)
# SQL bind placeholders (``password_hash = ?``, ``token = :token``, ``%s``, ``$1``)
# are not values: a logged statement keeps them.
_BIND_PLACEHOLDER_RE: Final = re.compile(r"\?|%s|%\([A-Za-z_]\w*\)s|:[A-Za-z_]\w*|\$[0-9]+")
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
    if value[:2] == '\\"':
        return f'\\"{REDACTED}\\"'
    if value[:1] in ("'", '"'):
        return f"{value[0]}{REDACTED}{value[0]}"
    return f"{default_quote}{REDACTED}{default_quote}"


def _quoted_name_redaction(text: str, separator: int, name_end: int) -> tuple[int, str] | None:
    """``"name": value``, ``'name': value``, ``"name"=value`` and ``\\"name\\": \\"value\\"``."""
    quote = text[name_end - 1]
    close = name_end - 1
    escaped = close > 0 and text[close - 1] == "\\"
    if escaped:
        close -= 1
    name_start = _scan_name_back(text, close, _QUOTED_NAME_EXTRA_CHARS, ascii_only=False)
    name = text[name_start:close]
    opening = "\\" + quote if escaped else quote
    if not name or not _is_name_start(name[0]) or text[max(name_start - len(opening), 0) : name_start] != opening:
        return None
    if not is_sensitive_key(name):
        return None
    value = (_ESCAPED_QUOTED_VALUE_RE if escaped else _QUOTED_VALUE_RE).match(text, separator + 1)
    if value is None:
        return None
    gap = text[separator : value.start(1)]
    return value.end(), gap + _redacted_value(value.group(1), "\\" + quote if escaped else quote)


def _colon_name_is_sensitive_uncached(name: str) -> bool:
    if not is_sensitive_key(name):
        return False
    segments = _KEY_SEGMENT_RE.findall(name)
    return not (len(segments) > 1 and segments[-1].lower() in _COLON_NAME_HARMLESS_LAST_SEGMENTS)


_colon_name_is_sensitive_cached = lru_cache(maxsize=1024)(_colon_name_is_sensitive_uncached)


def _colon_name_is_sensitive(name: str) -> bool:
    """is_sensitive_key() for a name before a bare colon, exception names excepted."""
    if len(name) > _MAX_CACHED_KEY_LENGTH:
        return _colon_name_is_sensitive_uncached(name)
    return _colon_name_is_sensitive_cached(name)


def _colon_value_redaction(text: str, separator: int, name_start: int, name: str) -> tuple[int, str] | None:
    """``name: value`` / ``name:value`` in prose, YAML and log lines."""
    after = separator + 1
    if after < len(text) and text[after] == ":":
        return None  # ``::`` is a scope operator or an IPv6 address, not a separator
    before = text[name_start - 1] if name_start > 0 else ""
    if before == "/":
        return None  # a path or a URL (``https://token:[redacted]@host`` after the userinfo rule)
    if before in (":", ".") and (after >= len(text) or text[after] not in " \t"):
        return None  # a logger prefix such as ``INFO:app.auth:message``
    if not _colon_name_is_sensitive(name):
        return None
    value = _COLON_VALUE_RE.match(text, after)
    if value is None:
        return None
    raw = value.group(1)
    if raw.lower() in _DESCRIPTIVE_COLON_VALUES or _BIND_PLACEHOLDER_RE.fullmatch(raw):
        return None
    return value.end(), text[separator : value.start(1)] + _redacted_value(raw, "")


def _named_value_redaction(text: str, separator: int) -> tuple[int, str] | None:
    """Redaction for the value after the ``=``/``:`` at index *separator*.

    Returns ``(value_end, replacement)`` where the replacement covers
    ``text[separator:value_end]``, or None when the name is not sensitive or
    the shape is not recognised.  Shapes:

    * ``"name": value`` / ``'name': value`` / ``"name"=value`` (JSON, Python
      reprs, also with escaped quotes: JSON inside a JSON string)
    * ``name=value``  (query strings, forms, logfmt; spaces around ``=``
      only when there are spaces before it, as in ``password = x``)
    * ``Authorization: <scheme> <credentials>`` (also with ``=``),
      ``Cookie:`` / ``Set-Cookie:``, and hyphenated headers ``X-Api-Key:``
    * ``name: value`` / ``name:value`` (prose, YAML, log lines)
    """
    name_end = separator
    while name_end > 0 and text[name_end - 1] in " \t":
        name_end -= 1
    spaced = name_end != separator
    is_equals = text[separator] == "="

    if name_end > 0 and text[name_end - 1] in "\"'":
        return _quoted_name_redaction(text, separator, name_end)

    if is_equals:
        name_start = _scan_name_back(text, name_end, _KV_NAME_EXTRA_CHARS, ascii_only=False)
    else:
        name_start = _scan_name_back(text, name_end, _COLON_NAME_EXTRA_CHARS, ascii_only=True)
        if name_start > 0 and text[name_start - 1].isalnum():
            return None  # glued to a longer (non-ASCII) word: not a name
    if (
        name_start > 0
        and text[name_start - 1] == "\\"
        and name_end - name_start > 1
        and text[name_start] in "nrt"
        and not is_sensitive_key(text[name_start:name_end])
    ):
        name_start += 1  # ``\nsession: x`` in an escaped log line names ``session``
    name = text[name_start:name_end]
    if not name or not _is_name_start(name[0]):
        return None
    lowered = name.lower()

    if lowered in _AUTH_HEADER_NAMES:
        value = _AUTH_VALUE_RE.match(text, separator + 1)
        if value is None:
            return None
        return value.end(), text[separator : value.start(1)] + _redacted_value(value.group(1), "")

    if is_equals:
        position = separator + 1
        if spaced:
            while position < len(text) and text[position] in " \t":
                position += 1
        value = _KV_VALUE_RE.match(text, position)
        if value is None or not is_sensitive_key(name) or _BIND_PLACEHOLDER_RE.fullmatch(value.group(1)):
            return None
        return value.end(), text[separator:position] + _redacted_value(value.group(1), "")

    if lowered in _COOKIE_HEADER_NAMES:
        value = _COOKIE_VALUE_RE.match(text, separator + 1)
    elif "-" in name and _HEADER_NAME_RE.fullmatch(name) and is_sensitive_key(name):
        value = _HEADER_VALUE_RE.match(text, separator + 1)
    else:
        return _colon_value_redaction(text, separator, name_start, name)
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
    """One pass of every rule, in order: secrets, JWTs, e-mails, IBANs, phones, IPs, cards."""
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
    if "eyJ" in text:
        text = _JWT_RE.sub(JWT_PLACEHOLDER, text)
    if "@" in text:
        text = _replace_emails(text)
    if lowered != text:  # an IBAN has upper-case letters
        text = _replace_ibans(text)
    if "+" in text:
        text = _PHONE_RE.sub(_mask_phone, text)
    if "::" in text or text.count(":") >= 7:
        text = _replace_addresses(text, 6)
    if "." in text:
        text = _replace_addresses(text, 4)
    return _mask_cards(text)


def sanitise_text(text: str | bytes | bytearray | memoryview) -> str:
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


def _rebuild_sequence(original: list[object] | tuple[object, ...], items: list[object]) -> list[object] | tuple[object, ...]:
    if isinstance(original, list):
        return items
    if hasattr(original, "_fields"):
        # A namedtuple takes its fields one by one (tuple itself takes one iterable).
        namedtuple_type: Callable[..., tuple[object, ...]] = type(original)
        try:
            return namedtuple_type(*items)
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
