"""search indexes for a million listings: city_key, covering range indexes, planner statistics

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 14:00:00

- ``listings.city_key``: the city as searches match it (core.reso.city_key), filled here for the
  rows already loaded; indexed with the two sort orders a city page uses most.
- the price and time indexes carry source_id, removed_at and the coordinates, so counting a
  price or time range for a client's sources, and walking an area's page in price or time
  order, read the index alone;
- the plain city index goes (nothing searches on the raw column any more);
- the area index holds the coordinates, the sort values and what every search tests, so a box
  or radius page is chosen from the index alone;
- then planner statistics: without them SQLite drives every search through the source index
  and reads the whole table (4 s a call at a million listings).
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

BATCH = 5000


def _city_key(city):
    # The same rule as core.reso.city_key, frozen here as migrations must be.
    if city is None:
        return None
    return " ".join(city.split()).casefold() or None


def upgrade() -> None:
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('city_key', sa.String(length=128), nullable=True))
    _fill_city_keys()
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_index('ix_listings_city')
        batch_op.drop_index('ix_listings_list_price_id')
        batch_op.drop_index('ix_listings_modification_timestamp_id')
        batch_op.drop_index('ix_listings_latitude_longitude')
        batch_op.create_index('ix_listings_area', ['latitude', 'longitude', 'list_price', 'modification_timestamp',
                                                   'id', 'source_id', 'removed_at'], unique=False)
        batch_op.create_index('ix_listings_city_key_list_price_id', ['city_key', 'list_price', 'id'], unique=False)
        batch_op.create_index('ix_listings_city_key_modification_timestamp_id',
                              ['city_key', 'modification_timestamp', 'id'], unique=False)
        batch_op.create_index('ix_listings_price_order',
                              ['list_price', 'id', 'source_id', 'removed_at', 'latitude', 'longitude'], unique=False)
        batch_op.create_index('ix_listings_time_order',
                              ['modification_timestamp', 'id', 'source_id', 'removed_at', 'latitude', 'longitude'],
                              unique=False)
    _analyze()


def _fill_city_keys() -> None:
    bind = op.get_bind()
    listings = sa.table('listings', sa.column('id', sa.Integer), sa.column('city', sa.String),
                        sa.column('city_key', sa.String))
    update = sa.update(listings).where(listings.c.id == sa.bindparam('_id')).values(city_key=sa.bindparam('_key'))
    last = 0
    while True:
        rows = bind.execute(sa.select(listings.c.id, listings.c.city).where(listings.c.id > last,
                            listings.c.city.is_not(None)).order_by(listings.c.id).limit(BATCH)).all()
        if not rows:
            return
        bind.execute(update, [{"_id": row_id, "_key": _city_key(city)} for row_id, city in rows])
        last = rows[-1][0]


def _analyze() -> None:
    dialect = op.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        op.execute("ANALYZE listings")
        op.execute("ANALYZE sources")
    else:
        op.execute("ANALYZE TABLE listings, sources")


def downgrade() -> None:
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_index('ix_listings_area')
        batch_op.create_index('ix_listings_latitude_longitude', ['latitude', 'longitude'], unique=False)
        batch_op.drop_index('ix_listings_time_order')
        batch_op.drop_index('ix_listings_price_order')
        batch_op.drop_index('ix_listings_city_key_modification_timestamp_id')
        batch_op.drop_index('ix_listings_city_key_list_price_id')
        batch_op.create_index('ix_listings_modification_timestamp_id', ['modification_timestamp', 'id'], unique=False)
        batch_op.create_index('ix_listings_list_price_id', ['list_price', 'id'], unique=False)
        batch_op.create_index('ix_listings_city', ['city'], unique=False)
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_column('city_key')
