"""Request bodies: identity, gzip and deflate as real clients send them, under raw and inflated
limits; a gzip bomb is refused while inflating, with memory bounded by the limit."""
from __future__ import annotations

import gzip
import tracemalloc
import zlib
from typing import Any

import pytest

from monitoring.ingest.body import OTLP_BODY_LIMITS, BodyLimits, content_encodings, decode_body
from monitoring.ingest.errors import (
    BodyTooLarge,
    InflatedBodyTooLarge,
    RawBodyTooLarge,
    UndecodableBody,
    UnsupportedContentEncoding,
)

PAYLOAD = b"".join(b"span %d of a batch, " % i for i in range(20_000))  # ~450 KB, compressible
MIB = 1024 * 1024


def bomb(inflated_bytes: int, wrap: str = "gzip") -> bytes:
    """A small body that inflates to ``inflated_bytes`` zeros, built without holding them in memory."""
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "zlib": zlib.MAX_WBITS, "raw": -zlib.MAX_WBITS}[wrap]
    compressor = zlib.compressobj(1, zlib.DEFLATED, wbits)
    block = bytes(MIB)
    parts = [compressor.compress(block) for _ in range(inflated_bytes // MIB)]
    parts.append(compressor.flush())
    return b"".join(parts)


def test_identity_body_passes_unchanged() -> None:
    assert decode_body(PAYLOAD, None, OTLP_BODY_LIMITS) == PAYLOAD
    assert decode_body(PAYLOAD, "identity", OTLP_BODY_LIMITS) == PAYLOAD
    assert decode_body(b"", "", OTLP_BODY_LIMITS) == b""


@pytest.mark.parametrize("header", ["gzip", "GZIP", "x-gzip", " gzip "])
def test_gzip_as_the_standard_library_writes_it(header: str) -> None:
    assert decode_body(gzip.compress(PAYLOAD), header, OTLP_BODY_LIMITS) == PAYLOAD


def test_gzip_with_several_members() -> None:
    body = gzip.compress(PAYLOAD[:1000]) + gzip.compress(PAYLOAD[1000:])
    assert decode_body(body, "gzip", OTLP_BODY_LIMITS) == PAYLOAD


def test_deflate_in_zlib_format_and_raw() -> None:
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw_body = raw.compress(PAYLOAD) + raw.flush()
    assert decode_body(zlib.compress(PAYLOAD), "deflate", OTLP_BODY_LIMITS) == PAYLOAD
    assert decode_body(raw_body, "deflate", OTLP_BODY_LIMITS) == PAYLOAD


def test_stacked_encodings_are_undone_in_reverse_order() -> None:
    body = gzip.compress(zlib.compress(PAYLOAD))  # deflate applied first, then gzip
    assert content_encodings("deflate, identity, gzip") == ["deflate", "gzip"]
    assert decode_body(body, "deflate, gzip", OTLP_BODY_LIMITS) == PAYLOAD


@pytest.mark.parametrize("header", ["zstd", "compress", "gzip, zstd"])
def test_unknown_encoding_is_415(header: str) -> None:
    with pytest.raises(UnsupportedContentEncoding) as caught:
        decode_body(gzip.compress(PAYLOAD), header, OTLP_BODY_LIMITS)
    assert caught.value.status == 415 and caught.value.code == "unsupported_content_encoding"


def test_raw_body_over_the_limit_is_413_before_inflating() -> None:
    limits = BodyLimits(max_raw_bytes=1000, max_inflated_bytes=10 * MIB)
    with pytest.raises(RawBodyTooLarge) as caught:
        decode_body(gzip.compress(PAYLOAD), "gzip", limits)
    assert caught.value.status == 413 and caught.value.limit == 1000
    assert decode_body(gzip.compress(PAYLOAD[:100]), "gzip", limits) == PAYLOAD[:100]


def test_uncompressed_body_is_held_to_the_smaller_limit() -> None:
    limits = BodyLimits(max_raw_bytes=10 * MIB, max_inflated_bytes=1000)
    with pytest.raises(RawBodyTooLarge):
        decode_body(PAYLOAD, None, limits)


def test_body_that_inflates_just_past_the_limit_is_refused() -> None:
    limits = BodyLimits(max_raw_bytes=MIB, max_inflated_bytes=len(PAYLOAD) - 1)
    with pytest.raises(InflatedBodyTooLarge):
        decode_body(gzip.compress(PAYLOAD), "gzip", limits)
    exact = BodyLimits(max_raw_bytes=MIB, max_inflated_bytes=len(PAYLOAD))
    assert decode_body(gzip.compress(PAYLOAD), "gzip", exact) == PAYLOAD


@pytest.mark.parametrize(("wrap", "header"), [("gzip", "gzip"), ("zlib", "deflate"), ("raw", "deflate")])
def test_bomb_is_refused_with_memory_bounded_by_the_limit(wrap: str, header: str) -> None:
    body = bomb(128 * MIB, wrap)  # 128 MiB of zeros in about half a megabyte
    assert len(body) < MIB
    limits = BodyLimits(max_raw_bytes=MIB, max_inflated_bytes=2 * MIB)
    tracemalloc.start()
    try:
        with pytest.raises(InflatedBodyTooLarge) as caught:
            decode_body(body, header, limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.status == 413 and caught.value.code == "inflated_payload_too_large"
    assert isinstance(caught.value, BodyTooLarge) and caught.value.limit == 2 * MIB
    # What was inflated before refusing, plus one step: never anywhere near the 128 MiB.
    assert peak < 2 * MIB + 2 * MIB, f"peak allocation {peak} bytes"


def test_truncated_gzip_is_400() -> None:
    body = gzip.compress(PAYLOAD)
    with pytest.raises(UndecodableBody) as caught:
        decode_body(body[: len(body) // 2], "gzip", OTLP_BODY_LIMITS)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("body", "header"),
    [
        (PAYLOAD[:500], "gzip"),  # not gzip at all
        (b"\x1f\x8b" + bytes(40), "gzip"),  # gzip magic, corrupt stream
        (gzip.compress(PAYLOAD) + b"trailing junk", "gzip"),
        (zlib.compress(PAYLOAD) + b"junk", "deflate"),
        (b"\xff" * 64, "deflate"),
        (b"", "gzip"),
    ],
)
def test_corrupt_compressed_bodies_are_400(body: bytes, header: str) -> None:
    with pytest.raises(UndecodableBody):
        decode_body(body, header, OTLP_BODY_LIMITS)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BodyLimits(max_raw_bytes=0, max_inflated_bytes=10)


# --- br (Brotli): sentry-python's choice when the brotli package is installed ----------------


def _brotli() -> Any:
    return pytest.importorskip("brotli", minversion="1.2", exc_type=ImportError)


def test_brotli_bodies_decode() -> None:
    module = _brotli()
    assert decode_body(module.compress(PAYLOAD), "br", OTLP_BODY_LIMITS) == PAYLOAD
    assert decode_body(gzip.compress(module.compress(PAYLOAD)), "br, gzip", OTLP_BODY_LIMITS) == PAYLOAD


def test_a_brotli_bomb_is_refused_while_inflating() -> None:
    module = _brotli()
    bomb = module.compress(bytes(8 * MIB))
    assert len(bomb) < 1000
    with pytest.raises(InflatedBodyTooLarge):
        decode_body(bomb, "br", BodyLimits(max_raw_bytes=MIB, max_inflated_bytes=MIB))


def test_broken_and_truncated_brotli_is_400() -> None:
    module = _brotli()
    whole = module.compress(PAYLOAD)
    for body in (whole[:-8], b"not brotli at all" * 4):
        with pytest.raises(UndecodableBody):
            decode_body(body, "br", OTLP_BODY_LIMITS)


def test_without_the_brotli_package_br_is_415_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "brotli", None)  # what "not installed" looks like to import
    with pytest.raises(UnsupportedContentEncoding, match="brotli package"):
        decode_body(b"\x0b\x02\x80hello\x03", "br", OTLP_BODY_LIMITS)
