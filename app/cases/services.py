"""Dispute cases: start, claim, release, complete, fire timers; keep projections in step.

Every call that changes a case locks its row, loads its workflow onto the cached spec, runs one
engine step and, in the same transaction, saves the state and rewrites the projections
(case fields, human_task, timer) and appends events. Leaving early rolls everything back.
"""
from __future__ import annotations

import gc
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from uuid import uuid4

import jsonschema
from flask import current_app
from sqlalchemy import bindparam, event, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from app import clock, engine
from app.cases.catalog import CATEGORIES, CHANNELS, ESCALATION_REASONS, RISK_LEVELS, TIERS
from app.cases.models import (
    CaseEvent,
    CaseStatus,
    DisputeCase,
    HumanTask,
    TaskStatus,
    Timer,
    TimerKind,
    WorkflowState,
)
from app.database import UnitOfWork, insert_later, lock_row, lock_row_column, lock_rows, write_versioned_together
from app.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from app.extensions import db
from app.notifications import services as notifications
from app.org import services as org
from app.org.models import Level, OrgUnit, User
from app.org.roles import ROLE_TIER, ROLES
from app.processes import services as processes
from app.processes.models import ProcessVersion
from app.scheduling import calendar
from app.scheduling import services as scheduling

log = logging.getLogger(__name__)

# Process variables copied onto the case row after each step (the intake form may correct them).
CASE_FIELDS_FROM_DATA = (
    "title", "description", "category", "channel", "risk_level", "people_involved", "parties", "location",
)


#: Domain helpers diagram code may call, e.g. timers: ``duration_of(time_limits["village"])``.
DIAGRAM_HELPERS = {"duration_of": calendar.duration_of}
# duration_of reads the installed holiday calendar: sandbox workers get the same one.
engine.share_with_workers("calendar", calendar.current, calendar.install)


class ProcessFailure(DomainError):
    """Diagram code failed on this case's data; nothing was saved."""

    status = 422


@dataclass
class NewCase:
    """What a reporter supplies to open a case (validated by the API/web schema first)."""

    title: str
    category: str
    description: str
    org_unit_id: int
    channel: str = "walk_in"
    risk_level: str = "low"
    people_involved: int = 2
    parties: list | None = None
    location: str | None = None
    reporter_name: str | None = None
    reporter_phone: str | None = None
    time_limit_overrides: dict | None = None


def _check_codes(new: NewCase) -> None:
    errors = {}
    if new.category not in CATEGORIES:
        errors["category"] = [f"unknown category; one of {', '.join(CATEGORIES)}"]
    if new.channel not in CHANNELS:
        errors["channel"] = [f"unknown channel; one of {', '.join(CHANNELS)}"]
    if new.risk_level not in RISK_LEVELS:
        errors["risk_level"] = [f"unknown risk level; one of {', '.join(RISK_LEVELS)}"]
    for key, value in (new.time_limit_overrides or {}).items():
        if not calendar.is_working_days(value) and engine.duration_problem(value):
            errors[f"time_limit_overrides.{key}"] = ["an ISO-8601 duration such as P7D, or working days such as 10WD"]
    if errors:
        raise InvalidInput("the dispute has invalid fields", errors=errors)


@lru_cache(maxsize=4)
def _engine_with_budget(time_budget: float, isolation: str, workers: int, memory_limit_mb: int):
    return engine.create_script_engine(helpers=DIAGRAM_HELPERS, time_budget=time_budget, isolation=isolation,
                                       workers=workers, memory_limit_mb=memory_limit_mb)


def _configured_engine():
    config = current_app.config
    return _engine_with_budget(config["SCRIPT_TIME_BUDGET"], config["SCRIPT_ISOLATION"],
                               config["SCRIPT_WORKERS"], config["SCRIPT_MEMORY_LIMIT_MB"])


def _script_engine():
    scheduling.working_calendar()  # re-read the holiday calendar when it has gone stale
    return _configured_engine()


def warm_up_script_workers() -> int:
    """Start this process's diagram-code workers now, so the first case does not wait for them.

    Servers call it at boot (gunicorn.conf.py, ``flask scheduler run``, ``flask serve``);
    returns how many workers run (0 with SCRIPT_ISOLATION=inline). Reads no table: a server
    may boot before the database is migrated.
    """
    return engine.start_script_workers(_configured_engine())


