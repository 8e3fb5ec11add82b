"""Input with problems, named all at once: one ``{"field", "message"}`` per bad field.

The domain checks what it is given (a rule, a silence, a maintenance window, the inhibition
list: from the API and from settings alike) and raises a subclass of ``InvalidInput``; the
HTTP layer answers any of them the same way (400, the subclass's code, the first problem in the
message and every problem in ``items``: monitoring.api.contract).
"""
from __future__ import annotations


class InvalidInput(ValueError):
    """Input with ``problems``; ``code`` and ``refusal`` say what was refused, for the answer."""

    code = "invalid_input"
    refusal = "the input is not valid"

    def __init__(self, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p['field']}: {p['message']}" for p in problems))
