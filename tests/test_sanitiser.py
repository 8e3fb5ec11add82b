"""Tests for monitoring.security.pii (PII scrubbing).

The property-based tests use their own Luhn implementation and e-mail regex
so that they do not merely restate the code under test.
"""

from __future__ import annotations

import collections
import copy
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitoring.security.pii import (
    anonymise_ip,
    iban_valid,
    is_sensitive_key,
    luhn_valid,
    mask_card,
    sanitise,
    sanitise_text,
)

# ---------------------------------------------------------------------------
# Independent helpers
# ---------------------------------------------------------------------------


def reference_luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def with_check_digit(body: str) -> str:
    for digit in "0123456789":
        if reference_luhn(body + digit):
            return body + digit
    raise AssertionError("unreachable")


# Separators between digits (single space or dash) are removed, then every
# maximal ASCII digit run is inspected.
SEPARATOR_BETWEEN_DIGITS = re.compile(r"(?<=[0-9])[ \-](?=[0-9])")
DIGIT_RUN = re.compile(r"[0-9]+")
EMAIL_CHECK = re.compile(r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)*\.[A-Za-z]{2,}")


def surviving_card_runs(text: str) -> list[str]:
    compact = SEPARATOR_BETWEEN_DIGITS.sub("", text)
    return [run for run in DIGIT_RUN.findall(compact) if 13 <= len(run) <= 19 and reference_luhn(run)]


# ---------------------------------------------------------------------------
# Corpus: real-looking log lines
# ---------------------------------------------------------------------------

