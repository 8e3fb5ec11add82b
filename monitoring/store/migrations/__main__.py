"""``python -m monitoring.store.migrations revision "message"``: autogenerate a revision."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from monitoring.store.database import Store, alembic_config
from monitoring.store.migrations import HEAD


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "revision":
        print('usage: python -m monitoring.store.migrations revision "what changes"', file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        store = Store(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        store.migrate()  # the scratch store at head, to compare the metadata against
        with store.write() as conn:
            command.revision(alembic_config(conn), message=argv[1], autogenerate=True, rev_id=f"{int(HEAD) + 1:04d}")
        store.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
