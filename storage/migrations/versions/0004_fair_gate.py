"""a gate on fair evidence: policy metric, evidence rules, slices and origins per version

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 16:00:00

Policies name the metric they gate on and gain the evidence rules. Existing rows keep their
meaning where one exists: `max_mape_pct` becomes `max_error` on metric `mape_pct`,
`max_delta_baseline_pct` becomes `max_delta_baseline`, `max_delta_champion_pct` becomes
`max_loss` (how much worse than the champion a smaller model may be). The new limits get the
defaults below. Versions keep their evaluation (per origin, store and item); runs keep the
reference forecasts' and the released models' figures on the night's windows.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NEW_LIMITS = {
    "min_gain": 0.2,
    "confidence": 0.95,
    "max_reference_ratio": 1.0,
    "max_worst_slice": 60.0,
    "max_slice_regression": 5.0,
    "max_zero_share_pct": 20.0,
}
RENAMED = {"max_mape_pct": "max_error", "max_delta_baseline_pct": "max_delta_baseline",
           "max_delta_champion_pct": "max_loss"}


def upgrade() -> None:
    with op.batch_alter_table("gate_policies", schema=None) as batch_op:
        for old, new in RENAMED.items():
            batch_op.alter_column(old, new_column_name=new)
        batch_op.add_column(sa.Column("metric", sa.String(length=16), nullable=False,
                                      server_default="mape_pct"))
        for name, default in NEW_LIMITS.items():
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=False,
                                          server_default=sa.text(repr(default))))
    for table in ("model_versions", "training_runs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("evaluation", sa.JSON(), nullable=False,
                                          server_default=sa.text("'{}'")))


def downgrade() -> None:
    for table in ("training_runs", "model_versions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("evaluation")
    with op.batch_alter_table("gate_policies", schema=None) as batch_op:
        for name in ("metric", *NEW_LIMITS):
            batch_op.drop_column(name)
        for old, new in RENAMED.items():
            batch_op.alter_column(new, new_column_name=old)
