"""completeness before removal: held removals, run warnings, photos linked, reject keys

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 12:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


import core.types

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_removed_share', sa.Float(), server_default='0.1', nullable=False))

    with op.batch_alter_table('feed_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('photos_linked', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('warning', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('removals_held', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('removals_released_at', core.types.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('feed_rejects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('listing_key', sa.String(length=128), nullable=True))

    op.create_table('held_removals',
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('listing_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name=op.f('fk_held_removals_listing_id_listings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['feed_runs.id'], name=op.f('fk_held_removals_run_id_feed_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'listing_id', name=op.f('pk_held_removals'))
    )
    with op.batch_alter_table('held_removals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_held_removals_listing_id'), ['listing_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('held_removals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_held_removals_listing_id'))

    op.drop_table('held_removals')
    with op.batch_alter_table('feed_rejects', schema=None) as batch_op:
        batch_op.drop_column('listing_key')

    with op.batch_alter_table('feed_runs', schema=None) as batch_op:
        batch_op.drop_column('removals_released_at')
        batch_op.drop_column('removals_held')
        batch_op.drop_column('warning')
        batch_op.drop_column('photos_linked')

    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.drop_column('max_removed_share')
