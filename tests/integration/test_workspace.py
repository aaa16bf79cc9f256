"""The mediator workspace pages, on SQLite and PostgreSQL: inbox, task form, case page, grid
reports, visibility between units and CSRF on every POST."""
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from app.cases import services
from app.cases.models import CaseAttachment, CaseComment, CaseEvent, DisputeCase, HumanTask
from app.database import UnitOfWork
from app.extensions import db
from app.notifications.models import Notification
from app.org import services as org
from app.org.models import OrgUnit
from app.web.mediator import routes
from tests.conftest import user
from tests.factories import INTAKE, failed, form_data

CLERK = "qx_fq_ds_intake_clerk"
MEDIATOR = "qx_fq_ds_village_mediator"
OUTSIDER = "qx_nh_sx_village_mediator"  # 沙溪村, another town
GRID = "qx_fq_ds_g1_grid_worker"
TOWN_SUPERVISOR = "qx_fq_supervisor"
SHANGHAI = ZoneInfo("Asia/Shanghai")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)


def unit(code):
    return db.session.scalar(select(OrgUnit).where(OrgUnit.code == code))


def open_case(title="王某与李某宅基地边界纠纷", category="housing_homestead", registered=True):
    case = services.start_case(user(CLERK), services.NewCase(
        title=title, category=category, description="围墙越界约半米", org_unit_id=unit("QX-FQ-DS").id,
        parties=INTAKE["parties"]))
    if registered:
        complete(case.id, "intake_register", CLERK, form_data("intake_register", title=title, category=category))
    return case


def ready(case_id, spec_name):
    db.session.expire_all()
    return db.session.scalar(select(HumanTask).where(
        HumanTask.case_id == case_id, HumanTask.spec_name == spec_name, HumanTask.status == "ready"))


def complete(case_id, spec_name, username, data=None):
    services.complete_task(user(username), ready(case_id, spec_name).id, data or form_data(spec_name))


def as_form(data, prefix="f."):
    """Encode JSON form values the way the task page's fields post them."""
    fields = {}
    for key, value in data.items():
        name = prefix + key
        if isinstance(value, bool):
            fields[name] = "true" if value else "false"
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for index, row in enumerate(value):
                fields.update(as_form(row, f"{name}.{index}."))
        elif isinstance(value, list):
            fields[name] = [str(item) for item in value]
        else:
            fields[name] = str(value)
    return fields


def text(response):
    return response.get_data(as_text=True)


def flash_messages(page, category="[a-z]+"):
    found = re.findall(rf'<p class="flash {category}"[^>]*>(.*?)</p>', page, re.S)
    return [re.sub(r"\s+", " ", message).strip() for message in found]


def events_of(case_id, kind=None):
    stmt = select(CaseEvent).where(CaseEvent.case_id == case_id)
    if kind:
        stmt = stmt.where(CaseEvent.kind == kind)
    return db.session.scalars(stmt.order_by(CaseEvent.id)).all()


def local(when):
    return when.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------------------------------------
# Inbox

def test_home_goes_to_the_inbox_and_login_is_required(web):
    anonymous = web()
    assert anonymous.get("/inbox").status_code == 302
    assert "/login" in anonymous.get("/inbox").location
    clerk = web(CLERK)
    assert clerk.get("/home").location.endswith("/inbox")


