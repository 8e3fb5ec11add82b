"""What the admin actions carry: who asks (for the audit log), and input with problems (one
{"field", "message"} per bad field, so that an answer names them all at once)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """Who asks for a change: the key id, the anonymised client address, the path."""

    who: str
    client_ip: str = ""
    path: str = ""


class InvalidInput(ValueError):
    def __init__(self, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p['field']}: {p['message']}" for p in problems))


class InvalidRule(InvalidInput):
    pass


class InvalidSilence(InvalidInput):
    pass


class InvalidInhibitions(InvalidInput):
    pass
