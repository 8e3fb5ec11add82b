"""The README's quick start and the shell examples of the docs pages, run as a reader pastes them.

Each page's ```bash and ```sh blocks are parsed out of the Markdown and run in page order in one
bash (``set -eEuo pipefail``, so a variable set in one block is there in the next, and any command
that fails stops the run) against a real gunicorn of this checkout on a temporary var/ folder,
from that folder (so ``cat var/metrics-api-key`` reads the key that server generated), with jq on
the PATH. Every request the examples send to ``http://127.0.0.1:8000`` goes through a recording
proxy put at that address's place; each answer must be a success (below 400) and every JSON
answer must validate against the OpenAPI document the server serves (openapi-core, as
tests/support/contract.py does for the test client).

The marker convention, in the Markdown:

* A block runs unless the line just before its opening fence ends an HTML comment that starts
  with ``docs-test: skip``, with the reason in brackets, e.g.
  ``<!-- docs-test: skip (needs Datadog keys) -->``: commands that start servers, need root,
  outside accounts or keys, or only set variables for ``make run``.
* A ``make run`` line inside a block that runs (the quick start's) is the server: it is left out
  of the script, and the page's gunicorn is started with the variables that line sets.
* Port 9999 (the quick start's webhook receiver) is replaced by a free port; pages without a
  ``make run`` line get a server whose ``ALERT_WEBHOOK_URL`` is a recording receiver, as the
  quick start's server has.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from tests.support.gunicorn import GunicornServer
from tests.support.receiver import RecordingHTTPServer, free_port

ROOT = Path(__file__).resolve().parents[1]
DOCS_URL = "http://127.0.0.1:8000"
RECEIVER_PORT = "9999"
# The pages whose examples run, in the order a reader meets them (docs/operations.md holds deploy
# commands for root on a server, and is not among them).
PAGES = [
    "README.md", "docs/api.md", "docs/health.md", "docs/uptime.md", "docs/business.md", "docs/errors.md",
    "docs/alerting.md", "docs/notifications.md", "docs/integrations.md", "docs/configuration.md",
    "docs/embedding.md",
]
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
MAKE_RUN = re.compile(r"^(?P<assignments>(?:[A-Z_][A-Z0-9_]*=\S+\s+)*)make run\b.*$")
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\b(?P<reason>.*?)-->", re.S)


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    text: str
    skip: str | None  # the reason given in its marker, None when it runs

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def shell_blocks(page: str) -> list[Block]:
    """The page's bash and sh blocks, with their skip markers."""
    lines = (ROOT / page).read_text().split("\n")
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening or not opening["lang"]:
            index += 1
            continue
        indent, start = opening["indent"], index
        end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "```")
        if opening["lang"] in ("bash", "sh"):
            before = "\n".join(lines[max(0, start - 6):start])
            marker = SKIP.search(before) if before.rstrip().endswith("-->") else None
            if marker and not before.rstrip().endswith(marker.group(0)):
                marker = None  # a comment that ends just above, but is not the skip marker
            text = "\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines[start + 1:end])
            reason = marker["reason"].strip(" ()") if marker else None
            blocks.append(Block(page, start + 1, text, reason))
        index = end + 1
    return blocks


def server_settings(blocks: list[Block]) -> tuple[list[Block], dict[str, str]]:
    """The blocks without their `make run` lines, and the variables those lines set."""
    env: dict[str, str] = {}
    kept: list[Block] = []
    for block in blocks:
        if block.skip is not None:
            kept.append(block)
            continue
        lines = []
        for line in block.text.split("\n"):
            found = MAKE_RUN.match(line.strip())
            if found:
                for assignment in shlex.split(found["assignments"]):
                    name, _, value = assignment.partition("=")
                    env[name] = value
                lines.append(f"# left out, the test's gunicorn stands for it: {line.strip()}")
            else:
                lines.append(line)
        kept.append(Block(block.page, block.line, "\n".join(lines), block.skip))
    return kept, env


def runnable_pages() -> list[str]:
    return [page for page in PAGES if any(block.skip is None for block in shell_blocks(page))]