def test_inbox_tabs_claim_and_release(web):
    case = open_case()
    mediator = web(MEDIATOR)
    mine = text(mediator.get("/inbox"))
    assert "暂无待办事项" in mine and case.number not in mine
    assert re.search(r'我的待办 <span class="count">0</span>', mine)
    assert re.search(r'待认领 <span class="count">1</span>', mine)

    queue = text(mediator.get("/inbox?scope=claimable"))
    item = re.search(r'<li class="task card[^"]*" data-task-id="(\d+)">(.*?)</li>', queue, re.S)
    task_id, body = int(item.group(1)), item.group(2)
    assert case.number in body and "房屋宅基地" in body and "村(社)" in body
    assert "王建国、李秀英" in body
    assert "剩余 " in body and "overdue" not in item.group(0)

    claimed = mediator.post(f"/tasks/{task_id}/claim")
    assert claimed.status_code == 302
    assert db.session.get(HumanTask, task_id).assignee_id == user(MEDIATOR).id
    assert case.number in text(mediator.get("/inbox?scope=mine"))
    assert case.number not in text(mediator.get("/inbox?scope=claimable"))
    assert [e.actor.username for e in events_of(case.id, "task_claimed")] == [MEDIATOR]

    released = mediator.post(f"/tasks/{task_id}/release", data={"next": "/inbox?scope=mine"})
    assert released.status_code == 302 and released.location.endswith("/inbox?scope=mine")
    db.session.expire_all()
    assert db.session.get(HumanTask, task_id).assignee_id is None
    assert len(events_of(case.id, "task_released")) == 1


def test_inbox_flags_reminders_and_overdue_filters_sorts_and_pages(web, fake_clock, monkeypatch):
    first = open_case(title="甲案宅基地纠纷")
    fake_clock.advance(days=2)
    second = open_case(title="乙案邻里纠纷", category="neighbour")
    reminder_due = db.session.scalar(select(func.min(HumanTask.created_at)).where(HumanTask.case_id == first.id))
    first_task, second_task = ready(first.id, "village_mediate"), ready(second.id, "village_mediate")
    # the first case's reminder falls due (10 days) while the second's does not yet
    fake_clock.set(reminder_due + timedelta(days=10, seconds=1))
    assert services.fire_due_timers() == 1
    fake_clock.set(first_task.due_at + timedelta(hours=1))  # first case past its limit, timer not yet fired

    mediator = web(MEDIATOR)
    statements = []

    def remember(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", remember)
    try:
        page = text(mediator.get("/inbox?scope=claimable"))
    finally:
        event.remove(db.engine, "before_cursor_execute", remember)
    assert not [s for s in statements if "workflow_state" in s], "the inbox never loads a workflow"
    assert len([s for s in statements if "FROM timer" in s]) == 1, "reminders for the page in one query"

    items = re.findall(r'<li class="task card([^"]*)" data-task-id="(\d+)">(.*?)</li>', page, re.S)
    assert [int(task_id) for _, task_id, _ in items] == [first_task.id, second_task.id], "earliest due first"
    (first_class, _, first_body), (second_class, _, second_body) = items
    assert "已催办" in first_body and "已催办" not in second_body
    assert "overdue" in first_class and re.search(r'<span class="due overdue"[^>]*>已超期 1小时0分</span>', first_body)
    assert "overdue" not in second_class and "剩余 " in second_body

    overdue = text(mediator.get("/inbox?scope=claimable&overdue=1"))
    assert first.number in overdue and second.number not in overdue
    neighbour = text(mediator.get("/inbox?scope=claimable&category=neighbour"))
    assert second.number in neighbour and first.number not in neighbour
    assert "暂无待办事项" in text(mediator.get("/inbox?scope=claimable&tier=town"))

    monkeypatch.setattr(routes, "PER_PAGE", 1)
    page_one = text(mediator.get("/inbox?scope=claimable"))
    assert first.number in page_one and second.number not in page_one and "第 1 / 2 页" in page_one
    page_two = text(mediator.get("/inbox?scope=claimable&page=2"))
    assert second.number in page_two and first.number not in page_two and 'rel="prev"' in page_two


def _inbox_statements():
    """The statements of a mediator's inbox that read ready tasks: the count, then the page's ids."""
    from app.cases import queries

    open_case()
    statements = []

    def remember(conn, cursor, statement, parameters, context, executemany):
        if "FROM human_task" in statement and "human_task.id IN" not in statement:
            statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", remember)
    try:
        page = queries.inbox(user(MEDIATOR), scope="all")
    finally:
        event.remove(db.engine, "before_cursor_execute", remember)
    assert page.total == 1 and len(statements) == 2, "a count, then the page's ids"
    return statements


def test_inbox_count_and_page_read_the_ready_task_index_alone(sqlite_app):
    """A county centre holds thousands of ready tasks at 1M cases: reading a table row for each
    to count them or to sort the page cost SQLite its 20 ms budget (migration 0013)."""
    for statement, parameters in _inbox_statements():
        plan = " ".join(row[-1] for row in db.session.connection().exec_driver_sql(
            "EXPLAIN QUERY PLAN " + statement, parameters))
        assert "USING COVERING INDEX ix_human_task_lane_path" in plan, (statement, plan)


@pytest.mark.postgres
def test_inbox_count_and_page_can_read_the_ready_task_index_alone_on_postgresql(pg_app):
    """The same on PostgreSQL, whose page read a table row per ready task for its id (7 ms of the
    county centre's inbox at 1M cases, migration 0014). PostgreSQL plans by statistics, which a
    test database does not have: with the scans that read table rows ruled out, the plan shows
    what the index can do alone."""
    statements = _inbox_statements()
    connection = db.session.connection()
    for scan in ("seqscan", "bitmapscan", "indexscan"):  # what reads the table rows
        connection.exec_driver_sql(f"SET LOCAL enable_{scan} = off")
    for statement, parameters in statements:
        plan = " ".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters))
        assert "Index Only Scan using ix_human_task_lane_path" in plan, (statement, plan)


