"""Dispute cases and the projections every page reads instead of the workflow state.

The engine's serialized state lives in ``workflow_state`` and is read only to run a step. Each
step rewrites, in the same transaction, the case's domain fields, its ready ``human_task`` rows,
its pending ``timer`` rows and appends to ``case_event``.
"""
from __future__ import annotations

from itertools import chain

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, event, false, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from app.database import CompressedText, UTCDateTime, utcnow
from app.extensions import db
from app.org.models import OrgUnit, User
from app.processes.models import ProcessVersion

JSONType = JSON().with_variant(JSONB(), "postgresql")


class CaseStatus:
    """intake: awaiting the clerk's registration; open: being handled at some tier;
    suspended: paused by a supervisor (time limits stand still); closed."""

    intake = "intake"
    open = "open"
    suspended = "suspended"
    closed = "closed"


class DisputeCase(db.Model):
    __tablename__ = "dispute_case"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(40), index=True)
    channel: Mapped[str] = mapped_column(String(40))
    risk_level: Mapped[str] = mapped_column(String(10), default="low")
    people_involved: Mapped[int] = mapped_column(default=2)
    parties: Mapped[list] = mapped_column(JSONType, default=list)
    location: Mapped[str | None] = mapped_column(String(200))
    reporter_name: Mapped[str | None] = mapped_column(String(80))
    reporter_phone: Mapped[str | None] = mapped_column(String(40))

    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"))
    org_path: Mapped[str] = mapped_column(String(255))
    process_version_id: Mapped[int] = mapped_column(ForeignKey("process_version.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))

    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.intake)
    current_tier: Mapped[str | None] = mapped_column(String(16))
    start_tier: Mapped[str | None] = mapped_column(String(16))
    resolved_tier: Mapped[str | None] = mapped_column(String(16))
    department: Mapped[str | None] = mapped_column(String(80))
    #: resolved / litigated / not_accepted / withdrawn, set when the case closes
    outcome: Mapped[str | None] = mapped_column(String(20))
    satisfaction: Mapped[str | None] = mapped_column(String(20))
    is_major: Mapped[bool] = mapped_column(default=False)
    escalation_count: Mapped[int] = mapped_column(default=0)
    reopen_count: Mapped[int] = mapped_column(default=0)

    opened_at = mapped_column(UTCDateTime, default=utcnow)
    closed_at = mapped_column(UTCDateTime, nullable=True)
    #: the current tier's time limit (earliest pending escalation timer)
    due_at = mapped_column(UTCDateTime, nullable=True)
    updated_at = mapped_column(UTCDateTime, default=utcnow)
    #: bumped once by every transaction that changes the case, its state, tasks or timers (see
    #: _count_case_changes): clients and services detect that they looked at an old state
    lock_version: Mapped[int] = mapped_column(default=0)
    #: a grid worker flagged the report as a high-value event (a major hazard removed, a loss
    #: averted); a supervisor over the case's unit confirms it for the reward scheme
    high_value_reported: Mapped[bool] = mapped_column(default=False, server_default=false())
    high_value_confirmed: Mapped[bool] = mapped_column(default=False, server_default=false())
    high_value_confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))

    #: the named leader responsible for a major case (领导包案)
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    #: set while a supervisor has suspended the case; its time limits stand still meanwhile
    suspended_at = mapped_column(UTCDateTime, nullable=True)

    org_unit: Mapped[OrgUnit] = relationship(lazy="joined")
    process_version: Mapped[ProcessVersion] = relationship()
    #: held by the case so one step reads the (large) state row once
    workflow_state: Mapped[WorkflowState] = relationship(uselist=False)
    leader: Mapped[User | None] = relationship(foreign_keys=[leader_id])
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    high_value_confirmed_by: Mapped[User | None] = relationship(foreign_keys=[high_value_confirmed_by_id])

    __table_args__ = (
        Index("ix_case_org_path_status", "org_path", "status"),
        Index("ix_case_opened_at", "opened_at"),
    )


class WorkflowState(db.Model):
    """The engine's serialized state for one case, without the process definition."""

    __tablename__ = "workflow_state"

    case_id: Mapped[int] = mapped_column(ForeignKey("dispute_case.id"), primary_key=True)
    serializer_version: Mapped[str] = mapped_column(String(16))
    #: SpiffWorkflow's JSON, compressed in the database (see CompressedText)
    state: Mapped[str] = mapped_column(CompressedText)
    row_version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": row_version}


class TaskStatus:
    ready = "ready"
    completed = "completed"
    cancelled = "cancelled"