def _version_for_new_case(unit: OrgUnit | None = None) -> ProcessVersion:
    # The region's variant (the most specific unit on the case's path), else the default key.
    version = processes.version_for_unit(unit, current_app.config["DEFAULT_PROCESS_KEY"])
    if version is None:
        raise Conflict("no process is deployed yet; run `flask workflows deploy` first")
    return version


def start_case(actor: User | None, new: NewCase) -> DisputeCase:
    """Open a case and start its workflow; it waits for the intake clerk's registration."""
    _check_codes(new)
    with UnitOfWork() as uow:
        unit = db.session.get(OrgUnit, new.org_unit_id)
        if unit is None or (actor is not None and not org.sees_path(actor, unit.path)):
            raise NotFound("org unit not found", field="org_unit_id")
        if unit.level not in (Level.village, Level.grid):
            raise InvalidInput(
                "a dispute is opened at a village/community or a grid",
                errors={"org_unit_id": [f"{unit.name} is a {unit.level.value}"]},
            )
        version = _version_for_new_case(unit)
        now = clock.now()
        case = DisputeCase(
            number=f"tmp-{uuid4().hex}", title=new.title, description=new.description,
            category=new.category, channel=new.channel, risk_level=new.risk_level,
            people_involved=new.people_involved, parties=new.parties or [], location=new.location,
            reporter_name=new.reporter_name, reporter_phone=new.reporter_phone,
            org_unit_id=unit.id, org_path=unit.path, process_version_id=version.id,
            created_by_id=actor.id if actor else None, status=CaseStatus.intake,
            opened_at=now, updated_at=now,
        )
        db.session.add(case)
        db.session.flush()
        case.number = f"JF{now:%Y}{case.id:07d}"
        data = {key: getattr(case, key) for key in CASE_FIELDS_FROM_DATA}
        data.update(case_number=case.number, time_limit_overrides=dict(new.time_limit_overrides or {}))
        instance = _run(lambda: engine.Instance.start(processes.parsed_process(version), data, _script_engine()))
        case.workflow_state = WorkflowState(case_id=case.id, serializer_version=engine.SERIALIZER_VERSION, state="")
        db.session.flush()
        _record(case, actor, "case_opened", f"登记纠纷 {case.number}: {case.title}", data={"channel": case.channel})
        _save_and_project(case, instance, actor)
        uow.commit()
    return case


def change_workflow(case: DisputeCase, actor: User | None, change) -> None:
    """Apply ``change(instance)`` to a case's workflow, then save and rewrite its projections.

    For other services' interventions; the caller owns the transaction and has locked the case
    (``lock_case``) before calling.
    """
    instance = _load(case)
    _run(lambda: change(instance))
    _save_and_project(case, instance, actor)


def lock_case(case_id: int) -> DisputeCase:
    case = lock_row(DisputeCase, case_id)
    if case is None:
        raise NotFound(f"dispute {case_id} not found")
    return case


def record_event(case: DisputeCase, actor: User | None, kind: str, message: str, **kwargs) -> None:
    """Append to the case's event log (inside the caller's transaction)."""
    _record(case, actor, kind, message, **kwargs)


def _run(step):
    try:
        return step()
    except engine.ScriptFailure as exc:
        raise ProcessFailure(f"the process failed at {exc.element_id or 'an element'}: {exc}",
                             element_id=exc.element_id) from None


def load_instance(case: DisputeCase) -> engine.Instance:
    """The case's workflow, loaded onto its version's cached spec (read-only use: doctor)."""
    return _load(case)


def _load(case: DisputeCase) -> engine.Instance:
    parsed = processes.parsed_process_of(case.process_version_id)
    return engine.Instance.load(parsed, case.workflow_state.state, _script_engine())


# ---------------------------------------------------------------------------------------------
# Tasks