# ---------------------------------------------------------------------------------------------
# Task page

def test_form_errors_shown_per_field_then_draft_then_submit(web):
    case = open_case(registered=False)
    task = ready(case.id, "intake_register")
    clerk = web(CLERK)
    page = text(clerk.get(f"/tasks/{task.id}"))
    assert 'name="f.title"' in page and "王某与李某宅基地边界纠纷" in page, "prefilled from the case"
    assert 'name="f.parties.2.name"' in page, "two parties from the case and one empty row"

    bad = as_form(form_data("intake_register", people_involved="0", mediation=None) | {"accepted": False})
    bad.pop("f.mediation")
    bad["f.title"] = "改过的概要"
    bad["f.source_type"] = ""
    response = clerk.post(f"/tasks/{task.id}", data={**bad, "action": "submit"})
    assert response.status_code == 422
    page = text(response)
    assert re.search(r'id="f-people_involved"[^>]*aria-invalid="true"', page)
    assert '<p class="field-error" id="f-people_involved-error" role="alert"><span>不能小于 1</span></p>' in page
    assert '<p class="field-error" id="f-source_type-error" role="alert"><span>必填</span></p>' in page
    assert '<p class="field-error" id="f-rejection_reason-error" role="alert"><span>必填</span></p>' in page
    assert 'value="改过的概要"' in page, "what was typed is kept"
    db.session.expire_all()
    assert db.session.get(DisputeCase, case.id).status == "intake", "nothing was completed"

    draft = clerk.post(f"/tasks/{task.id}", data={**bad, "action": "draft"})
    assert draft.status_code == 302 and draft.location.endswith(f"/tasks/{task.id}")
    db.session.expire_all()
    stored = db.session.get(HumanTask, task.id)
    assert stored.draft["title"] == "改过的概要" and stored.draft["people_involved"] == 0
    assert stored.assignee_id == user(CLERK).id, "saving a draft takes the task"
    [saved] = events_of(case.id, "draft_saved")
    assert saved.actor.username == CLERK and "title" in saved.data["fields"]
    assert 'value="改过的概要"' in text(clerk.get(f"/tasks/{task.id}")), "the draft prefills the form"

    good = as_form(form_data("intake_register", title="改过的概要"))
    done = clerk.post(f"/tasks/{task.id}", data={**good, "action": "submit"})
    assert done.status_code == 302 and done.location.endswith("/inbox"), "the clerk has no next task here"
    assert "已提交「受理登记」" in flash_messages(text(clerk.get("/inbox")))[0]
    db.session.expire_all()
    registered = db.session.get(DisputeCase, case.id)
    assert (registered.status, registered.current_tier, registered.title) == ("open", "village", "改过的概要")
    [completed] = events_of(case.id, "task_completed")
    assert completed.data["form"]["parties"] == INTAKE["parties"] and completed.data["form"]["people_involved"] == 2


