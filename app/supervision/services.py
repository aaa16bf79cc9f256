"""Supervisor interventions, each with a required reason and an event on the case.

Reassign a task, extend a time limit, issue a supervision order (督办) that the handler answers
(督办反馈), name a leader for a major case (领导包案), suspend and resume, and close a case the
parties withdrew. Only holders of the supervisor role over the case's unit may intervene.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app import clock
from app.cases import services as cases
from app.cases.models import CaseStatus, DisputeCase, HumanTask, TaskStatus, Timer, TimerKind
from app.database import UnitOfWork
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.extensions import db
from app.notifications import services as notifications
from app.org import services as org
from app.org.models import User
from app.supervision.models import SupervisionOrder

MAX_TEXT = 2000


def _text(value: str | None, field: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput(f"{field} is required", errors={field: ["required"]})
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"{field} is too long", errors={field: [f"at most {MAX_TEXT} characters"]})
    return value


def _supervised(actor: User, case_id: int) -> DisputeCase:
    """Lock the case for an intervention by ``actor``: 404 outside their units, 403 without the role."""
    case = cases.lock_case(case_id)
    if not org.sees_path(actor, case.org_path):
        raise NotFound(f"dispute {case_id} not found")
    if not org.supervises(actor, case.org_path):
        raise Forbidden("interventions need the supervisor role over this case's unit")
    return case


def _not_closed(case: DisputeCase) -> None:
    if case.status == CaseStatus.closed:
        raise Conflict(f"case {case.number} is closed", code="closed")


def _handlers(case: DisputeCase) -> list:
    """Whoever holds or may take the case's open tasks."""
    people = []
    for task in db.session.scalars(select(HumanTask).where(
            HumanTask.case_id == case.id, HumanTask.status == TaskStatus.ready)):
        people += [task.assignee] if task.assignee_id else org.task_candidates(task.lane, task.org_path)
    return people


