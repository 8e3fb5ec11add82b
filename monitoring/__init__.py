"""Centinela's monitoring package: ``from monitoring import Monitoring`` for the Flask extension.

The extension is imported lazily so that domain modules (which never import Flask) stay light.
"""
from typing import Any


def __getattr__(name: str) -> Any:
    if name == "Monitoring":
        from monitoring.extension import Monitoring

        return Monitoring
    raise AttributeError(name)
