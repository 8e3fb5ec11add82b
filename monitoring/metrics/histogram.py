"""Fixed-layout logarithmic latency histogram (DDSketch-style).

Why this design
---------------
Request latencies are recorded per route per flush interval inside every
gunicorn worker, flushed to SQL as rollups, then merged across workers,
hosts and intervals (minute -> hour downsampling) and finally queried for
p50/p95/p99.  That pipeline needs a summary that is

* cheap to update on the request path (a log, a ceil, one dict update),
* *exactly* mergeable: every process uses the same fixed bucket layout, so
  merging is adding counts index by index -- no re-binning, no error growth
  no matter how many rollups are combined,
* accurate in *relative* terms: with ``RELATIVE_ACCURACY = 0.01`` every
  quantile estimate is within 1% of the true nearest-rank sample value,
  whether the latency is 2 ms or 20 s,
* small when stored: a typical route-minute encodes to a few hundred bytes.

Bucket layout
-------------
``gamma = (1 + alpha) / (1 - alpha)``.  A value ``x`` goes to bucket
``i = ceil(log(x) / log(gamma))`` which covers ``(gamma**(i-1), gamma**i]``.
The representative value ``2 * gamma**i / (gamma + 1)`` is within a factor
``1 +/- alpha`` of every value in that range, which is where the accuracy
guarantee comes from.  Values are in SECONDS.

* Values ``<= MIN_TRACKED_VALUE`` (1 us) -- including 0 from clock skew,
  negatives (treated as 0) and NaN (treated as 0) -- go to a dedicated zero
  bucket, reported as 0 (absolute error <= 1 us instead of relative error).
* Values ``> MAX_TRACKED_VALUE`` (1 hour) are clamped into the top bucket;
  quantile estimates therefore saturate around one hour, but the exact
  ``min``, ``max`` and ``sum`` are still kept.

Instances are NOT thread-safe: use one histogram per worker thread (or guard
``record`` with a lock) when running a threaded gunicorn worker class.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "RELATIVE_ACCURACY",
    "GAMMA",
    "MIN_TRACKED_VALUE",
    "MAX_TRACKED_VALUE",
    "PROMETHEUS_BUCKETS",
    "FORMAT_VERSION",
    "LatencyHistogram",
    "bucket_index",
    "bucket_value",
    "nearest_rank",
]

#: Guaranteed relative error of every quantile estimate (1%).  This defines
#: the shared bucket layout: changing it makes stored rollups incompatible,
#: so it is tied to ``FORMAT_VERSION``.
RELATIVE_ACCURACY: float = 0.01

#: Ratio between consecutive bucket edges (~1.0202).
GAMMA: float = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
LOG_GAMMA: float = math.log(GAMMA)
_INV_LOG_GAMMA: float = 1.0 / LOG_GAMMA

#: Observations at or below this many seconds land in the zero bucket.
MIN_TRACKED_VALUE: float = 1e-6
#: Observations above this many seconds are clamped into the top bucket.
MAX_TRACKED_VALUE: float = 3600.0

#: Prometheus classic-histogram ``le`` bounds in seconds (``+Inf`` implied).
PROMETHEUS_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)

#: Version byte of the binary encoding; version 1 implies the layout above
#: (alpha=0.01, zero bucket <= 1e-6 s, top bucket clamp at 3600 s).
FORMAT_VERSION: int = 1

# Local aliases: global lookups of module attributes are measurably slower
# on the hot path than module-level names.
_log = math.log
_ceil = math.ceil


def bucket_index(seconds: float) -> int:
    """Index of the log bucket holding ``seconds`` (must be > MIN_TRACKED_VALUE).

    Values above ``MAX_TRACKED_VALUE`` map to the top bucket.
    """
    if seconds > MAX_TRACKED_VALUE:
        return TOP_INDEX
    return _ceil(_log(seconds) * _INV_LOG_GAMMA)


#: Highest bucket index (the bucket holding MAX_TRACKED_VALUE and above).
TOP_INDEX: int = _ceil(_log(MAX_TRACKED_VALUE) * _INV_LOG_GAMMA)
#: Lowest bucket index (the bucket holding the smallest tracked value).
MIN_INDEX: int = _ceil(_log(math.nextafter(MIN_TRACKED_VALUE, math.inf)) * _INV_LOG_GAMMA)

_REP_FACTOR: float = 2.0 / (GAMMA + 1.0)


def bucket_value(index: int) -> float:
    """Representative value of bucket ``index``: within alpha of all its members."""
    return _REP_FACTOR * GAMMA ** index


def nearest_rank(q: float, count: int) -> int:
    """1-based rank ``ceil(q * count)`` (at least 1) of the "lower" nearest-rank quantile.

    ``q * count`` is computed in binary floating point, so e.g. ``0.07 * 100``
    yields ``7.000000000000001``; a naive ``ceil`` would return rank 8.  We
    subtract a few ulps (relative 1e-12) before rounding up so that the rank
    matches the decimal intent of ``q``.
    """
    r = q * count
    return max(1, _ceil(r - r * 1e-12))


# -- varint helpers -----------------------------------------------------------

_DOUBLES = struct.Struct("<ddd")


def _put_varint(out: bytearray, n: int) -> None:
    """Append unsigned LEB128 varint."""
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _get_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Read unsigned LEB128 varint at ``pos``; returns (value, new_pos)."""
    result = 0
    shift = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise ValueError("truncated histogram encoding (varint)")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long in histogram encoding")


