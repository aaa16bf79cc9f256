"""Inbox, task, case and grid-report pages."""
from __future__ import annotations

from pathlib import Path

from flask import current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.cases import catalog, queries, services, workspace
from app.cases.models import TaskStatus
from app.errors import Conflict, Forbidden, InvalidInput
from app.i18n import translate
from app.intake import services as intake
from app.notifications import services as notifications
from app.org import services as org
from app.web.mediator import bp, labels
from app.web.mediator.forms import form_errors, parse_form, render_form

PER_PAGE = 20
SCOPES = ("mine", "claimable")


def _user():
    return current_user._get_current_object()


def _int_arg(name: str, default: int = 1) -> int:
    try:
        return max(int(request.args.get(name, default)), 1)
    except ValueError:
        return default


def _choice_arg(name: str, allowed) -> str | None:
    value = request.args.get(name) or None
    return value if value in allowed else None


def _back(default: str) -> str:
    target = request.form.get("next") or ""
    if target.startswith("/") and not target.startswith("//"):
        return target
    return default


# ---------------------------------------------------------------------------------------------
# Inbox

@bp.route("/inbox")
@login_required
def inbox():
    user = _user()
    scope = request.args.get("scope") if request.args.get("scope") in SCOPES else "mine"
    filters = {
        "tier": _choice_arg("tier", catalog.TIERS),
        "category": _choice_arg("category", catalog.CATEGORIES),
        "overdue": request.args.get("overdue") == "1" or None,
    }
    page = queries.inbox(user, scope=scope, page=_int_arg("page"), per_page=PER_PAGE, **filters)
    case_ids = sorted({task.case_id for task in page.items})
    workspace.load_cases(case_ids)
    reminded = workspace.fired_reminders(case_ids)
    # A reminder counts for a task when it fired while the task was open (not an earlier tier's).
    reminders = {task.id for task in page.items
                 if task.case_id in reminded and reminded[task.case_id] >= task.created_at}
    counts = {name: queries.inbox(user, scope=name, page=1, per_page=1).total for name in SCOPES}
    pages = max((page.total + PER_PAGE - 1) // PER_PAGE, 1)
    return render_template("mediator/inbox.html", page=page, pages=pages, scope=scope, counts=counts,
                           filters=filters, reminders=reminders, user=user)


@bp.post("/tasks/<int:task_id>/claim")
@login_required
def claim(task_id):
    try:
        task = services.claim_task(_user(), task_id)
        flash(_("已认领「%(title)s」", title=translate(task.title)), "success")
    except Conflict as exc:
        flash(labels.conflict_message(exc.details.get("code"), exc.details.get("at")), "error")
    return redirect(_back(url_for("mediator.task", task_id=task_id)))


@bp.post("/tasks/<int:task_id>/release")
@login_required
def release(task_id):
    try:
        task = services.release_task(_user(), task_id)
        flash(_("已退回「%(title)s」到待认领", title=translate(task.title)), "success")
    except Conflict as exc:
        flash(labels.conflict_message(exc.details.get("code"), exc.details.get("at")), "error")
    return redirect(_back(url_for("mediator.inbox")))


# ---------------------------------------------------------------------------------------------
# Task page

def _can_work(user, task) -> bool:
    return (task.status == TaskStatus.ready and task.assignee_id in (None, user.id)
            and org.works_lane_at(user, task.lane, task.org_path))


def _task_page(task, values=None, errors=None, status=200):
    user = _user()
    case = task.case
    schema = services.task_form(task)
    can_work = _can_work(user, task)
    form_html = None
    if can_work:
        form_html = render_form(schema, services.form_prefill(task) if values is None else values, errors)
    return render_template(
        "mediator/task.html", task=task, case=case, schema=schema, form_html=form_html, can_work=can_work,
        may_claim=can_work and task.assignee_id is None, may_release=(
            task.status == TaskStatus.ready and task.assignee_id is not None
            and (task.assignee_id == user.id or org.supervises(user, task.org_path))),
        events=queries.case_events(case), has_errors=bool(errors),
    ), status


@bp.get("/tasks/<int:task_id>")
@login_required
def task(task_id):
    return _task_page(services.get_visible_task(_user(), task_id))


@bp.post("/tasks/<int:task_id>")
@login_required
def submit(task_id):
    user = _user()
    task = services.get_visible_task(user, task_id)
    schema = services.task_form(task)
    data = parse_form(schema, request.form)
    try:
        if request.form.get("action") == "draft":
            workspace.save_draft(user, task_id, data)
            flash(_("草稿已保存"), "success")
            return redirect(url_for("mediator.task", task_id=task_id))
        services.complete_task(user, task_id, data)
    except InvalidInput as exc:
        errors = form_errors(schema, data) or {"_form": [_("提交的内容有误，请检查后重试。")] + [
            f"{path}: {message}" for path, messages in exc.errors.items() for message in messages]}
        return _task_page(task, values=data, errors=errors, status=422)
    except Conflict as exc:
        flash(labels.conflict_message(exc.details.get("code"), exc.details.get("at")), "error")
        return redirect(url_for("mediator.task", task_id=task_id))
    flash(_("已提交「%(title)s」（%(number)s）", title=translate(task.title), number=task.case.number), "success")
    following = workspace.next_task_for(user, task.case_id)
    if following is not None:
        return redirect(url_for("mediator.task", task_id=following.id))
    return redirect(url_for("mediator.inbox"))


# ---------------------------------------------------------------------------------------------
# Cases

@bp.get("/cases")
@login_required
def cases():
    filters = {
        "status": _choice_arg("status", labels.STATUS),
        "tier": _choice_arg("tier", catalog.TIERS),
        "category": _choice_arg("category", catalog.CATEGORIES),
        "q": (request.args.get("q") or "").strip()[:100] or None,
    }
    page = queries.list_cases(_user(), page=_int_arg("page"), per_page=PER_PAGE, **filters)
    pages = max((page.total + PER_PAGE - 1) // PER_PAGE, 1)
    return render_template("mediator/cases.html", page=page, pages=pages, filters=filters)


def _attachments_dir() -> Path:
    configured = current_app.config.get("ATTACHMENTS_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "attachments"


def _case_page(case_id, comment_error=None, upload_error=None, status=200):
    user = _user()
    case = queries.get_case(user, case_id)
    open_tasks = queries.open_tasks(case)
    return render_template(
        "mediator/case.html", case=case, events=queries.case_events(case), open_tasks=open_tasks,
        my_tasks={task.id for task in open_tasks if _can_work(user, task)},
        comments=workspace.comments(case), attachments=workspace.attachments(case),
        may_confirm=workspace.may_confirm_high_value(user, case), comment_error=comment_error,
        upload_error=upload_error, max_mb=workspace.ATTACHMENT_MAX_BYTES // (1024 * 1024),
    ), status


@bp.get("/cases/<int:case_id>")
@login_required
def case(case_id):
    return _case_page(case_id)


@bp.post("/cases/<int:case_id>/comments")
@login_required
def comment(case_id):
    try:
        workspace.add_comment(_user(), case_id, request.form.get("body", ""))
    except InvalidInput as exc:
        code = exc.errors.get("body", [""])[0]
        message = _("意见不能为空") if code == "required" else _("意见最多 %(n)s 字", n=workspace.COMMENT_MAX_LENGTH)
        return _case_page(case_id, comment_error=message, status=422)
    flash(_("意见已发表"), "success")
    return redirect(url_for("mediator.case", case_id=case_id, _anchor="comments"))


UPLOAD_ERRORS = {
    "empty": lambda: _("请选择要上传的文件（文件不能为空）"),
    "too_large": lambda: _("文件超过 %(n)s MB，请压缩后再上传", n=workspace.ATTACHMENT_MAX_BYTES // (1024 * 1024)),
    "unsupported_type": lambda: _("只能上传 PDF、JPEG 或 PNG 文件"),
}


@bp.post("/cases/<int:case_id>/attachments")
@login_required
def upload(case_id):
    queries.get_case(_user(), case_id)  # 404 before reading anything from an outsider
    upload_file = request.files.get("file")
    if upload_file is None or not upload_file.filename:
        return _case_page(case_id, upload_error=UPLOAD_ERRORS["empty"](), status=422)
    try:
        attachment = workspace.add_attachment(_user(), case_id, upload_file.filename, upload_file.stream,
                                              _attachments_dir())
    except InvalidInput as exc:
        code = exc.errors.get("file", ["unsupported_type"])[0]
        return _case_page(case_id, upload_error=UPLOAD_ERRORS.get(code, UPLOAD_ERRORS["unsupported_type"])(),
                          status=422)
    flash(_("已上传附件「%(name)s」", name=attachment.original_name), "success")
    return redirect(url_for("mediator.case", case_id=case_id, _anchor="attachments"))


@bp.get("/cases/<int:case_id>/attachments/<int:attachment_id>")
@login_required
def download(case_id, attachment_id):
    attachment, path = workspace.attachment_file(_user(), case_id, attachment_id, _attachments_dir())
    response = send_file(path, mimetype=attachment.content_type, as_attachment=True,
                         download_name=attachment.original_name, max_age=0, etag=attachment.sha256)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/cases/<int:case_id>/high-value/confirm")
@login_required
def confirm_high_value(case_id):
    try:
        workspace.confirm_high_value(_user(), case_id)
        flash(_("已确认为高价值事件"), "success")
    except Conflict:
        flash(_("该案件未被上报为高价值事件，无需确认。"), "error")
    return redirect(url_for("mediator.case", case_id=case_id))


# ---------------------------------------------------------------------------------------------
# Grid worker report

def _grid_form_errors(form) -> tuple[dict, dict[str, list[str]]]:
    """Read the grid report form; return (values, errors by field)."""
    values = {key: (form.get(key) or "").strip() for key in (
        "grid_id", "category", "title", "description", "location", "people_involved", "risk_level",
        "party1_name", "party1_phone", "party2_name", "party2_phone")}
    values["high_value"] = form.get("high_value") == "1"
    errors: dict[str, list[str]] = {}
    if values["category"] not in catalog.CATEGORIES:
        errors["category"] = [_("请选择有效选项")]
    if values["risk_level"] not in catalog.RISK_LEVELS:
        errors["risk_level"] = [_("请选择有效选项")]
    if len(values["title"]) < 2:
        errors["title"] = [_("必填") if not values["title"] else _("至少输入 %(n)s 个字", n=2)]
    elif len(values["title"]) > 200:
        errors["title"] = [_("最多输入 %(n)s 个字", n=200)]
    if not values["description"]:
        errors["description"] = [_("必填")]
    elif len(values["description"]) > 5000:
        errors["description"] = [_("最多输入 %(n)s 个字", n=5000)]
    if len(values["location"]) > 200:
        errors["location"] = [_("最多输入 %(n)s 个字", n=200)]
    try:
        people = int(values["people_involved"] or "2")
        if not 1 <= people <= 100000:
            errors["people_involved"] = [_("不能小于 %(n)s", n=1) if people < 1 else _("不能大于 %(n)s", n=100000)]
    except ValueError:
        errors["people_involved"] = [_("请输入整数")]
    for key in ("party1_phone", "party2_phone"):
        if values[key] and not intake.PHONE.match(intake.normalize_phone(values[key])):
            errors[key] = [_("请输入有效的电话号码")]
    return values, errors


@bp.route("/grid/report", methods=["GET", "POST"])
@login_required
def grid_report():
    user = _user()
    grids = intake.grids_of(user)
    if not grids:
        raise Forbidden("grid reports are filed by grid workers")
    values, errors = {"grid_id": str(grids[0].id), "risk_level": "low", "people_involved": "2"}, {}
    if request.method == "POST":
        values, errors = _grid_form_errors(request.form)
        if not errors:
            parties = []
            for index, role in ((1, "applicant"), (2, "respondent")):
                if values[f"party{index}_name"]:
                    party = {"name": values[f"party{index}_name"][:80], "party_role": role}
                    if values[f"party{index}_phone"]:
                        party["phone"] = intake.normalize_phone(values[f"party{index}_phone"])
                    parties.append(party)
            try:
                grid_id = int(values["grid_id"] or 0)
            except ValueError:
                grid_id = 0
            try:
                case = intake.submit_grid_report(user, intake.GridReport(
                    grid_id=grid_id, category=values["category"], title=values["title"],
                    description=values["description"], location=values["location"] or None,
                    people_involved=int(values["people_involved"] or "2"), parties=parties,
                    risk_level=values["risk_level"], high_value=values["high_value"]))
            except InvalidInput as exc:
                errors = {key: [_("填写有误")] for key in exc.errors}
            else:
                flash(_("已上报，案件编号 %(number)s，等待受理员登记。", number=case.number), "success")
                return redirect(url_for("mediator.case", case_id=case.id))
    return render_template("mediator/grid_report.html", grids=grids, values=values, errors=errors), (
        422 if errors else 200)


# ---------------------------------------------------------------------------------------------
# Notifications: assignments, reminders (催办), escalations and supervision orders (督办)

@bp.get("/notifications")
@login_required
def notifications_page():
    user = _user()
    items = notifications.list_for(user, unread_only=request.args.get("unread") == "1", limit=100)
    cases = workspace.load_cases(sorted({n.case_id for n in items if n.case_id}))
    return render_template("mediator/notifications.html", items=items, cases=cases,
                           unread=notifications.unread_count(user), unread_only=request.args.get("unread") == "1")


@bp.post("/notifications/read")
@login_required
def notifications_read_all():
    changed = notifications.mark_read(_user())
    flash(_("已将 %(n)s 条通知标为已读", n=changed), "success")
    return redirect(url_for("mediator.notifications_page"))


@bp.post("/notifications/<int:notification_id>/read")
@login_required
def notification_read(notification_id):
    """Mark one read and go where it points: the case when the reader may open it, else the inbox."""
    user = _user()
    notifications.mark_read(user, notification_id)
    found = notifications.get_for(user, notification_id)
    if found.case_id is not None:
        case = workspace.load_cases([found.case_id]).get(found.case_id)
        if case is not None and org.sees_path(user, case.org_path):
            return redirect(url_for("mediator.case", case_id=found.case_id))
    return redirect(url_for("mediator.inbox"))
