"""an order's status and its shipping address

`status` follows the order across services (placed -> reserved | backordered ->
shipped | cancelled: docs/workflow.md); orders placed before this revision are
`placed`. The address columns stay null for them: it was not asked for then.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), nullable=False, server_default='placed'))
        batch_op.add_column(sa.Column('ship_line1', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('ship_city', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('ship_postcode', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('ship_country', sa.String(length=2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        for column in ('ship_country', 'ship_postcode', 'ship_city', 'ship_line1', 'status'):
            batch_op.drop_column(column)
