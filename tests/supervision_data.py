"""Cases written straight into the projections, for the supervisor console's tests and benchmark.

Statistics are SQL over ``dispute_case`` / ``case_event`` / ``human_task``, so the tests build a
known population row by row (no workflow runs) and assert every figure exactly.
"""
from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.cases.models import CaseEvent, DisputeCase, HumanTask
from app.extensions import db
from app.org.models import OrgUnit
from app.processes.models import ProcessVersion

SHANGHAI = ZoneInfo("Asia/Shanghai")
_numbers = itertools.count(1)


def local(year, month, day, hour=10, minute=0) -> datetime:
    """A Shanghai wall-clock time as an aware UTC datetime."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def unit(code: str) -> OrgUnit:
    return db.session.scalar(select(OrgUnit).where(OrgUnit.code == code))


def version() -> ProcessVersion:
    return db.session.scalar(select(ProcessVersion).order_by(ProcessVersion.id.desc()))


def insert_case(unit_code: str = "QX-FQ-DS", *, status: str = "closed", opened_at: datetime,
                closed_at: datetime | None = None, outcome: str | None = None, resolved_tier: str | None = None,
                category: str = "neighbour", channel: str = "walk_in", satisfaction: str | None = None,
                current_tier: str | None = None, due_at: datetime | None = None, people_involved: int = 2,
                risk_level: str = "low", time_limit_fired: bool = False, title: str | None = None,
                process_version: ProcessVersion | None = None) -> DisputeCase:
    """Add one case (and its time-limit event when ``time_limit_fired``); the caller commits."""
    place = unit(unit_code)
    number = next(_numbers)
    case = DisputeCase(
        number=f"SV{number:08d}", title=title or f"测试纠纷{number}", description="", category=category,
        channel=channel, risk_level=risk_level, people_involved=people_involved, parties=[],
        org_unit_id=place.id, org_path=place.path, process_version_id=(process_version or version()).id,
        status=status, current_tier=current_tier if current_tier is not None else (
            resolved_tier if status == "closed" else "village"),
        start_tier="village", resolved_tier=resolved_tier, outcome=outcome, satisfaction=satisfaction,
        opened_at=opened_at, closed_at=closed_at, due_at=due_at, updated_at=closed_at or opened_at,
    )
    db.session.add(case)
    db.session.flush()
    if time_limit_fired:
        db.session.add(CaseEvent(case_id=case.id, at=opened_at + timedelta(days=1), kind="time_limit",
                                 message="村级办理时限届满", data={"timer": "village_time_limit"}))
    db.session.add(CaseEvent(case_id=case.id, at=opened_at, kind="case_opened", message=f"登记纠纷 {case.number}"))
    return case


def insert_task(case: DisputeCase, spec_name: str, *, status: str, created_at: datetime,
                completed_at: datetime | None = None, assignee_id: int | None = None, lane: str = "village_mediator",
                tier: str = "village", due_at: datetime | None = None, title: str | None = None) -> HumanTask:
    task = HumanTask(
        case_id=case.id, task_id=f"t-{case.id}-{spec_name}-{created_at.timestamp():.0f}", spec_name=spec_name,
        title=title or spec_name, lane=lane, tier=tier, org_unit_id=case.org_unit_id, org_path=case.org_path,
        status=status, assignee_id=assignee_id, created_at=created_at, completed_at=completed_at, due_at=due_at,
    )
    db.session.add(task)
    return task
