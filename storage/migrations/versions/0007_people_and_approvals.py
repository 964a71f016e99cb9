"""people, console sessions, the audit trail of actions, and approval as a gate policy

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 18:20:00

Users have a role (viewer, ops, admin), an argon2 password hash and, for scripts, the sha256 of
an API token. A console session is a
server-side row keyed by the sha256 of its id: logging out ends it, and it expires. Every
action a person or a script takes (console, CLI, API) is one row of `actions`. A device class
can require a human approval before a canary goes to the fleet; a release records who approved
it and when.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("api_token_sha256", sa.String(length=64), nullable=True),
        sa.UniqueConstraint("name", name="uq_users_name"),
        sa.UniqueConstraint("api_token_sha256", name="uq_users_api_token_sha256"),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("token_sha256", name="uq_console_sessions_token_sha256"),
    )
    op.create_table(
        "actions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_actions_at", "actions", ["at"])
    with op.batch_alter_table("gate_policies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("require_approval", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approved_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_column("approved_at")
        batch_op.drop_column("approved_by")
    with op.batch_alter_table("gate_policies", schema=None) as batch_op:
        batch_op.drop_column("require_approval")
    op.drop_index("ix_actions_at", table_name="actions")
    op.drop_table("actions")
    op.drop_table("console_sessions")
    op.drop_table("users")
