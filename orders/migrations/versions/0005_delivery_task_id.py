"""record which Celery task ran a delivery last

Under load one message (one Celery task, one row in Flower) carries several
deliveries; the task id `<event_id>:<consumer>` then names no task in Flower.
The delivery record keeps the id of the task that began it last, so the
operator page links a dead letter to the task Flower shows.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('task_id', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('task_id')