def get_visible_task(actor: User, task_id: int, statement=None) -> HumanTask:
    """A task the actor may see: a candidate, its holder, or a supervisor above it; else 404.
    ``statement``: a select of the task by its id (bound as ``id``) loading what the caller
    needs with it."""
    if statement is None:
        task = db.session.get(HumanTask, task_id)
    else:
        task = db.session.scalars(statement, {"id": task_id}).unique().one_or_none()
    if task is None or not _may_see_task(actor, task):
        raise NotFound(f"task {task_id} not found")
    return task


# Built once, like org.services' statements: a completion runs each of them.
_TASK_WITH_CASE_AND_STATE = (
    select(HumanTask).where(HumanTask.id == bindparam("id"))
    .options(joinedload(HumanTask.case).joinedload(DisputeCase.workflow_state))
)


def _may_see_task(actor: User, task: HumanTask) -> bool:
    return (
        task.assignee_id == actor.id
        or task.completed_by_id == actor.id
        or org.works_lane_at(actor, task.lane, task.org_path)
        or org.supervises(actor, task.org_path)
    )


def _locked_task(actor: User, task_id: int) -> tuple[DisputeCase, HumanTask]:
    task = get_visible_task(actor, task_id)
    case = lock_row(DisputeCase, task.case_id)
    db.session.refresh(task)
    return case, task


def _ensure_ready(task: HumanTask) -> None:
    if task.status == TaskStatus.ready:
        if task.case.status == CaseStatus.suspended:
            raise Conflict("the case is suspended by a supervisor; it cannot be worked on until resumed",
                           code="suspended")
        return
    when = task.completed_at.isoformat() if task.completed_at else "an earlier time"
    if task.status == TaskStatus.completed:
        who = db.session.get(User, task.completed_by_id) if task.completed_by_id else None
        raise Conflict(f"task already completed at {when} by {who.display_name if who else 'someone else'}",
                       code="already_completed", at=when)
    if task.end_reason == "time_limit":
        raise Conflict(f"the case was escalated at {when} by the time limit; this task is closed",
                       code="escalated_by_time_limit", at=when)
    raise Conflict(f"task was cancelled at {when} ({task.end_reason or 'the process moved on'})",
                   code="cancelled", at=when)


def claim_task(actor: User, task_id: int) -> HumanTask:
    with UnitOfWork() as uow:
        case, task = _locked_task(actor, task_id)
        _ensure_ready(task)
        if not org.works_lane_at(actor, task.lane, task.org_path):
            raise Forbidden(f"claiming needs the role {task.lane} at this unit")
        if task.assignee_id not in (None, actor.id):
            raise Conflict(f"task is held by {task.assignee.display_name}", code="claimed_by_other")
        if task.assignee_id is None:
            task.assignee_id, task.claimed_at = actor.id, clock.now()
            _record(case, actor, "task_claimed", f"{actor.display_name} 认领「{task.title}」", task_id=task.task_id)
        uow.commit()
    return task


def release_task(actor: User, task_id: int) -> HumanTask:
    with UnitOfWork() as uow:
        case, task = _locked_task(actor, task_id)
        _ensure_ready(task)
        if task.assignee_id != actor.id and not org.supervises(actor, task.org_path):
            raise Forbidden("only the holder or a supervisor can release a task")
        if task.assignee_id is not None:
            task.assignee_id, task.claimed_at = None, None
            _record(case, actor, "task_released", f"{actor.display_name} 退回「{task.title}」到待认领", task_id=task.task_id)
        uow.commit()
    return task


def task_form(task: HumanTask) -> dict:
    if not task.form_name:
        return {"type": "object", "properties": {}}
    return processes.form_schema_of(task.case.process_version_id, task.form_name)


def validate_form(schema: dict, data: dict) -> None:
    """Validate a submission; raise InvalidInput with messages keyed by field path."""
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    errors: dict[str, list[str]] = {}
    for error in validator.iter_errors(data):
        path = ".".join(str(part) for part in error.absolute_path)
        if error.validator == "required":
            for name in error.validator_value:
                if isinstance(error.instance, dict) and name not in error.instance:
                    errors.setdefault(f"{path}.{name}" if path else name, []).append("required")
            continue
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            for name in error.instance:
                if name not in allowed:
                    errors.setdefault(f"{path}.{name}" if path else name, []).append("not a field of this form")
            continue
        errors.setdefault(path or "_form", []).append(error.message)
    if errors:
        raise InvalidInput("the form has errors", errors=errors)