CORPUS = [
    # e-mail addresses
    ("User bob.smith+tag@example.co.uk logged in", "User [email] logged in"),
    ("contact <alice_o@mail.example.org>, cc x.y@sub.domain.io", "contact <[email]>, cc [email]"),
    ("mailto:jörg.müller@exämple.de bounced", "mailto:[email] bounced"),
    # payment cards (Stripe test numbers)
    ("Charge failed for card 4242 4242 4242 4242 (visa)", "Charge failed for card [card ****4242] (visa)"),
    ("mc=5555-5555-5555-4444;", "mc=[card ****4444];"),
    ("amex 378282246310005 declined", "amex [card ****0005] declined"),
    ("amex grouped 3782 822463 10005 ok", "amex grouped [card ****0005] ok"),
    ("visa13 4222222222222 ok", "visa13 [card ****2222] ok"),
    ("visa19 4000000000000000006 ok", "visa19 [card ****0006] ok"),
    ("unionpay 6221 2600 0000 0000 001", "unionpay [card ****0001]"),
    ("Order 1234567 4242 4242 4242 4242 shipped", "Order 1234567 [card ****4242] shipped"),
    ("cards 4242424242424242,5555555555554444", "cards [card ****4242],[card ****4444]"),
    # secrets and tokens
    ("stripe key sk_live_51H8abcdEFGHijklMNOP loaded", "stripe key sk_live_[redacted] loaded"),
    ("using sk_test_4eC39HqLyjWDarjtT1zdp7dc", "using sk_test_[redacted]"),
    ("pk_live_abc123 rk_test_def456 pk_test_Xyz", "pk_live_[redacted] rk_test_[redacted] pk_test_[redacted]"),
    ("webhook secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "webhook secret whsec_[redacted]"),
    ("brevo xkeysib-1a2b3c4d5e6f7a8b-AbCdEf123 ok", "brevo xkeysib-[redacted] ok"),
    (
        "confirm pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH",
        "confirm pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_[redacted]",
    ),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dGVzdA", "Authorization: Bearer [redacted]"),
    ("curl -H 'authorization: bearer abc.def-ghi_jkl'", "curl -H 'authorization: bearer [redacted]'"),
    ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [redacted]"),
    ("Proxy-Authorization: rawtoken123", "Proxy-Authorization: [redacted]"),
    (
        "GET https://api.example.com/v1/charges?api_key=abc123&limit=10&token=t0k3n HTTP/1.1",
        "GET https://api.example.com/v1/charges?api_key=[redacted]&limit=10&token=[redacted] HTTP/1.1",
    ),
    ("body username=bob&password=hunter2&remember=1", "body username=bob&password=[redacted]&remember=1"),
    (
        'secret=s3cr3t access_token="abc def" max_tokens=512 tokens_count=3',
        'secret=[redacted] access_token="[redacted]" max_tokens=512 tokens_count=3',
    ),
    ("config password = hunter2", "config password = [redacted]"),
    ("empty secret= next=1", "empty secret= next=1"),
    ("Cookie: sessionid=abc123; csrftoken=xyz, next", "Cookie: [redacted], next"),
    ("Set-Cookie: sid=abc; Path=/; HttpOnly", "Set-Cookie: [redacted]"),
    ("X-Api-Key: 9f8e7d6c X-Request-Id: req-1", "X-Api-Key: [redacted] X-Request-Id: req-1"),
    (
        '{"password": "hunter2", "user": "bob", "cvv": 123, "card_brand": "visa"}',
        '{"password": "[redacted]", "user": "bob", "cvv": "[redacted]", "card_brand": "visa"}',
    ),
    ("{'api_key': 'abc', 'page': 2}", "{'api_key': '[redacted]', 'page': 2}"),
    (
        '{"headers": {"Authorization": "Bearer abc"}}',
        '{"headers": {"Authorization": "[redacted]"}}',
    ),
    ("db postgres://svc:pa55w0rd@db.internal:5432/app", "db postgres://svc:[redacted]@db.internal:5432/app"),
    ("dsn https://abc123@o0.ingest.sentry.io/42", "dsn https://[redacted]@o0.ingest.sentry.io/42"),
    ("SENTRY_DSN=https://abc123@o0.ingest.sentry.io/42", "SENTRY_DSN=[redacted]"),
    # international phone numbers, JWTs, IBANs
    ("phone +44 20 7946 0958", "phone [phone]"),
    ("token eyJhbGciOiJIUzI1NiJ9.e30.sig here", "token [jwt] here"),
    ("IBAN GB29 NWBK 6016 1331 9268 19", "IBAN [iban GB****6819]"),
    # IP addresses
    ("client 203.0.113.77 connected", "client 203.0.113.0 connected"),
    ("X-Forwarded-For: 198.51.100.23, 10.0.0.5", "X-Forwarded-For: 198.51.100.0, 10.0.0.0"),
    ("ip=192.0.2.1:8080", "ip=192.0.2.0:8080"),
    ("peer 2001:db8:abcd:12::1 port 443", "peer 2001:db8:abcd:: port 443"),
    ("[2001:DB8:ABCD:12:0:0:0:1]:443", "[2001:db8:abcd::]:443"),
    ("mapped ::ffff:203.0.113.77", "mapped ::ffff:203.0.113.0"),
    # mixed
    (
        "2024-05-01T10:00:00Z user=ana@example.com ip=203.0.113.9 card=4242424242424242 status=402",
        "2024-05-01T10:00:00Z user=[email] ip=203.0.113.0 card=[card ****4242] status=402",
    ),
]

UNCHANGED = [
    "plain text without anything personal",
    "order 4242424242424241 failed",  # not Luhn-valid
    "ts=1700000000000 took 12ms",
    "phone 020 7946 0958",  # domestic: no country code
    "glued card4242424242424242x",  # glued to letters: part of a word, not a card
    "id 12345678901234567",
    "run 1234567894242424242424242 end",  # 25 digits; contains a valid 16-digit suffix
    "dates 2024-01-05 2024-01-06",
    "version 1.2.3 released",
    "bad ip 999.1.1.1",
    "version 1.2.3.4.5",
    "app v1.2.3.4",
    "at 12:30:45",
    "mac 00:1a:2b:3c:4d:5e",
    "std::vector<int>",
    "price 12.50 EUR",
    "tokens_count=5 max_tokens=100 token_type=bearer",
    "Session: started",
    "card_brand=visa card_last4=4242",
    "Content-Type: application/json",
]


@pytest.mark.parametrize(("raw", "expected"), CORPUS)
def test_corpus(raw: str, expected: str) -> None:
    assert sanitise_text(raw) == expected


@pytest.mark.parametrize("raw", UNCHANGED)
def test_harmless_text_is_left_alone(raw: str) -> None:
    assert sanitise_text(raw) == raw


@pytest.mark.parametrize("raw", [raw for raw, _ in CORPUS] + UNCHANGED)
def test_corpus_idempotent(raw: str) -> None:
    once = sanitise_text(raw)
    assert sanitise_text(once) == once


# ---------------------------------------------------------------------------
# Judged by intent: what a reader of the log line expects to see
# ---------------------------------------------------------------------------

# Text that names nothing secret and must come back exactly as it went in.
BENIGN_BY_INTENT = [
    "Order 123 processed",
    "Order #48213 shipped to warehouse 7",
    "Ticket 2024-000123 sold for EUR 45.00",
    "Invoice INV-2024-00042 paid in full",
    "took 12.345678901234 s",
    "local variable 12.345678901234",
    "x = 12.345678901234523",  # the fraction is 15 Luhn-valid digits: still a float, not a card
    "ratio=0.4242424242424242 of capacity",
    "event at 1714557600.4242424242 unix",
    "2024-05-01T10:00:00.123456Z request finished",
    "2024-05-01 10:00:00,123 INFO worker 3 started",
    "2024-05-01T10:00:00+02:00 tz offset +02:00 applied",
    "request_id=3f2b8c1e-9d4a-4e6b-8f7a-1c2d3e4f5a6b",
    "version 2.31.0 (build 20240501), python 3.11.7",
    "price 1299 cents (EUR 12.99), amount_minor=4500 currency=EUR",
    '203.0.113.0 - - [01/May/2024:10:00:00 +0000] "GET /api/health/live HTTP/1.1" 200 17 "-" "curl/8.0"',
    '127.0.0.1 "POST /api/monitoring/alerts?page=2 HTTP/1.1" 201 512 3ms',
    "GET /api/v1/orders/98765432109876543 200",  # 17 digits, not Luhn-valid
    "SELECT id, status FROM orders WHERE id = 123 LIMIT 50",
    "UPDATE users SET password_hash = ? WHERE id = ?",
    "SELECT user_id FROM sessions WHERE token = :token AND expires_at > :now",
    "Traceback (most recent call last):",
    '  File "/app/monitoring/auth.py", line 88, in check_token',
    "KeyError: 'user_id'",
    "jwt.exceptions.ExpiredSignatureError: Signature has expired",
    "tests/test_auth.py:42: AssertionError",
    "DEBUG:app.auth:User 42 logged in",
    "def verify(token: str) -> bool:",
    "https://tickets.example.com/events/2024/summer?page=2&sort=date",
    "call 612 345 678 tomorrow",
    "phone (415) 555-0100 or 020 7946 0958",
    "listening on 0.0.0.0:8000, health on port 8081",
    "retry in 30s (attempt 3/5), timeout=10.5",
    "duration_ms=1234567 rows=42",
    "uptime 99.95% over 30d, delta +12.5% since yesterday",
    "room +12 on floor 3, score +100, +100000000 rows",
    "Session: started",
    "token: expired",
    "token_count=512 max_tokens=4096",
    "sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "C++17 build with -O2, result 1e+10",
    "author: Jane, passengers: 2, monkey: 1",
    "Content-Type: application/json; charset=utf-8",
    "card_brand=visa card_last4=4242 exp=12/27",
    "ISBN 978-3-16-148410-0",
    "DE89370400440532013001 fails mod-97",
    "glued card4242424242424242x and ref4242424242424242",
    "std::vector<int> v; a::b::token::c",
    "C:\\Users\\app\\logs\\2024-05-01.log rotated",
]

# Each sensitive shape: the value goes, the name (or the kind of thing) stays.
SENSITIVE_BY_INTENT = [
    ("password: hunter2", "password: [redacted]"),
    ("password:x", "password:[redacted]"),
    ("Password: x", "Password: [redacted]"),
    ("token: x", "token: [redacted]"),
    ("secret: x", "secret: [redacted]"),
    ("passwd: x", "passwd: [redacted]"),
    ("pwd: x", "pwd: [redacted]"),
    ("api_key: abc123", "api_key: [redacted]"),
    ("apikey: abc123", "apikey: [redacted]"),
    ("auth: s3cr3t", "auth: [redacted]"),
    ("cookie: sid=abc", "cookie: [redacted]"),
    ("session: 8f14e45fceea167a", "session: [redacted]"),
    ('"password": "x"', '"password": "[redacted]"'),
    ("password='x'", "password='[redacted]'"),
    ("Authorization: Bearer abc", "Authorization: Bearer [redacted]"),
    ("X-Api-Key: abc", "X-Api-Key: [redacted]"),
    ("login failed for bob, password: hunter2 (attempt 3)", "login failed for bob, password: [redacted] (attempt 3)"),
    ("WARNING:root:password: hunter2", "WARNING:root:password: [redacted]"),
    ("config PASSWORD : 'two words'", "config PASSWORD : '[redacted]'"),
    ('{"user": "bob", "token": "abc", "page": 2}', '{"user": "bob", "token": "[redacted]", "page": 2}'),
    (
        'body={\\"password\\": \\"hunter2\\", \\"user\\": \\"bob\\"}',
        'body={\\"password\\": \\"[redacted]\\", \\"user\\": \\"bob\\"}',
    ),
    ('{"log": "login failed\\nsession: 8f14e45f"}', '{"log": "login failed\\nsession: [redacted]"}'),
    (
        "GET /login?user=bob&password=hunter2&next=/ HTTP/1.1",
        "GET /login?user=bob&password=[redacted]&next=/ HTTP/1.1",
    ),
    ("SECRET = 'x'", "SECRET = '[redacted]'"),
    ("jwt=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dGVzdA", "jwt=[redacted]"),
    ("bare eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dGVzdA in text", "bare [jwt] in text"),
    ("redirect /cb#state=1&x=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dGVzdA", "redirect /cb#state=1&x=[jwt]"),
    ("IBAN DE89 3704 0044 0532 0130 00 received", "IBAN [iban DE****3000] received"),
    ("iban=GB29NWBK60161331926819", "iban=[iban GB****6819]"),
    ("pay to ES91 2100 0418 4502 0005 1332.", "pay to [iban ES****1332]."),
    ("+34 612 345 678", "[phone]"),
    ("call +1 (415) 555-0100 now", "call [phone] now"),
    ("sms to +442071234567 sent", "sms to [phone] sent"),
    ("phone=+49 (0)30 1234567", "phone=[phone]"),
    ("card 4242 4242 4242 4242 charged", "card [card ****4242] charged"),
    ("amex 3782-822463-10005", "amex [card ****0005]"),
    ("card=4000056655665556, amount 1200", "card=[card ****5556], amount 1200"),
]

INTENT_TABLE = [(text, text) for text in BENIGN_BY_INTENT] + SENSITIVE_BY_INTENT


def test_intent_table_is_mostly_benign() -> None:
    # Over-masking is judged as strictly as leaking: keep the benign half.
    assert len(INTENT_TABLE) >= 60
    assert len(BENIGN_BY_INTENT) >= len(INTENT_TABLE) / 2


@pytest.mark.parametrize(("raw", "expected"), INTENT_TABLE, ids=lambda value: repr(value[:40]))
def test_judged_by_intent(raw: str, expected: str) -> None:
    assert sanitise_text(raw) == expected
    assert sanitise_text(expected) == expected


@pytest.mark.parametrize("raw", BENIGN_BY_INTENT, ids=lambda value: repr(value[:40]))
def test_benign_text_in_structures_is_left_alone(raw: str) -> None:
    assert sanitise({"message": raw, "lines": [raw]}) == {"message": raw, "lines": [raw]}


def test_bytes_are_decoded_with_replacement() -> None:
    assert sanitise_text(b"mail bob@example.com \xff") == "mail [email] \ufffd"
    assert sanitise(bytearray(b"4242424242424242")) == "[card ****4242]"


def test_sanitise_text_rejects_non_text() -> None:
    with pytest.raises(TypeError):
        sanitise_text(123)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Helpers of the public API
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "digits", ["4242424242424242", "4242 4242 4242 4242", "5555-5555-5555-4444", "378282246310005", "0", "18"]
)
def test_luhn_valid(digits: str) -> None:
    assert luhn_valid(digits)


