"""Read-side queries over the projections; none of them loads a workflow."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, func, or_, select

from app import clock
from app.cases.models import CaseEvent, DisputeCase, HumanTask, TaskStatus
from app.errors import NotFound
from app.extensions import db
from app.org import services as org
from app.org.models import RoleGrant, User


@dataclass
class Page:
    items: list
    total: int
    page: int
    per_page: int


def _paginate(stmt, page: int, per_page: int) -> Page:
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    items = list(db.session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)))
    return Page(items, total or 0, page, per_page)


def _in_scope(column, paths: list[str]):
    """``column`` (an org path) lies in one of the subtrees ``paths``."""
    if not paths:
        return False
    return or_(*[column.startswith(path, autoescape=True) for path in paths])


def list_cases(actor: User, *, status=None, tier=None, category=None, overdue=None, q=None,
               page: int = 1, per_page: int = 20) -> Page:
    stmt = select(DisputeCase).where(_in_scope(DisputeCase.org_path, org.scope_paths(actor)))
    if status:
        stmt = stmt.where(DisputeCase.status == status)
    if tier:
        stmt = stmt.where(DisputeCase.current_tier == tier)
    if category:
        stmt = stmt.where(DisputeCase.category == category)
    if overdue:
        stmt = stmt.where(DisputeCase.due_at < clock.now(), DisputeCase.status != "closed")
    if q:
        like = f"%{q}%"
        stmt = stmt.where(or_(DisputeCase.title.like(like), DisputeCase.number.like(like)))
    stmt = stmt.order_by(DisputeCase.opened_at.desc(), DisputeCase.id.desc())
    return _paginate(stmt, page, per_page)


def get_case(actor: User, case_id: int) -> DisputeCase:
    case = db.session.get(DisputeCase, case_id)
    if case is None or not org.sees_path(actor, case.org_path):
        raise NotFound(f"dispute {case_id} not found")
    return case


def case_events(case: DisputeCase) -> list[CaseEvent]:
    return list(db.session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.at, CaseEvent.id)))


def open_tasks(case: DisputeCase) -> list[HumanTask]:
    return list(db.session.scalars(
        select(HumanTask).where(HumanTask.case_id == case.id, HumanTask.status == TaskStatus.ready)
        .order_by(HumanTask.created_at, HumanTask.id)))


def inbox(actor: User, *, scope: str = "all", tier=None, category=None, overdue=None,
          page: int = 1, per_page: int = 20) -> Page:
    """Ready tasks held by the actor ("mine"), or claimable through their roles ("claimable")."""
    mine = HumanTask.assignee_id == actor.id
    claimable = and_(
        HumanTask.assignee_id.is_(None),
        exists().where(
            RoleGrant.user_id == actor.id,
            RoleGrant.role == HumanTask.lane,
            RoleGrant.org_path.startswith(HumanTask.org_path),
        ),
    )
    chosen = {"mine": mine, "claimable": claimable}.get(scope, or_(mine, claimable))
    stmt = select(HumanTask).join(DisputeCase, DisputeCase.id == HumanTask.case_id).where(
        HumanTask.status == TaskStatus.ready, chosen)
    if tier:
        stmt = stmt.where(HumanTask.tier == tier)
    if category:
        stmt = stmt.where(DisputeCase.category == category)
    if overdue:
        stmt = stmt.where(HumanTask.due_at < clock.now())
    stmt = stmt.order_by(HumanTask.due_at.is_(None), HumanTask.due_at, HumanTask.id)
    return _paginate(stmt, page, per_page)


def time_left(due_at: datetime | None) -> float | None:
    """Seconds until ``due_at`` (negative when overdue)."""
    if due_at is None:
        return None
    return (due_at - clock.now()).total_seconds()
