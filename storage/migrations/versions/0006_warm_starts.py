"""training runs say whether they started warm or cold; versions name their parent

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 18:10:00

A warm night fine-tunes the weights of an approved version (its parent) on a sample of recent
windows; a cold night trains from nothing. `start` is 'warm' or 'cold', `start_reason` says why
(the weekly schedule, an open severe drift alert, new stores or items, asked for, no parent).
Runs registered before this revision were all cold.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("start", sa.String(length=8), nullable=False,
                                      server_default="cold"))
        batch_op.add_column(sa.Column("start_reason", sa.Text(), nullable=False,
                                      server_default=""))
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_version_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_model_versions_parent", "model_versions",
                                    ["parent_version_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_constraint("fk_model_versions_parent", type_="foreignkey")
        batch_op.drop_column("parent_version_id")
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_column("start_reason")
        batch_op.drop_column("start")
