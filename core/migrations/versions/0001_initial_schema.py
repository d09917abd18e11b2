"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-30 04:48:34.341803
"""

from alembic import op
import sqlalchemy as sa


import core.types

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('clients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('password_sealed', sa.Text(), nullable=True),
    sa.Column('all_sources', sa.Boolean(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', core.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clients')),
    sa.UniqueConstraint('name', name=op.f('uq_clients_name'))
    )
    op.create_table('geocode_cache',
    sa.Column('address', sa.String(length=255), nullable=False),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('precision', sa.String(length=16), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('created_at', core.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('address', name=op.f('pk_geocode_cache'))
    )
    op.create_table('sources',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('earliest_download', sa.Time(), nullable=False),
    sa.Column('repeat_every_seconds', sa.Integer(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('download', sa.JSON(), nullable=False),
    sa.Column('parse', sa.JSON(), nullable=False),
    sa.Column('images', sa.JSON(), nullable=False),
    sa.Column('created_at', core.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sources'))
    )
    op.create_table('ws_nonces',
    sa.Column('nonce', sa.String(length=128), nullable=False),
    sa.Column('seen_at', core.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('nonce', name=op.f('pk_ws_nonces'))
    )
    with op.batch_alter_table('ws_nonces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ws_nonces_seen_at'), ['seen_at'], unique=False)

    op.create_table('client_sources',
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_client_sources_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_client_sources_source_id_sources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('client_id', 'source_id', name=op.f('pk_client_sources'))
    )
    op.create_table('feed_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source_id', sa.String(length=64), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('step', sa.String(length=16), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', core.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lease_owner', sa.String(length=128), nullable=True),
    sa.Column('lease_expires_at', core.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('window_start', core.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('window_end', core.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', core.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', core.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', core.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('step_timings', sa.JSON(), nullable=False),
    sa.Column('bytes_downloaded', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rows_parsed', sa.Integer(), nullable=False),
    sa.Column('rows_rejected', sa.Integer(), nullable=False),
    sa.Column('rows_inserted', sa.Integer(), nullable=False),
    sa.Column('rows_updated', sa.Integer(), nullable=False),
    sa.Column('rows_unchanged', sa.Integer(), nullable=False),
    sa.Column('rows_removed', sa.Integer(), nullable=False),
    sa.Column('rows_geocoded', sa.Integer(), nullable=False),
    sa.Column('photos_fetched', sa.Integer(), nullable=False),
    sa.Column('photos_stored', sa.Integer(), nullable=False),
    sa.Column('photos_unchanged', sa.Integer(), nullable=False),
    sa.Column('photos_removed', sa.Integer(), nullable=False),
    sa.Column('photos_failed', sa.Integer(), nullable=False),
    sa.Column('photo_bytes', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('raw_keys', sa.JSON(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('images_ready', sa.Boolean(), nullable=False),
    sa.Column('images_ready_at', core.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('images_reset_at', core.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_feed_runs_source_id_sources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feed_runs'))
    )
    with op.batch_alter_table('feed_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feed_runs_images_ready'), ['images_ready'], unique=False)
        batch_op.create_index(batch_op.f('ix_feed_runs_source_id_business_date'), ['source_id', 'business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_feed_runs_status_next_attempt_at'), ['status', 'next_attempt_at'], unique=False)

    op.create_table('listings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source_id', sa.String(length=64), nullable=False),
    sa.Column('listing_key', sa.String(length=128), nullable=False),
    sa.Column('listing_id', sa.String(length=64), nullable=True),
    sa.Column('standard_status', sa.String(length=32), nullable=True),
    sa.Column('property_type', sa.String(length=64), nullable=True),
    sa.Column('property_sub_type', sa.String(length=64), nullable=True),
    sa.Column('list_price', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('bedrooms_total', sa.Integer(), nullable=True),
    sa.Column('bathrooms_total_integer', sa.Integer(), nullable=True),
    sa.Column('living_area', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('lot_size_acres', sa.Numeric(precision=12, scale=4), nullable=True),
    sa.Column('year_built', sa.Integer(), nullable=True),
    sa.Column('unparsed_address', sa.String(length=255), nullable=True),
    sa.Column('street_number', sa.String(length=32), nullable=True),
    sa.Column('street_name', sa.String(length=128), nullable=True),
    sa.Column('unit_number', sa.String(length=32), nullable=True),
    sa.Column('city', sa.String(length=128), nullable=True),
    sa.Column('state_or_province', sa.String(length=32), nullable=True),
    sa.Column('postal_code', sa.String(length=16), nullable=True),
    sa.Column('county_or_parish', sa.String(length=128), nullable=True),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('geocode_precision', sa.String(length=16), nullable=True),
    sa.Column('public_remarks', sa.Text(), nullable=True),
    sa.Column('list_agent_full_name', sa.String(length=128), nullable=True),
    sa.Column('list_office_name', sa.String(length=128), nullable=True),
    sa.Column('photos_count', sa.Integer(), nullable=False),
    sa.Column('photos_change_timestamp', core.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('modification_timestamp', core.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('first_seen', core.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen', core.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('removed_at', core.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_listings_source_id_sources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_listings')),
    sa.UniqueConstraint('source_id', 'listing_key', name=op.f('uq_listings_source_id_listing_key'))
    )
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_listings_city'), ['city'], unique=False)
        batch_op.create_index(batch_op.f('ix_listings_latitude_longitude'), ['latitude', 'longitude'], unique=False)
        batch_op.create_index(batch_op.f('ix_listings_list_price'), ['list_price'], unique=False)
        batch_op.create_index(batch_op.f('ix_listings_modification_timestamp'), ['modification_timestamp'], unique=False)
        batch_op.create_index(batch_op.f('ix_listings_postal_code'), ['postal_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_listings_source_id_standard_status'), ['source_id', 'standard_status'], unique=False)

    op.create_table('feed_rejects',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source_id', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('record', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['feed_runs.id'], name=op.f('fk_feed_rejects_run_id_feed_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feed_rejects'))
    )
    with op.batch_alter_table('feed_rejects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feed_rejects_run_id'), ['run_id'], unique=False)

    op.create_table('media',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('listing_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('order', sa.Integer(), nullable=False),
    sa.Column('media_key', sa.String(length=128), nullable=True),
    sa.Column('url', sa.String(length=1024), nullable=True),
    sa.Column('storage_key', sa.String(length=512), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('content_type', sa.String(length=64), nullable=True),
    sa.Column('bytes', sa.Integer(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('caption', sa.String(length=255), nullable=True),
    sa.Column('modification_timestamp', core.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name=op.f('fk_media_listing_id_listings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media')),
    sa.UniqueConstraint('listing_id', 'order', name=op.f('uq_media_listing_id_order'))
    )


def downgrade() -> None:
    op.drop_table('media')
    with op.batch_alter_table('feed_rejects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feed_rejects_run_id'))

    op.drop_table('feed_rejects')
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_listings_source_id_standard_status'))
        batch_op.drop_index(batch_op.f('ix_listings_postal_code'))
        batch_op.drop_index(batch_op.f('ix_listings_modification_timestamp'))
        batch_op.drop_index(batch_op.f('ix_listings_list_price'))
        batch_op.drop_index(batch_op.f('ix_listings_latitude_longitude'))
        batch_op.drop_index(batch_op.f('ix_listings_city'))

    op.drop_table('listings')
    with op.batch_alter_table('feed_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feed_runs_status_next_attempt_at'))
        batch_op.drop_index(batch_op.f('ix_feed_runs_source_id_business_date'))
        batch_op.drop_index(batch_op.f('ix_feed_runs_images_ready'))

    op.drop_table('feed_runs')
    op.drop_table('client_sources')
    with op.batch_alter_table('ws_nonces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ws_nonces_seen_at'))

    op.drop_table('ws_nonces')
    op.drop_table('sources')
    op.drop_table('geocode_cache')
    op.drop_table('clients')
