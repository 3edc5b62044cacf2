"""replica endpoints and the routing table

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

A replica is known by its endpoint (where its runtime says it answers), not by a port on
127.0.0.1; `routed` says whether it is in rotation (the routing table). Existing replicas were
all reached on loopback and all served, so they are backfilled that way. The per-service `port`
setting is dropped: a fixed replica port cannot survive a start-before-stop redeploy, and the
stable address of a service is the gateway's route.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('service_replicas') as batch:
        batch.add_column(sa.Column('endpoint', sa.String(length=200), nullable=False, server_default=''))
        batch.add_column(sa.Column('routed', sa.Boolean(), nullable=False, server_default=sa.true()))
    op.execute("UPDATE service_replicas SET endpoint = 'http://127.0.0.1:' || CAST(port AS VARCHAR(10))")
    op.execute("DELETE FROM service_configs WHERE key = 'port'")


def downgrade() -> None:
    with op.batch_alter_table('service_replicas') as batch:
        batch.drop_column('routed')
        batch.drop_column('endpoint')
