"""Text, routes, methods and status codes as every decoder cleans them."""
from __future__ import annotations

import pytest

from monitoring.ingest.routes import clean_route, normalise_method, parse_status, path_template
from monitoring.ingest.text import clean_long_text, clean_pairs, clean_text, storable


@pytest.mark.parametrize(
    ("url", "template"),
    [
        ("https://shop.example/tickets/8812?email=jane.doe@example.com#top", "/tickets/<id>"),
        ("/orders/3f2a9c1b-77aa-4d5e-9f00-1234567890ab/items", "/orders/<id>/items"),
        ("/files/5d41402abc4b2a76b9719d911017c592", "/files/<id>"),
        ("/u/jane.doe%40example.com/profile", "/u/<id>/profile"),
        ("/p/aZ3kQ9xLm2Pq7RtV8wYz/share", "/p/<id>/share"),
        ("/order-12345/receipt", "/<id>/receipt"),
        ("/api/v2/tickets", "/api/v2/tickets"),
        ("https://shop.example", "<unmatched>"),
        ("https://shop.example/", "/"),
        ("/a/b/c/d/e/f/g/h/i/j", "/a/b/c/d/e/f/g/h/..."),
        ("http://[::1", "<unmatched>"),
        (None, "<unmatched>"),
    ],
)
def test_path_template(url: object, template: str) -> None:
    assert path_template(url) == template


def test_routes_lose_query_and_fragment_and_are_bounded() -> None:
    assert clean_route("/tickets/:id?token=abc") == "/tickets/:id"
    assert clean_route("  ") == "<unmatched>"
    assert clean_route(42) == "<unmatched>"
    assert len(clean_route("/" + "a" * 1000)) == 255


@pytest.mark.parametrize(("value", "method"), [("GET", "GET"), ("post", "POST"), (" Delete ", "DELETE"),
                                               ("PURGE", "_OTHER"), ("", "_OTHER"), (None, "_OTHER"), (1, "_OTHER")])
def test_methods(value: object, method: str) -> None:
    assert normalise_method(value) == method


@pytest.mark.parametrize(("value", "status"), [(200, 200), ("503", 503), (404.0, 404), (True, 0), (99, 0),
                                               (600, 0), ("2OO", 0), ("", 0), (None, 0), ("1000", 0)])
def test_status(value: object, status: int) -> None:
    assert parse_status(value) == status


def test_storable_text_has_no_nul_control_or_lone_surrogate() -> None:
    assert storable("a\x00b\x07c\td\ne\ud800f") == "abc\td\ne\ufffdf"
    assert storable("jane\x00.doe@example.com") == "jane.doe@example.com"
    assert clean_text("jane\x00.doe@example.com", 100) == "[email]"


def test_a_secret_split_by_the_first_cut_never_survives() -> None:
    # The long bearer token scrubs down to a few characters, which pulls whatever follows the
    # first cut (here half an e-mail address, no longer recognisable) into the kept text.
    value = "Bearer " + "t" * 1100 + " jane.doe@example.com and more"
    cleaned = clean_text(value, 100)
    assert "jane" not in cleaned and "t" * 20 not in cleaned
    assert clean_text("Bearer " + "t" * 50 + " jane.doe@example.com", 100) == "Bearer [redacted] [email]"


def test_long_text_keeps_both_ends_scrubbed() -> None:
    value = "Error: card 4242 4242 4242 4242\n" + "    at f\n" * 10_000 + "    at main (jane.doe@example.com)"
    cleaned = clean_long_text(value, 2_000)
    assert len(cleaned) <= 2_000
    assert cleaned.startswith("Error: card [card ****4242]")
    assert cleaned.endswith("at main ([email])")
    assert clean_long_text("short", 2_000) == "short"


def test_pairs_redact_sensitive_names() -> None:
    pairs = clean_pairs([("password", "hunter2"), ("order", "77"), ("email", "jane.doe@example.com"), ("", "x")], 32, 200)
    assert pairs == (("password", "[redacted]"), ("order", "77"), ("email", "[email]"))


def test_the_decoders_import_no_web_framework_and_no_store() -> None:
    """Every module but ``sink``, the one that hands batches to the recorder and the error
    tracker (which are the store's side): decoding needs neither a web framework nor a store."""
    import subprocess
    import sys

    code = (
        "import sys, pkgutil, importlib, monitoring.ingest as p\n"
        "for m in pkgutil.iter_modules(p.__path__):\n"
        "    if m.name != 'sink': importlib.import_module('monitoring.ingest.' + m.name)\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & {'flask', 'werkzeug', 'sqlalchemy'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
