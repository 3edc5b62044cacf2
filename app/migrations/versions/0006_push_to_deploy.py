"""push to deploy: where an algorithm's pushes come from, and what became of each

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Per algorithm repository: the upstream a signed Gitea/GitHub webhook may name (its clone URL, the
branch that deploys), the webhook secret (encrypted like every stored secret) and whether a new
version is deployed at once. One row per push or webhook event with its outcome and reason, so a
rejected push or a failed deploy is visible in the algorithm's history.
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('algorithm_repositories') as batch:
        batch.add_column(sa.Column('upstream_url', sa.String(length=500), nullable=False, server_default=''))
        batch.add_column(sa.Column('deploy_branch', sa.String(length=100), nullable=False, server_default='main'))
        batch.add_column(sa.Column('webhook_secret_encrypted', sa.Text(), nullable=True))
        batch.add_column(sa.Column('auto_deploy', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table('push_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('algorithm_name', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('ref', sa.String(length=200), nullable=False),
    sa.Column('commit_sha', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_events'))
    )
    op.create_index('ix_push_events_algorithm_at', 'push_events', ['algorithm_name', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_push_events_algorithm_at', table_name='push_events')
    op.drop_table('push_events')
    with op.batch_alter_table('algorithm_repositories') as batch:
        batch.drop_column('auto_deploy')
        batch.drop_column('webhook_secret_encrypted')
        batch.drop_column('deploy_branch')
        batch.drop_column('upstream_url')
