"""service dimension: request_routes, error_groups and error_totals per service

Rows from before belong to the default service (``app``, monitoring.store.metrics_tables.
DEFAULT_SERVICE): the column's server default fills them as it is added. The unique key of
request_routes now leads with the service, so a read for one service is an index range;
error_totals keeps one running total per service (primary key name + service).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 06:17:15.456127

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_SERVICE = "app"  # a copy: a revision must not change when the code's constant does


def _service_column() -> sa.Column[str]:
    return sa.Column('service', sa.String(length=100), server_default=DEFAULT_SERVICE, nullable=False)


def _error_totals(primary_key: list[str]) -> sa.Table:
    """error_totals (with its service column) keyed by ``primary_key``: the shape a SQLite rebuild copies into."""
    return sa.Table(
        'error_totals', sa.MetaData(),
        sa.Column('name', sa.String(length=32), primary_key=True),
        sa.Column('service', sa.String(length=100), server_default=DEFAULT_SERVICE, nullable=False,
                  primary_key='service' in primary_key),
        sa.Column('value', sa.BigInteger(), nullable=False),
    )


def _set_error_totals_key(primary_key: list[str]) -> None:
    """PostgreSQL changes a primary key in place; SQLite only by rebuilding the table (batch mode)."""
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("error_totals_pkey", "error_totals", type_="primary")
        op.create_primary_key("error_totals_pkey", "error_totals", primary_key)
    else:
        with op.batch_alter_table('error_totals', recreate="always", copy_from=_error_totals(primary_key)):
            pass


def upgrade() -> None:
    with op.batch_alter_table('error_groups', schema=None) as batch_op:
        batch_op.add_column(_service_column())
        batch_op.create_index('ix_error_groups_service_last_seen', ['service', 'last_seen'], unique=False)

    with op.batch_alter_table('error_totals', schema=None) as batch_op:
        batch_op.add_column(_service_column())
    _set_error_totals_key(['name', 'service'])

    with op.batch_alter_table('request_routes', schema=None) as batch_op:
        batch_op.add_column(_service_column())
        batch_op.drop_index('ux_request_routes_key')
        batch_op.create_index('ux_request_routes_key', ['service', 'route', 'method', 'internal'], unique=True)


def downgrade() -> None:
    """Back to one service: only possible while every row is the default service's (else the keys collide)."""
    with op.batch_alter_table('request_routes', schema=None) as batch_op:
        batch_op.drop_index('ux_request_routes_key')
        batch_op.create_index('ux_request_routes_key', ['route', 'method', 'internal'], unique=True)
        batch_op.drop_column('service')

    _set_error_totals_key(['name'])
    with op.batch_alter_table('error_totals', schema=None) as batch_op:
        batch_op.drop_column('service')

    with op.batch_alter_table('error_groups', schema=None) as batch_op:
        batch_op.drop_index('ix_error_groups_service_last_seen')
        batch_op.drop_column('service')