@pytest.mark.parametrize(
    "digits", ["4242424242424241", "", " - ", "abc", "4242x4242424242424242", "\uff14\uff12\uff14\uff12", "19", None, 4242]
)
def test_luhn_invalid(digits: object) -> None:
    assert not luhn_valid(digits)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("4242 4242 4242 4242", "[card ****4242]"),
        ("378282246310005", "[card ****0005]"),
        ("5555-5555-5555-4444", "[card ****4444]"),
        ("1234", "[card ****]"),
        ("", "[card ****]"),
    ],
)
def test_mask_card(digits: str, expected: str) -> None:
    assert mask_card(digits) == expected


@pytest.mark.parametrize(
    "iban",
    [
        "DE89 3704 0044 0532 0130 00", "GB29NWBK60161331926819", "FR14 2004 1010 0505 0001 3M02 606",
        "NO93 8601 1117 947", "MT84 MALT 0110 0001 2345 MTLC AST0 01S", "NL91ABNA0417164300",
    ],
)
def test_iban_valid(iban: str) -> None:
    assert iban_valid(iban)


@pytest.mark.parametrize(
    "candidate",
    [
        "DE89 3704 0044 0532 0130 01",  # check digits do not match
        "DE89370400440532013",  # too short for Germany
        "XX89370400440532013000",  # no such country
        "de89370400440532013000",  # lower case
        "", None, 42,
    ],
)
def test_iban_invalid(candidate: object) -> None:
    assert not iban_valid(candidate)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("203.0.113.77", "203.0.113.0"),
        (" 10.1.2.3\n", "10.1.2.0"),
        ("2001:db8:abcd:12::1", "2001:db8:abcd::"),
        ("[2001:db8:abcd:ffff::1]", "2001:db8:abcd::"),
        ("2001:0db8:abcd:0012:0000:0000:0000:0001", "2001:db8:abcd::"),
        ("fe80::1%eth0", "fe80::"),
        ("::1", "::1"),  # loopback names no person
        ("::ffff:203.0.113.77", "::ffff:203.0.113.0"),
        ("203.0.113.0", "203.0.113.0"),
    ],
)
def test_anonymise_ip(address: str, expected: str) -> None:
    assert anonymise_ip(address) == expected


