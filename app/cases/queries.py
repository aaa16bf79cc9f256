"""Read-side queries over the projections; none of them loads a workflow."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.orm import selectinload

from app import clock
from app.cases.models import CaseEvent, DisputeCase, HumanTask, TaskStatus
from app.errors import NotFound
from app.extensions import db
from app.org import services as org
from app.org.models import User


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


def _ancestor_paths(path: str) -> list[str]:
    """``/1/2/3/`` → ``/1/``, ``/1/2/``, ``/1/2/3/``: the unit and every unit above it."""
    parts = path.strip("/").split("/")
    return [f"/{'/'.join(parts[:depth])}/" for depth in range(1, len(parts) + 1)]


def inbox(actor: User, *, scope: str = "all", tier=None, category=None, overdue=None,
          page: int = 1, per_page: int = 20) -> Page:
    """Ready tasks held by the actor ("mine"), or claimable through their roles ("claimable").

    A grant lets its holder take tasks of its role at its unit or at a unit above it, and a task
    is only ever held by someone with such a grant (claim and reassign check it), so both scopes
    lie in ``lane = role AND org_path IN (the grant's unit and its ancestors)``. The grants are
    read first and turned into that condition: the database walks the (status, lane, org_path)
    index over ready tasks only. Testing every ready task against a correlated EXISTS, or
    reading every task the actor ever held through the assignee index, cost the inbox its
    20 ms budget at 100k-1M cases.
    """
    paths_by_role: dict[str, set[str]] = {}
    for grant in actor.grants:  # loaded with the user for every authorization check
        paths_by_role.setdefault(grant.role, set()).update(_ancestor_paths(grant.org_path))
    workable = or_(false(), *[and_(HumanTask.lane == role, HumanTask.org_path.in_(sorted(paths)))
                              for role, paths in sorted(paths_by_role.items())])
    mine = HumanTask.assignee_id == actor.id
    claimable = HumanTask.assignee_id.is_(None)
    # "held by me or by nobody", written so PostgreSQL does not AND in the assignee index (at 1M
    # cases it read the 40k unassigned entries to narrow 94 rows: 3 ms of a 3.1 ms query)
    either = func.coalesce(HumanTask.assignee_id, actor.id) == actor.id
    chosen = and_(workable, {"mine": mine, "claimable": claimable}.get(scope, either))
    ids = select(HumanTask.id).where(HumanTask.status == TaskStatus.ready, chosen)
    if tier:
        ids = ids.where(HumanTask.tier == tier)
    if category:
        ids = ids.join(DisputeCase, DisputeCase.id == HumanTask.case_id).where(DisputeCase.category == category)
    if overdue:
        ids = ids.where(HumanTask.due_at < clock.now())
    # Count and choose the page on ids only (index-only on both backends), then load those rows.
    total = db.session.scalar(select(func.count()).select_from(ids.subquery())) or 0
    chosen_ids = list(db.session.scalars(
        ids.order_by(HumanTask.due_at.is_(None), HumanTask.due_at, HumanTask.id)
        .limit(per_page).offset((page - 1) * per_page)))
    # pages show each task's case (number, title) and holder: load them with the page, not per row
    rows = db.session.scalars(select(HumanTask).where(HumanTask.id.in_(chosen_ids)).options(
        selectinload(HumanTask.case), selectinload(HumanTask.assignee))).all() if chosen_ids else []
    by_id = {task.id: task for task in rows}
    return Page([by_id[task_id] for task_id in chosen_ids], total, page, per_page)


def time_left(due_at: datetime | None) -> float | None:
    """Seconds until ``due_at`` (negative when overdue)."""
    if due_at is None:
        return None
    return (due_at - clock.now()).total_seconds()
