"""experiments: labelled datasets, sweeps and their per-item results

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

A row per dataset (its files live in the object store); a row per experiment (a sweep of one
algorithm version over one dataset: the parameter space, the configurations it expanded to, the
state, the metrics); a row per (experiment, configuration, item) result, kept as soon as it is
known so that a cancelled or interrupted sweep resumes without losing finished items.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('datasets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('task', sa.String(length=40), nullable=False),
    sa.Column('items', sa.Integer(), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('prefix', sa.String(length=200), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_datasets')),
    sa.UniqueConstraint('name', name=op.f('uq_datasets_name'))
    )
    op.create_table('experiments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_name', sa.String(length=64), nullable=False),
    sa.Column('algorithm', sa.String(length=64), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('dataset_name', sa.String(length=64), nullable=False),
    sa.Column('task', sa.String(length=40), nullable=False),
    sa.Column('space', sa.JSON(), nullable=False),
    sa.Column('configs', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=True),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_experiments_dataset_id_datasets'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['algorithm_versions.id'],
                            name=op.f('fk_experiments_version_id_algorithm_versions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_experiments'))
    )
    op.create_table('experiment_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('config', sa.Integer(), nullable=False),
    sa.Column('item', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('params_hash', sa.String(length=64), nullable=False),
    sa.Column('input_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('output', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('total_ms', sa.Float(), nullable=True),
    sa.Column('predict_ms', sa.Float(), nullable=True),
    sa.Column('replica', sa.String(length=120), nullable=False),
    sa.Column('cached', sa.Boolean(), nullable=False),
    sa.Column('started', sa.Float(), nullable=True),
    sa.Column('ended', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'],
                            name=op.f('fk_experiment_items_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_experiment_items')),
    sa.UniqueConstraint('experiment_id', 'config', 'item', name='uq_experiment_items_cell')
    )
    op.create_index('ix_experiment_items_cache', 'experiment_items', ['version_id', 'params_hash', 'input_hash'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_experiment_items_cache', table_name='experiment_items')
    op.drop_table('experiment_items')
    op.drop_table('experiments')
    op.drop_table('datasets')
