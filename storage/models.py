"""The registry's tables, as SQLAlchemy 2 typed ORM models.

Constraints make the bad states impossible rather than unlikely: one row per
(run, variant), one decision per (model version, device class), one open
release per (device class, channel), one open alert per dedup key.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from policy.limits import MASE_DEFAULTS


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class IngestBatch(Base):
    """One accepted sales file: where it came from and what it changed."""

    __tablename__ = "ingest_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    rows_in_file: Mapped[int] = mapped_column(Integer)
    rows_inserted: Mapped[int] = mapped_column(Integer)
    rows_replaced: Mapped[int] = mapped_column(Integer)
    ingested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Sale(Base):
    """Units sold of one item in one store on one day (the Kaggle schema)."""

    __tablename__ = "sales"

    date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    store: Mapped[int] = mapped_column(Integer, primary_key=True)
    item: Mapped[int] = mapped_column(Integer, primary_key=True)
    sales: Mapped[int] = mapped_column(Integer)
    batch_id: Mapped[int] = mapped_column(ForeignKey("ingest_batches.id"))

    __table_args__ = (Index("ix_sales_store_item_date", "store", "item", "date"),)


class TrainingRun(Base):
    """One night's training: on what data, with which recipe, how it went."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_key: Mapped[str] = mapped_column(String(128), unique=True)
    as_of: Mapped[dt.date] = mapped_column(Date)
    profile: Mapped[str] = mapped_column(String(32))
    data_start: Mapped[dt.date] = mapped_column(Date)
    data_end: Mapped[dt.date] = mapped_column(Date)
    data_sha256: Mapped[str] = mapped_column(String(64))
    series_count: Mapped[int] = mapped_column(Integer)
    train_windows: Mapped[int] = mapped_column(Integer)
    test_windows: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    code_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timings_s: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lineage: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    # 'warm' (fine-tuned from approved weights) or 'cold' (from nothing), and why
    start: Mapped[str] = mapped_column(String(8), default="cold", server_default="cold")
    start_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    # the reference forecasts' and the released models' figures on the night's windows
    evaluation: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    # the night's demand mix (policy.demand.DemandMix.as_dict)
    demand: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    versions: Mapped[list[ModelVersion]] = relationship(back_populates="run")


class ModelVersion(Base):
    """One variant of one run: its artifact, its figures measured on LiteRT, its status."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id"))
    variant: Mapped[str] = mapped_column(String(64))
    technique: Mapped[str] = mapped_column(String(32))
    base_variant: Mapped[str | None] = mapped_column(String(64))
    hyperparams: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifact_uri: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    artifact_bytes: Mapped[int] = mapped_column(BigInteger)
    gzip_bytes: Mapped[int] = mapped_column(BigInteger)
    nonzero_params: Mapped[int] = mapped_column(Integer)
    compression_ratio: Mapped[float | None] = mapped_column(Float)
    mape_pct: Mapped[float] = mapped_column(Float)
    mape_std_pct: Mapped[float | None] = mapped_column(Float)
    wape_pct: Mapped[float] = mapped_column(Float)
    latency_us_p50: Mapped[float] = mapped_column(Float)
    max_abs_diff_vs_keras: Mapped[float | None] = mapped_column(Float)
    probe: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # figures per forecast origin, store and item on the night's held-out windows
    evaluation: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # a warm start's parent: the approved version whose weights it was fine-tuned from
    parent_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", name="fk_model_versions_parent"))

    run: Mapped[TrainingRun] = relationship(back_populates="versions")
    decisions: Mapped[list[GateDecision]] = relationship(back_populates="model_version")

    __table_args__ = (UniqueConstraint("run_id", "variant", name="uq_model_versions_run_variant"),)


class GatePolicy(Base):
    """Thresholds for one device class; a change adds a version, never edits one."""

    __tablename__ = "gate_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_class: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(16), default="auto")
    max_error: Mapped[float] = mapped_column(Float)
    max_delta_baseline: Mapped[float] = mapped_column(Float)
    min_gain: Mapped[float] = mapped_column(Float, default=0.2)
    confidence: Mapped[float] = mapped_column(Float, default=0.95)
    max_loss: Mapped[float] = mapped_column(Float)
    max_reference_ratio: Mapped[float] = mapped_column(Float, default=1.0)
    max_worst_slice: Mapped[float] = mapped_column(Float, default=60.0)
    max_slice_regression: Mapped[float] = mapped_column(Float, default=5.0)
    max_zero_share_pct: Mapped[float] = mapped_column(Float, default=20.0)
    max_artifact_bytes: Mapped[int] = mapped_column(BigInteger)
    max_latency_ms: Mapped[float] = mapped_column(Float)
    # the error limits in MASE, used when the metric is or resolves to MASE (policy.limits)
    mase_max_error: Mapped[float] = mapped_column(Float, default=MASE_DEFAULTS["max_error"])
    mase_max_delta_baseline: Mapped[float] = mapped_column(Float, default=MASE_DEFAULTS["max_delta_baseline"])
    mase_min_gain: Mapped[float] = mapped_column(Float, default=MASE_DEFAULTS["min_gain"])
    mase_max_loss: Mapped[float] = mapped_column(Float, default=MASE_DEFAULTS["max_loss"])
    mase_max_worst_slice: Mapped[float] = mapped_column(Float, default=MASE_DEFAULTS["max_worst_slice"])
    mase_max_slice_regression: Mapped[float] = mapped_column(
        Float, default=MASE_DEFAULTS["max_slice_regression"])
    # a canary of this class goes to the fleet only after a person approved it
    require_approval: Mapped[bool] = mapped_column(Boolean, default=False,
                                                   server_default=false())
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("device_class", "version", name="uq_gate_policies_class_version"),
    )


class GateDecision(Base):
    """Pass or fail of one model version for one device class, with every reason."""

    __tablename__ = "gate_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    policy_id: Mapped[int] = mapped_column(ForeignKey("gate_policies.id"))
    device_class: Mapped[str] = mapped_column(String(32))
    passed: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    decided_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    model_version: Mapped[ModelVersion] = relationship(back_populates="decisions")
    policy: Mapped[GatePolicy] = relationship()

    __table_args__ = (
        UniqueConstraint("model_version_id", "device_class", name="uq_gate_decisions_version_class"),
    )


class Release(Base):
    """A model version published to a device class and channel, from when to when."""

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    device_class: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    stores: Mapped[list[Any]] = mapped_column(default=list)
    manifest_uri: Mapped[str | None] = mapped_column(String(1024))
    released_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    released_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    ended_by: Mapped[str | None] = mapped_column(String(128))
    end_reason: Mapped[str | None] = mapped_column(Text)
    as_of: Mapped[dt.date | None] = mapped_column(Date)  # the night (as-of date) it was released on
    approved_by: Mapped[str | None] = mapped_column(String(128))
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    model_version: Mapped[ModelVersion] = relationship()

    __table_args__ = (
        Index(
            "uq_releases_open_per_class_channel",
            "device_class",
            "channel",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )


class DriftReport(Base):
    """One Evidently comparison of the newest sales with the reference window."""

    __tablename__ = "drift_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    as_of: Mapped[dt.date] = mapped_column(Date)
    reference_start: Mapped[dt.date] = mapped_column(Date)
    reference_end: Mapped[dt.date] = mapped_column(Date)
    current_start: Mapped[dt.date] = mapped_column(Date)
    current_end: Mapped[dt.date] = mapped_column(Date)
    drift_share: Mapped[float] = mapped_column(Float)
    drifted: Mapped[bool] = mapped_column(Boolean)
    drifted_columns: Mapped[list[Any]] = mapped_column(default=list)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    html_uri: Mapped[str | None] = mapped_column(String(1024))
    json_uri: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Alert(Base):
    """Something ops must see; the same open condition updates one row (dedup key)."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    scope: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dedup_key: Mapped[str] = mapped_column(String(256))
    message: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(1024))
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    ack_note: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    notified_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    notify_attempts: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index(
            "uq_alerts_open_dedup_key",
            "dedup_key",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
    )