def complete_task(actor: User, task_id: int, data: dict) -> HumanTask:
    """Complete a ready task with its form data (claiming it if nobody holds it); returns the task.

    The case, its tasks and timers are read and the engine runs before the case is locked. Under
    the lock, the case's change counter (lock_version) tells whether anything changed since the
    read; only then is the case read again, and the engine runs again if its state moved on. On
    SQLite, where writers take turns, this keeps the reads, the engine and the serializing out
    of the turn.
    """
    with UnitOfWork() as uow:
        task = get_visible_task(actor, task_id, _TASK_WITH_CASE_AND_STATE)
        _check_completable(actor, task)
        validate_form(task_form(task), data)
        case, state = task.case, task.case.workflow_state
        read_changes, read_state_version = case.lock_version, state.row_version
        instance, saved = _completed_step(task, data)
        task_rows, timer_rows = _rows_of(HumanTask, case.id), _rows_of(Timer, case.id)

        if lock_case_changes(case.id) != read_changes:  # changed since the read: take it as stored now
            db.session.refresh(case)  # locked already
            task_rows = _rows_of(HumanTask, case.id, fresh=True)  # the task among them
            timer_rows = _rows_of(Timer, case.id, fresh=True)
            _check_completable(actor, task)
            stored_version = db.session.scalar(
                select(WorkflowState.row_version).where(WorkflowState.case_id == case.id))
            # the case's reload forgot its state row: it is the one in hand (no second read)
            set_committed_value(case, "workflow_state", state)
            if stored_version != read_state_version:  # the state moved on: run the step on it
                db.session.refresh(state)
                instance, saved = _completed_step(task, data)
        if task.assignee_id is None:
            task.assignee_id, task.claimed_at = actor.id, clock.now()
        _record(case, actor, "task_completed", f"{actor.display_name} 完成「{task.title}」",
                task_id=task.task_id, data={"form": data})
        _save_and_project(case, instance, actor, completed_task_id=task.task_id, task_rows=task_rows,
                          timer_rows=timer_rows, saved=saved)
        uow.commit()
    return task


def lock_case_changes(case_id: int) -> int | None:
    """Lock the case and return its change counter (lock_version) as stored."""
    return lock_row_column(DisputeCase.__table__.c.lock_version, case_id)


def _check_completable(actor: User, task: HumanTask) -> None:
    _ensure_ready(task)
    if not org.works_lane_at(actor, task.lane, task.org_path):
        raise Forbidden(f"completing needs the role {task.lane} at this unit")
    if task.assignee_id not in (None, actor.id):
        raise Conflict(f"task is held by {task.assignee.display_name}", code="claimed_by_other")


def _completed_step(task: HumanTask, data: dict) -> tuple[engine.Instance, tuple[str, engine.Snapshot]]:
    """The case's workflow with the task completed, and its serialized state and snapshot
    (what _save_and_project stores); nothing is written."""
    instance = _load(task.case)
    try:
        _run(lambda: instance.complete(task.task_id, data))
    except (engine.TaskNotReady, engine.TaskNotFound) as exc:
        # The projection said READY but the engine disagrees: trust the engine, refuse.
        raise Conflict(f"task cannot be completed: {exc}", code="not_ready") from None
    return instance, (instance.dump(), instance.snapshot())


# ---------------------------------------------------------------------------------------------
# Timers

#: Cases fired per transaction: a burst of due timers (a holiday ends, a scheduler restarts)
#: pays one claim and one commit per batch instead of per case.
TIMER_BATCH = 25


def fire_due_timers(now: datetime | None = None, limit: int = 10_000) -> int:
    """Fire every timer due by ``now`` (default: the clock), oldest first; return how many fired.

    ``limit`` bounds the cases handled in one call. Cases are claimed and fired in batches, one
    transaction each; if a case fails, its batch is rolled back and fired again one case per
    transaction, so one failing case holds up neither the rest nor the queue (see
    fire_next_due_timers). Several schedulers may call this at once.
    """
    fired = handled = 0
    with clock.at(now):
        while handled < limit:
            result = fire_next_due_timers(min(TIMER_BATCH, limit - handled))
            if result is None:
                break
            cases_handled, count = result
            handled += cases_handled
            fired += count
    return fired


