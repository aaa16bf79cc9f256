"""The lifecycle through HTTP, on SQLite and on PostgreSQL: the demo county's people do the work."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.cases.models import CaseEvent, DisputeCase, HumanTask, Timer, WorkflowState
from app.cases.services import fire_due_timers
from app.extensions import db
from app.org.models import OrgUnit
from tests.factories import failed, form_data

CLERK = "qx_fq_ds_intake_clerk"            # 东山村 intake clerk
MEDIATOR = "qx_fq_ds_village_mediator"     # 东山村 mediator
OTHER_MEDIATOR = "qx_nh_sx_village_mediator"  # 沙溪村, another town
GRID = "qx_fq_ds_g1_grid_worker"
TOWN_DISPATCH = "qx_fq_town_dispatcher"
TOWN_MEDIATOR = "qx_fq_town_mediator"
COUNTY = "qx_county_center"
COURT = "qx_court_clerk"


def unit_id(code):
    return db.session.scalar(select(OrgUnit.id).where(OrgUnit.code == code))


def open_case(api, unit="QX-FQ-DS", **overrides):
    payload = {
        "title": "王某与李某宅基地边界纠纷", "category": "housing_homestead",
        "description": "围墙越界约半米", "org_unit_id": unit_id(unit), "channel": "walk_in",
        "parties": [{"name": "王建国", "party_role": "applicant"}, {"name": "李秀英", "party_role": "respondent"}],
    }
    payload.update(overrides)
    response = api.post("/disputes", json=payload)
    assert response.status_code == 201, response.json
    return response.json


def task_for(api, case_id, spec_name):
    response = api.get("/tasks", query_string={"per_page": 200})
    assert response.status_code == 200, response.json
    found = [t for t in response.json["items"] if t["case_id"] == case_id and t["spec_name"] == spec_name]
    assert found, f"{api.username} has no {spec_name} for case {case_id}: {response.json['items']}"
    return found[0]


def complete(api, case_id, spec_name, data=None):
    task = task_for(api, case_id, spec_name)
    response = api.post(f"/tasks/{task['id']}/complete", json={"data": data or form_data(spec_name)})
    assert response.status_code == 200, response.json
    return task


def detail(api, case_id):
    response = api.get(f"/disputes/{case_id}")
    assert response.status_code == 200, response.json
    return response.json


def test_resolved_at_village_with_every_step_on_record(as_user):
    clerk, mediator, grid = as_user(CLERK), as_user(MEDIATOR), as_user(GRID)
    case = open_case(clerk)
    assert case["status"] == "intake" and case["number"].startswith("JF2026")
    assert [t["spec_name"] for t in case["open_tasks"]] == ["intake_register"]

    complete(clerk, case["id"], "intake_register", form_data("intake_register", title="宅基地边界纠纷（已核实）"))
    state = detail(mediator, case["id"])
    assert (state["status"], state["current_tier"], state["title"]) == ("open", "village", "宅基地边界纠纷（已核实）")
    assert state["due_at"].startswith("2026-11-17"), "village limit: 15 days from now"
    [village_task] = state["open_tasks"]
    assert village_task["lane"] == "village_mediator" and village_task["assignee"] is None

    complete(mediator, case["id"], "village_mediate")
    complete(grid, case["id"], "follow_up_visit")
    final = detail(clerk, case["id"])
    assert (final["status"], final["outcome"], final["resolved_tier"], final["satisfaction"]) == (
        "closed", "resolved", "village", "satisfied")
    assert final["open_tasks"] == [] and final["closed_at"]

    kinds = [e["kind"] for e in final["events"]]
    assert kinds[0] == "case_opened" and kinds[-1] == "closed"
    assert kinds.count("task_completed") == 3 and "triaged" in kinds
    completed = [e for e in final["events"] if e["kind"] == "task_completed"]
    assert [e["actor"]["username"] for e in completed] == [CLERK, MEDIATOR, GRID]
    assert completed[1]["data"]["form"]["mediation_result"] == "success"
    assert db.session.scalar(select(func.count()).select_from(Timer).where(Timer.status == "pending")) == 0


def test_escalation_through_every_tier_into_court(as_user):
    clerk = as_user(CLERK)
    case = open_case(clerk)
    complete(clerk, case["id"], "intake_register")
    complete(as_user(MEDIATOR), case["id"], "village_mediate", failed("village_mediate"))
    complete(as_user(TOWN_DISPATCH), case["id"], "town_dispatch")
    complete(as_user(TOWN_MEDIATOR), case["id"], "town_mediate", failed("town_mediate"))
    county = as_user(COUNTY)
    complete(county, case["id"], "county_accept")
    complete(as_user("qx_county_justice"), case["id"], "consult_justice")
    complete(as_user("qx_county_petition"), case["id"], "consult_petition")
    complete(county, case["id"], "county_mediate", failed("county_mediate"))
    court = as_user(COURT)
    for step in ("court_premediation", "court_filing", "court_ruling"):
        complete(court, case["id"], step)
    final = detail(clerk, case["id"])
    assert (final["status"], final["outcome"], final["resolved_tier"], final["escalation_count"]) == (
        "closed", "litigated", "court", 3)
    escalations = [e["data"] for e in final["events"] if e["kind"] == "escalated"]
    assert [(e["from"], e["to"], e["reason"]) for e in escalations] == [
        ("village", "town", "mediation_failed"), ("town", "county", "mediation_failed"),
        ("county", "court", "mediation_failed")]


def test_triage_sends_a_mass_dispute_straight_to_the_county(as_user):
    clerk = as_user(CLERK)
    case = open_case(clerk, category="labour", people_involved=40)
    complete(clerk, case["id"], "intake_register", form_data("intake_register", category="labour", people_involved=40))
    state = detail(as_user(COUNTY), case["id"])
    assert (state["current_tier"], state["start_tier"], state["department"]) == ("county", "county", "劳动人事争议仲裁院")
    assert [t["spec_name"] for t in state["open_tasks"]] == ["county_accept"]
    assert as_user(MEDIATOR).get("/tasks").json["total"] == 0


def test_time_limit_escalates_and_a_late_submit_gets_409(as_user, fake_clock):
    clerk, mediator = as_user(CLERK), as_user(MEDIATOR)
    case = open_case(clerk)
    complete(clerk, case["id"], "intake_register")
    village_task = task_for(mediator, case["id"], "village_mediate")
    assert mediator.post(f"/tasks/{village_task['id']}/claim").status_code == 200

    fake_clock.advance(days=10, seconds=1)
    assert fire_due_timers() == 1
    state = detail(mediator, case["id"])
    assert state["current_tier"] == "village"
    assert [e["kind"] for e in state["events"]].count("reminder") == 1

    fake_clock.advance(days=5)
    assert fire_due_timers() == 1
    assert fire_due_timers() == 0, "a fired timer never fires again"
    state = detail(clerk, case["id"])
    assert (state["current_tier"], state["escalation_count"]) == ("town", 1)
    escalation = [e for e in state["events"] if e["kind"] == "escalated"][0]
    assert escalation["actor"] is None and escalation["data"]["reason"] == "time_limit"
    assert [t["spec_name"] for t in state["open_tasks"]] == ["town_dispatch"]

    late = mediator.post(f"/tasks/{village_task['id']}/complete", json={"data": form_data("village_mediate")})
    assert late.status_code == 409
    assert late.json["reason"] == "escalated_by_time_limit" and "time limit" in late.json["message"]
    assert detail(clerk, case["id"])["current_tier"] == "town", "the late submit changed nothing"


def test_judicial_confirmation_then_dissatisfied_reopens_at_that_tier(as_user):
    clerk, mediator, grid = as_user(CLERK), as_user(MEDIATOR), as_user(GRID)
    case = open_case(clerk)
    complete(clerk, case["id"], "intake_register")
    complete(mediator, case["id"], "village_mediate", form_data("village_mediate", wants_judicial_confirmation=True))
    complete(as_user(COURT), case["id"], "judicial_confirmation")
    complete(grid, case["id"], "follow_up_visit",
             form_data("follow_up_visit", satisfaction="dissatisfied", visit_notes="对方未按期拆墙"))
    state = detail(clerk, case["id"])
    assert (state["status"], state["current_tier"], state["reopen_count"]) == ("open", "village", 1)
    assert "reopened" in [e["kind"] for e in state["events"]]
    complete(mediator, case["id"], "village_mediate")
    complete(grid, case["id"], "follow_up_visit")
    assert detail(clerk, case["id"])["outcome"] == "resolved"


def test_bad_form_data_answers_422_per_field_and_changes_nothing(as_user):
    clerk = as_user(CLERK)
    case = open_case(clerk)
    task = task_for(clerk, case["id"], "intake_register")
    bad = form_data("intake_register", accepted=False, people_involved=0, category="gossip", surprise=1)
    bad.pop("title")
    response = clerk.post(f"/tasks/{task['id']}/complete", json={"data": bad})
    assert response.status_code == 422
    errors = response.json["errors"]
    assert set(errors) == {"title", "people_involved", "category", "rejection_reason", "surprise"}
    assert errors["title"] == ["required"]
    after = detail(clerk, case["id"])
    assert after["status"] == "intake" and after["lock_version"] == case["lock_version"]
    assert [e["kind"] for e in after["events"]] == [e["kind"] for e in case["events"]]

    missing = clerk.post(f"/tasks/{task['id']}/complete", json={})
    assert missing.status_code == 422 and "data" in missing.json["errors"]["json"]


def test_bad_new_case_answers_422_naming_the_field(as_user):
    clerk = as_user(CLERK)
    response = clerk.post("/disputes", json={"title": "x", "category": "gossip", "org_unit_id": unit_id("QX-FQ-DS")})
    assert response.status_code == 422
    assert {"title", "category", "description"} <= set(response.json["errors"]["json"])
    town_level = clerk.post("/disputes", json={"title": "镇级", "category": "other", "description": "d",
                                               "org_unit_id": unit_id("QX-FQ")})
    assert town_level.status_code in (404, 422)
    assert db.session.scalar(select(func.count()).select_from(DisputeCase)) == 0


def test_completing_twice_answers_409(as_user):
    clerk = as_user(CLERK)
    case = open_case(clerk)
    task = complete(clerk, case["id"], "intake_register")
    again = clerk.post(f"/tasks/{task['id']}/complete", json={"data": form_data("intake_register")})
    assert again.status_code == 409 and again.json["reason"] == "already_completed"


def test_claim_release_and_claimed_by_someone_else(as_user):
    clerk, grid1, grid2 = as_user(CLERK), as_user(GRID), as_user("qx_fq_ds_g2_grid_worker")
    case = open_case(clerk)
    complete(clerk, case["id"], "intake_register")
    complete(as_user(MEDIATOR), case["id"], "village_mediate")
    task = task_for(grid1, case["id"], "follow_up_visit")
    assert task_for(grid2, case["id"], "follow_up_visit")["id"] == task["id"], "both grids of the village may take it"

    claimed = grid1.post(f"/tasks/{task['id']}/claim")
    assert claimed.status_code == 200 and claimed.json["assignee"]["username"] == GRID
    assert grid2.get("/tasks", query_string={"scope": "claimable"}).json["total"] == 0
    assert grid1.get("/tasks", query_string={"scope": "mine"}).json["total"] == 1
    taken = grid2.post(f"/tasks/{task['id']}/complete", json={"data": form_data("follow_up_visit")})
    assert taken.status_code == 409 and taken.json["reason"] == "claimed_by_other"
    assert grid2.post(f"/tasks/{task['id']}/release").status_code == 403
    assert grid1.post(f"/tasks/{task['id']}/release").json["assignee"] is None
    complete(grid2, case["id"], "follow_up_visit")


def test_other_units_see_nothing_404(as_user):
    clerk, outsider = as_user(CLERK), as_user(OTHER_MEDIATOR)
    case = open_case(clerk)
    complete(clerk, case["id"], "intake_register")
    task = task_for(as_user(MEDIATOR), case["id"], "village_mediate")
    assert outsider.get(f"/disputes/{case['id']}").status_code == 404
    assert outsider.get(f"/tasks/{task['id']}").status_code == 404
    assert outsider.get(f"/tasks/{task['id']}/form").status_code == 404
    assert outsider.post(f"/tasks/{task['id']}/claim").status_code == 404
    assert outsider.post(f"/tasks/{task['id']}/complete", json={"data": form_data("village_mediate")}).status_code == 404
    assert outsider.get("/disputes").json["total"] == 0 and outsider.get("/tasks").json["total"] == 0
    # the town and county above the village do see the case
    assert as_user(TOWN_DISPATCH).get(f"/disputes/{case['id']}").status_code == 200
    assert as_user(COUNTY).get("/disputes").json["total"] == 1
    # a supervisor may look at the task but not do it
    supervisor = as_user("qx_fq_supervisor")
    assert supervisor.get(f"/tasks/{task['id']}").status_code == 200
    assert supervisor.post(f"/tasks/{task['id']}/complete", json={"data": form_data("village_mediate")}).status_code == 403


def test_without_login_401(client):
    assert client.get("/api/v1/disputes").status_code == 401
    assert client.get("/api/v1/tasks").status_code == 401
    assert client.post("/api/v1/disputes", json={}).status_code == 401
    assert client.get("/api/v1/disputes", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_inbox_filters_and_sorts_by_due_time(as_user, fake_clock):
    clerk, mediator = as_user(CLERK), as_user(MEDIATOR)
    first = open_case(clerk)
    complete(clerk, first["id"], "intake_register")
    fake_clock.advance(days=2)
    second = open_case(clerk, category="neighbour")
    complete(clerk, second["id"], "intake_register", form_data("intake_register", category="neighbour"))
    items = mediator.get("/tasks").json["items"]
    assert [t["case_id"] for t in items] == [first["id"], second["id"]], "earliest deadline first"
    assert items[0]["due_at"] < items[1]["due_at"]
    only = mediator.get("/tasks", query_string={"category": "neighbour"}).json["items"]
    assert [t["case_id"] for t in only] == [second["id"]]
    assert mediator.get("/tasks", query_string={"tier": "town"}).json["total"] == 0
    assert mediator.get("/tasks", query_string={"overdue": "true"}).json["total"] == 0
    fake_clock.advance(days=14)  # first is past its 15 days, timers not yet fired
    overdue = mediator.get("/tasks", query_string={"overdue": "true"}).json["items"]
    assert [t["case_id"] for t in overdue] == [first["id"]] and overdue[0]["seconds_left"] < 0
    listed = clerk.get("/disputes", query_string={"overdue": "true"}).json
    assert [c["id"] for c in listed["items"]] == [first["id"]]


def test_form_endpoint_prefills_from_the_case(as_user):
    clerk = as_user(CLERK)
    case = open_case(clerk, title="邻里噪音纠纷")
    task = task_for(clerk, case["id"], "intake_register")
    form = clerk.get(f"/tasks/{task['id']}/form").json
    assert form["name"] == "intake_register.schema.json"
    assert form["schema"]["properties"]["accepted"]["type"] == "boolean"
    assert form["data"]["title"] == "邻里噪音纠纷" and form["data"]["category"] == "housing_homestead"


def test_engine_failure_rolls_back_the_whole_step(as_user, monkeypatch):
    from app.engine import runtime

    clerk = as_user(CLERK)
    case = open_case(clerk)
    task = task_for(clerk, case["id"], "intake_register")
    state_before = db.session.get(WorkflowState, case["id"]).state
    events_before = db.session.scalar(select(func.count()).select_from(CaseEvent))

    def explode(self):
        raise RuntimeError("disk full while saving")

    monkeypatch.setattr(runtime.Instance, "dump", explode)
    with pytest.raises(RuntimeError):
        clerk.post(f"/tasks/{task['id']}/complete", json={"data": form_data("intake_register")})
    db.session.rollback()
    assert db.session.get(WorkflowState, case["id"]).state == state_before
    assert db.session.scalar(select(func.count()).select_from(CaseEvent)) == events_before
    assert db.session.get(HumanTask, task["id"]).status == "ready"


def test_openapi_document_lists_the_operations(client):
    spec = client.get("/api/v1/openapi.json").json
    assert {"/api/v1/disputes", "/api/v1/tasks", "/api/v1/tasks/{task_id}/complete"} <= set(spec["paths"])
    assert "NewCase" in spec["components"]["schemas"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_session_login_needs_csrf_for_api_writes(app, client):
    app.config["WTF_CSRF_ENABLED"] = True
    page = client.get("/login")
    token = page.get_data(as_text=True).split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    assert client.post("/login", data={"username": CLERK, "password": "wrong", "csrf_token": token}).status_code == 401
    assert client.post("/login", data={"username": CLERK, "password": "demo12345", "csrf_token": token}).status_code == 302
    me = client.get("/api/v1/me")
    assert me.status_code == 200 and me.json["username"] == CLERK
    refused = client.post("/api/v1/disputes", json={"title": "无令牌", "category": "other", "description": "d",
                                                    "org_unit_id": unit_id("QX-FQ-DS")})
    assert refused.status_code == 400
    accepted = client.post("/api/v1/disputes", headers={"X-CSRFToken": token},
                           json={"title": "有令牌", "category": "other", "description": "d",
                                 "org_unit_id": unit_id("QX-FQ-DS")})
    assert accepted.status_code == 201


def test_due_timers_after_downtime_fire_oldest_first(as_user, fake_clock):
    clerk = as_user(CLERK)
    cases = []
    for offset in (0, 1, 2):
        fake_clock.advance(hours=offset)
        case = open_case(clerk)
        complete(clerk, case["id"], "intake_register")
        cases.append(case["id"])
    fake_clock.advance(days=40)  # everything was down for weeks
    assert fire_due_timers() == 6, "reminder and time limit of three cases"
    fired = db.session.scalars(select(Timer).where(Timer.status == "fired").order_by(Timer.fired_at, Timer.id)).all()
    assert all(t.lag_ms > 0 for t in fired)
    town_timers = db.session.scalars(select(Timer).where(Timer.status == "pending")).all()
    assert {t.spec_name for t in town_timers} == {"town_reminder", "town_time_limit"}
    assert all(t.due_at > fake_clock.now - timedelta(seconds=1) for t in town_timers), "the new tier's clock starts now"


def test_every_change_to_a_case_moves_its_counter_once(as_user, fake_clock):
    """lock_version counts the transactions that changed the case, its state, tasks or timers:
    complete_task trusts what it read before the lock only when the counter has not moved."""
    clerk, mediator = as_user(CLERK), as_user(MEDIATOR)
    case = open_case(clerk)
    counter = [detail(clerk, case["id"])["lock_version"]]

    def moved():
        counter.append(detail(clerk, case["id"])["lock_version"])
        return counter[-1] - counter[-2]

    complete(clerk, case["id"], "intake_register")  # one transaction, several flushes
    assert moved() == 1
    task = task_for(mediator, case["id"], "village_mediate")
    assert mediator.post(f"/tasks/{task['id']}/claim").status_code == 200
    assert moved() == 1, "a claim changes only the task's row"
    assert mediator.post(f"/tasks/{task['id']}/claim").status_code == 200
    assert moved() == 0, "claiming a task one holds already changes nothing"
    assert mediator.post(f"/tasks/{task['id']}/release").status_code == 200
    assert moved() == 1
    assert mediator.post(f"/tasks/{task['id']}/complete", json={"data": {}}).status_code == 422
    assert moved() == 0, "a refused submission changes nothing"
    fake_clock.advance(days=10, seconds=1)
    assert fire_due_timers() == 1  # the village reminder
    assert moved() == 1


def test_a_task_changed_without_its_case_loaded_still_moves_the_counter(as_user):
    case = open_case(as_user(CLERK))
    before = db.session.get(DisputeCase, case["id"]).lock_version
    db.session.expunge_all()
    task = db.session.scalar(select(HumanTask).where(HumanTask.case_id == case["id"]))
    task.title += '（改）'
    db.session.commit()
    assert db.session.scalar(select(DisputeCase.lock_version).where(DisputeCase.id == case["id"])) == before + 1
