"""search indexes that serve keyset order and counts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 06:33:35.989244
"""

from alembic import op
import sqlalchemy as sa


import core.types

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_listings_list_price'))
        batch_op.drop_index(batch_op.f('ix_listings_modification_timestamp'))
        batch_op.create_index(batch_op.f('ix_listings_list_price_id'), ['list_price', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_listings_listing_key_id'), ['listing_key', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_listings_modification_timestamp_id'), ['modification_timestamp', 'id'], unique=False)
        batch_op.create_index('ix_listings_search_count', ['standard_status', 'property_type', 'list_price', 'source_id', 'removed_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_index('ix_listings_search_count')
        batch_op.drop_index(batch_op.f('ix_listings_modification_timestamp_id'))
        batch_op.drop_index(batch_op.f('ix_listings_listing_key_id'))
        batch_op.drop_index(batch_op.f('ix_listings_list_price_id'))
        batch_op.create_index(batch_op.f('ix_listings_modification_timestamp'), ['modification_timestamp'], unique=False)
        batch_op.create_index(batch_op.f('ix_listings_list_price'), ['list_price'], unique=False)

