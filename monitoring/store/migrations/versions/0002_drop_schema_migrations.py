"""Drop the hand-rolled migrations' bookkeeping table: Alembic's alembic_version replaces it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 01:25:00

"""
from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Only stores made before Alembic have it; IF EXISTS keeps a fresh store's upgrade simple.
    op.execute("DROP TABLE IF EXISTS schema_migrations")


def downgrade() -> None:
    op.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description VARCHAR(200) NOT NULL, "
        "applied_at DOUBLE PRECISION NOT NULL)"
    )
