"""results and scenarios

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Saved showcase scenarios. Results are cached in `algorithm_calls` itself (a cache hit is the
latest ok call with the same version_id, params_hash and input_hash, found through the
existing index `ix_algorithm_calls_cache`), so no result table is needed; annotated videos
live in the object store's results bucket.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scenarios',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scenarios')),
    sa.UniqueConstraint('name', name=op.f('uq_scenarios_name'))
    )


def downgrade() -> None:
    op.drop_table('scenarios')
