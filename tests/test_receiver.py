"""Tests for the real local network peers in tests/support/receiver.py."""

from __future__ import annotations

import dataclasses
import gzip
import json
import socket
import time

import pytest
import requests

from tests.support.receiver import (
    RecordedRequest,
    RecordingHTTPServer,
    Response,
    SwitchableTCPServer,
    free_port,
)

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _connect(port: int, timeout: float = 1.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


@pytest.fixture
def srv():
    with RecordingHTTPServer() as server:
        yield server
    assert server.errors == []  # no unexpected exceptions inside handlers


# --------------------------------------------------------------------------
# free_port
# --------------------------------------------------------------------------


def test_free_port_is_bindable_and_nothing_listens():
    port = free_port()
    assert 0 < port < 65536
    with pytest.raises(ConnectionRefusedError):
        _connect(port, timeout=0.5)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# --------------------------------------------------------------------------
# RecordingHTTPServer: recording
# --------------------------------------------------------------------------


def test_url_port_and_start_stop_without_context_manager():
    server = RecordingHTTPServer()
    server.start()
    try:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert requests.get(server.url + "/ping", timeout=2).status_code == 200
        with pytest.raises(RuntimeError):
            server.start()
    finally:
        server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/ping", timeout=1)


def test_records_method_path_query_headers_body(srv):
    before = time.time()
    resp = requests.post(
        srv.url + "/hooks/alert?a=1&a=2&empty=&q=hello%20world",
        json={"status": "down", "n": 3},
        headers={"X-Centinela-Signature": "abc123", "Authorization": "Bearer t0k"},
        timeout=2,
    )
    assert resp.status_code == 200
    assert resp.json() == {"ok": True}
    assert resp.headers["Content-Type"] == "application/json"

    (req,) = srv.wait_for(1)
    assert isinstance(req, RecordedRequest)
    assert req.method == "POST"
    assert req.path == "/hooks/alert"
    assert req.query == {"a": ["1", "2"], "empty": [""], "q": ["hello world"]}
    assert req.headers["x-centinela-signature"] == "abc123"
    assert req.headers["authorization"] == "Bearer t0k"
    assert req.header("Content-Type") == "application/json"
    assert req.header("X-Missing", "dflt") == "dflt"
    assert all(name == name.lower() for name in req.headers)
    assert json.loads(req.body) == {"status": "down", "n": 3}
    assert req.json() == {"status": "down", "n": 3}
    assert json.loads(req.text) == {"status": "down", "n": 3}
    assert before <= req.received_at <= time.time()
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.method = "GET"  # frozen


def test_records_other_methods_and_bodies(srv):
    requests.get(srv.url + "/", timeout=2)
    requests.put(srv.url + "/x", data=b"\x00\x01raw", timeout=2)
    requests.delete(srv.url + "/x/1", timeout=2)
    head = requests.head(srv.url + "/h", timeout=2)
    assert head.status_code == 200 and head.content == b""
    # chunked transfer encoding (generator body)
    requests.post(srv.url + "/chunked", data=(part for part in [b"ab", b"cd", b"ef"]), timeout=2)

    reqs = srv.wait_for(5)
    assert [(r.method, r.path) for r in reqs] == [
        ("GET", "/"),
        ("PUT", "/x"),
        ("DELETE", "/x/1"),
        ("HEAD", "/h"),
        ("POST", "/chunked"),
    ]
    assert reqs[0].body == b"" and reqs[0].query == {}
    assert reqs[1].body == b"\x00\x01raw"
    assert reqs[4].headers["transfer-encoding"] == "chunked"
    assert reqs[4].body == b"abcdef"


def test_json_handles_gzip_content_encoding(srv):
    payload = {"event_id": "e1", "level": "error"}
    requests.post(
        srv.url + "/api/1/store/",
        data=gzip.compress(json.dumps(payload).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        timeout=2,
    )
    (req,) = srv.wait_for(1)
    assert req.body[:2] == b"\x1f\x8b"  # raw body kept as sent
    assert req.json() == payload
    assert json.loads(req.text) == payload


def test_requests_returns_copy_and_clear(srv):
    requests.get(srv.url + "/one", timeout=2)
    snapshot = srv.requests
    snapshot.clear()
    assert len(srv.requests) == 1
    srv.clear()
    assert srv.requests == []
    requests.get(srv.url + "/two", timeout=2)
    assert [r.path for r in srv.wait_for(1)] == ["/two"]


def test_wait_for_times_out_with_assertion_error(srv):
    requests.get(srv.url + "/only-one", timeout=2)
    started = time.monotonic()
    with pytest.raises(AssertionError) as excinfo:
        srv.wait_for(2, timeout=0.2)
    assert time.monotonic() - started < 2
    message = str(excinfo.value)
    assert "expected at least 2" in message
    assert "got 1" in message
    assert "GET /only-one" in message


def test_wait_for_path_filter(srv):
    requests.get(srv.url + "/a", timeout=2)
    requests.get(srv.url + "/b", timeout=2)
    requests.get(srv.url + "/a", timeout=2)
    assert [r.path for r in srv.wait_for(2, path="/a")] == ["/a", "/a"]
    with pytest.raises(AssertionError, match="'/b'"):
        srv.wait_for(2, timeout=0.1, path="/b")


# --------------------------------------------------------------------------
# RecordingHTTPServer: behaviour
# --------------------------------------------------------------------------


def test_respond_500_and_request_still_recorded(srv):
    srv.respond(500)
    resp = requests.post(srv.url + "/hook", json={"x": 1}, timeout=2)
    assert resp.status_code == 500
    assert resp.json() == {"ok": False, "error": "Internal Server Error"}
    assert srv.wait_for(1)[0].json() == {"x": 1}


def test_respond_body_types_and_headers(srv):
    srv.respond(201, {"id": "abc"}, headers={"X-Request-Id": "r-1"})
    resp = requests.get(srv.url, timeout=2)
    assert resp.status_code == 201
    assert resp.json() == {"id": "abc"}
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["X-Request-Id"] == "r-1"

    srv.respond(200, "ok")  # Slack answers plain "ok"
    resp = requests.get(srv.url, timeout=2)
    assert resp.text == "ok"
    assert resp.headers["Content-Type"].startswith("text/plain")

    srv.respond(200, b'{"ok":true}')
    resp = requests.get(srv.url, timeout=2)
    assert resp.json() == {"ok": True}
    assert resp.headers["Content-Type"] == "application/json"

    srv.respond(202, b"", headers={"Content-Type": "text/html"})
    resp = requests.get(srv.url, timeout=2)
    assert resp.status_code == 202 and resp.content == b""

    srv.respond(204)
    assert requests.get(srv.url, timeout=2).status_code == 204


def test_respond_sequence_then_default(srv):
    srv.respond_sequence([500, (503, {"retry": True}), Response(200, {"n": 3})])
    assert srv.pending_responses == 3
    got = [requests.get(srv.url + "/s", timeout=2) for _ in range(5)]
    assert [r.status_code for r in got] == [500, 503, 200, 200, 200]
    assert got[1].json() == {"retry": True}
    assert got[2].json() == {"n": 3}
    assert got[3].json() == {"ok": True}
    assert srv.pending_responses == 0
    assert len(srv.wait_for(5)) == 5

    with pytest.raises(TypeError):
        srv.respond_sequence([{"status": 200}])


def test_respond_429_with_retry_after(srv):
    srv.respond_429(retry_after=2)
    resp = requests.post(srv.url + "/v2/enqueue", json={}, timeout=2)
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "2"
    assert srv.wait_for(1)[0].path == "/v2/enqueue"
    srv.respond()  # back to normal
    assert requests.get(srv.url, timeout=2).status_code == 200


def test_route_overrides_default_for_exact_path(srv):
    srv.route("/v1/balance", status=200, body={"object": "balance"})
    srv.route("/v3/account", status=401, body={"code": "unauthorized"})
    srv.respond(404)
    assert requests.get(srv.url + "/v1/balance?expand=x", timeout=2).json() == {"object": "balance"}
    resp = requests.get(srv.url + "/v3/account", timeout=2)
    assert resp.status_code == 401 and resp.json() == {"code": "unauthorized"}
    assert requests.get(srv.url + "/v1/balance/extra", timeout=2).status_code == 404
    assert requests.get(srv.url + "/", timeout=2).status_code == 404

    # routes win over a queued sequence, which still serves other paths
    srv.respond_sequence([503])
    assert requests.get(srv.url + "/v1/balance", timeout=2).status_code == 200
    assert requests.get(srv.url + "/other", timeout=2).status_code == 503

    srv.unroute("/v3/account")
    assert requests.get(srv.url + "/v3/account", timeout=2).status_code == 404
    srv.reset()
    assert requests.get(srv.url + "/v1/balance", timeout=2).json() == {"ok": True}


def test_hang_makes_client_time_out_and_respond_recovers(srv):
    srv.hang(10)
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        requests.post(srv.url + "/slow", json={"a": 1}, timeout=0.5)
    assert time.monotonic() - started < 3
    # recorded even though never answered
    assert srv.wait_for(1)[0].path == "/slow"

    srv.respond(200)  # cancels the hang
    resp = requests.get(srv.url + "/fast", timeout=2)
    assert resp.status_code == 200


def test_stop_is_fast_while_a_handler_hangs():
    server = RecordingHTTPServer().start()
    server.hang(30)
    client = _connect(server.port, timeout=5)
    try:
        client.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        server.wait_for(1)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.5
        # the hanging request is dropped unanswered
        assert client.recv(1024) == b""
    finally:
        client.close()


def test_refuse_gives_connection_error_and_resume_same_port(srv):
    port = srv.port
    assert requests.get(srv.url + "/before", timeout=2).status_code == 200
    srv.refuse()
    assert not srv.listening
    with pytest.raises(requests.ConnectionError):
        requests.get(srv.url + "/refused", timeout=1)
    with pytest.raises(ConnectionRefusedError):
        _connect(port, timeout=0.5)
    srv.resume()
    assert srv.port == port and srv.listening
    assert requests.get(srv.url + "/after", timeout=2).status_code == 200
    assert [r.path for r in srv.wait_for(2)] == ["/before", "/after"]
    srv.resume()  # no-op while listening


# --------------------------------------------------------------------------
# SwitchableTCPServer
# --------------------------------------------------------------------------


def test_tcp_accept_counts_and_closes_politely():
    with SwitchableTCPServer() as tcp:
        assert tcp.host == "127.0.0.1" and tcp.port > 0 and tcp.mode == "accept"
        for _ in range(3):
            with _connect(tcp.port) as client:
                assert client.recv(16) == b""  # server closed with FIN
        assert tcp.wait_for_connections(3) == 3
        assert tcp.connections == 3


def test_tcp_banner():
    with SwitchableTCPServer(banner=b"+PONG\r\n") as tcp:
        with _connect(tcp.port) as client:
            assert client.recv(16) == b"+PONG\r\n"


def test_tcp_refuse_and_resume_same_port():
    with SwitchableTCPServer() as tcp:
        port = tcp.port
        tcp.refuse()
        assert tcp.mode == "refuse"
        with pytest.raises(ConnectionRefusedError):
            _connect(port, timeout=0.5)
        tcp.resume()
        assert tcp.port == port and tcp.mode == "accept"
        with _connect(port) as client:
            assert client.recv(16) == b""
        tcp.wait_for_connections(1)


def test_tcp_hang_connect_succeeds_but_nothing_is_accepted():
    with SwitchableTCPServer() as tcp:
        tcp.hang()
        client = _connect(tcp.port)  # kernel completes the handshake
        try:
            client.settimeout(0.3)
            with pytest.raises(socket.timeout):
                client.recv(16)  # never accepted, never answered
            assert tcp.connections == 0
            tcp.accept()  # the queued connection is now accepted and closed
            client.settimeout(2)
            assert client.recv(16) == b""
            assert tcp.wait_for_connections(1) == 1
        finally:
            client.close()


def test_tcp_hang_saturated_makes_connect_time_out():
    with SwitchableTCPServer() as tcp:
        port = tcp.port
        if not tcp.hang(saturate=True):
            pytest.skip("listen backlog saturation not supported on this platform")
        with pytest.raises((socket.timeout, TimeoutError)):
            _connect(port, timeout=0.3)
        tcp.resume()
        assert tcp.port == port
        with _connect(port) as client:
            assert client.recv(16) == b""
        # the server's own backlog fillers were discarded, not counted
        assert tcp.wait_for_connections(1) == 1


def test_tcp_stop_closes_port():
    tcp = SwitchableTCPServer().start()
    port = tcp.port
    started = time.monotonic()
    tcp.stop()
    assert time.monotonic() - started < 1.5
    assert tcp.mode == "stopped"
    with pytest.raises(ConnectionRefusedError):
        _connect(port, timeout=0.5)
    with pytest.raises(RuntimeError):
        tcp.hang()
