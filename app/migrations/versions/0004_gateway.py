"""gateway: API keys, routing state, canary

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

API keys for the gateway (only a SHA-256 of each key is stored); why each replica is in or out of
rotation and when it was last probed; a version on trial (canary) and its share of the calls.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('services', sa.JSON(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_keys_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash')),
    sa.UniqueConstraint('name', name=op.f('uq_api_keys_name'))
    )
    with op.batch_alter_table('service_replicas') as batch:
        batch.add_column(sa.Column('route_note', sa.String(length=300), nullable=False, server_default=''))
        batch.add_column(sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('algorithm_services') as batch:
        batch.add_column(sa.Column('canary_version_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('canary_percent', sa.Integer(), nullable=False, server_default='0'))
        batch.create_foreign_key(batch.f('fk_algorithm_services_canary_version_id_algorithm_versions'),
                                 'algorithm_versions', ['canary_version_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('algorithm_services') as batch:
        batch.drop_constraint(batch.f('fk_algorithm_services_canary_version_id_algorithm_versions'),
                              type_='foreignkey')
        batch.drop_column('canary_percent')
        batch.drop_column('canary_version_id')
    with op.batch_alter_table('service_replicas') as batch:
        batch.drop_column('checked_at')
        batch.drop_column('route_note')
    op.drop_table('api_keys')