@pytest.mark.parametrize(
    "address", ["", "1.2.3", "999.1.1.1", "1.2.3.4.5", "01.2.3.4", "not an ip", "2001:db8::g", "12:30:45", None, 42]
)
def test_anonymise_ip_invalid(address: object) -> None:
    assert anonymise_ip(address) == "unknown"  # type: ignore[arg-type]


SENSITIVE_KEYS = [
    "password", "Password", "PASSWD", "pwd", "user_password", "dbPassword", "secret", "client_secret",
    "clientSecret", "token", "access_token", "accessToken", "refresh-token", "csrftoken", "api_key", "apiKey",
    "APIKey", "apikey", "x-api-key", "X-Api-Key", "x-admin-key", "X_ADMIN_KEY", "key", "private_key",
    "authorization", "Authorization", "HTTP_AUTHORIZATION", "proxy-authorization", "auth", "cookie", "Cookie",
    "cookies", "set-cookie", "Set-Cookie", "HTTP_COOKIE", "dsn", "SENTRY_DSN", "session", "sessionid", "sessionId",
    "session_id", "JSESSIONID", "credit_card", "creditCard", "card_number", "cardNumber", "cc_number", "cvv", "CVC",
    "cvv2", "security_code", "credentials", "secrets", "passwords", "user.password", "user[password]",
]
HARMLESS_KEYS = [
    "tokens_count", "token_count", "tokenCount", "token_type", "max_tokens", "prompt_tokens", "tokens", "keys",
    "monkey", "keyboard", "author", "tokenizer", "secretary", "passenger", "session_timeout", "password_length",
    "card_brand", "card_last4", "user_id", "email", "ip_address", "username", "status", "", "_", "id",
]


@pytest.mark.parametrize("name", SENSITIVE_KEYS)
def test_sensitive_keys(name: str) -> None:
    assert is_sensitive_key(name)


@pytest.mark.parametrize("name", HARMLESS_KEYS)
def test_harmless_keys(name: str) -> None:
    assert not is_sensitive_key(name)


def test_is_sensitive_key_non_string() -> None:
    assert is_sensitive_key(b"api_key")
    assert not is_sensitive_key(42)  # type: ignore[arg-type]
    assert not is_sensitive_key(None)  # type: ignore[arg-type]


