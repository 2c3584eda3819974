"""delivery error history and dead-letter audit trail

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 23:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('delivery_errors',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('consumer', sa.String(length=64), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('delivery_errors', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_errors_delivery', ['event_id', 'consumer'], unique=False)
        batch_op.create_index('ix_delivery_errors_outcome', ['outcome', 'consumer'], unique=False)

    op.create_table('dead_letter_actions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('attempts_before', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dead_letter_actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dead_letter_actions_delivery_id'), ['delivery_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dead_letter_actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dead_letter_actions_delivery_id'))
    op.drop_table('dead_letter_actions')
    with op.batch_alter_table('delivery_errors', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_errors_outcome')
        batch_op.drop_index('ix_delivery_errors_delivery')
    op.drop_table('delivery_errors')
