"""the demand profile of a night, MASE limits beside the percent ones, and `auto` as the metric

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 22:10:00

A run keeps its demand mix (Syntetos-Boylan patterns, zero share, median mean: see
`policy.demand`). A gate policy gains a MASE twin of every error limit, used when its metric is
or resolves to MASE, and may say `auto`: MAPE where the data supports it, MASE otherwise. A
device class still on the policy migration 0001 seeded moves to `auto` in a new policy
version (on smooth data `auto` is MAPE, so its gate does not change); a policy a person set
keeps its metric.
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# as policy.limits.MASE_DEFAULTS when this migration was written (migrations never import code)
MASE_DEFAULTS = {"max_error": 3.0, "max_delta_baseline": 0.1, "min_gain": 0.005,
                 "max_loss": 0.02, "max_worst_slice": 6.0, "max_slice_regression": 0.5}
CARRIED = ("max_error", "max_delta_baseline", "min_gain", "confidence", "max_loss",
           "max_reference_ratio", "max_worst_slice", "max_slice_regression", "max_zero_share_pct",
           "max_artifact_bytes", "max_latency_ms", "require_approval")


def upgrade() -> None:
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("demand", sa.JSON(), nullable=False,
                                      server_default=sa.text("'{}'")))
    with op.batch_alter_table("gate_policies", schema=None) as batch_op:
        for name, value in MASE_DEFAULTS.items():
            batch_op.add_column(sa.Column(f"mase_{name}", sa.Float(), nullable=False,
                                          server_default=sa.text(repr(value))))
    connection = op.get_bind()
    newest = connection.execute(sa.text(
        "SELECT p.* FROM gate_policies p WHERE p.version = (SELECT max(q.version) FROM "
        "gate_policies q WHERE q.device_class = p.device_class)")).mappings().all()
    for policy in newest:
        if policy["metric"] != "mape_pct" or policy["created_by"] != "migration 0001":
            continue
        columns = ["device_class", "version", "metric", "created_by", "created_at", *CARRIED,
                   *(f"mase_{name}" for name in MASE_DEFAULTS)]
        values = {**{c: policy[c] for c in columns}, "version": policy["version"] + 1,
                  "metric": "auto", "created_by": "migration 0008",
                  "created_at": dt.datetime.now(dt.UTC)}
        connection.execute(sa.text(
            f"INSERT INTO gate_policies ({', '.join(columns)}) "
            f"VALUES ({', '.join(':' + c for c in columns)})"), values)


def downgrade() -> None:
    op.execute("DELETE FROM gate_policies WHERE created_by = 'migration 0008'")
    op.execute("UPDATE gate_policies SET metric = 'mape_pct' WHERE metric = 'auto'")
    with op.batch_alter_table("gate_policies", schema=None) as batch_op:
        for name in MASE_DEFAULTS:
            batch_op.drop_column(f"mase_{name}")
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_column("demand")