# The text rules (name=value, "name": value) must agree with is_sensitive_key
# for any spelling of a name: snake, kebab, dotted or camelCase.
NAME_WORDS = [
    "api", "key", "token", "tokens", "secret", "password", "pass", "auth", "authorization", "cookie", "session",
    "id", "count", "type", "user", "credit", "card", "number", "cvv", "dsn", "x", "admin", "access", "max", "db",
    "security", "code", "brand", "client", "refresh", "monkey", "passwd", "pwd", "credentials", "sessionid",
    "csrftoken", "apikey", "jsessionid", "cc", "no", "secrets", "keyboard", "timeout", "length",
]


def _join_name(words: list[str], style: str) -> str:
    if style == "camel":
        return words[0] + "".join(word.capitalize() for word in words[1:])
    return style.join(words)


names = st.builds(
    _join_name,
    st.lists(st.sampled_from(NAME_WORDS), min_size=1, max_size=4),
    st.sampled_from(["_", "-", ".", "camel"]),
)


@given(name=names)
def test_text_rules_follow_is_sensitive_key(name: str) -> None:
    value = "S3cr3tV4lue"
    templates = ["{name}={value}", "?{name}={value}&page=2", '{{"{name}": "{value}"}}', "{name}='{value}'"]
    if "." not in name:  # before a bare colon a dot ends the name (``auth.py:42``)
        templates += ["{name}: {value}", "{name}:{value}", "login failed, {name}: {value} (retry)"]
    for template in templates:
        line = template.format(name=name, value=value)
        out = sanitise_text(line)
        if is_sensitive_key(name):
            assert value not in out, (line, out)
            assert "[redacted]" in out
        else:
            assert out == line


# ---------------------------------------------------------------------------
# Structures
# ---------------------------------------------------------------------------


def sentry_event() -> dict:
    return {
        "event_id": "fc6d8c0c43fc4630ad850ee518f1b9d0",
        "level": "error",
        "message": "Payment failed for bob@example.com with card 4242 4242 4242 4242",
        "user": {"id": 42, "email": "bob@example.com", "ip_address": "203.0.113.77", "username": "bob"},
        "request": {
            "url": "https://centinela.example.com/api/checks?token=abc123&page=2",
            "method": "POST",
            "query_string": "token=abc123&page=2",
            "headers": [
                ["Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"],
                ["Cookie", "session=xyz"],
                ["X-Admin-Key", "adm-123"],
                ["User-Agent", "curl/8.0"],
            ],
            "cookies": {"session": "xyz", "theme": "dark"},
            "data": {"email": "carol@example.org", "card_number": 4242424242424242, "amount": 1999},
            "env": {"REMOTE_ADDR": "2001:db8:abcd:12::1", "SERVER_NAME": "web-1"},
        },
        "exception": {
            "values": [
                {
                    "type": "CardError",
                    "value": "Your card 5555-5555-5555-4444 was declined (key sk_live_51Habc)",
                    "stacktrace": {
                        "frames": [
                            {"function": "charge", "lineno": 12, "vars": {"password": "hunter2", "attempt": 3}}
                        ]
                    },
                }
            ]
        },
        "breadcrumbs": {"values": [{"message": "GET /x?api_key=abc", "data": {"X-Api-Key": "zzz"}}]},
        "extra": {"order_ids": [4242424242424241, 12345], "tags": ("a@b.co", 1.5, None, True)},
        "contexts": {"trace": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}},
    }


SECRET_FRAGMENTS = [
    "bob@example.com", "carol@example.org", "a@b.co", "4242 4242 4242 4242", "4242424242424242",
    "5555-5555-5555-4444", "203.0.113.77", "2001:db8:abcd:12::1", "abc123", "eyJhbGciOiJIUzI1NiJ9", "xyz",
    "adm-123", "hunter2", "sk_live_51Habc", "zzz", "api_key=abc",
]


def test_sentry_event_is_scrubbed() -> None:
    event = sentry_event()
    clean = sanitise(event)
    assert isinstance(clean, dict)
    dump = repr(clean)
    for fragment in SECRET_FRAGMENTS:
        assert fragment not in dump, fragment

    assert clean["message"] == "Payment failed for [email] with card [card ****4242]"
    assert clean["user"] == {"id": 42, "email": "[email]", "ip_address": "203.0.113.0", "username": "bob"}
    request = clean["request"]
    assert request["url"] == "https://centinela.example.com/api/checks?token=[redacted]&page=2"
    assert request["query_string"] == "token=[redacted]&page=2"
    assert request["headers"] == [
        ["Authorization", "[redacted]"],
        ["Cookie", "[redacted]"],
        ["X-Admin-Key", "[redacted]"],
        ["User-Agent", "curl/8.0"],
    ]
    assert request["cookies"] == "[redacted]"
    assert request["data"] == {"email": "[email]", "card_number": "[redacted]", "amount": 1999}
    assert request["env"] == {"REMOTE_ADDR": "2001:db8:abcd::", "SERVER_NAME": "web-1"}
    exception = clean["exception"]["values"][0]
    assert exception["value"] == "Your card [card ****4444] was declined (key sk_live_[redacted])"
    assert exception["stacktrace"]["frames"][0]["vars"] == {"password": "[redacted]", "attempt": 3}
    assert clean["breadcrumbs"]["values"][0] == {"message": "GET /x?api_key=[redacted]", "data": {"X-Api-Key": "[redacted]"}}
    assert clean["extra"] == {"order_ids": [4242424242424241, 12345], "tags": ("[email]", 1.5, None, True)}
    assert clean["contexts"] == event["contexts"]


