"""How long the PII sanitiser takes on log lines: ordinary, dense with PII, and awkward inputs.

Prints figures; awkward inputs are shown as a ratio to the ordinary 10 KB line measured in the
same run, so a machine's speed cancels out (a super-linear regex would show a large ratio).
Pathological inputs are timed at 10 KB and at 100 KB: a linear scan takes about 10x as long
for 10x the input, a backtracking one far more.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitoring.security.pii import sanitise, sanitise_text  # noqa: E402

ORDINARY_LOG = (
    "2024-05-01T10:00:00.123Z level=info logger=centinela.checks method=GET path=/api/v1/checks/123 "
    "status=200 took=12ms ua=\"Mozilla/5.0 (X11; Linux x86_64)\" check_id=9f1c2d3e retries=0 "
    'region=eu-west-1 {"latency_ms": 12.5, "ok": true} order=98765432109876543 '
)
PII_LOG = (
    "user=ana@example.com ip=203.0.113.9 card=4242424242424242 token=abc123 "
    "Authorization: Bearer eyJ0eXAi.e30.sig ref=2001:db8::1 key=sk_live_abc "
)
# The shapes the sanitiser learnt later: colon forms, JWTs, IBANs, international phone numbers.
NEW_SHAPES_LOG = (
    "login failed password: hunter2 token: abc123 Session: started "
    "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dGVzdA iban DE89 3704 0044 0532 0130 00 "
    "phone +34 612 345 678 order 123 took 12.345678901234 s "
)
AWKWARD = {
    "colons": ":" * 10_000,
    "digit-colon": "1:" * 5_000,
    "digit-dot": "1." * 5_000,
    "digits": "4" * 10_000,
    "at-signs": "a@" * 5_000,
    "key=": "key=" * 2_500,
    "bearer": "bearer " * 1_500,
}


# Hostile repetitions: long runs of digits, spaces, '=' and ':', and of the first characters
# of every shape the sanitiser looks for.
PATHOLOGICAL = {
    "digits": "4",
    "spaces": " ",
    "equals": "=",
    "colons": ":",
    "digit-space": "1 ",
    "digit-colon": "1:",
    "digit-dot": "1.",
    "digit-dash": "1-",
    "card groups": "4242 ",
    "plus-digit": "+1 ",
    "name run": "key",  # after one ':' (each fragment used to rescan the rest)
    "password: ": "password: ",
    '"password":': '"password":',
    "token=": "token=",
    "iban starts": "DE89 ",
    "jwt parts": "eyJhbGciOi.",
    "phones": "+34 612 345 678 ",
    "KeyError: ": "KeyError: ",
    "at-signs": "a@",
}


def repeated(chunk: str, size: int) -> str:
    text = (chunk * (size // len(chunk) + 1))[:size]
    return ":" + text[1:] if chunk == "key" else text


def best_of(runs: int, func) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def ten_kb(chunk: str) -> str:
    return (chunk * (10_240 // len(chunk) + 1))[:10_240]


def main() -> None:
    ordinary = ten_kb(ORDINARY_LOG)
    baseline = best_of(20, lambda: sanitise_text(ordinary))
    mixed = ordinary[:5_000] + " " + PII_LOG + ordinary[5_000 : 10_240 - len(PII_LOG)]
    dense = ten_kb(ORDINARY_LOG[:120] + PII_LOG)
    print(f"10 KB ordinary line:          {baseline * 1e3:7.3f} ms")
    print(f"10 KB line with some PII:     {best_of(20, lambda: sanitise_text(mixed)) * 1e3:7.3f} ms")
    print(f"10 KB dense PII:              {best_of(10, lambda: sanitise_text(dense)) * 1e3:7.3f} ms")
    new_shapes = ten_kb(ORDINARY_LOG[:120] + NEW_SHAPES_LOG)
    print(f"10 KB dense new shapes:       {best_of(10, lambda: sanitise_text(new_shapes)) * 1e3:7.3f} ms")
    for name, text in AWKWARD.items():
        took = best_of(3, lambda: sanitise_text(text))
        print(f"awkward {name:<12} {len(text):>6} B: {took * 1e3:7.3f} ms  ({took / baseline:5.1f}x the ordinary line)")
    print("pathological input            10 KB     100 KB   100 KB/10 KB")
    for name, chunk in PATHOLOGICAL.items():
        small, large = repeated(chunk, 10_240), repeated(chunk, 102_400)
        took_small = best_of(3, lambda: sanitise_text(small))
        took_large = best_of(3, lambda: sanitise_text(large))
        print(f"  {name:<18} {took_small * 1e3:9.3f} ms {took_large * 1e3:9.3f} ms   {took_large / took_small:5.1f}x")
    event = {"request": {"headers": [["Cookie", "a=b"], ["X-Api-Key", "k"]], "url": "/x?api_key=1"},
             "user": {"email": "ana@example.com", "ip_address": "203.0.113.9"},
             "exception": {"values": [{"value": PII_LOG,
                                       "stacktrace": {"frames": [{"vars": {"card": "4242424242424242"}}] * 20}}]}}
    print(f"Sentry-like event (20 frames): {best_of(20, lambda: sanitise(event)) * 1e3:7.3f} ms")


if __name__ == "__main__":
    main()
