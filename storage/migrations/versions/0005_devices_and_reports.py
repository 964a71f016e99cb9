"""devices and their reports: enrolment (hashed bearer tokens) and what each device says

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 16:30:00

A device is enrolled for one store and one device class and authenticates with a token of
which only the sha256 is stored. Every accepted report is one row; the device keeps when it
was last seen and its last report, so `fleet status` reads one row per device.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("store", sa.Integer(), nullable=False),
        sa.Column("device_class", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("enrolled_by", sa.String(length=128), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.String(length=128), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_report_id", sa.Integer(), nullable=True),
        sa.UniqueConstraint("token_sha256", name="uq_devices_token_sha256"),
    )
    op.create_index("ix_devices_class_store", "devices", ["device_class", "store"])
    op.create_table(
        "device_reports",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("device_id", sa.Integer(), sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("sync_result", sa.String(length=16), nullable=True),
        sa.Column("sync_reason", sa.Text(), nullable=False),
        sa.Column("smoke_test_ok", sa.Boolean(), nullable=True),
        sa.Column("latency_us_p50", sa.Float(), nullable=True),
        sa.Column("free_bytes", sa.BigInteger(), nullable=False),
        sa.Column("forecasts_made", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_device_reports_device_received", "device_reports",
                    ["device_id", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_device_reports_device_received", table_name="device_reports")
    op.drop_table("device_reports")
    op.drop_index("ix_devices_class_store", table_name="devices")
    op.drop_table("devices")
