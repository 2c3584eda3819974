"""consumer control: pause/resume and the circuit breaker's state, with their audit trail

One row per consumer in `consumer_state`, shared by every worker on every host
and kept across restarts (outbox/consumer_control.py); `consumer_actions` is
who paused or resumed a consumer, when and why, and when its breaker opened
and closed.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'consumer_state',
        sa.Column('consumer', sa.String(length=64), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('paused', sa.Boolean(), nullable=False),
        sa.Column('paused_by', sa.String(length=200), nullable=True),
        sa.Column('paused_reason', sa.Text(), nullable=True),
        sa.Column('paused_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('breaker', sa.String(length=16), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('next_probe_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('probe_level', sa.Integer(), nullable=False),
        sa.Column('probe_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('consumer'),
    )
    op.create_table(
        'consumer_actions',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('consumer', sa.String(length=64), nullable=False),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('consumer_actions', schema=None) as batch_op:
        batch_op.create_index('ix_consumer_actions_consumer', ['consumer'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('consumer_actions', schema=None) as batch_op:
        batch_op.drop_index('ix_consumer_actions_consumer')
    op.drop_table('consumer_actions')
    op.drop_table('consumer_state')
