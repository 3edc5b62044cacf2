"""errors kept as messages

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

A service's last deploy error, a deployment's error and why a replica is out of rotation are also
kept as the message they were made of (key, English template, values: orchestration/errors.py
`stored`), so a page says them in its reader's language; the text columns keep the English text
that the API and the CLI show.
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('algorithm_services') as batch:
        batch.add_column(sa.Column('last_error_message', sa.JSON(), nullable=True))
    with op.batch_alter_table('deployments') as batch:
        batch.add_column(sa.Column('error_message', sa.JSON(), nullable=True))
    with op.batch_alter_table('service_replicas') as batch:
        batch.add_column(sa.Column('route_note_message', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('service_replicas') as batch:
        batch.drop_column('route_note_message')
    with op.batch_alter_table('deployments') as batch:
        batch.drop_column('error_message')
    with op.batch_alter_table('algorithm_services') as batch:
        batch.drop_column('last_error_message')
