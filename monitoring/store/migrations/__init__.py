"""Schema changes as Alembic revisions (``versions/``), applied by ``Store.migrate()``.

To change the schema: edit the table declaration in ``monitoring/store/*_tables.py``, then
``.venv/bin/python -m monitoring.store.migrations revision "what changes"`` autogenerates a
revision against a scratch SQLite store at head; read it, adjust it, and set ``HEAD`` below to
its id (a test checks that HEAD is the scripts' head, and that the metadata and a migrated
store agree).
"""
from __future__ import annotations

# The newest revision: a store already there skips Alembic entirely at start-up (no import,
# no script parsing in every worker).
HEAD = "0006"
# The schema that the hand-rolled migrations (before Alembic) left behind: such a store is
# stamped at this revision, then upgraded.
BASELINE = "0001"