def test_sentry_event_not_mutated_and_idempotent() -> None:
    event = sentry_event()
    before = copy.deepcopy(event)
    clean = sanitise(event)
    assert event == before
    assert sanitise(clean) == clean
    assert clean["request"] is not event["request"]


@pytest.mark.parametrize("secret_value", [None, 0, 12.5, True, "x", ["a", "b"], {"nested": "v"}, ("t",)])
def test_sensitive_key_value_redacted_whatever_its_type(secret_value: object) -> None:
    assert sanitise({"Api-Key": secret_value, "other": 1}) == {"Api-Key": "[redacted]", "other": 1}


def test_container_types_are_preserved() -> None:
    Pair = collections.namedtuple("Pair", "name value")
    data = {
        "list": ["a@b.io", 1],
        "tuple": ("a@b.io", 2),
        "set": {"a@b.io", "x"},
        "frozen": frozenset({"203.0.113.7"}),
        "named": Pair("ip", "203.0.113.7"),
        "record": Pair("password", "hunter2"),
        "header_tuples": [("X-Api-Key", "k"), ("Accept", "*/*")],
        "words": ["keyboard", "hunter2"],
    }
    clean = sanitise(data)
    assert clean == {
        "list": ["[email]", 1],
        "tuple": ("[email]", 2),
        "set": {"[email]", "x"},
        "frozen": frozenset({"203.0.113.0"}),
        "named": Pair("ip", "203.0.113.0"),
        "record": Pair("password", "[redacted]"),
        "header_tuples": [("X-Api-Key", "[redacted]"), ("Accept", "*/*")],
        "words": ["keyboard", "hunter2"],
    }
    assert type(clean["tuple"]) is tuple
    assert type(clean["set"]) is set
    assert type(clean["frozen"]) is frozenset
    assert type(clean["named"]) is Pair
    assert type(clean["record"]) is Pair
    assert sanitise(["Cookie", "a=b"]) == ["Cookie", "[redacted]"]


def test_scalars() -> None:
    marker = object()
    assert sanitise(4242424242424242) == "[card ****4242]"
    assert sanitise(-4242424242424242) == "[card ****4242]"
    assert sanitise(4242424242424241) == 4242424242424241
    assert sanitise(10**30) == 10**30
    assert sanitise(True) is True
    assert sanitise(None) is None
    assert sanitise(4.242424242424242e15) == 4.242424242424242e15
    assert sanitise(marker) is marker


def test_keys_are_sanitised_too() -> None:
    assert sanitise({"bob@example.com": 1, 4242424242424242: "x"}) == {"[email]": 1, "[card ****4242]": "x"}


def test_cycles_and_depth() -> None:
    loop: list = ["a@b.io"]
    loop.append(loop)
    assert sanitise(loop) == ["[email]", "[circular]"]
    assert loop[0] == "a@b.io" and loop[1] is loop

    deep: object = "x@y.io"
    for _ in range(5000):
        deep = [deep]
    clean = sanitise(deep)
    depth = 0
    while isinstance(clean, list):
        clean = clean[0]
        depth += 1
    assert clean == "[truncated]"
    assert depth < 5000


# ---------------------------------------------------------------------------
# Property-based tests
# ---------------------------------------------------------------------------


def group_digits(digits: str, sizes: list[int], separator: str) -> str:
    groups = []
    position = 0
    for size in sizes:
        groups.append(digits[position : position + size])
        position += size
    if position < len(digits):
        groups.append(digits[position:])
    return separator.join(group for group in groups if group)


@st.composite
def card_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """A Luhn-valid 13–19 digit number, rendered the way cards are written:
    contiguous, in fours (4-4-4-4, 4-4-4-4-3, ...) or 4-6-rest (Amex, Diners)."""
    length = draw(st.integers(min_value=13, max_value=19))
    body = draw(st.text(alphabet=string.digits, min_size=length - 1, max_size=length - 1))
    digits = with_check_digit(body)
    layout = draw(st.sampled_from(["contiguous", "fours", "four-six"]))
    separator = draw(st.sampled_from([" ", "-"]))
    if layout == "contiguous":
        return digits, digits
    if layout == "four-six" and length <= 16:
        return digits, group_digits(digits, [4, 6], separator)
    return digits, group_digits(digits, [4, 4, 4, 4], separator)


# Characters that end a word without joining digits to it: a card between two
# of them stands alone.
standalone_edges = st.sampled_from([" ", "\n", "\t", ",", ";", "(", ")", "[", "]", "'", '"', "/", "#", "=", "|", "<", ">", ": "])
no_ascii_digits = st.text(st.characters(exclude_characters="0123456789"), max_size=30)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(card=card_numbers(), before=no_ascii_digits, after=no_ascii_digits, left=standalone_edges, right=standalone_edges)
def test_card_standing_alone_is_masked(card: tuple[str, str], before: str, after: str, left: str, right: str) -> None:
    digits, rendered = card
    out = sanitise_text(before + left + rendered + right + after)
    assert rendered not in out
    assert digits not in "".join(char for char in out if char in string.digits)
    assert surviving_card_runs(out) == []


