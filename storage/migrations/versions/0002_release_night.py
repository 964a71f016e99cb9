"""releases remember the night they were made on

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 13:05:00

Staged rollout counts nights, not wall-clock hours: a canary graduates to the
fleet after N nightly runs (their as-of dates) without a quality alert.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("night", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_column("night")
