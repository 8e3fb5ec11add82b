"""dashboard_sessions: sign-ins that sign-out can end

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 03:09:43.081389

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('dashboard_sessions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('issued_at', sa.Double(), nullable=False),
    sa.Column('expires_at', sa.Double(), nullable=False),
    sa.Column('revoked_at', sa.Double(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dashboard_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_dashboard_sessions_expires', ['expires_at'], unique=False)



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('dashboard_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_dashboard_sessions_expires')

    op.drop_table('dashboard_sessions')