@dataclass
class Exchange:
    """One request an example sent, and what the server answered."""
    example: str
    method: str
    target: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    response_headers: list[tuple[str, str]]
    response_body: bytes

    @property
    def content_type(self) -> str:
        return dict((k.lower(), v) for k, v in self.response_headers).get("content-type", "")

    def describe(self) -> str:
        return f"{self.example}: {self.method} {self.target} answered {self.status}"


# Answers whose shape /api/openapi.json does not describe yet, each with what is wrong. Kept strict:
# a drift that no longer occurs fails the run until it is taken off this list.
KNOWN_DRIFT: dict[tuple[str, str, str], str] = {}


def known_drift(exchange: Exchange) -> tuple[str, str, str] | None:
    path, _, query = exchange.target.partition("?")
    for key in KNOWN_DRIFT:
        method, known_path, in_query = key
        if exchange.method == method and path == known_path and in_query in query:
            return key
    return None


HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade", "expect",
              "content-length"}


class RecordingProxy:
    """Stands at the docs' address for the real server, and keeps every exchange."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.exchanges: list[Exchange] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # so curl's `Expect: 100-continue` is answered at once

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                answer_headers = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP]
                upstream.close()
                proxy.exchanges.append(Exchange(
                    headers.get("X-Docs-Example", "?"), self.command, self.path, headers, body,
                    answer.status, answer_headers, data))
                self.send_response_only(answer.status, answer.reason)
                for name, value in answer_headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def openapi_of(server_url: str) -> tuple[dict[str, Any], OpenAPI]:
    document = requests.get(server_url + "/api/openapi.json", timeout=10).json()
    return document, OpenAPI.from_dict(document, config=Config(
        extra_media_type_deserializers={"application/health+json": json.loads}))


HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def operations_not_called(document: dict[str, Any], exchanges: list[Exchange]) -> list[str]:
    """The operations of Centinela's own API (not the ingest protocols) that no example called."""
    missing = []
    for path, item in document["paths"].items():
        if not (path in ("/", "/api/openapi.json") or path.startswith(("/api/monitoring/", "/api/health/"))):
            continue
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
        for method in sorted(set(item) & HTTP_METHODS):
            if not any(e.method.lower() == method and pattern.match(e.target.partition("?")[0]) for e in exchanges):
                missing.append(f"{method.upper()} {path}")
    return missing


def contract_problems(openapi: OpenAPI, base_url: str, exchange: Exchange) -> list[str]:
    path, _, query = exchange.target.partition("?")
    request = EnvironBuilder(
        method=exchange.method, base_url=base_url, path=path, query_string=query,
        headers=exchange.request_headers, data=exchange.request_body).get_request()
    response = Response(exchange.response_body, status=exchange.status, headers=exchange.response_headers)
    result = openapi.unmarshal_response(WerkzeugOpenAPIRequest(request), WerkzeugOpenAPIResponse(response))
    return [str(error) for error in result.errors]


def bash_script(blocks: list[Block], substitutions: dict[str, str], curl_home: Path) -> str:
    """One script for the page: each block in turn, each curl tagged with the block it is in."""
    parts = [
        "set -eEuo pipefail",
        "trap 'echo \"docs-test: exit $? at: $BASH_COMMAND\" >&2' ERR",
        "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT",
    ]
    for block in blocks:
        if block.skip is not None:
            continue
        text = block.text
        for old, new in substitutions.items():
            text = text.replace(old, new)
        parts.append(f"echo {shlex.quote('docs-test: ==== ' + block.where)} >&2")
        curlrc = f'header = "X-Docs-Example: {block.where}"'
        parts.append(f"echo {shlex.quote(curlrc)} > {shlex.quote(str(curl_home / '.curlrc'))}")
        parts.append(text)
    return "\n".join(parts) + "\n"