def test_submit_moves_on_to_the_next_task_this_user_can_work(web):
    with UnitOfWork() as uow:  # a clerk who also mediates (small villages do this)
        org.grant_role(user(CLERK), "village_mediator", unit("QX-FQ-DS"))
        uow.commit()
    case = open_case(registered=False)
    task = ready(case.id, "intake_register")
    clerk = web(CLERK)
    response = clerk.post(f"/tasks/{task.id}", data={**as_form(form_data("intake_register")), "action": "submit"})
    following = ready(case.id, "village_mediate")
    assert response.status_code == 302 and response.location.endswith(f"/tasks/{following.id}")
    page = text(clerk.get(response.location))
    assert "已提交「受理登记」" in page and 'name="f.mediation_result"' in page


def test_late_submit_after_the_time_limit_says_so_plainly(web, fake_clock):
    case = open_case()
    task = ready(case.id, "village_mediate")
    mediator = web(MEDIATOR)
    assert mediator.post(f"/tasks/{task.id}/claim").status_code == 302
    fake_clock.set(task.due_at + timedelta(seconds=5))
    assert services.fire_due_timers() >= 1
    db.session.expire_all()
    closed = db.session.get(HumanTask, task.id)
    assert (closed.status, closed.end_reason) == ("cancelled", "time_limit")

    response = mediator.post(f"/tasks/{task.id}", data={**as_form(failed("village_mediate")), "action": "submit"})
    assert response.status_code == 302 and response.location.endswith(f"/tasks/{task.id}")
    page = text(mediator.get(response.location))
    [message] = flash_messages(page, "error")
    assert message == (f"办理时限已到：案件已于 {local(closed.completed_at)} 由系统自动上交上一级，"
                       "本待办已关闭，您的提交未被保存。")
    assert 'name="f.mediation_result"' not in page, "a closed task shows no form"
    db.session.expire_all()
    assert db.session.get(DisputeCase, case.id).current_tier == "town"
    assert events_of(case.id, "task_completed")[-1].data["form"].get("mediation_result") is None


def test_task_held_by_someone_else_or_seen_by_a_supervisor_is_read_only(web):
    case = open_case()
    task = ready(case.id, "village_mediate")
    services.claim_task(user(MEDIATOR), task.id)
    supervisor = web(TOWN_SUPERVISOR)
    page = text(supervisor.get(f"/tasks/{task.id}"))
    assert case.number in page and 'name="f.mediation_result"' not in page
    assert "您可以查看此待办，但不能办理" in page
    refused = supervisor.post(f"/tasks/{task.id}", data={**as_form(form_data("village_mediate")), "action": "submit"})
    assert refused.status_code == 403
    db.session.expire_all()
    assert db.session.get(HumanTask, task.id).status == "ready"


# ---------------------------------------------------------------------------------------------
# Case page

def test_case_page_shows_fields_timeline_and_who_holds_the_tasks(web):
    case = open_case()
    task = ready(case.id, "village_mediate")
    services.claim_task(user(MEDIATOR), task.id)
    page = text(web(CLERK).get(f"/cases/{case.id}"))
    for shown in (case.number, "房屋宅基地", "办理中", "村(社)", "东山村", "王建国", "李秀英", "围墙越界约半米"):
        assert shown in page, shown
    holder = re.search(r'id="open-tasks">(.*?)</section>', page, re.S).group(1)
    assert "村(社)调解" in holder and user(MEDIATOR).display_name in holder
    timeline = re.search(r'<ol class="timeline">(.*?)</ol>', page, re.S).group(1)
    kinds = re.findall(r'class="event event-(\w+)"', timeline)
    assert kinds[0] == "case_opened" and kinds[-1] == "task_claimed", "oldest first, newest last"
    opened = events_of(case.id)[0]
    assert f'<time datetime="{opened.at.isoformat()}">{local(opened.at)}</time>' in timeline
    assert user(CLERK).display_name in timeline and "系统" in timeline


