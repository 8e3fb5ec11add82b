"""instances.stopped_at: a cleanly stopped instance marks itself, and leaves the zones at once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 01:45:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable and without a default: every instance that existed before is one that did not stop cleanly
    # as far as anyone knows, which is what NULL says; a table change SQLite can make in place.
    if "stopped_at" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("instances")}:
        op.add_column("instances", sa.Column("stopped_at", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("stopped_at")
