"""Supervision orders (督办单) that a handler must answer (督办反馈) by their deadline."""
from __future__ import annotations

from sqlalchemy import JSON, Column, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.cases.models import CaseEvent, DisputeCase, HumanTask
from app.database import UTCDateTime, utcnow
from app.extensions import db
from app.org.models import User


class SupervisionOrder(db.Model):
    __tablename__ = "supervision_order"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("dispute_case.id"), index=True)
    issued_by_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    issued_at = mapped_column(UTCDateTime, default=utcnow)
    instruction: Mapped[str] = mapped_column(Text)
    due_at = mapped_column(UTCDateTime)
    #: open / answered
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    answered_at = mapped_column(UTCDateTime, nullable=True)
    answer: Mapped[str | None] = mapped_column(Text)

    issued_by: Mapped[User] = relationship(foreign_keys=[issued_by_id])
    answered_by: Mapped[User | None] = relationship(foreign_keys=[answered_by_id])


# ---------------------------------------------------------------------------------------------
# Supervisor console (read side): saved filters, and the indexes its statistics need.

class SavedFilter(db.Model):
    """A supervisor's named set of case-list filters (their query string), private to them."""

    __tablename__ = "saved_filter"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    #: the filters as query-string arguments, e.g. {"tier": "town", "overdue": "1"}
    query: Mapped[dict] = mapped_column(JSON)
    created_at = mapped_column(UTCDateTime, default=utcnow)


# Indexes on the projections for the dashboard, reports and heat map (declared here, beside the
# console that needs them, so the case models stay untouched; migration 0005 creates them).
# On PostgreSQL they INCLUDE the columns the aggregates read, so a month of a million-case county is
# counted from the index alone (bench/dashboard.py); SQLite ignores the INCLUDE.
#: cases opened in a period: counts, breakdowns, trend, hot spots
Index("ix_case_opened_cover", DisputeCase.opened_at,
      postgresql_include=["org_path", "org_unit_id", "category", "channel"])
#: cases closed in a period: every closure figure and the trend
Index("ix_case_closed_cover", DisputeCase.closed_at,
      postgresql_include=["id", "org_path", "status", "category", "channel", "outcome", "resolved_tier", "satisfaction"])
#: overdue now (due_at < now, being handled)
Index("ix_case_due_cover", DisputeCase.due_at, postgresql_include=["org_path", "status", "category", "channel"])
#: "did a time limit fire on this case?" (on-time closure): one hashed look-up set per query
Index("ix_case_event_kind_case", CaseEvent.kind, CaseEvent.case_id)
#: heat map: tasks completed in a period
Index("ix_human_task_completed_cover", HumanTask.completed_at,
      postgresql_include=["case_id", "spec_name", "status", "created_at"])
#: early warning: the few open mass (涉众) / stability-risk (涉稳) cases among a million; the query
#: spells the predicate with the same literals (queries.flagged_cases) so the planner can use it
FLAGGED_OPEN = "status <> 'closed' AND (people_involved >= 10 OR risk_level = 'high')"
Index("ix_case_flagged_open", DisputeCase.opened_at,
      postgresql_where=text(FLAGGED_OPEN), sqlite_where=text(FLAGGED_OPEN))


# ---------------------------------------------------------------------------------------------
# Daily rollups (app/supervision/rollups.py fills them; migration 0007 creates them)

#: the heat map's duration histogram: bucket 0 is [0, 60 s), bucket k (1..80) is
#: [60·2^((k−1)/4), 60·2^(k/4)) seconds, bucket 81 everything from 60·2^20 s (≈ 2 years) on
DURATION_BUCKETS = 82


class CaseCounts:
    """The additive case figures of a rollup row (see queries.Figures): cases opened, and of the
    cases closed, every closure count the dashboard shows. The overdue snapshot is always live."""

    opened: Mapped[int] = mapped_column(default=0)
    closed: Mapped[int] = mapped_column(default=0)
    decided: Mapped[int] = mapped_column(default=0)
    resolved: Mapped[int] = mapped_column(default=0)
    litigated: Mapped[int] = mapped_column(default=0)
    at_village: Mapped[int] = mapped_column(default=0)
    at_town: Mapped[int] = mapped_column(default=0)
    at_county: Mapped[int] = mapped_column(default=0)
    rated: Mapped[int] = mapped_column(default=0)
    satisfied: Mapped[int] = mapped_column(default=0)
    #: closed cases on which a time limit fired (on_time = closed − late)
    late: Mapped[int] = mapped_column(default=0)