def test_comments_are_posted_and_recorded(web):
    case = open_case()
    clerk = web(CLERK)
    empty = clerk.post(f"/cases/{case.id}/comments", data={"body": "   "})
    assert empty.status_code == 422 and "意见不能为空" in text(empty)
    posted = clerk.post(f"/cases/{case.id}/comments", data={"body": "已电话联系双方<b>周三</b>到村调解室"})
    assert posted.status_code == 302
    [comment] = db.session.scalars(select(CaseComment).where(CaseComment.case_id == case.id)).all()
    assert comment.author.username == CLERK
    [recorded] = events_of(case.id, "comment_added")
    assert recorded.actor.username == CLERK and recorded.data == {"comment_id": comment.id}
    page = text(web(MEDIATOR).get(f"/cases/{case.id}"))
    assert "已电话联系双方&lt;b&gt;周三&lt;/b&gt;到村调解室" in page


def test_attachments_upload_check_type_and_size_and_download(web, tmp_path):
    from io import BytesIO

    case = open_case()
    clerk = web(CLERK)
    uploaded = clerk.post(f"/cases/{case.id}/attachments", content_type="multipart/form-data",
                          data={"file": (BytesIO(PNG), "现场照片.png")})
    assert uploaded.status_code == 302
    [attachment] = db.session.scalars(select(CaseAttachment).where(CaseAttachment.case_id == case.id)).all()
    import hashlib

    digest = hashlib.sha256(PNG).hexdigest()
    assert (attachment.original_name, attachment.content_type, attachment.size, attachment.sha256) == (
        "现场照片.png", "image/png", len(PNG), digest)
    stored = tmp_path / "attachments" / digest
    assert stored.read_bytes() == PNG and attachment.stored_name == digest
    assert events_of(case.id, "attachment_added")[0].data["sha256"] == digest

    fake = clerk.post(f"/cases/{case.id}/attachments", content_type="multipart/form-data",
                      data={"file": (BytesIO(b"MZ\x90\x00 not a pdf"), "合同.pdf")})
    assert fake.status_code == 422 and "只能上传 PDF、JPEG 或 PNG 文件" in text(fake)
    # encoded here: the test client would spool a body this big to a temporary file it never closes
    boundary, body = encode_multipart({"csrf_token": clerk.token(),
                                       "file": FileStorage(BytesIO(b"%PDF-1.7\n" + bytes(10 * 1024 * 1024)), "大文件.pdf")})
    big = clerk.post(f"/cases/{case.id}/attachments", data=body, csrf=False,
                     content_type=f"multipart/form-data; boundary={boundary}")
    assert big.status_code == 422 and "文件超过 10 MB" in text(big)
    boundary, body = encode_multipart({"csrf_token": clerk.token(),
                                       "file": FileStorage(BytesIO(bytes(17 * 1024 * 1024)), "巨大.pdf")})
    huge = clerk.post(f"/cases/{case.id}/attachments", data=body, csrf=False,
                      content_type=f"multipart/form-data; boundary={boundary}")
    assert huge.status_code == 413 and "上传的文件超过 10 MB，没有保存" in text(huge), "over MAX_CONTENT_LENGTH"
    nothing = clerk.post(f"/cases/{case.id}/attachments", content_type="multipart/form-data", data={})
    assert nothing.status_code == 422
    assert sorted(p.name for p in (tmp_path / "attachments").iterdir()) == [digest], "rejected files are not kept"
    assert db.session.scalar(select(func.count()).select_from(CaseAttachment)) == 1

    download = web(MEDIATOR).get(f"/cases/{case.id}/attachments/{attachment.id}")
    assert download.status_code == 200 and download.data == PNG
    assert download.headers["Content-Type"] == "image/png"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert "%E7%8E%B0%E5%9C%BA%E7%85%A7%E7%89%87.png" in download.headers["Content-Disposition"]
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    download.close()
    assert web(OUTSIDER).get(f"/cases/{case.id}/attachments/{attachment.id}").status_code == 404
    other = open_case(title="另一起纠纷")
    assert clerk.get(f"/cases/{other.id}/attachments/{attachment.id}").status_code == 404, "ids belong to their case"


# ---------------------------------------------------------------------------------------------
# Visibility

