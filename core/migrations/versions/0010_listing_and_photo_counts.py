"""listing and photo counts per source, kept by triggers; a run's listings at its end

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 10:00:00

Metrics and the status page need listings per (source, status, removed) and photos per source
at every scrape; counting them would read every listing (and every photo) each time. These two
small tables are kept by the database itself, in the transaction that writes ``listings`` or
``media``, so no writer (the loader, removals, the photo job, a seed, an operator's SQL) can
leave them wrong — the same approach as the data generations of 0006:

- SQLite and MariaDB: row triggers; a count is an upsert of one small row.
- PostgreSQL: statement triggers with transition tables, one upsert per key per statement.

Photos follow their listing: the media triggers count a photo under its listing's source, and
a listing that is deleted takes its photos off first (a BEFORE DELETE row trigger), because a
cascading delete runs after the listing is gone (PostgreSQL, SQLite) or fires no trigger at
all (MariaDB). The media triggers skip photos whose listing is already gone.

The counts have no foreign key to ``sources``: a source's deletion cascades to its listings,
whose triggers then write here. On SQLite and PostgreSQL those triggers bring the source's
counts to zero; on MariaDB (no triggers for cascaded rows) the source's own delete trigger
drops them. Readers join ``sources``.
"""

from alembic import op
import sqlalchemy as sa

import core.types

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

KEY = "coalesce({row}.standard_status, ''), {row}.removed_at IS NOT NULL"
LISTING_TRIGGERS = ("listing_counts_insert", "listing_counts_delete", "listing_counts_update")
PHOTO_TRIGGERS = ("photo_counts_insert", "photo_counts_delete", "photo_counts_update", "photo_counts_listing_delete")


def upgrade() -> None:
    op.create_table(
        'listing_counts',
        sa.Column('source_id', sa.String(length=64), nullable=False),
        sa.Column('standard_status', sa.String(length=32), nullable=False),
        sa.Column('removed', sa.Boolean(), nullable=False),
        sa.Column('listings', core.types.BigId, nullable=False),
        sa.PrimaryKeyConstraint('source_id', 'standard_status', 'removed', name=op.f('pk_listing_counts')),
    )
    op.create_table(
        'photo_counts',
        sa.Column('source_id', sa.String(length=64), nullable=False),
        sa.Column('stored', core.types.BigId, nullable=False),
        sa.Column('linked', core.types.BigId, nullable=False),
        sa.PrimaryKeyConstraint('source_id', name=op.f('pk_photo_counts')),
    )
    with op.batch_alter_table('feed_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('listings_active', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_feed_runs_source_id_id'), ['source_id', 'id'], unique=False)
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        _postgresql_triggers()
    else:
        _row_triggers(dialect)
    _backfill()


def _backfill() -> None:
    op.execute("INSERT INTO listing_counts (source_id, standard_status, removed, listings) "
               f"SELECT source_id, {KEY.format(row='listings')}, count(*) FROM listings "
               "GROUP BY source_id, coalesce(standard_status, ''), removed_at IS NOT NULL")
    op.execute("INSERT INTO photo_counts (source_id, stored, linked) "
               "SELECT l.source_id, sum(CASE WHEN m.storage_key IS NULL THEN 0 ELSE 1 END), "
               "sum(CASE WHEN m.url IS NULL THEN 0 ELSE 1 END) "
               "FROM media m JOIN listings l ON l.id = m.listing_id GROUP BY l.source_id")


# -- SQLite and MariaDB: row triggers -----------------------------------------------------------------

def _upsert(dialect: str, key: str, columns: tuple[str, ...]) -> str:
    if dialect == "sqlite":
        return f"ON CONFLICT ({key}) DO UPDATE SET " + ", ".join(f"{c} = {c} + excluded.{c}" for c in columns)
    return "ON DUPLICATE KEY UPDATE " + ", ".join(f"{c} = {c} + VALUES({c})" for c in columns)


def _listing_add(dialect: str, row: str, sign: str) -> str:
    return (f"INSERT INTO listing_counts (source_id, standard_status, removed, listings) "
            f"VALUES ({row}.source_id, {KEY.format(row=row)}, {sign}1) "
            f"{_upsert(dialect, 'source_id, standard_status, removed', ('listings',))};")


def _photo_add(dialect: str, row: str, sign: str) -> str:
    return (f"INSERT INTO photo_counts (source_id, stored, linked) "
            f"SELECT source_id, {sign}({row}.storage_key IS NOT NULL), {sign}({row}.url IS NOT NULL) "
            f"FROM listings WHERE id = {row}.listing_id {_upsert(dialect, 'source_id', ('stored', 'linked'))};")


def _row_trigger(dialect: str, name: str, when: str, table: str, body: str, condition: str | None = None) -> None:
    if dialect == "sqlite":
        of = f" WHEN {condition}" if condition else ""
        op.execute(f"CREATE TRIGGER {name} {when} ON {table}{of} BEGIN {body} END")
    elif condition:
        op.execute(f"CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW BEGIN IF {condition} THEN {body} END IF; END")
    else:
        op.execute(f"CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW BEGIN {body} END")


