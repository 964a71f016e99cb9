"""training runs record their lineage; releases name their night `as_of` like runs do

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 15:40:00

`lineage` holds the package version, the git commit of the checkout (with a dirty flag) and
the versions of TensorFlow, LiteRT, Prefect, Evidently, SQLAlchemy, numpy and pandas. Runs
registered before this revision get an empty object: their lineage was never recorded.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lineage", sa.JSON(), nullable=False,
                                      server_default=sa.text("'{}'")))
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.alter_column("night", new_column_name="as_of")


def downgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.alter_column("as_of", new_column_name="night")
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_column("lineage")
