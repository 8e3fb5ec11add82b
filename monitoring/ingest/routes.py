"""Methods, routes and status codes as every ingest path reports them: bounded, never a raw URL.

A route is a template (``/tickets/<id>``, ``/tickets/:id``, ``/tickets/{id}``) as the sender's
framework names it. Where a sender gives only a URL (a Sentry event's ``request.url``, a
transaction named by URL), ``path_template`` reduces it to its path with every segment that
looks like an identifier replaced by ``<id>``: the query string and fragment are dropped, so
``https://shop/tickets/8812?token=abc`` becomes ``/tickets/<id>``.
"""
from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from monitoring.ingest.text import clean_text

UNMATCHED_ROUTE = "<unmatched>"
OTHER_ROUTE = "<other>"
ID_SEGMENT = "<id>"
# The OpenTelemetry semantic conventions' name for a method outside the known set.
OTHER_METHOD = "_OTHER"
KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})
MAX_ROUTE_CHARS = 255
# Deeper paths are cut: /a/b/c/d/e/f/g/h/... adds nothing a dashboard can show.
MAX_TEMPLATE_SEGMENTS = 8

_DIGITS_RE = re.compile(r"^\d+$")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_HEX_ID_RE = re.compile(r"^(?=.*\d)[0-9a-fA-F]{8,}$")
# Long tokens mixing letters and digits: slugs with ids, base64 / base62 identifiers, hashes.
_TOKEN_RE = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_\-.=~+]{16,}$")
_NUMBERED_RE = re.compile(r"\d{3,}")


def normalise_method(value: object) -> str:
    """An upper-case known HTTP method, or ``_OTHER``."""
    if not isinstance(value, str):
        return OTHER_METHOD
    method = value.strip().upper()
    return method if method in KNOWN_METHODS else OTHER_METHOD


def parse_status(value: object) -> int:
    """An HTTP status code from an int or a numeric string; 0 when absent or out of 100..599."""
    if type(value) is int:  # the usual case, first
        return value if 100 <= value <= 599 else 0
    if isinstance(value, bool):
        return 0
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit() or len(value) > 3:
            return 0
        value = int(value)
    if isinstance(value, int) and 100 <= value <= 599:
        return value
    if isinstance(value, float) and value.is_integer() and 100 <= value <= 599:
        return int(value)
    return 0


def clean_route(value: object) -> str:
    """A route template from the sender, scrubbed and bounded; ``<unmatched>`` when there is none."""
    if not isinstance(value, str):
        return UNMATCHED_ROUTE
    # A route never carries a query or fragment; a sender that puts one there leaks it.
    for separator in ("?", "#"):
        value = value.split(separator, 1)[0]
    route = clean_text(value.strip(), MAX_ROUTE_CHARS).strip()
    return route or UNMATCHED_ROUTE


def _template_segment(segment: str) -> str:
    decoded = unquote(segment)
    if (
        _DIGITS_RE.match(decoded)
        or _UUID_RE.match(decoded)
        or _HEX_ID_RE.match(decoded)
        or _TOKEN_RE.match(decoded)
        or "@" in decoded
        or _NUMBERED_RE.search(decoded)
    ):
        return ID_SEGMENT
    return segment


def path_template(url: object) -> str:
    """The path of ``url`` with identifier-like segments replaced by ``<id>``; ``<unmatched>`` if none."""
    if not isinstance(url, str) or not url.strip():
        return UNMATCHED_ROUTE
    text = url.strip()
    try:
        path = urlsplit(text).path if "://" in text or text.startswith("//") else text
    except ValueError:  # an unbalanced [ in the host part
        return UNMATCHED_ROUTE
    path = path.split("?", 1)[0].split("#", 1)[0]
    segments = [segment for segment in path.split("/") if segment]
    if not segments:
        return "/" if path.startswith("/") else UNMATCHED_ROUTE
    templated = [_template_segment(segment) for segment in segments[:MAX_TEMPLATE_SEGMENTS]]
    if len(segments) > MAX_TEMPLATE_SEGMENTS:
        templated.append("...")
    return clean_route("/" + "/".join(templated))


def route_label(method: str, route: str) -> str:
    """How an error names where it happened: ``GET /tickets/<id>``."""
    return f"{method} {route}"
