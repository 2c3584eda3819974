"""the shipping workflow: an order's tracking number and refund; the shipments table

`shipments` belongs to the shipping service and is used in its database only
(SHIPPING_DATABASE_URL): one migration history creates every table in both
databases, and each service uses its own.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tracking_number', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('refund_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('refunded_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table('shipments',
    sa.Column('booking_id', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=36), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('carrier', sa.String(length=64), nullable=False),
    sa.Column('tracking_number', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('postcode', sa.String(length=16), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('booking_id'),
    sa.UniqueConstraint('order_id')
    )


def downgrade() -> None:
    op.drop_table('shipments')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        for column in ('refunded_at', 'refund_id', 'tracking_number'):
            batch_op.drop_column(column)
