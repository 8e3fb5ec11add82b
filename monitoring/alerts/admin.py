"""What the admin actions carry: who asks (for the audit log), and input with problems (one
{"field", "message"} per bad field, so that an answer names them all at once: monitoring.problems)."""
from __future__ import annotations

from dataclasses import dataclass

from monitoring.problems import InvalidInput


@dataclass(frozen=True)
class Actor:
    """Who asks for a change: the key id, the anonymised client address, the path."""

    who: str
    client_ip: str = ""
    path: str = ""


class InvalidRule(InvalidInput):
    code = "invalid_rule"
    refusal = "the rule is not valid"


class InvalidSilence(InvalidInput):
    code = "invalid_silence"
    refusal = "the silence is not valid"


class InvalidInhibitions(InvalidInput):
    code = "invalid_inhibitions"
    refusal = "the inhibition rules are not valid"
