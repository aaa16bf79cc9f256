"""Words the pages show for codes, times and domain errors, in the reader's language."""
from __future__ import annotations

from datetime import datetime

from flask import current_app
from flask_babel import get_locale
from flask_babel import gettext as _

from app import clock
from app.cases import catalog
from app.org.roles import ROLES

STATUS = {
    "intake": ("待受理登记", "Awaiting registration"),
    "open": ("办理中", "In progress"),
    "closed": ("已结案", "Closed"),
}
TASK_STATUS = {
    "ready": ("待办理", "Open"),
    "completed": ("已完成", "Completed"),
    "cancelled": ("已关闭", "Closed"),
}
SATISFACTION = {
    "satisfied": ("满意", "Satisfied"),
    "basically_satisfied": ("基本满意", "Basically satisfied"),
    "dissatisfied": ("不满意", "Dissatisfied"),
}
PARTY_ROLES = {
    "applicant": ("申请人", "Applicant"),
    "respondent": ("被申请人", "Respondent"),
    "third_party": ("第三人", "Third party"),
}
NOTIFICATION_KINDS = {
    "assignment": ("新待办", "New task"),
    "reminder": ("催办", "Reminder"),
    "escalation": ("逐级上交", "Escalated"),
    "supervision": ("督办", "Supervision"),
}
TABLES = {
    "category": catalog.CATEGORIES,
    "channel": catalog.CHANNELS,
    "risk": catalog.RISK_LEVELS,
    "tier": catalog.TIERS,
    "outcome": catalog.OUTCOMES,
    "status": STATUS,
    "task_status": TASK_STATUS,
    "satisfaction": SATISFACTION,
    "party_role": PARTY_ROLES,
    "notification": NOTIFICATION_KINDS,
    "role": {code: (role.zh, role.en) for code, role in ROLES.items()},
}


def english() -> bool:
    return str(get_locale()) == "en"


def label(table: str, code: str | None) -> str:
    """The label of ``code`` in one of TABLES (the code itself when unknown, "—" when empty)."""
    if code is None or code == "":
        return "—"
    pair = TABLES[table].get(code)
    if pair is None:
        return str(code)
    return pair[1] if english() else pair[0]


def choices(table: str) -> list[tuple[str, str]]:
    return [(code, label(table, code)) for code in TABLES[table]]


def _span(seconds: float) -> str:
    minutes = int(abs(seconds) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return _("%(d)s天%(h)s小时", d=days, h=hours)
    if hours:
        return _("%(h)s小时%(m)s分", h=hours, m=minutes)
    return _("%(m)s分钟", m=minutes)


def due_info(due_at: datetime | None) -> dict | None:
    """Time left until ``due_at`` for people: {"text", "overdue"}; None without a limit."""
    if due_at is None:
        return None
    seconds = (due_at - clock.now()).total_seconds()
    if seconds < 0:
        return {"text": _("已超期 %(span)s", span=_span(seconds)), "overdue": True}
    return {"text": _("剩余 %(span)s", span=_span(seconds)), "overdue": False}


def local_time(value: datetime | str | None) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return current_app.jinja_env.filters["localtime"](value)


def conflict_message(code: str | None, at: str | None) -> str:
    """Say plainly why a task could not be done any more."""
    when = local_time(at)
    if code == "escalated_by_time_limit":
        return _("办理时限已到：案件已于 %(at)s 由系统自动上交上一级，本待办已关闭，您的提交未被保存。", at=when)
    if code == "already_completed":
        return _("该待办已于 %(at)s 办理完成，您的提交未被保存。", at=when)
    if code == "claimed_by_other":
        return _("该待办已由其他人认领办理。")
    if code == "not_ready":
        return _("该待办已关闭，无法再保存。")
    return _("该待办已关闭（流程已推进），您的提交未被保存。")


def party_names(parties) -> str:
    names = [str(p.get("name")) for p in parties or [] if isinstance(p, dict) and p.get("name")]
    return "、".join(names) if names else "—"
