"""A hostile diagram deployed by mistake: its code is killed in a worker process, the request
answers 4xx naming the element, and the case is exactly as it was before the request."""
import pytest
from sqlalchemy import func, select

from app.cases.models import CaseEvent, DisputeCase, HumanTask, Timer
from app.extensions import db
from app.org.models import OrgUnit
from app.processes import services as processes
from tests.conftest import ApiClient, FreshUserClient
from tests.factories import form_data

INTEGRATOR, CLERK = "qx_integrator", "qx_fq_ds_intake_clerk"
#: 10**12 additions inside C: the in-process deadline check never runs; only a kill stops it.
C_LOOP = "sum(map(sum, [[1] * 10**6] * 10**6))"
INIT_SCRIPT_END = "leader_designated = False</bpmn:script>"


@pytest.fixture
def api(sqlite_app):
    sqlite_app.test_client_class = FreshUserClient
    sqlite_app.config["SCRIPT_TIME_BUDGET"] = 0.3
    client = sqlite_app.test_client()
    return {name: ApiClient(client, name) for name in (INTEGRATOR, CLERK)}


def bundle_with_init_script_tail(tail: str) -> dict:
    files = {f.name: f.content for f in processes.find_version("dispute_lifecycle", 1).files}
    text = files["dispute_lifecycle.bpmn"]
    assert text.count(INIT_SCRIPT_END) == 1
    return {**files, "dispute_lifecycle.bpmn": text.replace(
        INIT_SCRIPT_END, "leader_designated = False\n" + tail + "</bpmn:script>")}


def case_record(case_id):
    """Everything a step may change, to compare before and after a failed request."""
    db.session.expire_all()
    case = db.session.get(DisputeCase, case_id)
    return {
        "case": (case.status, case.current_tier, case.lock_version, case.location, case.org_unit_id),
        "state": case.workflow_state.state,
        "events": db.session.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.case_id == case_id)),
        "tasks": sorted(db.session.execute(select(HumanTask.spec_name, HumanTask.status)
                                           .where(HumanTask.case_id == case_id)).all()),
        "timers": db.session.scalar(select(func.count()).select_from(Timer).where(Timer.case_id == case_id)),
    }


def intake_task(api, case_id):
    tasks = api[CLERK].get("/tasks", query_string={"per_page": 200}).json["items"]
    return next(t for t in tasks if t["case_id"] == case_id and t["spec_name"] == "intake_register")


def test_a_script_looping_in_c_fails_the_step_and_leaves_the_case_as_it_was(api):
    files = bundle_with_init_script_tail(f'if location == "C-loop":\n    spin = {C_LOOP}\n')
    deployed = api[INTEGRATOR].post("/process-versions", json={"key": "dispute_lifecycle", "files": files})
    assert deployed.status_code == 201, deployed.json
    unit = db.session.scalar(select(OrgUnit.id).where(OrgUnit.code == "QX-FQ-DS"))
    opened = api[CLERK].post("/disputes", json={
        "title": "宅基地边界纠纷", "category": "housing_homestead", "description": "围墙越界",
        "org_unit_id": unit, "channel": "walk_in"})
    assert opened.status_code == 201, opened.json
    case_id = opened.json["id"]
    task = intake_task(api, case_id)
    before = case_record(case_id)

    hostile = api[CLERK].post(f"/tasks/{task['id']}/complete",
                              json={"data": form_data("intake_register", location="C-loop")})
    assert hostile.status_code == 422, hostile.json
    assert hostile.json["element_id"] == "init_case"
    assert "killed" in hostile.json["message"]
    assert case_record(case_id) == before

    normal = api[CLERK].post(f"/tasks/{task['id']}/complete", json={"data": form_data("intake_register")})
    assert normal.status_code == 200, normal.json
    after = case_record(case_id)
    assert ("village_mediate", "ready") in after["tasks"]
    assert after["events"] > before["events"]


def test_a_script_that_exhausts_its_limits_on_sample_data_is_not_deployed(api):
    files = bundle_with_init_script_tail(f"spin = {C_LOOP}\n")
    response = api[INTEGRATOR].post("/process-versions", json={"key": "dispute_lifecycle", "files": files})
    assert response.status_code == 422
    problems = [p for p in response.json["problems"] if p["severity"] == "error"]
    init = [p for p in problems if p["element_id"] == "init_case"]
    assert len(init) == 1 and init[0]["file"] == "dispute_lifecycle.bpmn"
    assert "exceeds its limits" in init[0]["message"]
    assert len(processes.list_versions()) == 1
