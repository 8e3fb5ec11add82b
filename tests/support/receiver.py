"""Real local network peers for the Centinela test suite.

These servers bind to ``127.0.0.1`` on an ephemeral port and speak real
HTTP / TCP, so the code under test exercises its genuine network stack
(connection errors, timeouts, status handling) instead of a mock.

* :class:`RecordingHTTPServer` stands in for webhooks, Slack, PagerDuty,
  Sentry ingest, Stripe and Brevo.  It records every request and answers
  with a behaviour that the test thread can switch at any time
  (status/body, a queue of responses, per-path routes, hang, refuse).
* :class:`SwitchableTCPServer` stands in for a TCP service probed by a TCP
  health check (accept / hang / refuse).
* :func:`free_port` returns a port that was free a moment ago.

Only the standard library is used.  All threads are daemon threads and every
server shuts down within about a second, even while a handler is hanging.

Typical use::

    with RecordingHTTPServer() as srv:
        srv.respond(500, {"error": "boom"})
        notify(webhook_url=srv.url + "/hook")
        (req,) = srv.wait_for(1)
        assert req.json()["status"] == "down"
"""

from __future__ import annotations

import collections
import gzip
import json
import random
import selectors
import socket
import socketserver
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "RecordedRequest",
    "RecordingHTTPServer",
    "Response",
    "SwitchableTCPServer",
    "free_port",
]

LOCALHOST = "127.0.0.1"

# How often the accept loops look at their stop flag.  This bounds how long
# stop()/refuse() take; it is a poll interval, not a sleep.
_POLL_INTERVAL = 0.05
# Socket timeout for a connection being handled: a client that opens a
# connection and never sends a full request cannot pin a handler for long.
_CONNECTION_TIMEOUT = 2.0
# Upper bound for joining the accept-loop thread on stop()/refuse().
_JOIN_TIMEOUT = 1.0


