"""Persistence: the one module that talks SQL. See database.Store."""
from monitoring.store.database import Store

__all__ = ["Store"]