def fire_next_due_timers(batch: int) -> tuple[int, int] | None:
    """Claim up to ``batch`` cases with the oldest due timers that nobody else holds, and fire
    them in one transaction; return (cases claimed, timers fired), or None when nothing is due.

    Locks go case first, as for users completing tasks: on PostgreSQL the claim is
    ``FOR UPDATE OF dispute_case SKIP LOCKED``, so concurrent schedulers take different cases
    and never wait on each other's timer rows. Re-reading the timers under the case lock makes
    a repeat do nothing.
    """
    with UnitOfWork() as uow, _cycle_collector_paused():
        now = clock.now()
        case_ids = _claim_due_cases(now, batch)
        if not case_ids:
            return None
        try:
            count = _fire_claimed_cases(case_ids, now)
            uow.commit()
            return len(case_ids), count
        except Exception:
            pass  # rolled back on leaving the block
    # Something in the batch failed and all of it was rolled back: one case per transaction now.
    return len(case_ids), sum(_fire_case_alone(case_id) for case_id in case_ids)


@contextmanager
def _cycle_collector_paused():
    """Keep Python's cycle collector out of one batch of firings.

    A batch builds 25 workflows, tens of thousands of objects that live until its commit; the
    collector would otherwise scan them again and again as they age (about 5 % of a burst,
    bench/timers.py). Once the batch is over they are garbage, collected in one pass. If another
    thread has paused it already, that thread turns it back on.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _claim_due_cases(now: datetime, batch: int) -> list[int]:
    claim = (select(DisputeCase.id).join(Timer, Timer.case_id == DisputeCase.id)
             .where(Timer.status == "pending", Timer.due_at <= now)
             .order_by(Timer.due_at, Timer.id).limit(batch * 2))  # a case often has two due timers
    if db.session.get_bind().dialect.name == "postgresql":
        claim = claim.with_for_update(of=DisputeCase, skip_locked=True)
    return list(dict.fromkeys(db.session.scalars(claim)))[:batch]


def _fire_case_alone(case_id: int) -> int:
    """Fire one claimed case in its own transaction. When the firing fails for a reason the
    database is not to blame for (diagram code, the case's data), it would fail again at every
    sweep and hold up the queue behind it: the case's due timers are parked as stuck instead,
    with the reason on the case's record for a supervisor to act on."""
    try:
        return fire_case_timers(case_id)
    except SQLAlchemyError:
        raise  # the database's trouble, not the case's: the next sweep tries again
    except Exception as failure:  # noqa: BLE001 - the engine raises bare Exceptions (bad durations)
        log.exception("timers of case %s failed to fire; parked", case_id)
        reason = f"{type(failure).__name__}: {failure}" if not isinstance(failure, DomainError) else str(failure)
    with UnitOfWork() as uow:
        now = clock.now()
        case = lock_row(DisputeCase, case_id)
        _park_due_timers(case, _rows_of(Timer, case_id), now, error=reason)
        uow.commit()
    return 0


def _park_due_timers(case: DisputeCase, timer_rows: list[Timer], now: datetime, error: str | None = None) -> None:
    """Mark the case's timers still pending and due as stuck, each with a trace on the case's record."""
    for timer in timer_rows:
        if timer.status == "pending" and timer.due_at <= now:
            timer.status = "stuck"
            data = {"timer": timer.spec_name, "due_at": timer.due_at.isoformat()}
            _record(case, None, "timer_stuck", f"定时器未能触发：{timer.name}",
                    data=data if error is None else data | {"error": error})


def fire_case_timers(case_id: int) -> int:
    """Fire one case's due timers under its row lock; a timer already handled does nothing."""
    with UnitOfWork() as uow:
        count = _fire_claimed_cases([case_id], clock.now())
        uow.commit()
    return count


def _fire_claimed_cases(case_ids: list[int], now: datetime) -> int:
    """Lock the cases, read their state, timers and tasks in one query each, fire them.

    No query runs between one case's firing and the next, so the session flushes every case's
    writes once, at commit, in multi-row statements; the states, which the ORM would write one
    statement each (they are versioned), go together first.
    """
    cases = lock_rows(DisputeCase, case_ids, selectinload(DisputeCase.workflow_state))
    timers, tasks = _rows_by_case(Timer, case_ids), _rows_by_case(HumanTask, case_ids)
    fired = sum(_fire_locked_case(case, now, timers.get(case.id, []), tasks.get(case.id, [])) for case in cases)
    write_versioned_together([case.workflow_state for case in cases], "state", "serializer_version")
    return fired


def _fire_locked_case(case: DisputeCase, now: datetime, timer_rows: list[Timer], task_rows: list[HumanTask]) -> int:
    due = [row for row in timer_rows if row.status == "pending" and row.due_at <= now]
    if not due:
        return 0
    instance = _load(case)
    fired = _run(instance.fire_due_timers)
    _save_and_project(case, instance, None, fired_timer_ids=set(fired), timer_rows=timer_rows, task_rows=task_rows)
    # What the engine did not fire although the projection said it was due is parked rather
    # than claimed forever.
    _park_due_timers(case, due, now)
    return len(fired)


def _rows_by_case(model, case_ids: list[int], fresh: bool = False) -> dict[int, list]:
    """Every projection row of these cases (a case has a few dozen at most), one query in all.

    ``fresh``: overwrite rows already loaded (read before the case's lock) with what is stored."""
    rows: dict[int, list] = {}
    options = {"populate_existing": True} if fresh else {}
    for row in db.session.scalars(_rows_statement(model), {"ids": list(case_ids)}, execution_options=options):
        rows.setdefault(row.case_id, []).append(row)
    return rows


@lru_cache
def _rows_statement(model):
    return select(model).where(model.case_id.in_(bindparam("ids", expanding=True))).order_by(model.id)


def _rows_of(model, case_id: int, fresh: bool = False) -> list:
    return _rows_by_case(model, [case_id], fresh).get(case_id, [])


# ---------------------------------------------------------------------------------------------
# Projections

def _record(case, actor, kind, message, task_id=None, data=None, at=None):
    insert_later(CaseEvent.__table__, {
        "case_id": case.id, "actor_id": actor.id if actor else None, "kind": kind, "message": message,
        "task_id": task_id, "data": data, "at": at or clock.now(),
    })


def _task_unit(case: DisputeCase, lane: str | None) -> OrgUnit:
    role = ROLES.get(lane or "")
    if role is None:
        return case.org_unit
    looked_up = db.session.info.setdefault(_LOOKUPS, {})  # org units do not change within a step
    key = ("unit", case.org_unit_id, role.level)
    if key not in looked_up:
        looked_up[key] = org.unit_for_level(case.org_unit, role.level)
    return looked_up[key]


def _save_and_project(case, instance, actor, completed_task_id=None, fired_timer_ids=frozenset(), timer_rows=None,
                      task_rows=None, saved=None):
    """Store the instance's state and bring the projections in line. ``saved``: its state and
    snapshot when the caller has them already."""
    # One flush at commit instead of one before every projection query.
    with db.session.no_autoflush:
        _save_and_project_unflushed(case, instance, actor, completed_task_id, fired_timer_ids, timer_rows, task_rows,
                                    saved or (instance.dump(), instance.snapshot()))


def _save_and_project_unflushed(case, instance, actor, completed_task_id, fired_timer_ids, timer_rows, task_rows,
                                saved):
    now = clock.now()
    state_text, snapshot = saved
    state = case.workflow_state
    state.state = state_text
    state.serializer_version = engine.SERIALIZER_VERSION

    before_tier, before_reopen = case.current_tier, case.reopen_count
    data = snapshot.variables
    for key in CASE_FIELDS_FROM_DATA:
        if key in data and data[key] is not None:
            setattr(case, key, data[key])
    case.current_tier = data.get("tier")
    case.start_tier = data.get("start_tier") or case.start_tier
    case.resolved_tier = data.get("resolved_tier")
    case.department = data.get("department") or case.department
    case.outcome = data.get("outcome")
    case.satisfaction = data.get("satisfaction")
    case.is_major = bool(data.get("is_major") or data.get("leader_designated"))
    case.escalation_count = int(data.get("escalation_count") or 0)
    case.reopen_count = int(data.get("reopen_count") or 0)
    if snapshot.completed:
        case.status = CaseStatus.closed
        case.closed_at = case.closed_at or now
    elif case.suspended_at is not None:
        case.status = CaseStatus.suspended
    else:
        case.status = CaseStatus.open if case.current_tier else CaseStatus.intake
        case.closed_at = None

    if timer_rows is None:
        timer_rows = _rows_of(Timer, case.id)
    fired_limit, fired_reminders = _project_timers(case, snapshot.timers, fired_timer_ids, now, timer_rows)
    new_tasks, ready_before = _project_tasks(case, snapshot.ready, actor, completed_task_id, fired_limit, now,
                                             task_rows)

    if case.current_tier != before_tier and case.current_tier:
        tier_zh = TIERS.get(case.current_tier, (case.current_tier,))[0]
        if before_tier is None:
            _record(case, actor, "triaged", f"分流至{tier_zh}（{case.department or ''}）",
                    data={"tier": case.current_tier, "department": case.department})
        elif case.reopen_count == before_reopen:
            reason = data.get("escalation_reason") or ""
            reason_zh = ESCALATION_REASONS.get(reason, (reason,))[0]
            _record(case, None if reason == "time_limit" else actor, "escalated",
                    f"{reason_zh}，由{TIERS[before_tier][0]}上交{tier_zh}",
                    data={"from": before_tier, "to": case.current_tier, "reason": reason})
    if case.reopen_count > before_reopen:
        _record(case, actor, "reopened", f"当事人不满意，{TIERS.get(case.current_tier, ('',))[0]}重新办理",
                data={"tier": case.current_tier, "reopen_count": case.reopen_count})
    if case.status == CaseStatus.closed and case.closed_at == now:
        _record(case, actor, "closed", f"结案：{case.outcome or ''}", data={"outcome": case.outcome})
    _notify(case, before_tier, new_tasks, ready_before, fired_reminders)
    case.updated_at = now  # the session counts the change (lock_version) as it flushes


#: org look-ups (units, people to notify) kept for the rest of the transaction
_LOOKUPS = "org_lookups"


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_lookups(session):
    session.info.pop(_LOOKUPS, None)


def _notify(case, before_tier, new_tasks, ready_before, fired_reminders):
    """Tell the people concerned: new work (assignment or escalation) and reminders (催办).

    A reminder goes to whoever held or could take the tasks that were open when it fell due.
    """
    escalated = before_tier is not None and case.current_tier != before_tier
    # A step asks for the same people more than once, and a batch of timer firings for the same
    # people case after case: look each set up once per transaction.
    looked_up: dict[tuple, list] = db.session.info.setdefault(_LOOKUPS, {})

    def candidates(task):
        key = ("lane", task.lane, task.org_path)
        if key not in looked_up:
            looked_up[key] = org.task_candidates(task.lane, task.org_path)
        return looked_up[key]

    def supervisors(org_path):
        key = ("supervisors", org_path)
        if key not in looked_up:
            looked_up[key] = org.supervisors_over(org_path)
        return looked_up[key]

    for task in new_tasks:
        if escalated:
            tier_zh = TIERS.get(case.current_tier, (case.current_tier,))[0]
            notifications.notify(candidates(task) + supervisors(task.org_path), "escalation",
                                  f"{case.number} 已上交{tier_zh}：请办理「{task.title}」", case.id)
        else:
            notifications.notify(candidates(task), "assignment", f"{case.number} 新待办「{task.title}」", case.id)
    for timer in fired_reminders:
        holders = []
        for task in ready_before:
            holders += [task.assignee] if task.assignee_id else candidates(task)
        notifications.notify(holders + supervisors(case.org_path), "reminder",
                             f"催办：{case.number}「{case.title}」{timer.name}，办理时限 "
                             f"{case.due_at.isoformat() if case.due_at else ''}", case.id)


def _project_timers(case, engine_timers, fired_ids, now, all_rows) -> tuple[bool, list[Timer]]:
    """Sync timer rows with the engine; return (a time limit fired, the reminders that fired)."""
    pending = {t.task_id: t for t in engine_timers}
    rows = {r.task_id: r for r in all_rows if r.status == "pending"}
    fired_limit, reminders = False, []
    for task_id, row in rows.items():
        if task_id in pending:
            row.due_at = pending[task_id].due_at
            continue
        if task_id in fired_ids:
            row.status, row.fired_at = "fired", now
            row.lag_ms = max(0, int((now - row.due_at).total_seconds() * 1000))
            if row.kind == TimerKind.time_limit:
                fired_limit = True
                _record(case, None, "time_limit", f"{row.name}", data={"timer": row.spec_name, "due_at": row.due_at.isoformat()})
            else:
                reminders.append(row)
                _record(case, None, "reminder", f"催办：{row.name}", data={"timer": row.spec_name, "due_at": row.due_at.isoformat()})
        else:
            row.status = "cancelled"
    others = {r.task_id: r for r in all_rows if r.task_id not in rows}
    for task_id, timer in pending.items():
        if task_id in others:  # only when rebuilding projections someone damaged (flask doctor)
            others[task_id].status, others[task_id].due_at = "pending", timer.due_at
        elif task_id not in rows:
            insert_later(Timer.__table__, dict(  # queued as the new tasks are (see _project_tasks)
                case_id=case.id, task_id=task_id, spec_name=timer.spec_name, name=timer.name,
                kind=TimerKind.time_limit if timer.interrupting else TimerKind.reminder,
                attached_to=timer.attached_to, due_at=timer.due_at, status="pending",
            ))
    limits = [t.due_at for t in pending.values() if t.interrupting]
    case.due_at = min(limits) if limits else None
    return fired_limit, reminders


def _project_tasks(case, ready_tasks, actor, completed_task_id, fired_limit, now, all_rows=None):
    """Sync human_task rows with the engine; return (the rows created, the rows ready before)."""
    ready = {t.task_id: t for t in ready_tasks}
    if all_rows is None:
        all_rows = _rows_of(HumanTask, case.id)
    rows = {r.task_id: r for r in all_rows if r.status == TaskStatus.ready}
    for task_id, row in rows.items():
        if task_id in ready:
            row.due_at = case.due_at
            continue
        row.completed_at = now
        if task_id == completed_task_id:
            row.status, row.completed_by_id = TaskStatus.completed, actor.id if actor else None
        else:
            row.status = TaskStatus.cancelled
            row.end_reason = "time_limit" if fired_limit else "process_moved_on"
            _record(case, None, "task_cancelled", f"「{row.title}」已撤销（{'办理时限届满' if fired_limit else '流程已推进'}）",
                    task_id=task_id)
    created = []
    others = {r.task_id: r for r in all_rows if r.task_id not in rows}
    for task_id, info in ready.items():
        if task_id in rows:
            continue
        if task_id in others:  # only when rebuilding projections someone damaged (flask doctor)
            others[task_id].status, others[task_id].completed_at = TaskStatus.ready, None
            continue
        unit = _task_unit(case, info.lane)
        row = dict(
            case_id=case.id, task_id=task_id, spec_name=info.spec_name, title=info.title,
            lane=info.lane or "", tier=ROLE_TIER.get(info.lane or "", case.current_tier or "village"),
            org_unit_id=unit.id, org_path=unit.path, form_name=info.form,
            status=TaskStatus.ready, created_at=now, due_at=case.due_at,
        )
        # Queued, not added: SQLite cannot return the ids of a multi-row INSERT in order, so the
        # ORM would insert one row per statement; nothing in the step needs the new row's id.
        insert_later(HumanTask.__table__, row)
        created.append(HumanTask(**row))
        role = ROLES.get(info.lane or "")
        _record(case, None, "task_ready", f"待办「{info.title}」→ {unit.name} {role.zh if role else info.lane}",
                task_id=task_id, data={"lane": info.lane, "org_unit": unit.code})
    return created, list(rows.values())


def form_prefill(task: HumanTask) -> dict:
    """Values to show in the task's form: case fields the form asks for, then the saved draft."""
    properties = task_form(task).get("properties", {})
    values = {key: getattr(task.case, key) for key in properties if key in CASE_FIELDS_FROM_DATA}
    values.update(task.draft or {})
    return {key: value for key, value in values.items() if value is not None}