class HumanTask(db.Model):
    """A user task as people see it: who may take it, who holds it, when it is due."""

    __tablename__ = "human_task"
    __table_args__ = (
        UniqueConstraint("case_id", "task_id"),
        # covering: the inbox counts and picks its page's ids from the index alone (a county
        # centre's 4,000 ready tasks at 1M cases: no table row read for them). Key columns rather
        # than INCLUDE, which SQLite lacks (migration 0013); the id for PostgreSQL's page (0014).
        Index("ix_human_task_lane_path", "status", "lane", "org_path", "assignee_id", "due_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("dispute_case.id"), index=True)
    #: the engine's task id (UUID), stable for the task's life
    task_id: Mapped[str] = mapped_column(String(36))
    spec_name: Mapped[str] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(String(200))
    lane: Mapped[str] = mapped_column(String(40))
    tier: Mapped[str] = mapped_column(String(16))
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"))
    org_path: Mapped[str] = mapped_column(String(255))
    form_name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.ready)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), index=True)
    claimed_at = mapped_column(UTCDateTime, nullable=True)
    created_at = mapped_column(UTCDateTime, default=utcnow)
    due_at = mapped_column(UTCDateTime, nullable=True)
    completed_at = mapped_column(UTCDateTime, nullable=True)
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    #: why a task stopped being ready without being completed (e.g. "time_limit")
    end_reason: Mapped[str | None] = mapped_column(String(40))
    draft: Mapped[dict | None] = mapped_column(JSONType)

    case: Mapped[DisputeCase] = relationship()
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])


class TimerKind:
    reminder = "reminder"
    time_limit = "time_limit"


class Timer(db.Model):
    """A pending engine timer with its absolute due time in UTC: the scheduler's to-do list."""

    __tablename__ = "timer"
    __table_args__ = (
        UniqueConstraint("case_id", "task_id"),
        # id last: the scheduler claims "ORDER BY due_at, id" straight from the index (migration 0012)
        Index("ix_timer_status_due", "status", "due_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("dispute_case.id"), index=True)
    task_id: Mapped[str] = mapped_column(String(36))
    spec_name: Mapped[str] = mapped_column(String(120))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    #: the activity the boundary timer is attached to (e.g. the village stage)
    attached_to: Mapped[str | None] = mapped_column(String(120))
    due_at = mapped_column(UTCDateTime)
    #: pending / fired / cancelled
    status: Mapped[str] = mapped_column(String(16), default="pending")
    fired_at = mapped_column(UTCDateTime, nullable=True)
    #: due → fired, for the timer-lag figure (BigInteger: after downtime it runs to weeks)
    lag_ms: Mapped[int | None] = mapped_column(BigInteger)


class CaseEvent(db.Model):
    """Append-only record of everything that changed a case: who, when, what."""

    __tablename__ = "case_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("dispute_case.id"), index=True)
    at = mapped_column(UTCDateTime, default=utcnow)
    #: None when the system acted (a timer, the engine)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    task_id: Mapped[str | None] = mapped_column(String(36))
    data: Mapped[dict | None] = mapped_column(JSONType)

    actor: Mapped[User | None] = relationship()


class CaseComment(db.Model):
    """A note between the people handling a case (not shown to the parties)."""

    __tablename__ = "case_comment"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("dispute_case.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[User] = relationship()


class CaseAttachment(db.Model):
    """A file attached to a case; the bytes live outside the web root, named by their SHA-256."""

    __tablename__ = "case_attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("dispute_case.id"), index=True)
    original_name: Mapped[str] = mapped_column(String(255))
    #: the file name under the attachments directory (the hex SHA-256: equal files are stored once)
    stored_name: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    uploaded_at = mapped_column(UTCDateTime, default=utcnow)

    uploaded_by: Mapped[User] = relationship()


# ---------------------------------------------------------------------------------------------
# The case's change counter

#: what a case is made of: a change to any of them is a change to the case
_PARTS_OF_A_CASE = (WorkflowState, HumanTask, Timer)
#: the cases whose lock_version this transaction has bumped already
_COUNTED = "counted_case_changes"


@event.listens_for(Session, "before_flush")
def _count_case_changes(session, flush_context, instances):
    """Bump ``lock_version`` once per transaction for every case it changes.

    Done here, not by each service, so no write can forget it: a service that read a case before
    taking its lock (complete_task) trusts what it read when the counter has not moved.
    """
    counted = session.info.setdefault(_COUNTED, set())
    changed = set()
    for row in session.dirty:  # dirty: an attribute was set, perhaps to the value it had
        if isinstance(row, (DisputeCase, *_PARTS_OF_A_CASE)) and session.is_modified(row, include_collections=False):
            changed.add(row.id if isinstance(row, DisputeCase) else row.case_id)
    # parts added or removed; a new case itself starts at 0: nobody can have read it before
    changed |= {row.case_id for row in chain(session.new, session.deleted) if isinstance(row, _PARTS_OF_A_CASE)}
    for case_id in changed - counted - {None}:
        case = session.identity_map.get(session.identity_key(DisputeCase, case_id))
        if case is not None:
            case.lock_version += 1
        else:  # a part written without its case loaded
            session.execute(update(DisputeCase.__table__).where(DisputeCase.__table__.c.id == case_id)
                            .values(lock_version=DisputeCase.__table__.c.lock_version + 1))
        counted.add(case_id)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_counted_cases(session):
    session.info.pop(_COUNTED, None)
