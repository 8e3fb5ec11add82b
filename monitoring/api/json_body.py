"""The request's JSON body, read strictly and the same way for every endpoint.

415 unless JSON; 413 past MAX_BODY_BYTES (chunked bodies included: Werkzeug counts them as it
reads, against ``request.max_content_length``); 400 ``invalid_json`` for a body that is not
UTF-8 or not JSON, JSON nested deeper than MAX_JSON_DEPTH, integers beyond 64 bits, numbers
beyond a double's range (``1e400``) or NaN/Infinity, and text holding a lone UTF-16 surrogate,
NUL or another control character (tab, newline and carriage return are text). What passes can
be stored on SQLite and PostgreSQL, rendered, logged and sent without a surprise: one bad
string cannot poison an evaluation run or a PostgreSQL insert.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

from flask import request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from monitoring.api.errors import ApiError

MAX_JSON_DEPTH = 32
MAX_INT = 2**63 - 1

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def read_json() -> Any:
    """The request's JSON value, read strictly (see the module docstring); any JSON value."""
    if not request.is_json:
        raise ApiError(415, "send the body as JSON with Content-Type: application/json")
    raw = read_body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not valid UTF-8", "invalid_json") from None
    if not text.strip():
        raise ApiError(400, "the body is empty: send a JSON object", "invalid_json")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_bounded_float,
                           parse_int=_bounded_int)
    except RecursionError:
        raise ApiError(400, f"the JSON is nested too deeply (at most {MAX_JSON_DEPTH} levels)",
                       "invalid_json") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc.msg} at character {exc.pos}",
                       "invalid_json") from None
    except _Refused as exc:
        raise ApiError(400, f"the body is not acceptable JSON: {exc}", "invalid_json") from None
    _check_tree(value)
    return value


class _Refused(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number JSON allows")


def _bounded_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is beyond the range of a double")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > 20:
        raise _Refused(f"the integer {text[:24]}... does not fit in 64 bits")
    value = int(text)
    if not -MAX_INT - 1 <= value <= MAX_INT:
        raise _Refused(f"the integer {text} does not fit in 64 bits")
    return value


def _check_tree(value: Any) -> None:
    """Depth and text of the whole value, iteratively (no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, "text")
            continue
        if isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise ApiError(400, f"the JSON is nested too deeply (at most {MAX_JSON_DEPTH} levels)",
                               "invalid_json")
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for child_key, child in children:
                if isinstance(child_key, str):
                    _check_text(child_key, "a field name")
                stack.append((child, depth + 1))




def read_body() -> bytes:
    """The raw body, at most MAX_BODY_BYTES: 413 past it, chunked bodies included (a form is then
    parsed from these cached bytes, so a sign-in form too is refused rather than cut short)."""
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise
    except BadRequest:
        raise ApiError(400, "the body could not be read", "invalid_body") from None
    limit = request.max_content_length
    if limit is not None and len(raw) >= limit:  # the guard set limit + 1: one byte past MAX_BODY_BYTES
        raise RequestEntityTooLarge()
    return raw


def _check_text(text: str, what: str) -> None:
    if _SURROGATE.search(text):
        raise ApiError(400, f"the body holds {what} with a lone UTF-16 surrogate (half of a character); "
                       "send whole characters", "invalid_json")
    if _CONTROL.search(text):
        raise ApiError(400, f"the body holds {what} with a control character (NUL or another below U+0020 "
                       "other than tab, newline and carriage return)", "invalid_json")