class CaseDayRollup(CaseCounts, db.Model):
    """Cases opened / closed on one local day, per (org path, category, channel): the source of
    the scope rollups and of the hot spots."""

    __tablename__ = "case_day_rollup"

    day = mapped_column(Date, primary_key=True)
    org_path: Mapped[str] = mapped_column(String(255), primary_key=True)
    category: Mapped[str] = mapped_column(String(40), primary_key=True)
    channel: Mapped[str] = mapped_column(String(40), primary_key=True)


class OrgPathScope(db.Model):
    """For each org path cases hold, every unit path it lies under (itself included) and the child
    of that unit it lies under (the unit itself when directly at it). Derived from the path string
    alone ("/1/4/9/" lies under "/1/", "/1/4/" and "/1/4/9/"), so a row never goes stale."""

    __tablename__ = "org_path_scope"

    path: Mapped[str] = mapped_column(String(255), primary_key=True)
    scope_path: Mapped[str] = mapped_column(String(255), primary_key=True)
    child_path: Mapped[str] = mapped_column(String(255))


class CaseDayScopeRollup(CaseCounts, db.Model):
    """case_day_rollup filed under every unit above the case (``scope_path``), summed per margin:
    ``margin`` is "category", "channel" or "unit" and ``key`` the category, the channel or the
    child unit's path. A dashboard reads one scope's rows: a month of a 600-unit county is ~1,000
    rows, where its cases' (org path, category, channel) cells are ~46,000."""

    __tablename__ = "case_day_scope_rollup"

    scope_path: Mapped[str] = mapped_column(String(255), primary_key=True)
    day = mapped_column(Date, primary_key=True)
    margin: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)


class CaseMonthScopeRollup(CaseCounts, db.Model):
    """case_day_scope_rollup summed per calendar month (``month`` is its first day): a long
    period's whole months."""

    __tablename__ = "case_month_scope_rollup"

    scope_path: Mapped[str] = mapped_column(String(255), primary_key=True)
    month = mapped_column(Date, primary_key=True)
    margin: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)


class TaskDayRollup(db.Model):
    """User tasks completed on one local day, per (case org path, process version, task spec): how
    many, and a histogram of their ready → completed durations (columns h0..h81)."""

    __tablename__ = "task_day_rollup"

    process_version_id: Mapped[int] = mapped_column(primary_key=True)
    day = mapped_column(Date, primary_key=True)
    org_path: Mapped[str] = mapped_column(String(255), primary_key=True)
    spec_name: Mapped[str] = mapped_column(String(120), primary_key=True)
    passed: Mapped[int] = mapped_column(default=0)


for _bucket in range(DURATION_BUCKETS):
    TaskDayRollup.__table__.append_column(Column(f"h{_bucket}", Integer, nullable=False, default=0))


class RollupState(db.Model):
    """How far the rollups reach: days up to ``through`` are complete (as of the refresh at
    ``refreshed_at``, which is also the change-tracking watermark)."""

    __tablename__ = "rollup_state"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    through = mapped_column(Date, nullable=True)
    refreshed_at = mapped_column(UTCDateTime, nullable=True)


#: the heat map's "waiting now": ready tasks joined with their (open) cases from two small partial
#: indexes instead of a scan of every case (345 ms → 53 ms at 1M on PostgreSQL); the query spells
#: the predicates with the same literals (queries.heatmap)
OPEN_CASE = "status <> 'closed'"
READY_TASK = "status = 'ready'"
Index("ix_case_open_cover", DisputeCase.id, postgresql_include=["process_version_id", "org_path"],
      postgresql_where=text(OPEN_CASE), sqlite_where=text(OPEN_CASE))
Index("ix_human_task_ready_cover", HumanTask.case_id, postgresql_include=["spec_name"],
      postgresql_where=text(READY_TASK), sqlite_where=text(READY_TASK))
#: change tracking for the incremental refresh (rollups.refresh)
Index("ix_case_updated_at", DisputeCase.updated_at)
Index("ix_case_event_at", CaseEvent.at)
