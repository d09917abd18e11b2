"""photo archive migration manifest

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 05:12:27.039084
"""

from alembic import op
import sqlalchemy as sa


import core.types

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('migration_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_url', sa.String(length=512), nullable=False),
    sa.Column('dest_url', sa.String(length=512), nullable=False),
    sa.Column('key_mapping', sa.String(length=512), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('listed_complete', sa.Boolean(), nullable=False),
    sa.Column('created_at', core.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', core.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_migration_jobs')),
    sa.UniqueConstraint('source_url', 'dest_url', name=op.f('uq_migration_jobs_source_url_dest_url'))
    )
    op.create_table('migration_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('path_hash', sa.String(length=40), nullable=False),
    sa.Column('source_path', sa.Text(), nullable=False),
    sa.Column('dest_key', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('md5', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('verified_at', core.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', core.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['migration_jobs.id'], name=op.f('fk_migration_items_job_id_migration_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_migration_items')),
    sa.UniqueConstraint('job_id', 'path_hash', name=op.f('uq_migration_items_job_id_path_hash'))
    )
    with op.batch_alter_table('migration_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_migration_items_job_id_status_id'), ['job_id', 'status', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('migration_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_migration_items_job_id_status_id'))

    op.drop_table('migration_items')
    op.drop_table('migration_jobs')