@settings(max_examples=300)
@given(card=card_numbers(), before=no_ascii_digits, after=no_ascii_digits)
def test_delimited_card_is_masked(card: tuple[str, str], before: str, after: str) -> None:
    digits, rendered = card
    out = sanitise_text(f"{before} {rendered} {after}")
    assert digits not in "".join(char for char in out if char in string.digits)
    assert surviving_card_runs(out) == []


@given(
    digits=st.text(alphabet=string.digits, min_size=13, max_size=19),
    shape=st.sampled_from(["x{}", "{}ms", "card{}x", "12.{}", "0.{}", "{}.5", "3.{}e-05", "{}_id", "v{}"]),
)
def test_digits_glued_to_a_word_or_a_decimal_point_are_not_cards(digits: str, shape: str) -> None:
    line = "value " + shape.format(digits) + " end"
    assert sanitise_text(line) == line


@given(
    # +1 (North America) has a fixed shape of its own: see the next test.
    country=st.integers(min_value=2, max_value=999).filter(lambda code: not str(code).startswith("1")),
    national=st.text(alphabet=string.digits, min_size=6, max_size=11),
    sizes=st.lists(st.integers(min_value=2, max_value=4), max_size=4),
    separator=st.sampled_from([" ", "-", ""]),
)
def test_international_phone_numbers_are_masked_domestic_ones_kept(
    country: int, national: str, sizes: list[int], separator: str
) -> None:
    digits = str(country) + national
    grouped = group_digits(national, sizes, separator)
    if 8 <= len(digits) <= 15:
        assert sanitise_text(f"call +{country} {grouped} today") == "call [phone] today"
    domestic = f"call 0{grouped} today"  # the same number without the country code
    assert sanitise_text(domestic) == domestic


@given(
    area=st.integers(min_value=200, max_value=999),
    local=st.text(alphabet=string.digits, min_size=7, max_size=7),
    shape=st.sampled_from(["+1 ({area}) {a}-{b}", "+1 {area} {a} {b}", "+1-{area}-{a}-{b}", "+1{area}{a}{b}"]),
)
def test_north_american_numbers_are_masked(area: int, local: str, shape: str) -> None:
    number = shape.format(area=area, a=local[:3], b=local[3:])
    assert sanitise_text(f"sms {number} sent") == "sms [phone] sent"


@pytest.mark.parametrize("text", ["+1 012 345 6789", "+100000000 rows", "+1 415 555 010", "+12.5%", "1+4412345678", "x+4412345678"])
def test_plus_signs_that_are_not_phone_numbers(text: str) -> None:
    assert sanitise_text(text) == text


def iban_check_digits(country: str, bban: str) -> str:
    numeric = "".join(str(int(char, 36)) for char in bban + country + "00")
    return f"{98 - int(numeric) % 97:02d}"


IBAN_LENGTHS = {"DE": 22, "GB": 22, "ES": 24, "FR": 27, "NL": 18, "NO": 15, "MT": 31, "IT": 27, "BE": 16}


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(sorted(IBAN_LENGTHS)))
    bban = draw(st.text(alphabet=string.digits + string.ascii_uppercase, min_size=IBAN_LENGTHS[country] - 4, max_size=IBAN_LENGTHS[country] - 4))
    return country + iban_check_digits(country, bban) + bban


@given(iban=ibans(), grouped=st.booleans(), wrong=st.integers(min_value=1, max_value=96))
def test_ibans_are_masked_keeping_country_and_last_four(iban: str, grouped: bool, wrong: int) -> None:
    rendered = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if grouped else iban
    assert sanitise_text(f"pay to {rendered}, thanks") == f"pay to [iban {iban[:2]}****{iban[-4:]}], thanks"
    assert iban_valid(rendered)
    broken = iban[:2] + f"{(int(iban[2:4]) + wrong) % 100:02d}" + iban[4:]
    if not iban_valid(broken):  # 01/98, 00/97 and 02/99 are equivalent check digits
        assert "[iban" not in sanitise_text(f"pay to {broken}, thanks")


@st.composite
def emails(draw: st.DrawFn) -> str:
    local = draw(st.text(alphabet=string.ascii_letters + string.digits + "._%+-", min_size=1, max_size=20))
    label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
    labels = draw(st.lists(label, min_size=1, max_size=3))
    tld = draw(st.text(alphabet=string.ascii_lowercase, min_size=2, max_size=6))
    return f"{local}@{'.'.join(labels)}.{tld}"


no_at = st.text(st.characters(exclude_characters="@"), max_size=30)


@settings(max_examples=300)
@given(address=emails(), before=no_at, after=no_at)
def test_no_email_survives(address: str, before: str, after: str) -> None:
    out = sanitise_text(before + address + after)
    assert EMAIL_CHECK.search(out) is None, out
    assert address not in out


order_ids = st.text(alphabet=string.digits, min_size=1, max_size=30).filter(
    lambda digits: not (13 <= len(digits) <= 19 and reference_luhn(digits))
)


@given(order_id=order_ids)
def test_non_luhn_order_ids_unchanged(order_id: str) -> None:
    line = f"Order #{order_id} shipped to warehouse 7 (ref {order_id})"
    assert sanitise_text(line) == line
    assert sanitise({"order_id": order_id}) == {"order_id": order_id}


