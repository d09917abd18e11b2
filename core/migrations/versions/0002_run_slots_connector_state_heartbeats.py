"""run slots, connector state, heartbeats, listing record hashes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 05:02:27.858500
"""

from alembic import op
import sqlalchemy as sa


import core.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Server defaults fill the rows that exist already; the models supply values from then on.
    with op.batch_alter_table('feed_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('slot', sa.String(length=32), nullable=False, server_default='full'))
        batch_op.add_column(sa.Column('heartbeat_at', core.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_feed_runs_source_id_business_date_slot'), ['source_id', 'business_date', 'slot'])

    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.JSON(), nullable=False, server_default='{}'))

    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('record_hash', sa.String(length=32), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_column('record_hash')

    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.drop_column('state')

    with op.batch_alter_table('feed_runs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_feed_runs_source_id_business_date_slot'), type_='unique')
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('slot')