def test_other_units_get_404_on_every_page(web):
    case = open_case()
    task = ready(case.id, "village_mediate")
    outsider = web(OUTSIDER)
    assert outsider.get(f"/tasks/{task.id}").status_code == 404
    page = outsider.get(f"/cases/{case.id}")
    assert page.status_code == 404 and "未找到" in text(page) and case.number not in text(page)
    assert outsider.post(f"/tasks/{task.id}/claim").status_code == 404
    assert outsider.post(f"/tasks/{task.id}/release").status_code == 404
    assert outsider.post(f"/tasks/{task.id}", data={**as_form(form_data("village_mediate")),
                                                     "action": "submit"}).status_code == 404
    assert outsider.post(f"/tasks/{task.id}", data={"action": "draft"}).status_code == 404
    assert outsider.post(f"/cases/{case.id}/comments", data={"body": "看看"}).status_code == 404
    assert outsider.post(f"/cases/{case.id}/high-value/confirm").status_code == 404
    assert outsider.post(f"/cases/{case.id}/attachments", content_type="multipart/form-data",
                         data={"file": (__import__("io").BytesIO(PNG), "x.png")}).status_code == 404
    for path in ("/inbox?scope=mine", "/inbox?scope=claimable", "/cases"):
        assert case.number not in text(outsider.get(path)), path
    assert db.session.scalar(select(func.count()).select_from(CaseComment)) == 0
    db.session.expire_all()
    assert db.session.get(HumanTask, task.id).assignee_id is None
    # the town above the village sees it
    assert web("qx_fq_town_dispatcher").get(f"/cases/{case.id}").status_code == 200
    assert case.number in text(web("qx_county_center").get("/cases"))


def test_every_web_post_route_needs_the_csrf_token(app, web):
    web_blueprints = {"auth", "mediator", "public", "qr_admin"}
    rules = [rule for rule in app.url_map.iter_rules()
             if "POST" in rule.methods and rule.endpoint.split(".", 1)[0] in web_blueprints]
    endpoints = {rule.endpoint for rule in rules}
    assert {"auth.login", "auth.logout", "auth.language", "mediator.claim", "mediator.release", "mediator.submit",
            "mediator.comment", "mediator.upload", "mediator.confirm_high_value", "mediator.grid_report",
            "public.report", "public.lookup", "mediator.notifications_read_all", "mediator.notification_read"} <= endpoints
    case = open_case()
    task = ready(case.id, "village_mediate")
    notice = db.session.scalars(select(Notification).where(Notification.user_id == user(MEDIATOR).id)).first()
    values = {"task_id": task.id, "case_id": case.id, "unit_code": "QX-FQ-DS", "code": "en",
              "notification_id": notice.id}
    people = {"anonymous": web(), "grid worker": web(GRID), "mediator": web(MEDIATOR)}
    for rule in rules:
        path = rule.build({name: values[name] for name in rule.arguments})[1]
        for who, session in people.items():
            response = session.post(path, data={"body": "x", "action": "submit"}, csrf=False)
            assert response.status_code == 400, (rule.endpoint, who, response.status_code)
            assert "CSRF" in text(response)
            wrong = session.post(path, data={"csrf_token": "forged", "body": "x"}, csrf=False)
            assert wrong.status_code == 400, (rule.endpoint, who)
    db.session.expire_all()
    assert db.session.get(HumanTask, task.id).assignee_id is None
    assert db.session.scalar(select(func.count()).select_from(CaseComment)) == 0
    assert db.session.scalar(select(func.count()).select_from(DisputeCase)) == 1
    assert unread_in_db(MEDIATOR) >= 1 and db.session.get(Notification, notice.id).read_at is None


# ---------------------------------------------------------------------------------------------
# Grid worker reports and high-value events