@given(number=st.integers(min_value=-(10**25), max_value=10**25) | st.integers(10**12, 10**19))
def test_ints_masked_only_when_card_numbers(number: int) -> None:
    digits = str(abs(number))
    if 13 <= len(digits) <= 19 and reference_luhn(digits):
        assert sanitise(number) == f"[card ****{digits[-4:]}]"
    else:
        assert sanitise(number) == number


PII_FRAGMENTS = [
    "4242 4242 4242 4242", "5555-5555-5555-4444", "378282246310005", "bob@example.com", "203.0.113.77",
    "2001:db8:abcd:12::1", "::ffff:1.2.3.4", "sk_live_abc123", "whsec_ab/+=", "xkeysib-abc-def", "Bearer abc.def",
    "Authorization: Basic xyz", "Cookie: a=b; c=d", "X-Api-Key: k", "token=abc", "password = x", '"secret": "v"',
    "https://u:p@h.com/", "pi_1_secret_2", " ", "-", ".", ":", "=", "@", '"', "1", "12", "1234", "card", "_", "[", "]",
    "password: x", "Token:", "session: started", "KeyError: ", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "jwt=",
    "DE89 3704 0044 0532 0130 00", "GB29NWBK60161331926819", "DE89", "+34 612 345 678", "+1 (415) 555-0100", "+",
    "12.", "(0)", "\\\"password\\\":",
]
messy_text = st.lists(
    st.one_of(st.sampled_from(PII_FRAGMENTS), st.text(max_size=8), st.text(alphabet="0123456789 -.:@=", max_size=10)),
    max_size=12,
).map("".join)


@settings(max_examples=500)
@given(text=messy_text)
def test_sanitise_text_idempotent(text: str) -> None:
    once = sanitise_text(text)
    assert sanitise_text(once) == once


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | messy_text | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.lists(children, max_size=4).map(tuple)
    | st.dictionaries(st.sampled_from(NAME_WORDS + ["password", "ip", "bob@example.com"]) | messy_text, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_like)
def test_sanitise_structures_idempotent_and_pure(value: object) -> None:
    before = copy.deepcopy(value)
    once = sanitise(value)
    assert value == before  # input not mutated
    assert sanitise(once) == once


# ---------------------------------------------------------------------------
# Awkward inputs (their speed is measured in bench/bench_sanitiser.py, not asserted here)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        ":" * 10_000,
        "1:" * 5_000,
        "1." * 5_000,
        "1 " * 5_000,
        "1234 " * 2_000,
        "4" * 10_000,
        "a@" * 5_000,
        "a" * 5_000 + "@" + "b." * 2_500,
        "key=" * 2_500,
        "x" * 10_000 + "key=1",
        "bearer " * 1_500,
        '"password":' * 1_000,
    ],
    ids=lambda text: repr(text[:12]),
)
def test_awkward_input_is_handled_and_stable(text: str) -> None:
    once = sanitise_text(text)
    assert sanitise_text(once) == once


# 100 KB of what makes regexes backtrack: long runs of digits, spaces, '=', ':',
# and of the first characters of every shape.  Each is sanitised correctly;
# how long it takes is printed by bench/bench_sanitiser.py.
PATHOLOGICAL_UNCHANGED = {
    "digits": "4" * 100_000,
    "spaces": " " * 100_000,
    "equals": "=" * 100_000,
    "colons": ":" * 100_000,
    "digit-space": "1 " * 50_000,
    "digit-colon": "1:" * 50_000,
    "digit-dot": "1." * 50_000,
    "digit-dash": "1-" * 50_000,
    "plus-digit": "+1 " * 33_334,
    "plus-long-run": "+" + "1 " * 50_000,
    "name-run": ":" + "key" * 33_334,
    "spaces-before-colon": "token" + " " * 100_000 + ":",
    "iban-starts": "DE89 " * 20_000,
    "exception-names": "KeyError: " * 10_000,
    "at-signs": "a@" * 50_000,
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL_UNCHANGED))
def test_pathological_100kb_input_without_secrets_comes_back_unchanged(name: str) -> None:
    text = PATHOLOGICAL_UNCHANGED[name]
    assert len(text) >= 99_000
    assert sanitise_text(text) == text


def test_pathological_100kb_input_with_secrets_is_masked() -> None:
    colon = sanitise_text("password: " * 10_000)
    assert colon == "password: [redacted] " * 5_000  # every other name is taken as the value before it
    assert sanitise_text("token=" * 16_667) == "token=[redacted]"  # one value: '=' is part of it
    cards = sanitise_text("4242 " * 20_000)
    assert "4242 4242" not in cards and cards.count("[card ****4242]") == 5_000
    jwts = sanitise_text("eyJhbGciOi." * 9_091)
    assert "eyJhbGciOi.eyJhbGciOi.eyJhbGciOi" not in jwts and sanitise_text(jwts) == jwts
    phones = sanitise_text("+34 612 345 678 " * 6_250)
    assert phones == "[phone] " * 6_250


def test_loopback_and_unspecified_addresses_are_kept() -> None:
    assert anonymise_ip("127.0.0.1") == "127.0.0.1"
    assert anonymise_ip("::1") == "::1"
    assert sanitise_text("Listening at: http://0.0.0.0:8000 and 127.0.0.1") == "Listening at: http://0.0.0.0:8000 and 127.0.0.1"
    assert anonymise_ip("198.51.100.7") == "198.51.100.0"
