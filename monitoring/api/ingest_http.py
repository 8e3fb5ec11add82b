"""What the two ingest blueprints (monitoring.api.otlp, monitoring.api.sentry_ingest) share.

* ``read_raw_body(limit)``: the body as sent, chunked bodies without Content-Length
  included (gunicorn and Werkzeug's server terminate them), at most ``limit`` bytes: one
  byte more is read so that "too large" is told from "just fits".
* ``ingest_identity``: what the ingest rate limits count per. The ingest key's id when a
  valid key came with the request (every browser of an app shares one key), otherwise the
  client address, so random keys buy no fresh budget. The address budget counts apart.
* Shedding load: the app's ``ShedGate`` (monitoring.ingest.sink) admits a few decodes at
  once per process; past them the answer is 503 with Retry-After.
"""
from __future__ import annotations

from collections.abc import Callable

from flask import g, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from monitoring.api.blueprint import client_address
from monitoring.extension import current_monitoring

SHED_RETRY_AFTER_SECONDS = 2

_PRESENTED = "centinela_ingest_presented"


def read_raw_body(limit: int) -> bytes:
    """The raw body, at most ``limit`` bytes; RequestEntityTooLarge past it (chunked too)."""
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise
    except BadRequest:  # the client stopped sending before the body's end
        raise BadRequest("the body could not be read: the client stopped sending it") from None
    if len(raw) > limit:
        raise RequestEntityTooLarge()
    return raw


def remember_presented_key(find: Callable[[], str | None]) -> Callable[[], str]:
    """An identity function for the rate limits that also keeps what ``find`` returned (for the view)."""

    def identity() -> str:
        presented = find()
        g.setdefault(_PRESENTED, presented)
        if presented:
            key = current_monitoring().keyring.identify(presented)
            if key is not None:
                return key.key_id
        return client_address()

    return identity
