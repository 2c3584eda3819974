"""store each event's trace context with its outbox row

With tracing on (OTEL_EXPORTER_OTLP_ENDPOINT), POST /orders starts a trace; the
relay, the workers and the dead-letter tools find it through this column
(a W3C traceparent). Null when tracing is off.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trace_context', sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('trace_context')
