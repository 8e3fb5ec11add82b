"""Every string that leaves a decoder passes here: made storable, scrubbed of PII, then cut.

Text is made storable (lone surrogates replaced, NUL and other control characters removed:
the store and the encoders refuse them), scrubbed by the PII sanitiser, and cut to its limit.

A very long value is cut *before* scrubbing, to its limit plus a margin, so that scrubbing a
10 MB string costs no more than scrubbing a short one. That first cut may split a secret
(``jane.doe@exa`` no longer looks like an e-mail address), and the split piece sits at the
cut end, so after scrubbing the last ``_CUT_GUARD`` characters at that end are dropped too:
no piece of an unscrubbed secret shorter than the guard survives. (Only the guard's length
bounds this: a 600-character e-mail local part cut before its ``@`` would keep its first
characters, which name nobody.)
"""
from __future__ import annotations

import re

from monitoring.security.pii import REDACTED, is_sensitive_key, sanitise_text

# Wider than any card number, e-mail address or key=value pair the sanitiser recognises.
_MARGIN = 1024
_CUT_GUARD = 512
# C0 controls except tab, newline and carriage return, plus DEL.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
TRUNCATION_MARK = "\n[... truncated ...]\n"


def storable(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD and control characters removed."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A str holds no surrogate pairs (JSON decoding joins them), so every surrogate is lone.
        text = _SURROGATE_RE.sub("\ufffd", text)
    return _CONTROL_RE.sub("", text)


def _scrubbed_head(value: str, max_chars: int) -> str:
    """The first (at most) ``max_chars`` characters of ``value`` once scrubbed."""
    if len(value) <= max_chars + _MARGIN:
        return sanitise_text(storable(value))[:max_chars]
    text = sanitise_text(storable(value[: max_chars + _MARGIN]))
    return text[: max(0, min(max_chars, len(text) - _CUT_GUARD))]


def _scrubbed_tail(value: str, max_chars: int) -> str:
    """The last (at most) ``max_chars`` characters of ``value`` once scrubbed."""
    if len(value) <= max_chars + _MARGIN:
        text = sanitise_text(storable(value))
        return text[-max_chars:] if max_chars else ""
    text = sanitise_text(storable(value[-(max_chars + _MARGIN):]))
    keep = max(0, min(max_chars, len(text) - _CUT_GUARD))
    return text[len(text) - keep:]


def clean_text(value: str, max_chars: int) -> str:
    """Storable, scrubbed text of at most ``max_chars`` characters."""
    if not value or max_chars <= 0:
        return ""
    return _scrubbed_head(value, max_chars)


def clean_optional(value: object, max_chars: int) -> str | None:
    """``clean_text`` for a value that may be absent or of the wrong type (then None)."""
    if not isinstance(value, str) or not value:
        return None
    return clean_text(value, max_chars) or None


def clean_long_text(value: str, max_chars: int) -> str:
    """Like ``clean_text`` for stack traces: keeps the head and the tail when it must cut.

    Where the innermost frame is depends on the language (last in Python, first in Java,
    JavaScript, Go...), so both ends are kept and the middle is dropped.
    """
    text = clean_text(value, max_chars + 1) if len(value) <= max_chars + _MARGIN else None
    if text is not None and len(text) <= max_chars:
        return text
    half = max(0, (max_chars - len(TRUNCATION_MARK)) // 2)
    return _scrubbed_head(value, half) + TRUNCATION_MARK + _scrubbed_tail(value, half)


def clean_pairs(pairs: list[tuple[str, str]], max_key_chars: int, max_value_chars: int) -> tuple[tuple[str, str], ...]:
    """Name/value pairs (tags) scrubbed: a value under a sensitive name becomes ``[redacted]``."""
    cleaned: dict[str, str] = {}
    for key, value in pairs:
        name = clean_text(key, max_key_chars)
        if not name:
            continue
        if is_sensitive_key(key) or is_sensitive_key(name):
            cleaned[name] = REDACTED
        else:
            cleaned[name] = clean_text(value, max_value_chars)
    return tuple(cleaned.items())
