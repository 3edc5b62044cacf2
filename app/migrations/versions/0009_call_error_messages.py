"""call errors kept as messages

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

A call's error (history), an experiment item's error and the error an experiment ended with are
also kept as the message they were made of (orchestration/errors.py `stored`), as 0008 did for
deploy errors: the History and Experiments pages say them in their reader's language; the text
columns keep the English text that the API, the CLI and the CSV exports show.
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('algorithm_calls') as batch:
        batch.add_column(sa.Column('error_message', sa.JSON(), nullable=True))
    with op.batch_alter_table('experiment_items') as batch:
        batch.add_column(sa.Column('error_message', sa.JSON(), nullable=True))
    with op.batch_alter_table('experiments') as batch:
        batch.add_column(sa.Column('error_message', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('experiments') as batch:
        batch.drop_column('error_message')
    with op.batch_alter_table('experiment_items') as batch:
        batch.drop_column('error_message')
    with op.batch_alter_table('algorithm_calls') as batch:
        batch.drop_column('error_message')
