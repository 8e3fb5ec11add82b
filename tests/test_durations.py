"""Durations: one grammar read everywhere, one way of writing them, and the two agree."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from monitoring.durations import DAY, DURATION_HELP, HOUR, MINUTE, format_duration, parse_duration


def test_the_units() -> None:
    assert (MINUTE, HOUR, DAY) == (60, 3600, 86400)


@pytest.mark.parametrize(
    "text, seconds",
    [
        # every form some module accepted before they shared this parser
        ("0", 0), ("90", 90), ("1.5", 1.5), (" 90 ", 90),
        ("90s", 90), ("5m", 300), ("4h", 14400), ("1d", 86400), ("2D", 172800), ("1.5h", 5400),
        ("5 m", 300), (" 24h ", 86400), ("0s", 0), ("0.5s", 0.5),
        # and the forms this module writes
        ("1h30m", 5400), ("1h 30m", 5400), ("5d 14h 23m 45s", 5 * DAY + 14 * HOUR + 23 * MINUTE + 45),
        ("1m 30.5s", 90.5), ("1H30M", 5400),
    ],
)
def test_accepted_texts(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("value, seconds", [(0, 0.0), (90, 90.0), (1.5, 1.5), (86400.0, 86400.0)])
def test_numbers_are_seconds(value: float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "raw",
    ["", " ", "soon", "5 minutes", "5min", "-5m", "+5m", "1e3", "PT5M", "5m1h", "5m 5m", "1h30", "h", "1.m", ".5m",
     "nan", "inf", True, False, None, [], {}, float("nan"), float("inf"), "9" * 400 + "d"],
)
def test_refused_inputs_say_what_is_expected(raw: object) -> None:
    with pytest.raises(ValueError, match=f"^expected {DURATION_HELP}$"):
        parse_duration(raw)


def test_bounds_are_named_in_the_message() -> None:
    assert parse_duration("1m", MINUTE, 30 * DAY) == 60
    with pytest.raises(ValueError, match=f"^expected {DURATION_HELP}, from 1m to 30d$"):
        parse_duration("30s", MINUTE, 30 * DAY)
    with pytest.raises(ValueError, match=f"^expected {DURATION_HELP}, from 0 to 1h$"):
        parse_duration("2h", 0, HOUR)
    with pytest.raises(ValueError, match=f"^expected {DURATION_HELP}, from 1m$"):
        parse_duration(1, MINUTE)


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0s"), (-5, "0s"), (45, "45s"), (60, "1m"), (90, "1m 30s"), (300, "5m"), (3600, "1h"), (5400, "1h 30m"),
        (86400, "1d"), (30 * DAY, "30d"), (5 * DAY + 14 * HOUR + 23 * MINUTE + 45, "5d 14h 23m 45s"),
        (DAY + 1, "1d 1s"), (0.5, "0.5s"), (90.5, "1m 30.5s"), (1e-05, "0.00001s"), (59.9, "59.9s"),
    ],
)
def test_format_writes_the_non_zero_units_largest_first(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_refuses_what_is_not_a_length() -> None:
    for value in (math.inf, math.nan):
        with pytest.raises(ValueError):
            format_duration(value)


@given(st.integers(min_value=0, max_value=400 * DAY))
def test_format_then_parse_is_identity_for_whole_seconds(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@hypothesis_settings(max_examples=500)
@given(st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_format_then_parse_is_identity_for_any_length(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(min_value=0, max_value=400 * DAY))
def test_the_written_form_is_canonical(seconds: int) -> None:
    """Writing what was read gives the same text: one spelling per length."""
    text = format_duration(seconds)
    assert format_duration(parse_duration(text)) == text


@given(st.lists(st.tuples(st.sampled_from("dhms"), st.integers(min_value=0, max_value=10_000)), min_size=1, max_size=4,
                unique_by=lambda part: part[0]))
def test_any_units_largest_first_read_as_their_sum(parts: list[tuple[str, int]]) -> None:
    size = {"d": DAY, "h": HOUR, "m": MINUTE, "s": 1}
    parts.sort(key=lambda part: -size[part[0]])
    text = " ".join(f"{amount}{unit}" for unit, amount in parts)
    assert parse_duration(text) == sum(amount * size[unit] for unit, amount in parts)
    assert parse_duration(text.replace(" ", "")) == parse_duration(text)