def _zigzag(n: int) -> int:
    return (n << 1) if n >= 0 else ((-n << 1) - 1)


def _unzigzag(z: int) -> int:
    return (z >> 1) if not z & 1 else -((z + 1) >> 1)


class LatencyHistogram:
    """Sparse fixed-layout log histogram of durations in seconds.

    State: ``{bucket index: count}`` for tracked values, a zero-bucket count,
    and exact ``count``/``sum``/``min``/``max``.  Two histograms are always
    mergeable because the layout is a module constant.
    """

    __slots__ = ("_buckets", "_zero", "_count", "_sum", "_min", "_max")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self._zero: int = 0
        self._count: int = 0
        self._sum: float = 0.0
        # +/-inf sentinels instead of None keep the hot path free of None checks.
        self._min: float = math.inf
        self._max: float = -math.inf

    # -- hot path -------------------------------------------------------------

    def record(self, seconds: float) -> None:
        """Record one duration in seconds.  Called once per HTTP request.

        Kept to a couple of comparisons, one log/ceil and one dict update.
        Zero, negative (clock skew) and NaN durations count as 0.
        """
        self._count += 1
        if seconds > 1e-6:  # MIN_TRACKED_VALUE, inlined: saves a global lookup
            self._sum += seconds
            if seconds < self._min:
                self._min = seconds
            if seconds > self._max:
                self._max = seconds
            if seconds <= 3600.0:  # MAX_TRACKED_VALUE
                i = _ceil(_log(seconds) * _INV_LOG_GAMMA)
            else:
                i = TOP_INDEX
            b = self._buckets
            b[i] = b.get(i, 0) + 1
        else:
            self._zero += 1
            if not seconds > 0.0:  # negative, -0.0 or NaN -> 0
                seconds = 0.0
            self._sum += seconds
            if seconds < self._min:
                self._min = seconds
            if seconds > self._max:
                self._max = seconds

    # -- read-only summary ----------------------------------------------------

    @property
    def count(self) -> int:
        """Number of recorded observations."""
        return self._count

    @property
    def sum(self) -> float:
        """Exact sum of observations in seconds (negatives counted as 0)."""
        return self._sum

    @property
    def min(self) -> float | None:
        """Exact smallest observation, or None when empty."""
        return self._min if self._count else None

    @property
    def max(self) -> float | None:
        """Exact largest observation, or None when empty."""
        return self._max if self._count else None

    @property
    def zero_count(self) -> int:
        """Observations at or below MIN_TRACKED_VALUE (reported as 0)."""
        return self._zero

    def buckets(self) -> dict[int, int]:
        """Copy of the sparse ``{bucket index: count}`` map (zero bucket excluded)."""
        return dict(self._buckets)

    @property
    def bucket_count(self) -> int:
        """Number of non-empty buckets, zero bucket included (drives encoded size).

        Deliberately not ``__len__``: an empty histogram should stay truthy.
        """
        return len(self._buckets) + (1 if self._zero else 0)

    # -- combining ------------------------------------------------------------

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s observations into ``self`` (exact: same layout)."""
        if not isinstance(other, LatencyHistogram):
            raise TypeError(f"cannot merge {type(other).__name__} into LatencyHistogram")
        if other._count == 0:
            return
        b = self._buckets
        if other is self:
            for i in b:
                b[i] *= 2
        else:
            get = b.get
            for i, c in other._buckets.items():
                b[i] = get(i, 0) + c
        self._zero += other._zero
        self._count += other._count
        self._sum += other._sum
        if other._min < self._min:
            self._min = other._min
        if other._max > self._max:
            self._max = other._max

    @classmethod
    def merged(cls, histograms: Iterable[LatencyHistogram]) -> LatencyHistogram:
        """New histogram combining all ``histograms`` (e.g. minute -> hour rollup)."""
        out = cls()
        for h in histograms:
            out.merge(h)
        return out

    def copy(self) -> LatencyHistogram:
        """Independent copy (e.g. to snapshot before flushing)."""
        h = LatencyHistogram.__new__(LatencyHistogram)
        h._buckets = dict(self._buckets)
        h._zero = self._zero
        h._count = self._count
        h._sum = self._sum
        h._min = self._min
        h._max = self._max
        return h

    # -- queries --------------------------------------------------------------

    def quantile(self, q: float) -> float | None:
        """Estimate of the value at rank ``ceil(q * count)`` ("lower" nearest rank).

        Within RELATIVE_ACCURACY of the true sample value for tracked values;
        zero-bucket values come back as 0 (then clamped to ``min``).  The result
        is clamped into ``[min, max]``, which can only reduce the error, and
        ranks 1 and ``count`` return the exact ``min``/``max`` (so ``q=1.0`` is
        exact even above the 1 h clamp).
        Returns None when the histogram is empty.
        """
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """Several quantiles with one sort of the buckets (p50/p95/p99 at once)."""
        for q in qs:
            if not 0.0 <= q <= 1.0:  # also rejects NaN
                raise ValueError(f"quantile must be in [0, 1], got {q!r}")
        n = self._count
        if n == 0:
            return [None] * len(qs)
        ranks = sorted((nearest_rank(q, n), k) for k, q in enumerate(qs))
        out: list[float | None] = [None] * len(qs)
        lo, hi = self._min, self._max
        items = iter(sorted(self._buckets.items()))
        seen = self._zero
        value = 0.0
        for rank, k in ranks:
            # The extreme ranks are known exactly: no bucket error at all.
            if rank >= n:
                out[k] = hi
                continue
            if rank == 1:
                out[k] = lo
                continue
            while seen < rank:
                i, c = next(items)  # cannot exhaust: sum of counts == n >= rank
                seen += c
                value = bucket_value(i)
            out[k] = min(max(value, lo), hi)
        return out

    def cumulative_buckets(self, bounds: Sequence[float] = PROMETHEUS_BUCKETS) -> list[tuple[float, int]]:
        """Prometheus-style cumulative counts: ``[(le, observations <= le), ...]``.

        ``bounds`` must be ascending; one entry is returned per bound (the
        implied ``+Inf`` bucket is ``count``; a ``math.inf`` bound is honoured).

        Computed from bucket indices: bucket ``i`` counts under ``le`` when its
        upper edge ``gamma**i <= le * (1 + 1e-9)`` (the epsilon absorbs float
        rounding when an edge coincides with a bound).  Consequence: the count
        is never too high, and is too low only by the observations in the one
        log bucket straddling ``le`` that are ``<= le`` -- i.e. observations in
        ``(le / gamma, le]``, within about 2% (one bucket width) below the
        bound.  Zero-bucket observations count under every ``le >=
        MIN_TRACKED_VALUE``; the top (clamped) bucket counts only under +Inf.
        """
        prev = -math.inf
        limits: list[int | float] = []
        for le in bounds:
            if not le >= prev:
                raise ValueError("bounds must be ascending and not NaN")
            prev = le
            limits.append(self._max_index_under(le))
        zero_ok = [le >= MIN_TRACKED_VALUE for le in bounds]
        items = sorted(self._buckets.items())
        out: list[tuple[float, int]] = []
        pos = 0
        acc = 0
        for le, limit, zok in zip(bounds, limits, zero_ok, strict=False):
            while pos < len(items) and items[pos][0] <= limit:
                acc += items[pos][1]
                pos += 1
            out.append((le, acc + (self._zero if zok else 0)))
        return out

    @staticmethod
    def _max_index_under(le: float) -> int | float:
        """Largest bucket index whose upper edge is <= le*(1+1e-9) (inf for +Inf)."""
        if le == math.inf:
            return math.inf
        if le <= MIN_TRACKED_VALUE:
            return -math.inf
        threshold = le * (1.0 + 1e-9)
        i = math.floor(_log(threshold) * _INV_LOG_GAMMA)
        # Correct the float estimate against the exact edge rule.
        while GAMMA ** (i + 1) <= threshold:
            i += 1
        while GAMMA ** i > threshold:
            i -= 1
        # The top bucket's real upper edge is +Inf (it holds clamped values).
        return min(i, TOP_INDEX - 1)

    # -- serialization --------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Compact versioned encoding for a SQL BLOB.

        Layout (little endian)::

            u8      FORMAT_VERSION
            varint  count
            f64 x3  sum, min, max   (min=+inf, max=-inf when empty)
            varint  zero-bucket count
            varint  number of buckets N
            N x     (varint delta, varint count)   sorted by index; the first
                    delta is the zigzag index, later ones are index - previous
                    index (always >= 1)

        A route-minute with ~250 distinct buckets takes ~500 bytes.
        """
        out = bytearray((FORMAT_VERSION,))
        _put_varint(out, self._count)
        out += _DOUBLES.pack(self._sum, self._min, self._max)
        _put_varint(out, self._zero)
        b = self._buckets
        _put_varint(out, len(b))
        prev = None
        for i in sorted(b):
            _put_varint(out, _zigzag(i) if prev is None else i - prev)
            _put_varint(out, b[i])
            prev = i
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> LatencyHistogram:
        """Decode ``to_bytes`` output; raises ValueError on any malformed input."""
        buf = bytes(data)
        if not buf:
            raise ValueError("empty histogram encoding")
        if buf[0] != FORMAT_VERSION:
            raise ValueError(f"unsupported histogram encoding version {buf[0]}")
        pos = 1
        count, pos = _get_varint(buf, pos)
        if pos + _DOUBLES.size > len(buf):
            raise ValueError("truncated histogram encoding (doubles)")
        s, lo, hi = _DOUBLES.unpack_from(buf, pos)
        pos += _DOUBLES.size
        zero, pos = _get_varint(buf, pos)
        nb, pos = _get_varint(buf, pos)
        if nb > len(buf):  # each bucket needs >= 2 bytes; cheap sanity bound
            raise ValueError("bucket count exceeds encoding size")
        buckets: dict[int, int] = {}
        prev: int | None = None
        for _ in range(nb):
            d, pos = _get_varint(buf, pos)
            c, pos = _get_varint(buf, pos)
            if prev is None:
                i = _unzigzag(d)
            else:
                if d < 1:
                    raise ValueError("bucket indices not strictly increasing")
                i = prev + d
            if c < 1:
                raise ValueError("empty bucket in histogram encoding")
            buckets[i] = c
            prev = i
        if pos != len(buf):
            raise ValueError("trailing bytes after histogram encoding")
        return cls._validated(buckets, zero, count, s, lo, hi)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (min/max None when empty; buckets as [index, count])."""
        return {
            "version": FORMAT_VERSION,
            "count": self._count,
            "sum": self._sum,
            "min": self.min,
            "max": self.max,
            "zero": self._zero,
            "buckets": [[i, self._buckets[i]] for i in sorted(self._buckets)],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LatencyHistogram:
        """Inverse of ``to_dict``; raises ValueError on malformed input."""
        try:
            if d["version"] != FORMAT_VERSION:
                raise ValueError(f"unsupported histogram version {d['version']!r}")
            buckets: dict[int, int] = {}
            for i, c in d["buckets"]:
                if type(i) is not int or type(c) is not int or c < 1 or i in buckets:
                    raise ValueError("bad bucket entry")
                buckets[i] = c
            count, zero = d["count"], d["zero"]
            if type(count) is not int or type(zero) is not int or zero < 0:
                raise ValueError("bad count")
            lo = math.inf if d["min"] is None else float(d["min"])
            hi = -math.inf if d["max"] is None else float(d["max"])
            s = float(d["sum"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed histogram dict: {e}") from e
        return cls._validated(buckets, zero, count, s, lo, hi)

    @classmethod
    def _validated(
        cls, buckets: dict[int, int], zero: int, count: int, s: float, lo: float, hi: float
    ) -> LatencyHistogram:
        if zero + sum(buckets.values()) != count:
            raise ValueError("bucket counts do not add up to count")
        if buckets and (min(buckets) < MIN_INDEX or max(buckets) > TOP_INDEX):
            raise ValueError("bucket index outside the shared layout")
        if count and not lo <= hi:
            raise ValueError("min > max")
        h = cls()
        h._buckets = buckets
        h._zero = zero
        h._count = count
        h._sum = s
        if count:
            h._min = lo
            h._max = hi
        return h

    # -- misc -----------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return (
            self._count == other._count
            and self._zero == other._zero
            and self._buckets == other._buckets
            and self._sum == other._sum
            and self.min == other.min
            and self.max == other.max
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        if not self._count:
            return "LatencyHistogram(count=0)"
        p50, p95, p99 = self.quantiles((0.5, 0.95, 0.99))
        return (
            f"LatencyHistogram(count={self._count}, min={self._min:.6g}, max={self._max:.6g}, "
            f"p50={p50:.6g}, p95={p95:.6g}, p99={p99:.6g}, buckets={self.bucket_count})"
        )