def _row_triggers(dialect: str) -> None:
    def differs(column: str) -> str:
        return f"OLD.{column} IS NOT NEW.{column}" if dialect == "sqlite" else f"NOT (OLD.{column} <=> NEW.{column})"

    def null_moved(column: str) -> str:
        return f"(OLD.{column} IS NULL) <> (NEW.{column} IS NULL)"

    listing_moved = f"{differs('source_id')} OR {differs('standard_status')} OR {null_moved('removed_at')}"
    photo_moved = f"{differs('listing_id')} OR {null_moved('storage_key')} OR {null_moved('url')}"
    for name, table, add, moved in (("listing_counts", "listings", _listing_add, listing_moved),
                                    ("photo_counts", "media", _photo_add, photo_moved)):
        _row_trigger(dialect, f"{name}_insert", "AFTER INSERT", table, add(dialect, "NEW", ""))
        _row_trigger(dialect, f"{name}_delete", "AFTER DELETE", table, add(dialect, "OLD", "-"))
        _row_trigger(dialect, f"{name}_update", "AFTER UPDATE", table,
                     add(dialect, "OLD", "-") + " " + add(dialect, "NEW", ""), moved)
    _row_trigger(dialect, "photo_counts_listing_delete", "BEFORE DELETE", "listings", _LISTING_PHOTOS_OFF + ";")
    if dialect != "sqlite":
        # MariaDB fires no trigger for the listings a source's deletion cascades to.
        _row_trigger(dialect, "counts_source_delete", "AFTER DELETE", "sources",
                     "DELETE FROM listing_counts WHERE source_id = OLD.id; "
                     "DELETE FROM photo_counts WHERE source_id = OLD.id;")


# A listing about to be deleted takes its photos off its source's counts (see the docstring).
_LISTING_PHOTOS_OFF = (
    "UPDATE photo_counts SET "
    "stored = stored - (SELECT count(*) FROM media WHERE listing_id = OLD.id AND storage_key IS NOT NULL), "
    "linked = linked - (SELECT count(*) FROM media WHERE listing_id = OLD.id AND url IS NOT NULL) "
    "WHERE source_id = OLD.source_id"
)


# -- PostgreSQL ---------------------------------------------------------------------------------------

# Each event's function reads the transition tables that event has: (name, sign).
EVENTS = {"insert": [("new_rows", "")], "delete": [("old_rows", "-")],
          "update": [("new_rows", ""), ("old_rows", "-")]}


def _pg_listing_counts(tables) -> str:
    changes = " UNION ALL ".join(
        f"SELECT source_id, coalesce(standard_status, '') AS status, removed_at IS NOT NULL AS removed, "
        f"{sign}1 AS delta FROM {table}" for table, sign in tables)
    return (f"INSERT INTO listing_counts AS c (source_id, standard_status, removed, listings) "
            f"SELECT source_id, status, removed, sum(delta) FROM ({changes}) AS changes "
            f"GROUP BY source_id, status, removed HAVING sum(delta) <> 0 "
            f"ON CONFLICT (source_id, standard_status, removed) DO UPDATE SET listings = c.listings + EXCLUDED.listings")


def _pg_photo_counts(tables) -> str:
    changes = " UNION ALL ".join(
        f"SELECT l.source_id, CASE WHEN m.storage_key IS NULL THEN 0 ELSE {sign}1 END AS stored, "
        f"CASE WHEN m.url IS NULL THEN 0 ELSE {sign}1 END AS linked "
        f"FROM {table} m JOIN listings l ON l.id = m.listing_id" for table, sign in tables)
    return (f"INSERT INTO photo_counts AS c (source_id, stored, linked) "
            f"SELECT source_id, sum(stored), sum(linked) FROM ({changes}) AS changes "
            f"GROUP BY source_id HAVING sum(stored) <> 0 OR sum(linked) <> 0 "
            f"ON CONFLICT (source_id) DO UPDATE SET stored = c.stored + EXCLUDED.stored, "
            f"linked = c.linked + EXCLUDED.linked")


def _postgresql_triggers() -> None:
    for table, prefix, body in (("listings", "listing_counts", _pg_listing_counts),
                                ("media", "photo_counts", _pg_photo_counts)):
        for event, tables in EVENTS.items():
            op.execute(f"CREATE FUNCTION {prefix}_{event}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                       f"BEGIN {body(tables)}; RETURN NULL; END $$")
            referencing = " ".join(f"{'NEW' if name == 'new_rows' else 'OLD'} TABLE AS {name}" for name, _ in tables)
            op.execute(f"CREATE TRIGGER {prefix}_{event} AFTER {event.upper()} ON {table} REFERENCING {referencing} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {prefix}_{event}()")
    op.execute("CREATE FUNCTION photo_counts_listing_delete() RETURNS trigger LANGUAGE plpgsql AS $$ "
               f"BEGIN {_LISTING_PHOTOS_OFF}; RETURN OLD; END $$")
    op.execute("CREATE TRIGGER photo_counts_listing_delete BEFORE DELETE ON listings "
               "FOR EACH ROW EXECUTE FUNCTION photo_counts_listing_delete()")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table in [(n, "listings") for n in LISTING_TRIGGERS] + [(n, "media") for n in PHOTO_TRIGGERS]:
        on = " ON listings" if name == "photo_counts_listing_delete" else f" ON {table}"
        op.execute(f"DROP TRIGGER IF EXISTS {name}{on if dialect == 'postgresql' else ''}")
    op.execute("DROP TRIGGER IF EXISTS counts_source_delete" + (" ON sources" if dialect == "postgresql" else ""))
    if dialect == "postgresql":
        for name in LISTING_TRIGGERS + PHOTO_TRIGGERS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_table('photo_counts')
    op.drop_table('listing_counts')
    with op.batch_alter_table('feed_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feed_runs_source_id_id'))
        batch_op.drop_column('listings_active')
