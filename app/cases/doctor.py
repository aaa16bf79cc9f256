"""Check that every case's projections agree with its stored workflow state; rebuild if not.

Every engine step writes state and projections in one transaction, so a mismatch means a bug
or a hand edit of the database. `flask doctor` reports them and, with --fix, rebuilds the
projections from the state (the state is the truth), leaving an event on the case.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from app.cases import services
from app.cases.models import CaseStatus, DisputeCase, HumanTask, TaskStatus, Timer
from app.database import UnitOfWork
from app.extensions import db


@dataclass
class Finding:
    case_id: int
    number: str
    problems: list[str] = field(default_factory=list)


def check_case(case: DisputeCase) -> list[str]:
    """What differs between the case's projections and its workflow state."""
    snapshot = services.load_instance(case).snapshot()
    problems = []
    ready_rows = set(db.session.scalars(select(HumanTask.task_id).where(
        HumanTask.case_id == case.id, HumanTask.status == TaskStatus.ready)))
    engine_ready = {task.task_id for task in snapshot.ready}
    if ready_rows != engine_ready:
        problems.append(f"ready tasks: projected {sorted(ready_rows)} but the engine has {sorted(engine_ready)}")
    timer_rows = {row.task_id: row.due_at for row in db.session.scalars(select(Timer).where(
        Timer.case_id == case.id, Timer.status.in_(["pending", "suspended"])))}
    engine_timers = {timer.task_id: timer.due_at for timer in snapshot.timers}
    if timer_rows != engine_timers:
        problems.append(f"pending timers: projected {sorted(timer_rows.items())} but the engine has "
                        f"{sorted(engine_timers.items())}")
    data = snapshot.variables
    if case.current_tier != data.get("tier"):
        problems.append(f"current tier: projected {case.current_tier} but the state says {data.get('tier')}")
    closed = case.status == CaseStatus.closed
    if closed != snapshot.completed:
        problems.append(f"status: projected {case.status} but the workflow is "
                        f"{'finished' if snapshot.completed else 'running'}")
    if snapshot.completed and case.outcome != data.get("outcome"):
        problems.append(f"outcome: projected {case.outcome} but the state says {data.get('outcome')}")
    return problems


def examine(case_ids: list[int] | None = None, fix: bool = False) -> list[Finding]:
    """Check the given cases (default: all); with ``fix``, rebuild each mismatched one."""
    ids = case_ids or list(db.session.scalars(select(DisputeCase.id).order_by(DisputeCase.id)))
    findings = []
    for case_id in ids:
        case = db.session.get(DisputeCase, case_id)
        if case is None:
            continue
        problems = check_case(case)
        db.session.rollback()
        if problems:
            findings.append(Finding(case_id, case.number, problems))
            if fix:
                rebuild_case(case_id, problems)
    return findings


def rebuild_case(case_id: int, problems: list[str]) -> None:
    with UnitOfWork() as uow:
        case = services.lock_case(case_id)
        services.change_workflow(case, None, lambda instance: None)
        services.record_event(case, None, "projection_rebuilt", "按流程状态重建案件视图",
                              data={"problems": problems})
        uow.commit()
