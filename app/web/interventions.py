"""Supervisor intervention forms on the instance page: each posts here, calls one service."""
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, flash, redirect, render_template, request
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from app.cases import queries
from app.errors import DomainError, Forbidden, NotFound
from app.extensions import db
from app.org import services as org
from app.org.models import RoleGrant, User
from app.supervision import services

bp = Blueprint("interventions", __name__, url_prefix="/supervisor/cases/<int:case_id>/interventions")


@bp.errorhandler(NotFound)
def _not_found(exc):
    return render_template("errors/404.html"), 404


@bp.errorhandler(Forbidden)
def _forbidden(exc):
    return render_template("errors/403.html"), 403


def _back(case_id):
    return redirect(f"/supervisor/cases/{case_id}")


def _local_datetime(field: str) -> datetime:
    """A <input type=datetime-local> value, read in the deployment's time zone."""
    raw = request.form.get(field, "")
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=ZoneInfo(current_app.config["TIMEZONE"]))
    except ValueError:
        raise DomainError(_("时间格式不正确")) from None


def _run(case_id, action, done_message):
    try:
        action()
    except (Forbidden, NotFound):
        raise  # not theirs to act on: a 403/404 page, not a flash on a page they cannot open
    except DomainError as exc:
        errors = getattr(exc, "errors", None)
        detail = "；".join(f"{k}: {', '.join(v)}" for k, v in errors.items()) if errors else ""
        flash(f"{_('操作未完成')}：{exc.message}{('（' + detail + '）') if detail else ''}", "error")
        return _back(case_id)
    flash(done_message, "success")
    return _back(case_id)


@bp.route("/<action>", methods=["POST"])
@login_required
def act(case_id, action):
    form, actor = request.form, current_user._get_current_object()
    reason = form.get("reason", "")
    actions = {
        "extend": (lambda: services.extend_time_limit(actor, case_id, _local_datetime("due_at"), reason), _("已延长办理时限")),
        "suspend": (lambda: services.suspend_case(actor, case_id, reason), _("案件已中止")),
        "resume": (lambda: services.resume_case(actor, case_id, reason), _("案件已恢复办理")),
        "withdraw": (lambda: services.withdraw_case(actor, case_id, reason), _("已按撤回结案")),
        "leader": (lambda: services.assign_leader(actor, case_id, int(form.get("leader_id") or 0), reason),
                   _("已指定包案领导")),
        "reassign": (lambda: services.reassign_task(actor, int(form.get("task_id") or 0),
                                                    int(form.get("assignee_id") or 0), reason), _("已改派")),
        "order": (lambda: services.issue_supervision_order(actor, case_id, form.get("instruction", ""),
                                                          _local_datetime("due_at")), _("督办单已发出")),
    }
    if action not in actions:
        return _back(case_id)
    run, message = actions[action]
    return _run(case_id, run, message)


def intervention_options(case):
    """What the intervention forms offer for ``case`` (rendered only for its supervisors)."""
    user = current_user._get_current_object()
    if not user.is_authenticated or not org.supervises(user, case.org_path):
        return None
    tasks = []
    for task in queries.open_tasks(case):
        holders = db.session.scalars(
            select(User).join(RoleGrant, RoleGrant.user_id == User.id)
            .where(RoleGrant.role == task.lane, RoleGrant.org_path.startswith(task.org_path, autoescape=True))
            .distinct().order_by(User.username)).all()
        tasks.append({"task": task, "holders": holders})
    leaders = db.session.scalars(
        select(User).join(RoleGrant, RoleGrant.user_id == User.id)
        .where(RoleGrant.role == "county_leader").order_by(User.username)).all()
    leaders = [u for u in leaders if any(g.role == "county_leader" and case.org_path.startswith(g.org_path)
                                         for g in u.grants)]
    return {"tasks": tasks, "leaders": leaders, "orders": services.open_orders(case)}
