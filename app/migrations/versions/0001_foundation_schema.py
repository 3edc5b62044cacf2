"""foundation schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22

All tables of the foundation, and the three built-in roles.
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('algorithms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('task', sa.String(length=40), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_algorithms')),
    sa.UniqueConstraint('name', name=op.f('uq_algorithms_name'))
    )
    op.create_index(op.f('ix_algorithms_task'), 'algorithms', ['task'], unique=False)
    op.create_table('gitea_configs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('base_url', sa.String(length=300), nullable=False),
    sa.Column('owner', sa.String(length=100), nullable=False),
    sa.Column('repo_prefix', sa.String(length=60), nullable=False),
    sa.Column('token_encrypted', sa.Text(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gitea_configs')),
    sa.UniqueConstraint('name', name=op.f('uq_gitea_configs_name'))
    )
    op.create_table('login_failures',
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('username', name=op.f('pk_login_failures'))
    )
    op.create_table('port_reservations',
    sa.Column('port', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('owner', sa.String(length=120), nullable=False),
    sa.Column('reserved_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('port', name=op.f('pk_port_reservations'))
    )
    op.create_index(op.f('ix_port_reservations_owner'), 'port_reservations', ['owner'], unique=False)
    op.create_table('roles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roles')),
    sa.UniqueConstraint('name', name=op.f('uq_roles_name'))
    )
    roles = sa.table("roles", sa.column("name", sa.String), sa.column("description", sa.String))
    op.bulk_insert(roles, [
        {"name": "admin", "description": "users, settings, everything"},
        {"name": "operator", "description": "upload, deploy, manage"},
        {"name": "viewer", "description": "showcase and history"},
    ])
    op.create_table('service_config_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_name', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('old_value', sa.Text(), nullable=True),
    sa.Column('new_value', sa.Text(), nullable=True),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_config_history'))
    )
    op.create_index('ix_service_config_history_service_at', 'service_config_history', ['service_name', 'changed_at'], unique=False)
    op.create_table('service_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_groups')),
    sa.UniqueConstraint('name', name=op.f('uq_service_groups_name'))
    )
    op.create_table('setting_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('old_value', sa.Text(), nullable=True),
    sa.Column('new_value', sa.Text(), nullable=True),
    sa.Column('is_secret', sa.Boolean(), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_setting_history'))
    )
    op.create_index('ix_setting_history_key_at', 'setting_history', ['key', 'changed_at'], unique=False)
    op.create_table('settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('is_secret', sa.Boolean(), nullable=False),
    sa.Column('updated_by', sa.String(length=80), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_settings'))
    )
    op.create_table('algorithm_repositories',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('algorithm_id', sa.Integer(), nullable=False),
    sa.Column('backend', sa.String(length=16), nullable=False),
    sa.Column('location', sa.String(length=500), nullable=False),
    sa.Column('gitea_config_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['algorithm_id'], ['algorithms.id'], name=op.f('fk_algorithm_repositories_algorithm_id_algorithms'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['gitea_config_id'], ['gitea_configs.id'], name=op.f('fk_algorithm_repositories_gitea_config_id_gitea_configs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_algorithm_repositories')),
    sa.UniqueConstraint('algorithm_id', name=op.f('uq_algorithm_repositories_algorithm_id'))
    )
    op.create_table('algorithm_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('algorithm_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=40), nullable=False),
    sa.Column('commit_sha', sa.String(length=64), nullable=False),
    sa.Column('manifest', sa.JSON(), nullable=False),
    sa.Column('files', sa.JSON(), nullable=False),
    sa.Column('requirements_hash', sa.String(length=64), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['algorithm_id'], ['algorithms.id'], name=op.f('fk_algorithm_versions_algorithm_id_algorithms'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_algorithm_versions')),
    sa.UniqueConstraint('algorithm_id', 'number', name='uq_algorithm_versions_number')
    )
    op.create_index(op.f('ix_algorithm_versions_algorithm_id'), 'algorithm_versions', ['algorithm_id'], unique=False)
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role_id', sa.Integer(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['role_id'], ['roles.id'], name=op.f('fk_users_role_id_roles'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_index(op.f('ix_users_role_id'), 'users', ['role_id'], unique=False)
    op.create_table('algorithm_services',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('algorithm_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('runtime', sa.String(length=16), nullable=False),
    sa.Column('desired_state', sa.String(length=16), nullable=False),
    sa.Column('replicas', sa.Integer(), nullable=False),
    sa.Column('environment', sa.JSON(), nullable=False),
    sa.Column('resources', sa.JSON(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['algorithm_id'], ['algorithms.id'], name=op.f('fk_algorithm_services_algorithm_id_algorithms'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['group_id'], ['service_groups.id'], name=op.f('fk_algorithm_services_group_id_service_groups'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['version_id'], ['algorithm_versions.id'], name=op.f('fk_algorithm_services_version_id_algorithm_versions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_algorithm_services')),
    sa.UniqueConstraint('name', name=op.f('uq_algorithm_services_name'))
    )
    op.create_index(op.f('ix_algorithm_services_algorithm_id'), 'algorithm_services', ['algorithm_id'], unique=False)
    op.create_index(op.f('ix_algorithm_services_group_id'), 'algorithm_services', ['group_id'], unique=False)
    op.create_table('deployments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_name', sa.String(length=64), nullable=False),
    sa.Column('algorithm_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('runtime', sa.String(length=16), nullable=False),
    sa.Column('replicas', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('failed_phase', sa.String(length=32), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('phases', sa.JSON(), nullable=False),
    sa.Column('build_log', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['algorithm_id'], ['algorithms.id'], name=op.f('fk_deployments_algorithm_id_algorithms'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['algorithm_versions.id'], name=op.f('fk_deployments_version_id_algorithm_versions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deployments'))
    )
    op.create_index('ix_deployments_service_started', 'deployments', ['service_name', 'started_at'], unique=False)
    op.create_table('algorithm_calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=True),
    sa.Column('service_name', sa.String(length=64), nullable=False),
    sa.Column('algorithm_id', sa.Integer(), nullable=True),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('params_hash', sa.String(length=64), nullable=False),
    sa.Column('input_ref', sa.String(length=500), nullable=False),
    sa.Column('input_hash', sa.String(length=64), nullable=False),
    sa.Column('output', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('total_ms', sa.Float(), nullable=False),
    sa.Column('predict_ms', sa.Float(), nullable=True),
    sa.Column('replica', sa.String(length=120), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('username', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['algorithm_id'], ['algorithms.id'], name=op.f('fk_algorithm_calls_algorithm_id_algorithms'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['service_id'], ['algorithm_services.id'], name=op.f('fk_algorithm_calls_service_id_algorithm_services'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_algorithm_calls_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['version_id'], ['algorithm_versions.id'], name=op.f('fk_algorithm_calls_version_id_algorithm_versions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_algorithm_calls'))
    )
    op.create_index('ix_algorithm_calls_cache', 'algorithm_calls', ['version_id', 'params_hash', 'input_hash'], unique=False)
    op.create_index(op.f('ix_algorithm_calls_created_at'), 'algorithm_calls', ['created_at'], unique=False)
    op.create_index('ix_algorithm_calls_service_at', 'algorithm_calls', ['service_name', 'created_at'], unique=False)
    op.create_index('ix_algorithm_calls_user_at', 'algorithm_calls', ['username', 'created_at'], unique=False)
    op.create_table('service_configs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_by', sa.String(length=80), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['algorithm_services.id'], name=op.f('fk_service_configs_service_id_algorithm_services'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_configs')),
    sa.UniqueConstraint('service_id', 'key', name='uq_service_configs_key')
    )
    op.create_table('service_replicas',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('backend_name', sa.String(length=120), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['algorithm_services.id'], name=op.f('fk_service_replicas_service_id_algorithm_services'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['algorithm_versions.id'], name=op.f('fk_service_replicas_version_id_algorithm_versions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_replicas')),
    sa.UniqueConstraint('backend_name', name='uq_service_replicas_backend_name')
    )
    op.create_index(op.f('ix_service_replicas_service_id'), 'service_replicas', ['service_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_service_replicas_service_id'), table_name='service_replicas')
    op.drop_table('service_replicas')
    op.drop_table('service_configs')
    op.drop_index('ix_algorithm_calls_user_at', table_name='algorithm_calls')
    op.drop_index('ix_algorithm_calls_service_at', table_name='algorithm_calls')
    op.drop_index(op.f('ix_algorithm_calls_created_at'), table_name='algorithm_calls')
    op.drop_index('ix_algorithm_calls_cache', table_name='algorithm_calls')
    op.drop_table('algorithm_calls')
    op.drop_index('ix_deployments_service_started', table_name='deployments')
    op.drop_table('deployments')
    op.drop_index(op.f('ix_algorithm_services_group_id'), table_name='algorithm_services')
    op.drop_index(op.f('ix_algorithm_services_algorithm_id'), table_name='algorithm_services')
    op.drop_table('algorithm_services')
    op.drop_index(op.f('ix_users_role_id'), table_name='users')
    op.drop_table('users')
    op.drop_index(op.f('ix_algorithm_versions_algorithm_id'), table_name='algorithm_versions')
    op.drop_table('algorithm_versions')
    op.drop_table('algorithm_repositories')
    op.drop_table('settings')
    op.drop_index('ix_setting_history_key_at', table_name='setting_history')
    op.drop_table('setting_history')
    op.drop_table('service_groups')
    op.drop_index('ix_service_config_history_service_at', table_name='service_config_history')
    op.drop_table('service_config_history')
    op.drop_table('roles')
    op.drop_index(op.f('ix_port_reservations_owner'), table_name='port_reservations')
    op.drop_table('port_reservations')
    op.drop_table('login_failures')
    op.drop_table('gitea_configs')
    op.drop_index(op.f('ix_algorithms_task'), table_name='algorithms')
    op.drop_table('algorithms')
