"""Sentry event payloads into IngestedError, and http.server transactions into IngestedRequest.

Kept from an error event, each scrubbed and bounded (Sentry's own limits where it documents
them): the exceptions' types, values and stack frames (function, module, file name, line,
in-app flag, the source line; never local variables or absolute paths), tags (50, keys of 32
and values of 200 characters, a value under a sensitive name redacted), level, release,
environment, the request's method and route, the timestamp and event id. Everything else
(breadcrumbs, user, contexts, extra, request data, headers, cookies, modules...) is dropped.

Grouping: the SDK's ``fingerprint`` when it sends one that is not just ``{{ default }}``
(``{{ default }}`` inside it stands for the default parts); otherwise the exception type
plus the innermost in-app frame (module, or file name without hashes, and function), the
rule the embedded tracker uses for captured Flask exceptions: one frame, no line numbers, so
a group survives edits elsewhere and a call from another path. A message event without an
exception groups on its message template. The service is always part of the key.

Route: the transaction name when the SDK says it is a route or a component name
(``transaction_info.source``); otherwise the request URL (or the URL-style name) reduced to a
path template, so no raw URL or query string is ever kept.
"""
from __future__ import annotations

import math
import re
import uuid
from typing import Any

from monitoring.clock import Clock, parse_timestamp
from monitoring.ingest.records import (
    MAX_MESSAGE_CHARS,
    MAX_STACK_CHARS,
    MAX_TYPE_CHARS,
    IngestedError,
    IngestedRequest,
    StackFrame,
    fingerprint_key,
)
from monitoring.ingest.routes import (
    KNOWN_METHODS,
    UNMATCHED_ROUTE,
    clean_route,
    normalise_method,
    parse_status,
    path_template,
    route_label,
)
from monitoring.ingest.text import clean_long_text, clean_optional, clean_pairs, clean_text
from monitoring.ingest.timestamps import TimestampBounds

MAX_FRAMES = 50
MAX_TAGS = 50
MAX_TAG_KEY_CHARS = 32
MAX_TAG_VALUE_CHARS = 200
MAX_RELEASE_CHARS = 200
MAX_ENVIRONMENT_CHARS = 64
MAX_NAME_CHARS = 200
MAX_FILENAME_CHARS = 300
MAX_CONTEXT_LINE_CHARS = 300
MAX_EXCEPTIONS = 10
LEVELS = {"fatal": "fatal", "critical": "fatal", "error": "error", "warning": "warning", "warn": "warning",
          "info": "info", "log": "info", "debug": "debug"}
DEFAULT_FINGERPRINT = "{{ default }}"
_BUILTIN_MODULES = frozenset({"builtins", "__builtin__", "exceptions"})
# Sources whose transaction name is a route or code name, not a URL (Sentry's transaction_info).
_NAMED_SOURCES = frozenset({"route", "component", "view", "task", "custom"})
_HASH_RE = re.compile(r"(?<![0-9A-Za-z])(?=[0-9a-f]*\d)[0-9a-f]{6,}(?![0-9A-Za-z])")
_EVENT_ID_RE = re.compile(r"^[0-9a-f]{32}$")


# --- small field readers ----------------------------------------------------------------------


def _text(value: object, max_chars: int) -> str:
    return clean_text(value, max_chars) if isinstance(value, str) else ""


def event_id_of(value: object) -> str | None:
    """A Sentry event id as 32 lower-case hex digits (dashes removed), or None when it is not one."""
    if not isinstance(value, str):
        return None
    candidate = value.replace("-", "").strip().lower()
    return candidate if _EVENT_ID_RE.match(candidate) else None


def new_event_id() -> str:
    """An id for an event that came without one (Relay assigns one too)."""
    return uuid.uuid4().hex


