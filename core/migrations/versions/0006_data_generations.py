"""data generations: sources.data_generation, bumped by triggers on listings

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 13:00:00

The SOAP service caches search counts and answers under the data generations of the sources a
search covers. The database itself bumps them, in the transaction that changes the listings, so
no writer (the loader, the geocoder, the photo job, a seed, an operator's SQL) can leave a cached
answer stale.

- SQLite and MariaDB: row triggers (``FOR EACH ROW``; a bump is a primary-key update of one
  small row, about 2 µs per listing written on SQLite).
- PostgreSQL: statement triggers with transition tables, one bump per source per statement;
  an UPDATE bumps only the sources whose rows changed a column a search filters on or returns.

A migration that rebuilds ``listings`` (SQLite batch "move and copy") drops its triggers:
tests/integration/test_migrations.py fails if they are missing at head.
"""

from alembic import op
import sqlalchemy as sa


import core.types

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# The columns a search filters on, sorts on or returns (ListingSummary): changing one changes
# what a search counts or answers.
SEARCHABLE = (
    "source_id", "listing_key", "listing_id", "standard_status", "property_type", "list_price",
    "bedrooms_total", "bathrooms_total_integer", "living_area", "unparsed_address", "city",
    "state_or_province", "postal_code", "latitude", "longitude", "photos_count",
    "modification_timestamp", "removed_at",
)
BUMP = "UPDATE sources SET data_generation = data_generation + 1 WHERE id = {row}.source_id"


def upgrade() -> None:
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.add_column(sa.Column('data_generation', core.types.BigId, server_default='0', nullable=False))
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        _postgresql_triggers()
    else:
        _row_triggers(dialect)


def _row_triggers(dialect: str) -> None:
    columns = ", ".join(SEARCHABLE)
    changed = " OR ".join(f"NOT (OLD.{c} <=> NEW.{c})" if dialect != "sqlite" else f"OLD.{c} IS NOT NEW.{c}"
                          for c in SEARCHABLE)
    if dialect == "sqlite":
        op.execute(f"CREATE TRIGGER listings_generation_insert AFTER INSERT ON listings BEGIN "
                   f"{BUMP.format(row='NEW')}; END")
        op.execute(f"CREATE TRIGGER listings_generation_delete AFTER DELETE ON listings BEGIN "
                   f"{BUMP.format(row='OLD')}; END")
        op.execute(f"CREATE TRIGGER listings_generation_update AFTER UPDATE OF {columns} ON listings "
                   f"WHEN {changed} BEGIN {BUMP.format(row='OLD')}; {BUMP.format(row='NEW')}; END")
        return
    op.execute(f"CREATE TRIGGER listings_generation_insert AFTER INSERT ON listings FOR EACH ROW "
               f"{BUMP.format(row='NEW')}")
    op.execute(f"CREATE TRIGGER listings_generation_delete AFTER DELETE ON listings FOR EACH ROW "
               f"{BUMP.format(row='OLD')}")
    op.execute(f"CREATE TRIGGER listings_generation_update AFTER UPDATE ON listings FOR EACH ROW "
               f"BEGIN IF {changed} THEN {BUMP.format(row='OLD')}; {BUMP.format(row='NEW')}; END IF; END")


def _postgresql_triggers() -> None:
    changed = " OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in SEARCHABLE)
    op.execute("""
        CREATE FUNCTION listings_generation_rows() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE sources SET data_generation = data_generation + 1
            WHERE id IN (SELECT DISTINCT source_id FROM changed_rows);
            RETURN NULL;
        END $$""")
    op.execute(f"""
        CREATE FUNCTION listings_generation_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE sources SET data_generation = data_generation + 1
            WHERE id IN (SELECT o.source_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE {changed}
                         UNION SELECT n.source_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE {changed});
            RETURN NULL;
        END $$""")
    op.execute("CREATE TRIGGER listings_generation_insert AFTER INSERT ON listings "
               "REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION listings_generation_rows()")
    op.execute("CREATE TRIGGER listings_generation_delete AFTER DELETE ON listings "
               "REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION listings_generation_rows()")
    op.execute("CREATE TRIGGER listings_generation_update AFTER UPDATE ON listings "
               "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
               "EXECUTE FUNCTION listings_generation_update()")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name in ("insert", "delete", "update"):
        on = " ON listings" if dialect == "postgresql" else ""
        op.execute(f"DROP TRIGGER IF EXISTS listings_generation_{name}{on}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS listings_generation_rows()")
        op.execute("DROP FUNCTION IF EXISTS listings_generation_update()")
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.drop_column('data_generation')
