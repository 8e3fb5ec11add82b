"""Centinela's pydantic models, found by walking BaseModel's subclasses (imported by test children too)."""
from __future__ import annotations

from typing import Any


def centinela_models() -> list[Any]:
    """Every model class defined under monitoring/ that is imported so far, pydantic's
    parametrised generics (``RootModel[Any]``, built once and shared) left out."""
    from pydantic import BaseModel

    found, todo = [], [BaseModel]
    while todo:
        for model in todo.pop().__subclasses__():
            todo.append(model)
            if model.__module__.startswith("monitoring.") and "[" not in model.__qualname__:
                found.append(model)
    return found