def reassign_task(actor: User, task_id: int, assignee_id: int, reason: str) -> HumanTask:
    reason = _text(reason, "reason")
    with UnitOfWork() as uow:
        task = db.session.get(HumanTask, task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        case = _supervised(actor, task.case_id)
        db.session.refresh(task)
        if task.status != TaskStatus.ready:
            raise Conflict("the task is no longer open", code="not_ready")
        assignee = db.session.get(User, assignee_id)
        if assignee is None or not org.works_lane_at(assignee, task.lane, task.org_path):
            raise InvalidInput("the new holder must hold the task's role at its unit",
                               errors={"assignee_id": [f"not a {task.lane} at this unit"]})
        previous = task.assignee
        task.assignee, task.claimed_at = assignee, clock.now()
        cases.record_event(case, actor, "reassigned",
                           f"{actor.display_name} 将「{task.title}」改派给 {assignee.display_name}：{reason}",
                           task_id=task.task_id, data={"from": previous.username if previous else None,
                                                       "to": assignee.username, "reason": reason})
        notifications.notify([assignee], "assignment", f"{case.number} 改派给您：「{task.title}」（{reason}）", case.id)
        uow.commit()
    return task


def extend_time_limit(actor: User, case_id: int, due_at: datetime, reason: str) -> DisputeCase:
    """Move the current tier's time limit to ``due_at`` (later than now and than before)."""
    reason = _text(reason, "reason")
    if due_at.tzinfo is None:
        raise InvalidInput("due_at needs a time zone", errors={"due_at": ["give an offset, e.g. +08:00"]})
    with UnitOfWork() as uow:
        case = _supervised(actor, case_id)
        _not_closed(case)
        limits = db.session.scalars(select(Timer).where(
            Timer.case_id == case.id, Timer.kind == TimerKind.time_limit,
            Timer.status.in_(["pending", "suspended"]))).all()
        if not limits:
            raise Conflict("the case has no running time limit to extend", code="no_time_limit")
        current = min(limits, key=lambda t: t.due_at)
        if due_at <= max(current.due_at, clock.now()):
            raise InvalidInput("the new time limit must be later than the current one and than now",
                               errors={"due_at": [f"later than {current.due_at.isoformat()}"]})
        previous = current.due_at
        db.session.flush()
        cases.change_workflow(case, actor, lambda instance: instance.move_timer(current.task_id, due_at))
        cases.record_event(case, actor, "time_limit_extended",
                           f"{actor.display_name} 延长办理时限至 {due_at.isoformat()}：{reason}",
                           data={"timer": current.spec_name, "from": previous.isoformat(),
                                 "to": due_at.isoformat(), "reason": reason})
        uow.commit()
    return case


def issue_supervision_order(actor: User, case_id: int, instruction: str, due_at: datetime) -> SupervisionOrder:
    instruction = _text(instruction, "instruction")
    with UnitOfWork() as uow:
        case = _supervised(actor, case_id)
        _not_closed(case)
        if due_at.tzinfo is None or due_at <= clock.now():
            raise InvalidInput("the answer deadline must be in the future",
                               errors={"due_at": ["a future time with its offset"]})
        order = SupervisionOrder(case_id=case.id, issued_by_id=actor.id, issued_at=clock.now(),
                                 instruction=instruction, due_at=due_at, status="open")
        db.session.add(order)
        db.session.flush()
        cases.record_event(case, actor, "supervision_order",
                           f"{actor.display_name} 发出督办单（{due_at.isoformat()} 前反馈）：{instruction}",
                           data={"order_id": order.id, "due_at": due_at.isoformat()})
        notifications.notify(_handlers(case), "supervision",
                             f"督办：{case.number}「{case.title}」请于 {due_at.isoformat()} 前反馈：{instruction}", case.id)
        uow.commit()
    return order


def answer_supervision_order(actor: User, order_id: int, answer: str) -> SupervisionOrder:
    """The handler's feedback (督办反馈): someone who holds or may take one of the case's tasks."""
    answer = _text(answer, "answer")
    with UnitOfWork() as uow:
        order = db.session.get(SupervisionOrder, order_id)
        if order is None:
            raise NotFound(f"supervision order {order_id} not found")
        case = cases.lock_case(order.case_id)
        if not org.sees_path(actor, case.org_path):
            raise NotFound(f"supervision order {order_id} not found")
        if actor.id not in {person.id for person in _handlers(case)}:
            raise Forbidden("only a handler of the case's open tasks answers a supervision order")
        db.session.refresh(order)
        if order.status != "open":
            raise Conflict("the order was already answered", code="already_answered")
        order.status, order.answer = "answered", answer
        order.answered_by_id, order.answered_at = actor.id, clock.now()
        late = order.answered_at > order.due_at
        cases.record_event(case, actor, "supervision_answered",
                           f"{actor.display_name} 督办反馈{'（逾期）' if late else ''}：{answer}",
                           data={"order_id": order.id, "late": late})
        notifications.notify([order.issued_by], "supervision", f"{case.number} 督办已反馈：{answer}", case.id)
        uow.commit()
    return order


def assign_leader(actor: User, case_id: int, leader_id: int, reason: str) -> DisputeCase:
    """Name the leader responsible for a major case; the county stage then asks for their instruction."""
    reason = _text(reason, "reason")
    with UnitOfWork() as uow:
        case = _supervised(actor, case_id)
        _not_closed(case)
        leader = db.session.get(User, leader_id)
        if leader is None or not any(g.role == "county_leader" and case.org_path.startswith(g.org_path)
                                     for g in leader.grants):
            raise InvalidInput("the leader must hold the county_leader role over the case's unit",
                               errors={"leader_id": ["not a responsible leader here"]})
        case.leader_id = leader.id
        cases.change_workflow(case, actor, lambda instance: instance.update_data(
            {"leader_designated": True, "leader_name": leader.display_name}))
        cases.record_event(case, actor, "leader_assigned",
                           f"{actor.display_name} 指定 {leader.display_name} 包案：{reason}",
                           data={"leader": leader.username, "reason": reason})
        notifications.notify([leader], "supervision", f"您被指定包案：{case.number}「{case.title}」（{reason}）", case.id)
        uow.commit()
    return case


def suspend_case(actor: User, case_id: int, reason: str) -> DisputeCase:
    """Pause a case (e.g. awaiting an appraisal): its time limits stand still, nobody works on it."""
    reason = _text(reason, "reason")
    with UnitOfWork() as uow:
        case = _supervised(actor, case_id)
        _not_closed(case)
        if case.status == CaseStatus.suspended:
            raise Conflict("the case is already suspended", code="suspended")
        case.suspended_at, case.status = clock.now(), CaseStatus.suspended
        for timer in db.session.scalars(select(Timer).where(Timer.case_id == case.id, Timer.status == "pending")):
            timer.status = "suspended"
        cases.record_event(case, actor, "suspended", f"{actor.display_name} 中止办理：{reason}",
                           data={"reason": reason})
        uow.commit()
    return case


def resume_case(actor: User, case_id: int, reason: str) -> DisputeCase:
    """Resume a suspended case; every time limit moves on by the time it stood still."""
    reason = _text(reason, "reason")
    with UnitOfWork() as uow:
        case = _supervised(actor, case_id)
        if case.status != CaseStatus.suspended:
            raise Conflict("the case is not suspended", code="not_suspended")
        paused = clock.now() - case.suspended_at
        timers = db.session.scalars(select(Timer).where(Timer.case_id == case.id, Timer.status == "suspended")).all()
        for timer in timers:
            timer.status = "pending"
        case.suspended_at = None
        db.session.flush()  # the projection reads timer rows under no_autoflush

        def shift(instance):
            for timer in timers:
                instance.move_timer(timer.task_id, timer.due_at + paused)

        cases.change_workflow(case, actor, shift)
        cases.record_event(case, actor, "resumed",
                           f"{actor.display_name} 恢复办理（时限顺延 {paused.days} 天）：{reason}",
                           data={"paused_seconds": int(paused.total_seconds()), "reason": reason})
        uow.commit()
    return case


def withdraw_case(actor: User, case_id: int, reason: str) -> DisputeCase:
    """Close a case the parties withdrew: its workflow ends, open tasks and timers are cancelled."""
    reason = _text(reason, "reason")
    with UnitOfWork() as uow:
        case = _supervised(actor, case_id)
        _not_closed(case)
        suspended_timers = db.session.scalars(select(Timer).where(
            Timer.case_id == case.id, Timer.status == "suspended")).all()
        for timer in suspended_timers:
            timer.status = "cancelled"
        case.suspended_at = None
        db.session.flush()
        cases.change_workflow(case, actor, lambda instance: instance.cancel(outcome="withdrawn"))
        cases.record_event(case, actor, "withdrawn", f"{actor.display_name} 登记当事人撤回，结案：{reason}",
                           data={"reason": reason})
        uow.commit()
    return case


def open_orders(case: DisputeCase) -> list[SupervisionOrder]:
    return list(db.session.scalars(select(SupervisionOrder).where(SupervisionOrder.case_id == case.id)
                                   .order_by(SupervisionOrder.issued_at)))
