"""Telemetry from any app in any language: the OTLP/HTTP and Sentry protocols, decoded and scrubbed.

Pure domain code: no Flask, no werkzeug, no store. Each decoder takes bytes (already read
from the request) and returns values whose every string has passed the PII sanitiser and
is bounded; anything a sender sent that is not named in those values is dropped. Refusals
are IngestError subclasses that carry the HTTP ``status``, an error ``code`` and a
``message`` that never quotes the payload.

Modules
-------
errors
    IngestError and its kinds: UndecodableBody / MalformedEnvelope (400), RawBodyTooLarge /
    InflatedBodyTooLarge / ItemTooLarge (413), UnsupportedMediaType /
    UnsupportedContentEncoding (415), ConflictingCredentials (401).
body
    ``decode_body(body, content_encoding, limits)``: identity, gzip, deflate, br; the raw limit,
    then the inflated limit enforced while inflating (a gzip bomb costs at most the limit).
    BodyLimits and the defaults OTLP_BODY_LIMITS (64 MiB, the specification's recommendation),
    SENTRY_ENVELOPE_LIMITS (40 MiB raw, 100 MiB inflated), SENTRY_STORE_LIMITS (1 MiB).
text, routes
    How strings are cleaned (``clean_text``: storable, scrubbed, cut without leaving half a
    secret), and methods (``_OTHER`` for unknown ones), routes (``<unmatched>`` when none;
    ``path_template`` turns a URL into ``/tickets/<id>``) and status codes.
records
    The values handed on: IngestedRequest, IngestedError (with StackFrame), RequestContribution.
timestamps
    TimestampBounds: before 2000, more than a day ahead, ending before starting, or lasting
    over an hour is unbelievable.
otlp_encoding
    The two OTLP/HTTP encodings (``encoding_of(content_type)``: 415 for any other), protobuf
    and proto3-JSON with OTLP's hex ids, the Export*ServiceResponse answers
    (``trace_response``, ``metrics_response``) and ``failure_response`` (a google.rpc.Status).
otlp_traces
    ``decode_traces(body, content_type, clock=...) -> TraceBatch``: server spans become
    IngestedRequest, their ``exception`` events IngestedError; ``batch.response()`` is the
    answer, with partial_success when spans were rejected.
otlp_metrics
    ``decode_metrics(body, content_type, clock=..., tracker=...) -> MetricBatch``:
    ``http.server.request.duration`` / ``http.server.duration`` histograms become
    RequestContribution; CumulativeTracker turns cumulative points into deltas (per process!).
histogram_conversion
    Explicit and exponential OTLP histograms into the store's LatencyHistogram, with the
    error each conversion implies (explicit buckets cannot give a p95 within 1 %).
sentry_protocol, sentry_events
    ``parse_sentry_auth(header, query)``, ``check_envelope_content_type``,
    ``decode_envelope(body, service=..., clock=...) -> SentryBatch``, ``decode_store``,
    ``sentry_response(batch)`` (``{"id": event_id}``); events become IngestedError,
    http.server transactions IngestedRequest, other item types are counted and dropped.
cardinality
    CardinalityBounds (20 services, 250 routes each by default) and CardinalityGuard, which
    folds what is past the bound into ``<other>``.

Wiring it (phase 2)
-------------------
* Endpoints (thin blueprints): ``POST /v1/traces`` and ``POST /v1/metrics``;
  ``POST /api/<project>/envelope/`` and ``POST /api/<project>/store/``. Read at most
  ``limits.max_raw_bytes + 1`` bytes from the input stream, chunked bodies included (SDKs
  send bodies without Content-Length), then ``decode_body`` with the Content-Encoding.
  For OTLP call ``encoding_of`` first, so that every answer, errors included, is in the
  request's encoding: 200 with ``batch.response()``; on IngestError, ``error.status`` with
  ``failure_response(error.message, encoding)``. For Sentry, map the project to a service
  (``SENTRY_PROJECTS``; an unknown project is 404), ``check_envelope_content_type`` /
  ``check_store_content_type``, decode, answer 200 with ``sentry_response(batch)``; on
  IngestError the JSON error shape with ``error.status``.
* Keys: INGEST_API_KEY from ``X-API-Key`` or ``Authorization: Bearer`` for OTLP; for Sentry
  from ``parse_sentry_auth(X-Sentry-Auth or Authorization, query)`` or, failing both,
  ``batch.dsn_key``. Compare in constant time; redact ``sentry_key`` from the access log
  like ``api_key``. The ingest key reads nothing (403 elsewhere).
* Rate limits per key and per client address; when shedding load answer 429 or 503 with
  Retry-After (OTLP SDKs retry exactly those), for Sentry 429 with Retry-After and
  X-Sentry-Rate-Limits.
* The service dimension: IngestedRequest and RequestContribution carry ``service``; the
  recorder, rollups, error groups, exports, dashboard and rules need a ``service`` column or
  label (the embedded app's requests under SERVICE_NAME). Pass every record through one
  CardinalityGuard per app (``admit_record`` / ``admit_error``) before it is recorded.
  A RequestContribution is a whole histogram plus a status: the recorder needs a way to
  merge one. A service that sends spans and metrics is counted once: drop the
  contributions of a service whose spans were seen recently (spans are exact).
* Methods: ingest names an unknown method ``_OTHER`` (the semantic conventions' name); the
  embedded recorder folds anything outside its set into ``OTHER``, so ``_OTHER`` ends up as
  ``OTHER`` there.
* One CumulativeTracker per app (the composition root), built with the app's clock; read
  its docstring about several workers before choosing how metrics are served.
* Content-Encoding ``br``: sentry-python compresses with brotli instead of gzip when the
  ``brotli`` package is installed in the sending app. Decoded (bounded, like gzip) when the
  ``brotli`` package (1.2+) is installed here too (requirements.txt pins it; an embedding
  app installs ``centinela[brotli]``); refused with 415 and a message saying so otherwise.

Phase 2, as built: ``monitoring/api/otlp.py`` and ``monitoring/api/sentry_ingest.py`` (the
endpoints, sharing ``monitoring/api/ingest_http.py``), ``sink`` (records batches into the
recorder and the error tracker), the ``Ingest`` parts in ``monitoring/services.py``, and
``projects`` (SENTRY_PROJECTS).
"""