def test_grid_worker_reports_a_high_value_event_a_supervisor_confirms_it(web):
    grid = web(GRID)
    form = text(grid.get("/grid/report"))
    assert "东山村第1网格" in form
    invalid = grid.post("/grid/report", data={"category": "nonsense", "title": "", "description": "",
                                              "people_involved": "many", "risk_level": "low",
                                              "party1_phone": "call me"})
    assert invalid.status_code == 422
    page = text(invalid)
    assert '<p class="field-error" id="category-error" role="alert"><span>请选择有效选项</span></p>' in page
    assert '<p class="field-error" id="title-error" role="alert"><span>必填</span></p>' in page
    assert '<p class="field-error" id="people_involved-error" role="alert"><span>请输入整数</span></p>' in page
    assert '<p class="field-error" id="party1_phone-error" role="alert"><span>请输入有效的电话号码</span></p>' in page
    assert db.session.scalar(select(func.count()).select_from(DisputeCase)) == 0

    reported = grid.post("/grid/report", data={
        "grid_id": str(unit("QX-FQ-DS-G1").id), "category": "pollution", "title": "养殖场污水外排引发邻里冲突",
        "description": "巡查发现养殖场污水流入农田，多户村民聚集，现场劝离。", "location": "东山村五组",
        "people_involved": "12", "risk_level": "high", "party1_name": "陈大伯", "party1_phone": "139-0000-1111",
        "party2_name": "某养殖场", "high_value": "1"})
    assert reported.status_code == 302
    case = db.session.scalar(select(DisputeCase))
    assert reported.location.endswith(f"/cases/{case.id}")
    assert (case.channel, case.org_unit.code, case.status, case.risk_level, case.people_involved) == (
        "grid_report", "QX-FQ-DS-G1", "intake", "high", 12)
    assert case.parties == [{"name": "陈大伯", "party_role": "applicant", "phone": "13900001111"},
                            {"name": "某养殖场", "party_role": "respondent"}]
    assert (case.high_value_reported, case.high_value_confirmed) == (True, False)
    assert [e.actor.username for e in events_of(case.id, "high_value_reported")] == [GRID]
    assert ready(case.id, "intake_register") is not None, "waits for the village's intake clerk"
    assert "确认为高价值事件" not in text(grid.get(f"/cases/{case.id}"))
    assert grid.post(f"/cases/{case.id}/high-value/confirm").status_code == 403

    supervisor = web(TOWN_SUPERVISOR)
    assert "确认为高价值事件" in text(supervisor.get(f"/cases/{case.id}"))
    assert supervisor.post(f"/cases/{case.id}/high-value/confirm").status_code == 302
    db.session.expire_all()
    case = db.session.get(DisputeCase, case.id)
    assert case.high_value_confirmed and case.high_value_confirmed_by_id == user(TOWN_SUPERVISOR).id
    [confirmed] = events_of(case.id, "high_value_confirmed")
    assert confirmed.actor.username == TOWN_SUPERVISOR
    assert "高价值事件（已确认）" in text(supervisor.get(f"/cases/{case.id}"))
    other_town = web("qx_nh_supervisor")
    assert other_town.post(f"/cases/{case.id}/high-value/confirm").status_code == 404


def test_confirming_an_unreported_case_changes_nothing_and_non_grid_users_cannot_report(web):
    case = open_case()
    supervisor = web(TOWN_SUPERVISOR)
    response = supervisor.post(f"/cases/{case.id}/high-value/confirm")
    assert response.status_code == 302
    assert "未被上报为高价值事件" in flash_messages(text(supervisor.get(response.location)))[0]
    db.session.expire_all()
    assert db.session.get(DisputeCase, case.id).high_value_confirmed is False
    assert events_of(case.id, "high_value_confirmed") == []
    assert web(MEDIATOR).get("/grid/report").status_code == 403
    assert "网格上报" not in text(web(MEDIATOR).get("/inbox")) and "网格上报" in text(web(GRID).get("/inbox"))


# ---------------------------------------------------------------------------------------------
# Language