# Below Linux's ephemeral range (32768-60999 by default), which the kernel hands out for port 0
# and for outgoing connections: a port picked here is never given to a receiver that binds port 0
# in another test meanwhile (which would then record a gunicorn's start-up probes as its own).
_PICKED_PORTS = range(20000, 32768)


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port on ``host`` that was free when this function ran, for a server that
    starts later (a gunicorn) or for "nothing listens here" tests.

    Still racy against another free_port() caller (1 in 12,768 per pair); prefer letting the
    servers below bind port 0.
    """
    for _ in range(100):
        port = random.choice(_PICKED_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_PICKED_PORTS} after 100 tries")


# --------------------------------------------------------------------------
# Recorded requests and canned responses
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as received by :class:`RecordingHTTPServer`.

    ``path`` excludes the query string; ``query`` is ``parse_qs`` output
    (blank values kept); ``headers`` maps *lower-cased* header names to
    values (repeated headers are joined with ``", "``); ``body`` is the raw
    body as sent on the wire (still gzip-compressed if it was);
    ``received_at`` is ``time.time()`` when the request was recorded.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    received_at: float

    def header(self, name: str, default: str | None = None) -> str | None:
        """Case-insensitive header lookup."""
        return self.headers.get(name.lower(), default)

    @property
    def decoded_body(self) -> bytes:
        """The body with any gzip/deflate/br ``Content-Encoding`` removed."""
        encoding = self.headers.get("content-encoding", "").strip().lower()
        if encoding == "br":  # sentry-sdk compresses with brotli when the package is installed
            import brotli

            return brotli.decompress(self.body)  # type: ignore[no-any-return]
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(self.body)
        if encoding == "deflate":
            try:
                return zlib.decompress(self.body)
            except zlib.error:  # raw deflate stream without zlib header
                return zlib.decompress(self.body, -zlib.MAX_WBITS)
        return self.body

    @property
    def text(self) -> str:
        """The (decompressed) body decoded as UTF-8 (invalid bytes replaced)."""
        return self.decoded_body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """``json.loads`` of the (decompressed) body."""
        return json.loads(self.decoded_body)

    def __str__(self) -> str:  # used in wait_for() failure messages
        return f"{self.method} {self.path}"


def _looks_like_json(data: bytes) -> bool:
    stripped = data.lstrip()
    if stripped[:1] not in (b"{", b"["):
        return False
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def _default_body(status: int) -> dict[str, Any]:
    if status < 400:
        return {"ok": True}
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = f"HTTP {status}"
    return {"ok": False, "error": phrase}


@dataclass(frozen=True)
class Response:
    """A canned HTTP response.

    ``body`` may be:

    * ``None`` (default): ``{"ok": true}`` for status < 400, otherwise
      ``{"ok": false, "error": "<reason phrase>"}``;
    * a ``dict``/``list`` (or any JSON-serialisable non-str/bytes value):
      JSON-encoded, ``Content-Type: application/json``;
    * ``str``: UTF-8 encoded; ``bytes``: sent verbatim.  Their Content-Type is
      ``application/json`` if they parse as a JSON object/array, otherwise
      ``text/plain; charset=utf-8`` (str) or ``application/octet-stream``
      (bytes).  Use ``b""`` for an empty body.

    ``headers`` override the automatic Content-Type.  ``delay`` (seconds) is
    waited after the request was recorded and before answering.
    """

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] | None = None
    delay: float = 0.0
    payload: bytes = field(init=False, repr=False, compare=False)
    header_list: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.status, int) or not 100 <= self.status <= 999:
            raise ValueError(f"invalid HTTP status: {self.status!r}")
        body = _default_body(self.status) if self.body is None else self.body
        if isinstance(body, (bytes, bytearray, memoryview)):
            payload = bytes(body)
            ctype = "application/json" if _looks_like_json(payload) else "application/octet-stream"
        elif isinstance(body, str):
            payload = body.encode("utf-8")
            ctype = "application/json" if _looks_like_json(payload) else "text/plain; charset=utf-8"
        else:
            payload = json.dumps(body).encode("utf-8")
            ctype = "application/json"
        user_headers = [(str(k), str(v)) for k, v in (self.headers or {}).items()]
        names = {k.lower() for k, _ in user_headers}
        header_list = list(user_headers)
        if "content-type" not in names and payload:
            header_list.insert(0, ("Content-Type", ctype))
        object.__setattr__(self, "payload", payload)
        object.__setattr__(self, "header_list", tuple(header_list))


def _coerce_response(item: Any) -> Response:
    """Accept ``Response``, an ``int`` status or a tuple
    ``(status[, body[, headers[, delay]]])``."""
    if isinstance(item, Response):
        return item
    if isinstance(item, bool):
        raise TypeError(f"not a response spec: {item!r}")
    if isinstance(item, int):
        return Response(item)
    if isinstance(item, tuple) and 1 <= len(item) <= 4:
        return Response(*item)
    raise TypeError(
        "response spec must be Response, int status or tuple "
        f"(status[, body[, headers[, delay]]]), got {item!r}"
    )


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CentinelaTestReceiver/1.0"
    sys_version = ""
    timeout = _CONNECTION_TIMEOUT  # applied to the connection socket by StreamRequestHandler
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("connection closed inside chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # discard trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)  # CRLF after chunk data
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        owner = self.server.owner
        self.close_connection = True  # one request per connection keeps shutdown simple
        body = self._read_body()
        split = urlsplit(self.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = RecordedRequest(
            method=self.command,
            path=split.path or "/",
            query=parse_qs(split.query, keep_blank_values=True),
            headers=headers,
            body=body,
            received_at=time.time(),
        )
        # Record BEFORE answering, so 500/429/hang requests are visible too.
        response, hang, hang_gen, epoch = owner._record_and_plan(request)
        if not owner._wait(response.delay, hang, hang_gen, epoch):
            return  # server stopped while hanging: drop the connection unanswered
        self._write(response)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        names = set()
        for name, value in response.header_list:
            self.send_header(name, value)
            names.add(name.lower())
        no_body = self.command == "HEAD" or response.status in (204, 304) or response.status < 200
        if "content-length" not in names and response.status not in (204, 304) and response.status >= 200:
            self.send_header("Content-Length", str(len(response.payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        if not no_body and response.payload:
            self.wfile.write(response.payload)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # never join handler threads (a hanging one would block)
    allow_reuse_address = True  # resume() rebinds the same port despite TIME_WAIT
    request_queue_size = 64
    timeout = _POLL_INTERVAL  # handle_request() returns after this when idle

    def __init__(self, address: tuple[str, int], owner: RecordingHTTPServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), i.e. a reverse DNS
        # lookup that can stall for seconds in sandboxes.  Skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # client went away / timed out: expected in timeout tests
        self.owner._note_error(exc)


class RecordingHTTPServer:
    """A real HTTP server on 127.0.0.1 that records requests.

    Behaviour (all settable at any time from the test thread):

    * :meth:`respond` sets the default response (and cancels :meth:`hang`);
    * :meth:`respond_sequence` queues responses consumed one per request,
      after which the default applies again;
    * :meth:`route` overrides the response for one exact path (query string
      ignored).  Precedence: route > queued sequence > default;
    * :meth:`hang` delays every answer (after recording the request);
    * :meth:`refuse` closes the listening socket (ECONNREFUSED) and
      :meth:`resume` listens again on the same port.

    Each connection serves exactly one request (``Connection: close``).
    """

    def __init__(self, host: str = LOCALHOST, port: int = 0) -> None:
        self.host = host
        self._port = port
        self._cond = threading.Condition()  # guards everything below
        self._requests: list[RecordedRequest] = []
        self._default = Response()
        self._queue: collections.deque[Response] = collections.deque()
        self._routes: dict[str, Response] = {}
        self._hang = 0.0
        self._hang_gen = 0
        self._epoch = 0
        self.errors: list[BaseException] = []  # unexpected handler errors, for debugging
        self._life = threading.Lock()  # serialises start/stop/refuse/resume
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stop_flag: threading.Event | None = None
        self._started = False

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> RecordingHTTPServer:
        with self._life:
            if self._started:
                raise RuntimeError("RecordingHTTPServer already started")
            self._open()
            self._started = True
        return self

    def stop(self) -> None:
        """Stop serving; hanging handlers are released and drop their connection."""
        with self._life:
            with self._cond:
                self._epoch += 1
                self._cond.notify_all()
            self._close()
            self._started = False

    def refuse(self) -> None:
        """Close the listening socket: new connections get ECONNREFUSED."""
        with self._life:
            self._close()

    def resume(self) -> None:
        """Listen again on the same port after :meth:`refuse` (no-op if listening)."""
        with self._life:
            if not self._started:
                raise RuntimeError("RecordingHTTPServer not started")
            if self._server is None:
                self._open()

    @property
    def listening(self) -> bool:
        return self._server is not None

    def __enter__(self) -> RecordingHTTPServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def _open(self) -> None:
        server = _HTTPServer((self.host, self._port), self)
        self._port = server.server_address[1]
        stop_flag = threading.Event()
        thread = threading.Thread(
            target=self._serve, args=(server, stop_flag), name=f"recording-http-{self._port}", daemon=True
        )
        self._server, self._thread, self._stop_flag = server, thread, stop_flag
        thread.start()

    @staticmethod
    def _serve(server: _HTTPServer, stop_flag: threading.Event) -> None:
        while not stop_flag.is_set():
            try:
                server.handle_request()  # returns after server.timeout when idle
            except (OSError, ValueError):
                if stop_flag.is_set():
                    return
                raise

    def _close(self) -> None:
        server, thread, stop_flag = self._server, self._thread, self._stop_flag
        self._server = self._thread = self._stop_flag = None
        if server is None:
            return
        assert thread is not None and stop_flag is not None
        stop_flag.set()
        thread.join(_JOIN_TIMEOUT)
        server.server_close()

    # -- addresses ---------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    # -- behaviour ---------------------------------------------------------

    def respond(
        self,
        status: int = 200,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Set the default response (see :class:`Response` for ``body``).

        Also cancels :meth:`hang` and releases requests currently hanging.
        """
        response = Response(status, body, headers)
        with self._cond:
            self._default = response
            self._set_hang_locked(0.0)

    def respond_429(self, retry_after: int | float | str = 2, body: Any = None) -> None:
        """Default response becomes ``429`` with ``Retry-After: <retry_after>``."""
        if body is None:
            body = {"ok": False, "error": "rate_limited"}
        self.respond(429, body, {"Retry-After": str(retry_after)})

    def respond_sequence(self, responses: Iterable[Any]) -> None:
        """Replace the response queue.  Items: :class:`Response`, an ``int``
        status, or ``(status[, body[, headers[, delay]]])``.  One item is
        consumed per (non-routed) request; then the default applies."""
        items = [_coerce_response(item) for item in responses]
        with self._cond:
            self._queue = collections.deque(items)

    @property
    def pending_responses(self) -> int:
        """How many queued :meth:`respond_sequence` items are left."""
        with self._cond:
            return len(self._queue)

    def route(
        self,
        path: str,
        status: int = 200,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Override the response for requests whose path equals ``path``."""
        response = Response(status, body, headers, delay)
        with self._cond:
            self._routes[path] = response

    def unroute(self, path: str) -> None:
        with self._cond:
            self._routes.pop(path, None)

    def hang(self, seconds: float = 30.0) -> None:
        """Record each request, then wait ``seconds`` before answering.

        The wait ends early on :meth:`stop` (connection dropped unanswered) or
        when :meth:`respond`/:meth:`hang`/:meth:`reset` change the hang (then
        the request is answered).  ``hang(0)`` disables hanging.
        """
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._cond:
            self._set_hang_locked(float(seconds))

    def reset(self) -> None:
        """Back to defaults: 200 ``{"ok": true}``, no queue, routes or hang.
        Recorded requests are kept (see :meth:`clear`)."""
        with self._cond:
            self._default = Response()
            self._queue.clear()
            self._routes.clear()
            self._set_hang_locked(0.0)

    def _set_hang_locked(self, seconds: float) -> None:
        self._hang = seconds
        self._hang_gen += 1
        self._cond.notify_all()

    # -- recorded requests -------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests recorded so far, oldest first."""
        with self._cond:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests (behaviour is unchanged)."""
        with self._cond:
            self._requests.clear()

    def wait_for(self, n: int = 1, timeout: float = 5.0, *, path: str | None = None) -> list[RecordedRequest]:
        """Block until at least ``n`` requests (optionally only those with
        exactly ``path``) were recorded; return them (all matching, oldest
        first).  Raises ``AssertionError`` after ``timeout`` seconds."""

        def matching() -> list[RecordedRequest]:
            return [r for r in self._requests if path is None or r.path == path]

        with self._cond:
            if not self._cond.wait_for(lambda: len(matching()) >= n, timeout):
                seen = [str(r) for r in self._requests]
                what = f"request(s) to {path!r}" if path is not None else "request(s)"
                raise AssertionError(
                    f"{self.url}: expected at least {n} {what} within {timeout}s, "
                    f"got {len(matching())}; all recorded: {seen}"
                )
            return matching()

    # -- handler callbacks -------------------------------------------------

    def _record_and_plan(self, request: RecordedRequest) -> tuple[Response, float, int, int]:
        with self._cond:
            self._requests.append(request)
            if request.path in self._routes:
                response = self._routes[request.path]
            elif self._queue:
                response = self._queue.popleft()
            else:
                response = self._default
            plan = (response, self._hang, self._hang_gen, self._epoch)
            self._cond.notify_all()
            return plan

    def _wait(self, delay: float, hang: float, hang_gen: int, epoch: int) -> bool:
        """Wait the response's ``delay`` (ends early only on stop()), then the
        ``hang`` (ends early on stop() or any hang change).  Returns False if
        the server was stopped meanwhile."""
        with self._cond:
            if delay > 0:
                self._cond.wait_for(lambda: self._epoch != epoch, delay)
            if hang > 0:
                self._cond.wait_for(lambda: self._epoch != epoch or self._hang_gen != hang_gen, hang)
            return self._epoch == epoch

    def _note_error(self, exc: BaseException | None) -> None:
        if exc is not None:
            with self._cond:
                self.errors.append(exc)

    def __repr__(self) -> str:
        state = "listening" if self.listening else ("refusing" if self._started else "stopped")
        return f"<RecordingHTTPServer {self.url} {state} requests={len(self._requests)}>"


# --------------------------------------------------------------------------
# TCP
# --------------------------------------------------------------------------


class SwitchableTCPServer:
    """A TCP listener on 127.0.0.1 for TCP health checks.

    Modes:

    * ``accept()`` (default): accept each connection, optionally send
      ``banner``, then close it politely (FIN).  Counted in :attr:`connections`.
    * ``hang()``: keep listening but stop calling ``accept()``.  NOTE: a TCP
      *connect* check still SUCCEEDS in this mode, because the kernel
      completes the handshake and queues the connection in the listen backlog
      without the application accepting it; what hangs is any read of a
      banner/response.  Those queued connections are accepted (and counted)
      once you switch back to ``accept()``.
      ``hang(saturate=True)`` additionally shrinks the backlog to 0 and fills
      it with the server's own connections, so that further connects get no
      SYN-ACK and TIME OUT (Linux behaviour; returns False if saturation
      could not be confirmed).  Leaving a saturated hang reopens the
      listening socket on the same port, which discards everything queued.
    * ``refuse()``: close the listening socket, connects get ECONNREFUSED.
    * ``resume()``: listen again on the SAME port and accept.
    """

    def __init__(
        self,
        host: str = LOCALHOST,
        port: int = 0,
        *,
        banner: bytes | None = None,
        backlog: int = 16,
    ) -> None:
        self.host = host
        self._port = port
        self.banner = banner
        self._backlog = backlog
        self._cond = threading.Condition()
        self._mode = "stopped"  # accept | hang | refuse | stopped
        self._connections = 0
        self._life = threading.RLock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop_flag: threading.Event | None = None
        self._fillers: list[socket.socket] = []
        self._saturated = False  # backlog shrunk to 0 by hang(saturate=True)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> SwitchableTCPServer:
        with self._life:
            if self._mode != "stopped":
                raise RuntimeError("SwitchableTCPServer already started")
            self._open(self._backlog)
            self._set_mode("accept")
        return self

    def stop(self) -> None:
        with self._life:
            self._close()
            self._set_mode("stopped")

    def __enter__(self) -> SwitchableTCPServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # -- modes -------------------------------------------------------------

    def accept(self) -> None:
        """Accept and politely close connections (re-listening if needed)."""
        with self._life:
            self._require_started()
            if self._sock is None or self._saturated:
                self._close()
                self._open(self._backlog)
            self._set_mode("accept")

    def resume(self) -> None:
        """Listen again on the same port (after refuse/hang) and accept."""
        self.accept()

    def hang(self, *, saturate: bool = False) -> bool:
        """Listen but stop accepting (see class docstring).  Returns whether
        connects will now time out (always False without ``saturate``)."""
        with self._life:
            self._require_started()
            if self._sock is None:
                self._open(self._backlog)
            self._set_mode("hang")  # under _cond: the loop accepts nothing more
            if not saturate:
                return False
            assert self._sock is not None
            self._saturated = True  # from now on, leaving hang reopens the socket
            self._sock.listen(0)
            for _ in range(8):
                filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                filler.settimeout(0.15)
                try:
                    filler.connect((self.host, self._port))
                except TimeoutError:
                    filler.close()
                    return True  # backlog full: SYNs are being dropped
                except OSError:
                    filler.close()
                    return False
                self._fillers.append(filler)
            return False

    def refuse(self) -> None:
        """Close the listening socket: connects get ECONNREFUSED."""
        with self._life:
            self._require_started()
            self._close()
            self._set_mode("refuse")

    @property
    def mode(self) -> str:
        with self._cond:
            return self._mode

    # -- observation -------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self._port)

    @property
    def connections(self) -> int:
        """Connections accepted so far (not those merely queued while hanging)."""
        with self._cond:
            return self._connections

    def wait_for_connections(self, n: int = 1, timeout: float = 5.0) -> int:
        """Block until :attr:`connections` >= n (a client's connect() returns
        before the server thread accepts); AssertionError on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._connections >= n, timeout):
                raise AssertionError(
                    f"tcp {self.host}:{self._port}: expected at least {n} accepted "
                    f"connection(s) within {timeout}s, got {self._connections} (mode={self._mode})"
                )
            return self._connections

    # -- internals ---------------------------------------------------------

    def _require_started(self) -> None:
        if self.mode == "stopped":
            raise RuntimeError("SwitchableTCPServer not started")

    def _set_mode(self, mode: str) -> None:
        with self._cond:
            self._mode = mode
            self._cond.notify_all()

    def _open(self, backlog: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._port))
            sock.listen(backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        stop_flag = threading.Event()
        thread = threading.Thread(
            target=self._loop, args=(sock, stop_flag), name=f"switchable-tcp-{self._port}", daemon=True
        )
        self._sock, self._thread, self._stop_flag = sock, thread, stop_flag
        thread.start()

    def _close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._fillers.clear()
        self._saturated = False
        sock, thread, stop_flag = self._sock, self._thread, self._stop_flag
        self._sock = self._thread = self._stop_flag = None
        if sock is None:
            return
        assert thread is not None and stop_flag is not None
        stop_flag.set()
        thread.join(_JOIN_TIMEOUT)
        sock.close()

    def _loop(self, sock: socket.socket, stop_flag: threading.Event) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            while not stop_flag.is_set():
                with self._cond:
                    accepting = self._mode == "accept"
                if not accepting:
                    stop_flag.wait(_POLL_INTERVAL)
                    continue
                if not selector.select(_POLL_INTERVAL):
                    continue
                with self._cond:
                    if self._mode != "accept" or stop_flag.is_set():
                        continue
                    try:
                        conn, _ = sock.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        return
                    self._connections += 1
                    self._cond.notify_all()
                self._finish(conn)

    def _finish(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(_CONNECTION_TIMEOUT)
            if self.banner:
                conn.sendall(self.banner)
            conn.shutdown(socket.SHUT_WR)  # FIN
            # Drain what the client sent so close() does not turn into a RST.
            conn.setblocking(False)
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass
        except OSError:
            pass
        finally:
            conn.close()

    def __repr__(self) -> str:
        return f"<SwitchableTCPServer {self.host}:{self._port} mode={self.mode} connections={self.connections}>"
