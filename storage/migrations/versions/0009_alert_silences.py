"""alert silences: matchers, an end time, who made them and why

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 00:20:00

A silence (as Alertmanager's) matches alerts by kind and, optionally, store, item and device
class; while it is active the alerts it matches are shown as silenced, left out of the
open-alert count and not notified. It ends at its end time, or earlier when a person ends it
(`ended_by`, with `ends_at` moved to that moment).
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_silences",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("store", sa.Integer(), nullable=True),
        sa.Column("item", sa.Integer(), nullable=True),
        sa.Column("device_class", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_by", sa.String(length=128), nullable=True),
    )
    op.create_index("ix_alert_silences_ends_at", "alert_silences", ["ends_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_silences_ends_at", table_name="alert_silences")
    op.drop_table("alert_silences")