class AlertSilence(Base):
    """A silence, as Alertmanager's: alerts its matchers match are shown as silenced, left out
    of the open-alert count and not notified, from its start until it ends (or is ended early).
    A matcher left empty matches any value."""

    __tablename__ = "alert_silences"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    store: Mapped[int | None] = mapped_column(Integer)
    item: Mapped[int | None] = mapped_column(Integer)
    device_class: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ends_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ended_by: Mapped[str | None] = mapped_column(String(128))  # who ended it before its end time

    __table_args__ = (Index("ix_alert_silences_ends_at", "ends_at"),)


class Device(Base):
    """An enrolled store device: its store and class, and the sha256 of its bearer token (the
    token itself is shown once at enrolment and never stored)."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    store: Mapped[int] = mapped_column(Integer)
    device_class: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(128))
    token_sha256: Mapped[str] = mapped_column(String(64))
    enrolled_by: Mapped[str] = mapped_column(String(128))
    enrolled_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # no foreign key: reports point at their device, and a cycle of keys needs deferred DDL
    last_report_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        UniqueConstraint("token_sha256", name="uq_devices_token_sha256"),
        Index("ix_devices_class_store", "device_class", "store"),
    )


class DeviceReport(Base):
    """What one device said about itself at one time, as received by the service."""

    __tablename__ = "device_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    release_id: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    sync_result: Mapped[str | None] = mapped_column(String(16))
    sync_reason: Mapped[str] = mapped_column(Text, default="")
    smoke_test_ok: Mapped[bool | None] = mapped_column(Boolean)
    latency_us_p50: Mapped[float | None] = mapped_column(Float)
    free_bytes: Mapped[int] = mapped_column(BigInteger)
    forecasts_made: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_device_reports_device_received", "device_id", "received_at"),)


class User(Base):
    """A person who uses the console: a role, an argon2 hash of the password, and the sha256
    of an API token for their scripts."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # viewer | ops | admin
    password_hash: Mapped[str] = mapped_column(String(256))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # a script's bearer token for the console API (shown once; only its sha256 is kept)
    api_token_sha256: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("name", name="uq_users_name"),
                      UniqueConstraint("api_token_sha256", name="uq_users_api_token_sha256"))


class ConsoleSession(Base):
    """A logged-in browser: the sha256 of its cookie's id, until it ends or expires."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship()

    __table_args__ = (UniqueConstraint("token_sha256", name="uq_console_sessions_token_sha256"),)


class Action(Base):
    """The audit trail: who did what to what, through the console, the CLI or the API."""

    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(128))
    via: Mapped[str] = mapped_column(String(16))  # console | cli | api
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_actions_at", "at"),)