@pytest.mark.usefixtures("compiled_translations")
def test_english_is_one_click_away_and_chinese_is_the_default(web):
    case = open_case()
    mediator = web(MEDIATOR)
    chinese = text(mediator.get("/inbox?scope=claimable"))
    assert "待认领" in chinese and 'lang="zh-CN"' in chinese
    switched = mediator.post("/language/en", data={"next": "/inbox?scope=claimable"})
    assert switched.location.endswith("/inbox?scope=claimable")
    english = text(mediator.get("/inbox?scope=claimable"))
    assert 'lang="en"' in english and "Claimable" in english and "待认领" not in english
    assert "Housing &amp; homestead" in english and "Village" in english and case.number in english
    task = ready(case.id, "village_mediate")
    english_task = text(mediator.get(f"/tasks/{task.id}"))
    assert "Submit" in english_task and "Save draft" in english_task
    mediator.post("/language/zh_CN", data={"next": "/inbox"})
    assert "待认领" in text(mediator.get("/inbox"))


def test_the_english_catalog_translates_every_ui_string(compiled_translations):
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg
    from babel.messages.pofile import read_po

    root = compiled_translations.parent.parent
    with (root / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    used = {message for _, _, message, _, _ in extract_from_dir(str(root), method_map, options_map)}
    with (compiled_translations / "en" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = {m.id: m.string for m in read_po(po) if m.id}
    assert "待认领" in used and "请选择有效选项" in used
    assert sorted(used - set(catalog)) == [], "run pybabel extract/update and translate the new strings"
    untranslated = sorted(key for key, value in catalog.items() if not value)
    assert untranslated == []
    placeholders = re.compile(r"%\((\w+)\)s")
    for msgid in used:
        assert set(placeholders.findall(msgid)) == set(placeholders.findall(catalog[msgid])), msgid


@pytest.mark.usefixtures("compiled_translations")
def test_task_names_and_form_labels_from_the_diagram_and_schema_speak_english(web):
    case = open_case()
    task = ready(case.id, "village_mediate")
    mediator = web(MEDIATOR)
    chinese = text(mediator.get(f"/tasks/{task.id}"))
    assert "村(社)调解" in chinese and "调解结果" in chinese and "调解成功" in chinese
    mediator.post("/language/en", data={"next": "/inbox"})
    english = text(mediator.get(f"/tasks/{task.id}"))
    assert "<h1>Village mediation</h1>" in english and "Mediation result" in english
    assert "Course of the mediation" in english and "Not resolved" in english
    # The event log keeps the words it was written in; the page's own labels are English.
    assert "调解结果" not in english and "调解不成" not in english
    inbox = text(mediator.get("/inbox?scope=claimable"))
    assert "Village mediation" in inbox and "村(社)调解" not in inbox


# ---------------------------------------------------------------------------------------------
# Notifications

def test_notifications_page_counts_unread_opens_the_case_and_marks_read(web):
    case = open_case()
    mediator = web(MEDIATOR)
    inbox = text(mediator.get("/inbox"))
    unread = int(re.search(r'<span class="badge"[^>]*>(\d+)</span>', inbox).group(1))
    assert unread == unread_in_db(MEDIATOR) >= 1
    page = text(mediator.get("/notifications?unread=1"))
    assert case.number in page and "新待办" in page and page.count('class="task card notification') == unread
    mine = db.session.scalars(select(Notification).where(
        Notification.user_id == user(MEDIATOR).id, Notification.case_id == case.id)).all()
    opened = mediator.post(f"/notifications/{mine[0].id}/read")
    assert opened.status_code == 302 and opened.location.endswith(f"/cases/{case.id}")
    assert db.session.get(Notification, mine[0].id).read_at is not None
    assert unread_in_db(MEDIATOR) == unread - 1
    badge = re.search(r'<span class="badge"[^>]*>(\d+)</span>', text(mediator.get("/notifications")))
    assert (int(badge.group(1)) if badge else 0) == unread - 1

    # Someone else's notification is not found, and reading it changes nothing.
    other = web("qx_fq_ds_intake_clerk")
    assert other.post(f"/notifications/{mine[-1].id}/read").status_code == 404

    mediator.post("/notifications/read")
    after = text(mediator.get("/notifications"))
    assert 'class="badge"' not in after and "unread-mark" not in after
    assert unread_in_db(MEDIATOR) == 0


def unread_in_db(username):
    return db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == user(username).id, Notification.read_at.is_(None)))