def wait_for_first_health_round(url: str, timeout: float = 60.0) -> None:
    """The examples read health as a reader would after start-up: once the first round is stored."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.get(url + "/api/health/check", timeout=5).status_code == 200:
            return
        time.sleep(0.2)  # the leader's first round runs in a real process
    raise AssertionError(f"{url}: no healthy health round within {timeout}s")


@dataclass
class PageRun:
    page: str
    blocks: list[Block]
    result: subprocess.CompletedProcess[str]
    exchanges: list[Exchange]
    document: dict[str, Any]
    openapi: OpenAPI
    proxy_url: str
    received: list[Any] = field(default_factory=list)
    left_in_checkout: list[str] = field(default_factory=list)  # files the examples wrote where they ran


@pytest.fixture
def run_page(tmp_path: Path) -> Iterator[Callable[..., PageRun]]:
    """Run one page's examples against its own real gunicorn, as described at the top."""
    servers: list[GunicornServer] = []

    def run(page: str, edit: Callable[[str], str] = lambda text: text) -> PageRun:
        assert shutil.which("jq"), "jq is needed by the examples (Debian package jq; .ci/run installs it)"
        blocks, make_run_env = server_settings(shell_blocks(page))
        blocks = [Block(b.page, b.line, edit(b.text), b.skip) for b in blocks]
        receiver_port = str(free_port())
        with RecordingHTTPServer() as webhook:
            env = {name: value.replace(RECEIVER_PORT, receiver_port) for name, value in make_run_env.items()}
            env.setdefault("ALERT_WEBHOOK_URL", webhook.url + "/alerts")
            server = GunicornServer(tmp_path / "server", env=env, workers=2)
            for generated in ("METRICS_API_KEY", "ADMIN_API_KEY"):
                server.env.pop(generated, None)  # generated into var/, as on a fresh checkout
            servers.append(server)
            server.start()
            wait_for_first_health_round(server.url)
            curl_home = tmp_path / "home"
            curl_home.mkdir()
            with RecordingProxy(server.url) as proxy:
                script = bash_script(blocks, {DOCS_URL: proxy.url, RECEIVER_PORT: receiver_port}, curl_home)
                (tmp_path / "examples.sh").write_text(script)
                shell_env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(curl_home),
                    "CURL_HOME": str(curl_home), "BROWSER": "echo", "LANG": "C.UTF-8", "TMPDIR": str(tmp_path),
                }
                result = subprocess.run(
                    ["bash", str(tmp_path / "examples.sh")], cwd=server.workdir, env=shell_env,
                    capture_output=True, text=True, timeout=300)
                document, openapi = openapi_of(server.url)
                # The examples run where a reader runs them, the checkout: only the server's own
                # var/ and log may be there afterwards, whatever else they wrote is in a temporary folder.
                left = sorted(p.name for p in server.workdir.iterdir() if p.name not in ("var", "gunicorn.log"))
                return PageRun(page, blocks, result, list(proxy.exchanges), document, openapi, proxy.url,
                               [request.json() for request in webhook.requests], left)

    yield run
    for server in servers:
        server.stop()


def failures_of(run: PageRun) -> list[str]:
    problems: list[str] = []
    drifted: set[tuple[str, str, str]] = set()
    if run.result.returncode != 0:
        problems.append(f"bash exited {run.result.returncode}\n--- stderr\n{run.result.stderr[-4000:]}")
    for exchange in run.exchanges:
        if exchange.status >= 400:
            problems.append(f"{exchange.describe()}: {exchange.response_body[:500]!r} "
                            f"(sent {exchange.request_body[:300]!r})")
        if "json" in exchange.content_type:
            found = contract_problems(run.openapi, run.proxy_url, exchange)
            drift = known_drift(exchange)
            if found and drift:
                drifted.add(drift)
                continue
            for problem in found:
                problems.append(f"{exchange.describe()}: not what /api/openapi.json describes: {problem[:1500]}")
    for drift in {known_drift(exchange) for exchange in run.exchanges} - drifted - {None}:
        problems.append(f"{drift}: answered as /api/openapi.json describes now: take it off KNOWN_DRIFT")
    if run.left_in_checkout:
        problems.append(f"files left where the examples ran (write them to a temporary folder): {run.left_in_checkout}")
    examples_with_requests = {exchange.example for exchange in run.exchanges}
    for block in run.blocks:
        if block.skip is None and DOCS_URL in block.text and block.where not in examples_with_requests:
            problems.append(f"{block.where}: sent nothing to the server")
    return problems