def _moment(value: object) -> float | None:
    """A Sentry timestamp (epoch seconds, or RFC 3339 text) as epoch seconds, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            return parse_timestamp(value)
        except (ValueError, OverflowError):
            return None
    return None


def _level(value: object) -> str:
    return LEVELS.get(value.strip().lower(), "error") if isinstance(value, str) else "error"


def _values(container: object) -> list[dict[str, Any]]:
    """``{"values": [...]}`` or a bare list (older SDKs), keeping the dicts."""
    if isinstance(container, dict):
        container = container.get("values")
    if not isinstance(container, list):
        return []
    return [item for item in container if isinstance(item, dict)]


def _type_name(exception: dict[str, Any]) -> str:
    """``module.Type`` as the embedded tracker names exception types (builtins unqualified)."""
    kind = exception.get("type")
    module = exception.get("module")
    kind = kind if isinstance(kind, str) and kind else ""
    if kind and isinstance(module, str) and module and module not in _BUILTIN_MODULES:
        kind = f"{module}.{kind}"
    return clean_text(kind, MAX_TYPE_CHARS) if kind else ""


def _filename(frame: dict[str, Any]) -> str:
    name = frame.get("filename")
    if not isinstance(name, str) or not name:
        # The absolute path names the host's directories; its last part is enough.
        path = frame.get("abs_path")
        name = path.replace("\\", "/").rsplit("/", 1)[-1] if isinstance(path, str) else ""
    return clean_text(name.split("?", 1)[0].split("#", 1)[0], MAX_FILENAME_CHARS)


def _frames(exception: dict[str, Any]) -> tuple[StackFrame, ...]:
    stacktrace = exception.get("stacktrace")
    raw = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
    if not isinstance(raw, list):
        return ()
    frames = []
    for frame in raw[-MAX_FRAMES:]:  # Sentry orders frames caller first: keep the innermost
        if not isinstance(frame, dict):
            continue
        lineno = frame.get("lineno")
        frames.append(
            StackFrame(
                function=_text(frame.get("function"), MAX_NAME_CHARS),
                module=_text(frame.get("module"), MAX_NAME_CHARS),
                filename=_filename(frame),
                lineno=lineno if isinstance(lineno, int) and not isinstance(lineno, bool) and lineno >= 0 else None,
                in_app=frame.get("in_app") is True,
                context_line=_text(frame.get("context_line"), MAX_CONTEXT_LINE_CHARS).strip(),
            )
        )
    return tuple(frames)


def _grouping_frame(frames: tuple[StackFrame, ...]) -> StackFrame | None:
    """The innermost in-app frame, or the innermost frame when none is marked in-app."""
    for frame in reversed(frames):
        if frame.in_app:
            return frame
    return frames[-1] if frames else None


def _frame_module(frame: StackFrame) -> str:
    # Bundled JavaScript names files by content hash (main.3f2a9c1b.js): a deploy must not split groups.
    return frame.module or _HASH_RE.sub("<hash>", frame.filename)


def _stack_text(exceptions: list[tuple[str, str, tuple[StackFrame, ...]]]) -> str:
    """A Python-style rendering of the chain (outermost cause first), already made of scrubbed parts."""
    blocks = []
    for type_name, value, frames in exceptions:
        lines = ["Traceback (most recent call last):"] if frames else []
        for frame in frames:
            where = f'  File "{frame.filename or frame.module or "?"}"'
            if frame.lineno is not None:
                where += f", line {frame.lineno}"
            lines.append(f"{where}, in {frame.function or '?'}")
            if frame.context_line:
                lines.append(f"    {frame.context_line}")
        lines.append(f"{type_name}: {value}" if value else type_name)
        blocks.append("\n".join(lines))
    return clean_long_text("\n\nThe above exception led to the next one:\n\n".join(blocks), MAX_STACK_CHARS)


def _message(event: dict[str, Any]) -> tuple[str, str]:
    """(formatted message, template) of a message event."""
    logentry = event.get("logentry")
    message = event.get("message")
    if isinstance(logentry, dict):
        template = logentry.get("message")
        formatted = logentry.get("formatted") or template
    elif isinstance(message, dict):
        template = message.get("message")
        formatted = message.get("formatted") or template
    else:
        template = formatted = message
    return _text(formatted, MAX_MESSAGE_CHARS), _text(template, MAX_MESSAGE_CHARS)


def _tags(event: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    raw = event.get("tags")
    pairs: list[tuple[str, str]] = []
    items = raw.items() if isinstance(raw, dict) else (raw if isinstance(raw, list) else [])
    for item in items:
        if len(pairs) >= MAX_TAGS:
            break
        if isinstance(item, (list, tuple)) and len(item) == 2:
            key, value = item
        else:
            continue
        if isinstance(value, bool) or isinstance(value, (int, float)):
            value = str(value)
        if isinstance(key, str) and isinstance(value, str):
            pairs.append((key, value))
    return clean_pairs(pairs, MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS)


def _request(event: dict[str, Any]) -> dict[str, Any]:
    request = event.get("request")
    return request if isinstance(request, dict) else {}


def _object_at(container: dict[str, Any], key: str) -> dict[str, Any]:
    """The JSON object under ``key``; empty when it is missing or not an object."""
    value = container.get(key)
    return value if isinstance(value, dict) else {}


def request_method_and_route(event: dict[str, Any]) -> tuple[str, str] | None:
    """(method, route) of the request an event happened in; None when it names no request."""
    request = _request(event)
    name = event.get("transaction")
    info = event.get("transaction_info")
    source = info.get("source") if isinstance(info, dict) else None
    method = normalise_method(request.get("method")) if isinstance(request.get("method"), str) else ""
    route = None
    if isinstance(name, str) and name.strip():
        prefix, _, rest = name.strip().partition(" ")
        if prefix.upper() in KNOWN_METHODS and rest:  # "GET /tickets/:id", as the JavaScript SDKs name them
            method = method or normalise_method(prefix)
            name = rest
        route = clean_route(name) if source in _NAMED_SOURCES else None
        if route is None and not isinstance(request.get("url"), str):
            route = path_template(name)
    if route is None and isinstance(request.get("url"), str):
        route = path_template(request["url"])
    if route is None and not method:
        return None
    return method or normalise_method(None), route or UNMATCHED_ROUTE


# --- events ------------------------------------------------------------------------------------


def error_from_event(
    event: dict[str, Any],
    *,
    service: str,
    clock: Clock,
    bounds: TimestampBounds,
    fallback_event_id: str | None = None,
) -> IngestedError:
    """One Sentry error (or message) event as an IngestedError; absurd timestamps become our now."""
    chain: list[tuple[str, str, tuple[StackFrame, ...]]] = []
    for exception in _values(event.get("exception"))[-MAX_EXCEPTIONS:]:
        chain.append((_type_name(exception) or "Error", _text(exception.get("value"), MAX_MESSAGE_CHARS),
                      _frames(exception)))
    if not chain and isinstance(event.get("stacktrace"), dict):  # a message sent with attach_stacktrace
        chain_frames = _frames({"stacktrace": event["stacktrace"]})
    else:
        chain_frames = ()
    message, template = _message(event)
    if chain:
        exception_type, value, frames = chain[-1]  # the newest: the one that was raised
        message = value or message
    else:
        exception_type, frames = "Message", chain_frames
    grouping = _grouping_frame(frames)
    if chain:
        module = _frame_module(grouping) if grouping else ""
        function = grouping.function if grouping else ""
        default_parts = [exception_type, module, function]
        location = f"{module}:{function}" if grouping else "(no frame)"
    else:  # a message: its template, not its frames, says what it is
        default_parts = ["message", template or message]
        location = "(message)"
    fingerprint = _custom_fingerprint(event.get("fingerprint"), default_parts)
    if fingerprint is not None:
        key = fingerprint_key(service, "custom", *fingerprint)
        location = clean_text(" ".join(fingerprint), MAX_NAME_CHARS)
    else:
        key = fingerprint_key(service, *default_parts)
    stack = _stack_text(chain) if chain else (_stack_text([("Message", message, frames)]) if frames else "")
    moment = _moment(event.get("timestamp"))
    if moment is None or bounds.check_instant(moment, clock.now()) is not None:
        moment = clock.now()
    where = request_method_and_route(event)
    return IngestedError(
        service=service,
        fingerprint=key,
        exception_type=exception_type,
        message=message,
        stack=stack,
        timestamp=moment,
        source="sentry",
        location=location,
        method=where[0] if where else "",
        route=route_label(*where) if where else "",
        level=_level(event.get("level")),
        release=clean_optional(event.get("release"), MAX_RELEASE_CHARS),
        environment=clean_optional(event.get("environment"), MAX_ENVIRONMENT_CHARS),
        event_id=event_id_of(event.get("event_id")) or fallback_event_id or new_event_id(),
        frames=frames,
        tags=_tags(event),
    )


def _custom_fingerprint(value: object, default_parts: list[str]) -> list[str] | None:
    """The SDK's fingerprint with ``{{ default }}`` expanded; None when it sent none (or only the default)."""
    if not isinstance(value, list) or not value:
        return None
    parts = [str(part) for part in value if isinstance(part, (str, int, float)) and not isinstance(part, bool)]
    if not parts or all(part.replace(" ", "") == "{{default}}" for part in parts):
        return None
    expanded: list[str] = []
    for part in parts[:20]:
        if part.replace(" ", "") == "{{default}}":
            expanded.extend(default_parts)
        else:
            expanded.append(clean_text(part, MAX_NAME_CHARS))
    return expanded


def request_from_transaction(
    event: dict[str, Any], *, service: str, clock: Clock, bounds: TimestampBounds
) -> IngestedRequest | str | None:
    """An http.server transaction as an IngestedRequest; a reason (str) when its times are refused;
    None when it is not a server request (other ops are ignored)."""
    contexts = _object_at(event, "contexts")
    trace = _object_at(contexts, "trace")
    if trace.get("op") != "http.server":
        return None
    start = _moment(event.get("start_timestamp"))
    end = _moment(event.get("timestamp"))
    if start is None or end is None:
        return "no start or end timestamp"
    reason = bounds.check_interval(start, end, clock.now())
    if reason is not None:
        return reason
    where = request_method_and_route(event)
    method, route = where if where else (normalise_method(None), UNMATCHED_ROUTE)
    response = _object_at(contexts, "response")
    data = _object_at(trace, "data")
    tags = _object_at(event, "tags")
    status = (
        parse_status(response.get("status_code"))
        or parse_status(data.get("http.response.status_code"))
        or parse_status(tags.get("http.status_code"))
    )
    return IngestedRequest(service, method, route, status, end - start, end)
