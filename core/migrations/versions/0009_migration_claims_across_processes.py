"""migration manifest shared by several processes: item leases, a listing lease, recovered flag

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 12:30:00
"""

from alembic import op
import sqlalchemy as sa


import core.types

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('migration_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lister', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('lister_expires_at', core.types.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('migration_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('lease_expires_at', core.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('recovered', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('migration_items', schema=None) as batch_op:
        batch_op.drop_column('recovered')
        batch_op.drop_column('lease_expires_at')
        batch_op.drop_column('lease_owner')

    with op.batch_alter_table('migration_jobs', schema=None) as batch_op:
        batch_op.drop_column('lister_expires_at')
        batch_op.drop_column('lister')