def test_the_docs_pages_are_parsed_and_every_skip_says_why() -> None:
    pages = runnable_pages()
    assert pages[:2] == ["README.md", "docs/api.md"]
    for page in PAGES:
        for block in shell_blocks(page):
            assert block.skip is None or block.skip, f"{block.where}: a skip marker needs its reason"
    quick_start = [b for b in shell_blocks("README.md") if b.skip is None][0]
    _, env = server_settings([quick_start])
    assert env == {"ALERT_WEBHOOK_URL": "http://127.0.0.1:9999/alerts"}
    for page in PAGES:
        for block in shell_blocks(page):
            checked = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True, timeout=10)
            assert checked.returncode == 0, f"{block.where}: not valid bash: {checked.stderr}"
    curls = sum(block.text.count("curl ") for page in PAGES for block in shell_blocks(page) if block.skip is None)
    assert curls >= 40, curls


@pytest.mark.slow
@pytest.mark.parametrize("page", runnable_pages())
def test_the_examples_of_each_page_run_in_order_and_answer_what_the_document_says(
    run_page: Callable[..., PageRun], page: str
) -> None:
    run = run_page(page)
    assert run.exchanges, f"{page}: no example reached the server\n{run.result.stderr[-2000:]}"
    problems = failures_of(run)
    assert not problems, "\n".join(problems)
    if page == "docs/api.md":
        assert not operations_not_called(run.document, run.exchanges), "operations with no example in docs/api.md"
    if page == "README.md":
        # The quick start's receiver got the test alert, and step 5 printed it.
        (test,) = [e for e in run.exchanges if e.method == "POST" and e.target == "/api/monitoring/alerts"]
        answer = json.loads(test.response_body)
        assert answer["ok"] is True and answer["results"][0]["status"] == 200, answer
        printed = [json.loads(line) for line in run.result.stdout.splitlines() if line.startswith('{"version"')]
        assert printed and printed[0]["receiver"] == "centinela/webhook", run.result.stdout[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("breakage, replaced, by, reported", [
    ("an id no longer taken from the answer is a 404", '--argjson id "$ID"', "--argjson id 999999", "answered 404"),
    ("a file written into the checkout", '-o "$TMP/audit.csv"', "-o audit.csv", "files left where the examples ran"),
    ("a command that fails", "| jq .view", "| jq .no_such_filter(", "bash exited"),
])
def test_a_broken_example_fails_the_run(
    run_page: Callable[..., PageRun], breakage: str, replaced: str, by: str, reported: str
) -> None:
    """The check can fail: each breakage of docs/api.md is reported."""
    assert any(replaced in block.text for block in shell_blocks("docs/api.md")), replaced
    run = run_page("docs/api.md", edit=lambda text: text.replace(replaced, by))
    problems = failures_of(run)
    assert any(reported in problem for problem in problems), (breakage, problems)


# Pages other helpers write: linked from the README before they land, so only their presence is
# not required (and their anchors are not checked).
PAGES_WRITTEN_ELSEWHERE = {"docs/any-language.md", "docs/services.md", "docs/operations.md"}
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def github_anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings (a repeated heading gets -1, -2, ...)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in page.read_text().split("\n"):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if in_fence or not line.startswith("#"):
            continue
        slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_every_link_between_the_docs_pages_resolves() -> None:
    broken = []
    for page in PAGES:
        source = ROOT / page
        for found in LINK.finditer(source.read_text()):
            target = found["target"]
            if re.match(r"^[a-z]+:", target):
                continue  # https:, mailto:: outside links are not fetched
            path, _, anchor = target.partition("#")
            resolved = (source.parent / path).resolve() if path else source
            relative = resolved.relative_to(ROOT).as_posix()
            if relative in PAGES_WRITTEN_ELSEWHERE:
                continue
            if not resolved.exists():
                broken.append(f"{page}: {target}: no such file")
            elif anchor and resolved.suffix == ".md" and anchor not in github_anchors(resolved):
                broken.append(f"{page}: {target}: no such heading")
    assert not broken, "\n".join(broken)
