"""photo job retries and photo sync marks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 05:26:56.415550
"""

from alembic import op
import sqlalchemy as sa


import core.types

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('feed_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('images_attempt', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('images_next_attempt_at', core.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('images_error', sa.Text(), nullable=True))

    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('photos_synced_at', core.types.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_column('photos_synced_at')

    with op.batch_alter_table('feed_runs', schema=None) as batch_op:
        batch_op.drop_column('images_error')
        batch_op.drop_column('images_next_attempt_at')
        batch_op.drop_column('images_attempt')

