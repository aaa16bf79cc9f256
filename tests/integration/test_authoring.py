"""Process authoring end to end: deploy versions over the API and the CLI, run old and new cases
side by side, pick versions by region, migrate running cases, and the modeler's pages.

The scenario tests run on SQLite and on PostgreSQL; the rest on SQLite only (one copy of the
seeded database per test).
"""
import io
import json
import re
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, text

from app.cases.models import CaseEvent, DisputeCase, HumanTask, Timer
from app.extensions import db
from app.org.models import OrgUnit
from app.processes import services as processes
from app.processes.models import ProcessDraft, ProcessFile, ProcessVariant, ProcessVersion
from tests.conftest import CASE_TABLES, START, ApiClient, FreshPageClient, FreshUserClient, WebSession
from tests.factories import failed, form_data

INTEGRATOR, EDITOR = "qx_integrator", "qx_policy_editor"
CLERK, MEDIATOR, GRID = "qx_fq_ds_intake_clerk", "qx_fq_ds_village_mediator", "qx_fq_ds_g1_grid_worker"
XH_CLERK = "qx_fq_xh_intake_clerk"
SX_CLERK = "qx_nh_sx_intake_clerk"


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers

@pytest.fixture
def authoring(app):
    """The app on both backends; on PostgreSQL what a test deployed is removed afterwards (the
    shared database keeps its process versions between tests, and later tests must start cases on
    the shipped version)."""
    baseline = db.session.scalar(select(func.max(ProcessVersion.id)))
    yield app
    if db.engine.dialect.name == "postgresql":
        db.session.rollback()
        db.session.execute(text(f"TRUNCATE {', '.join(CASE_TABLES)} RESTART IDENTITY CASCADE"))
        db.session.execute(delete(ProcessVariant))
        db.session.execute(delete(ProcessDraft))
        new = select(ProcessVersion.id).where(ProcessVersion.id > baseline)
        db.session.execute(delete(ProcessFile).where(ProcessFile.version_id.in_(new)))
        db.session.execute(delete(ProcessVersion).where(ProcessVersion.id > baseline))
        db.session.commit()


@pytest.fixture
def sq_api(sqlite_app):
    """``sq_api(username)``: JSON API calls on the SQLite copy."""
    sqlite_app.test_client_class = FreshUserClient
    client = sqlite_app.test_client()
    cache = {}

    def make(username):
        if username not in cache:
            cache[username] = ApiClient(client, username)
        return cache[username]

    make.client = client
    return make


@pytest.fixture
def pages(sqlite_app, tmp_path):
    """``pages(username)``: a logged-in browser-less session with CSRF protection on."""
    sqlite_app.config["WTF_CSRF_ENABLED"] = True
    sqlite_app.test_client_class = FreshPageClient

    def make(username=None):
        session = WebSession(sqlite_app.test_client())
        return session.login(username) if username else session

    return make


def put(api, path, body):
    return api.client.put(f"/api/v1{path}", headers=api.headers, json=body)


def unit_id(code):
    return db.session.scalar(select(OrgUnit.id).where(OrgUnit.code == code))


def open_case(api, unit="QX-FQ-DS"):
    response = api.post("/disputes", json={
        "title": "宅基地边界纠纷", "category": "housing_homestead", "description": "围墙越界",
        "org_unit_id": unit_id(unit), "channel": "walk_in"})
    assert response.status_code == 201, response.json
    return response.json


def complete(api, case_id, spec_name, data=None):
    tasks = api.get("/tasks", query_string={"per_page": 200}).json["items"]
    task = next((t for t in tasks if t["case_id"] == case_id and t["spec_name"] == spec_name), None)
    assert task, f"{api.username} has no {spec_name} for case {case_id}: {[t['spec_name'] for t in tasks]}"
    response = api.post(f"/tasks/{task['id']}/complete", json={"data": data or form_data(spec_name)})
    assert response.status_code == 200, response.json


def case_row(case_id) -> DisputeCase:
    db.session.expire_all()
    return db.session.get(DisputeCase, case_id)


def shipped_files():
    return {f.name: f.content for f in processes.find_version("dispute_lifecycle", 1).files}


def changed(files, name, old, new):
    assert files[name].count(old) >= 1, f"{old!r} not in {name}"
    return {**files, name: files[name].replace(old, new)}


def seven_day_files():
    files = changed(shipped_files(), "dispute_lifecycle.bpmn", '"village": "P15D",', '"village": "P7D",')
    return changed(files, "dispute_lifecycle.bpmn", '"village_reminder": "P10D",', '"village_reminder": "P5D",')


def renamed_village_task(files):
    """The village stage's task under a new id: cases at (or past) the old one cannot move."""
    text = files["village_mediation.bpmn"]
    for old, new in (('"village_mediate"', '"village_mediate_v2"'),
                     (">village_mediate<", ">village_mediate_v2<")):
        text = text.replace(old, new)
    return {**files, "village_mediation.bpmn": text}


def deploy_json(api, files, key="dispute_lifecycle", **extra):
    return api.post("/process-versions", json={"key": key, "files": files, **extra})


def pending_village_limit(case_id):
    return db.session.scalar(select(Timer.due_at).where(
        Timer.case_id == case_id, Timer.status == "pending", Timer.spec_name == "village_time_limit"))


# ---------------------------------------------------------------------------------------------
# Versions: old cases finish on their version, new cases take the new one

def test_old_cases_finish_on_their_version_and_new_cases_use_the_new_one(authoring, as_user):
    integrator, clerk = as_user(INTEGRATOR), as_user(CLERK)
    old_case = open_case(clerk)

    first = deploy_json(integrator, seven_day_files(), note="村级时限七天")
    assert first.status_code == 201, first.json
    assert (first.json["key"], first.json["version"], first.json["created"]) == ("dispute_lifecycle", 2, True)
    assert first.json["author"] == INTEGRATOR and first.json["note"] == "村级时限七天"
    again = deploy_json(integrator, seven_day_files())
    assert (again.status_code, again.json["version"], again.json["created"]) == (200, 2, False)
    assert len(processes.list_versions("dispute_lifecycle")) == 2, "identical content is not a new version"

    new_case = open_case(clerk)
    v1, v2 = processes.find_version("dispute_lifecycle", 1), processes.find_version("dispute_lifecycle", 2)
    assert (case_row(old_case["id"]).process_version_id, case_row(new_case["id"]).process_version_id) == (v1.id, v2.id)

    complete(clerk, old_case["id"], "intake_register")
    complete(clerk, new_case["id"], "intake_register")
    assert pending_village_limit(old_case["id"]) == START + timedelta(days=15), "the old case keeps 15 days"
    assert pending_village_limit(new_case["id"]) == START + timedelta(days=7)

    complete(as_user(MEDIATOR), old_case["id"], "village_mediate")
    complete(as_user(GRID), old_case["id"], "follow_up_visit")
    finished = case_row(old_case["id"])
    assert (finished.status, finished.outcome, finished.process_version_id) == ("closed", "resolved", v1.id)

    listed = integrator.get("/process-versions").json
    assert [(v["key"], v["version"]) for v in listed] == [("dispute_lifecycle", 1), ("dispute_lifecycle", 2)]
    one = integrator.get(f"/process-versions/{v2.id}").json
    assert '"village": "P7D"' in {f["name"]: f["content"] for f in one["files"]}["dispute_lifecycle.bpmn"]
    diff = integrator.get(f"/process-versions/{v1.id}/diff/{v2.id}").json
    assert [(d["file"], d["status"]) for d in diff] == [("dispute_lifecycle.bpmn", "changed")]
    assert '-    "village": "P15D",' in diff[0]["diff"] and '+    "village": "P7D",' in diff[0]["diff"]


# ---------------------------------------------------------------------------------------------
# Migration

def test_bulk_migration_dry_run_refuses_cases_at_a_removed_step_then_moves_the_rest(authoring, as_user):
    integrator, clerk = as_user(INTEGRATOR), as_user(CLERK)
    at_intake = open_case(clerk)
    at_village = open_case(clerk)
    complete(clerk, at_village["id"], "intake_register")
    closed = open_case(clerk)
    complete(clerk, closed["id"], "intake_register", form_data("intake_register", accepted=False,
                                                               rejection_reason="not_a_dispute"))
    assert case_row(closed["id"]).status == "closed"

    target = deploy_json(integrator, renamed_village_task(shipped_files())).json
    dry = integrator.post(f"/process-versions/{target['id']}/migrate", json={"dry_run": True})
    assert dry.status_code == 200, dry.json
    reports = {r["case_id"]: r for r in dry.json["cases"]}
    assert set(reports) == {at_intake["id"], at_village["id"]}, "closed cases are not migrated"
    assert reports[at_intake["id"]]["ok"] is True and reports[at_intake["id"]]["active"] == ["intake_register"]
    refused = reports[at_village["id"]]
    assert refused["ok"] is False and not refused["migrated"]
    assert any("village_mediate" in reason and "is active" in reason for reason in refused["refusals"])
    assert case_row(at_intake["id"]).process_version.version == 1, "a dry run changes nothing"
    assert db.session.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.kind == "process_migrated")) == 0

    moved = integrator.post(f"/process-versions/{target['id']}/migrate", json={"dry_run": False}).json
    outcome = {r["case_id"]: r["migrated"] for r in moved["cases"]}
    assert outcome == {at_intake["id"]: True, at_village["id"]: False}
    assert case_row(at_intake["id"]).process_version_id == target["id"]
    assert case_row(at_village["id"]).process_version.version == 1
    events = db.session.scalars(select(CaseEvent).where(CaseEvent.kind == "process_migrated")).all()
    assert [(e.case_id, e.actor.username) for e in events] == [(at_intake["id"], INTEGRATOR)]
    assert "v1" in events[0].message and "v2" in events[0].message

    # the moved case runs on the new diagram; the refused one on the old
    complete(clerk, at_intake["id"], "intake_register")
    complete(as_user(MEDIATOR), at_intake["id"], "village_mediate_v2", form_data("village_mediate"))
    complete(as_user(GRID), at_intake["id"], "follow_up_visit")
    assert case_row(at_intake["id"]).status == "closed"
    complete(as_user(MEDIATOR), at_village["id"], "village_mediate", failed("village_mediate"))
    assert case_row(at_village["id"]).current_tier == "town"

    explicit = integrator.post(f"/process-versions/{target['id']}/migrate",
                               json={"dry_run": True, "case_ids": [closed["id"]]}).json["cases"]
    assert explicit[0]["ok"] is False and "closed" in explicit[0]["refusals"][0]


def test_migration_moves_ready_tasks_onto_the_new_form_and_lane(sq_api):
    integrator, clerk, mediator = sq_api(INTEGRATOR), sq_api(CLERK), sq_api(MEDIATOR)
    case = open_case(clerk)
    task = db.session.scalar(select(HumanTask).where(HumanTask.case_id == case["id"], HumanTask.status == "ready"))
    assert clerk.post(f"/tasks/{task.id}/claim").status_code == 200
    files = shipped_files()
    files["intake_register_v2.schema.json"] = files["intake_register.schema.json"].replace('"title": "', '"title": "新', 1)
    files = changed(files, "dispute_lifecycle.bpmn", 'value="intake_register.schema.json"',
                    'value="intake_register_v2.schema.json"')
    files = changed(files, "dispute_lifecycle.bpmn", 'name="intake_clerk"', 'name="village_mediator"')
    target = deploy_json(integrator, files).json
    report = integrator.post(f"/process-versions/{target['id']}/migrate",
                             json={"dry_run": False, "case_ids": [case["id"]]}).json["cases"][0]
    assert report["migrated"] and any("intake_register_v2.schema.json" in c for c in report["changes"])
    assert any("lane 'intake_clerk' → 'village_mediator'" in c for c in report["changes"])
    db.session.expire_all()
    task = db.session.get(HumanTask, task.id)
    assert (task.form_name, task.lane, task.assignee_id) == ("intake_register_v2.schema.json", "village_mediator", None)
    assert mediator.get(f"/tasks/{task.id}/form").json["schema"]["title"].startswith("新")
    complete(mediator, case["id"], "intake_register")
    assert case_row(case["id"]).current_tier == "village"


# ---------------------------------------------------------------------------------------------
# Regional variants

def test_a_region_variant_picks_the_version_and_the_most_specific_unit_wins(sqlite_app, sq_api):
    runner = sqlite_app.test_cli_runner()
    result = runner.invoke(args=["workflows", "deploy", "workflows/dispute_lifecycle_7day", "--variant", "QX-FQ-DS"])
    assert result.exit_code == 0, result.output
    assert "dispute_lifecycle_7day v1 deployed" in result.output and "QX-FQ-DS" in result.output
    seven = processes.find_version("dispute_lifecycle_7day")
    assert seven.top_process_id == "dispute_lifecycle"

    clerk, xh_clerk = sq_api(CLERK), sq_api(XH_CLERK)
    in_region = open_case(clerk)                      # 东山村: the variant
    in_grid = open_case(sq_api(GRID), "QX-FQ-DS-G1")  # a grid of 东山村: its village's variant
    elsewhere = open_case(xh_clerk, "QX-FQ-XH")       # 溪湖社区: the default
    assert case_row(in_region["id"]).process_version.key == "dispute_lifecycle_7day"
    assert case_row(in_grid["id"]).process_version.key == "dispute_lifecycle_7day"
    assert case_row(elsewhere["id"]).process_version.key == "dispute_lifecycle"

    complete(clerk, in_region["id"], "intake_register")
    timers = dict(db.session.execute(select(Timer.spec_name, Timer.due_at).where(
        Timer.case_id == in_region["id"], Timer.status == "pending")).all())
    assert timers["village_time_limit"] == START + timedelta(days=7)
    assert timers["village_reminder"] == START + timedelta(days=5)

    # the county follows the variant, but a village mapped to the default key overrides it
    integrator = sq_api(INTEGRATOR)
    assert put(integrator, "/process-versions/variants/QX", {"key": "dispute_lifecycle_7day"}).status_code == 200
    pinned = put(integrator, "/process-versions/variants/QX-FQ-XH", {"key": "dispute_lifecycle", "version": 1})
    assert pinned.status_code == 200 and pinned.json["version"] == 1
    assert case_row(open_case(sq_api(SX_CLERK), "QX-NH-SX")["id"]).process_version.key == "dispute_lifecycle_7day"
    assert case_row(open_case(xh_clerk, "QX-FQ-XH")["id"]).process_version.key == "dispute_lifecycle"
    listed = integrator.get("/process-versions/variants").json
    assert {(v["org_unit"], v["key"], v["version"]) for v in listed} == {
        ("QX", "dispute_lifecycle_7day", None), ("QX-FQ-DS", "dispute_lifecycle_7day", None),
        ("QX-FQ-XH", "dispute_lifecycle", 1)}

    # clearing the mapping changes new cases only
    assert runner.invoke(args=["workflows", "variant", "clear", "QX-FQ-DS"]).exit_code == 0
    assert runner.invoke(args=["workflows", "variant", "clear", "QX"]).exit_code == 0
    assert case_row(open_case(clerk)["id"]).process_version.key == "dispute_lifecycle"
    assert case_row(in_region["id"]).process_version.key == "dispute_lifecycle_7day", "running cases keep theirs"


# ---------------------------------------------------------------------------------------------
# The integrator API: roles, problems, zip uploads

def test_only_integrators_deploy_map_and_migrate(sq_api):
    files = seven_day_files()
    for username in (EDITOR, MEDIATOR, "qx_supervisor"):
        api = sq_api(username)
        assert deploy_json(api, files).status_code == 403
        assert put(api, "/process-versions/variants/QX-FQ", {"key": "dispute_lifecycle"}).status_code == 403
        assert api.post("/process-versions/1/migrate", json={"dry_run": True}).status_code == 403
        assert api.get("/process-versions").status_code == 200, "reading versions needs a login only"
    anonymous = sq_api.client.post("/api/v1/process-versions", json={"key": "dispute_lifecycle", "files": files})
    assert anonymous.status_code == 401
    assert len(processes.list_versions()) == 1


def test_a_broken_bundle_answers_422_with_every_problem(sq_api):
    files = shipped_files()
    files = changed(files, "dispute_lifecycle.bpmn", 'duration_of(time_limits["village"])', '"P7X"')
    files = changed(files, "dispute_lifecycle.bpmn", 'name="court_clerk"', 'name="court_clerks"')
    files = changed(files, "village_mediation.bpmn", 'value="village_mediate.schema.json"', 'value="missing.json"')
    response = deploy_json(sq_api(INTEGRATOR), files)
    assert response.status_code == 422
    problems = {(p["file"], p["element_id"]) for p in response.json["problems"] if p["severity"] == "error"}
    assert problems == {("dispute_lifecycle.bpmn", "village_time_limit"),
                        ("dispute_lifecycle.bpmn", "judicial_confirmation"),
                        ("village_mediation.bpmn", "village_mediate")}
    assert "village_time_limit" in response.json["errors"]
    assert len(processes.list_versions()) == 1


def zipped(files, folder="bundle/"):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(folder + name, content)
        archive.writestr("__MACOSX/._junk", "x")
    return buffer.getvalue()


def test_a_zip_upload_deploys_a_variant_under_its_own_key(sq_api):
    integrator = sq_api(INTEGRATOR)

    def upload(data, **form):
        return integrator.client.post("/api/v1/process-versions", headers=integrator.headers,
                                      data={"bundle": (io.BytesIO(data), "bundle.zip"), **form},
                                      content_type="multipart/form-data")

    response = upload(zipped(seven_day_files()), key="dispute_lifecycle_7day", process_id="dispute_lifecycle",
                      note="zip")
    assert response.status_code == 201, response.json
    assert (response.json["key"], response.json["process_id"], response.json["version"]) == (
        "dispute_lifecycle_7day", "dispute_lifecycle", 1)
    assert upload(b"not a zip", key="x_y").status_code == 422
    missing_key = upload(zipped(seven_day_files()))
    assert missing_key.status_code == 422 and "key" in missing_key.json["errors"]


# ---------------------------------------------------------------------------------------------
# The command line

def test_cli_deploys_lists_shows_diffs_and_migrates(sqlite_app, sq_api, tmp_path):
    runner = sqlite_app.test_cli_runner()
    clerk = sq_api(CLERK)
    case = open_case(clerk)
    bundle = tmp_path / "dispute_lifecycle"
    bundle.mkdir()
    for name, content in seven_day_files().items():
        if not name.endswith(".json"):
            (bundle / name).write_text(content, encoding="utf-8")
    deployed = runner.invoke(args=["workflows", "deploy", str(bundle), "--note", "七天"])
    assert deployed.exit_code == 0 and "dispute_lifecycle v2 deployed" in deployed.output, deployed.output

    listing = runner.invoke(args=["workflows", "list"]).output
    assert "v1" in listing and "v2" in listing and "七天" in listing
    shown = runner.invoke(args=["workflows", "show", "dispute_lifecycle:2"]).output
    assert "dispute_lifecycle v2" in shown and "village_mediation.bpmn" in shown and "by the operator" in shown
    content = runner.invoke(args=["workflows", "show", "dispute_lifecycle", "--file", "dispute_lifecycle.bpmn"])
    assert '"village": "P7D"' in content.output
    diff = runner.invoke(args=["workflows", "diff", "dispute_lifecycle:1", "dispute_lifecycle:2"]).output
    assert diff.startswith("--- dispute_lifecycle/v1/dispute_lifecycle.bpmn") and '+    "village": "P7D",' in diff

    dry = runner.invoke(args=["workflows", "migrate", "dispute_lifecycle:2", "--dry-run"])
    assert dry.exit_code == 0 and f"{case['number']}: would move" in dry.output and "1 of 1 case(s) would move" in dry.output
    assert case_row(case["id"]).process_version.version == 1
    moved = runner.invoke(args=["workflows", "migrate", "dispute_lifecycle:2", "--case", case["number"]])
    assert moved.exit_code == 0 and "1 of 1 case(s) moved" in moved.output, moved.output
    assert case_row(case["id"]).process_version.version == 2

    assert runner.invoke(args=["workflows", "variant", "set", "QX-NH", "dispute_lifecycle", "--version", "1"]).exit_code == 0
    assert "QX-NH" in runner.invoke(args=["workflows", "variant", "list"]).output
    unknown = runner.invoke(args=["workflows", "variant", "set", "NOWHERE", "dispute_lifecycle"])
    assert unknown.exit_code != 0 and "NOWHERE" in unknown.output

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "dispute_lifecycle.bpmn").write_text(
        seven_day_files()["dispute_lifecycle.bpmn"].replace('"P7D"', '"P7X"'), encoding="utf-8")
    for name in ("village_mediation.bpmn", "town_mediation.bpmn", "county_mediation.bpmn", "litigation.bpmn",
                 "dispute_triage.dmn"):
        (broken / name).write_text(shipped_files()[name], encoding="utf-8")
    refused = runner.invoke(args=["workflows", "deploy", str(broken), "--key", "dispute_lifecycle"])
    assert refused.exit_code != 0 and "dispute_lifecycle.bpmn:village_time_limit" in refused.output


def test_cli_deploy_without_a_directory_deploys_the_shipped_variants_too(sqlite_app):
    result = sqlite_app.test_cli_runner().invoke(args=["workflows", "deploy"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["dispute_lifecycle v1 unchanged", "dispute_lifecycle_7day v1 deployed"]
    assert db.session.scalar(select(func.count()).select_from(ProcessVariant)) == 0, "mapping is explicit"


# ---------------------------------------------------------------------------------------------
# The modeler's pages

def modeler_config(page_text):
    return json.loads(re.search(r'id="modeler-config">(.*?)</script>', page_text, re.S).group(1))


def post_json(session, path, body):
    return session.client.post(path, json=body, headers={"X-CSRFToken": session.token()})


def test_modeler_pages_are_for_policy_editors_and_integrators(pages):
    mediator = pages(MEDIATOR)
    assert mediator.get("/modeler").status_code == 403
    assert mediator.get("/modeler/dispute_lifecycle").status_code == 403
    assert "/modeler" not in mediator.get("/inbox").get_data(as_text=True)

    editor = pages(EDITOR)
    overview = editor.get("/modeler").get_data(as_text=True)
    assert "dispute_lifecycle" in overview and 'href="/modeler"' in editor.get("/inbox").get_data(as_text=True)
    config = modeler_config(editor.get("/modeler/dispute_lifecycle").get_data(as_text=True))
    assert config["file"] == "dispute_lifecycle.bpmn" and config["problems"] == []
    assert {"code": "village_mediator", "label": "村(社)调解员"} in config["roles"]
    assert "village_mediate.schema.json" in config["forms"]

    broken = config["xml"].replace('name="intake_clerk"', 'name="intake_clerks"')
    saved = post_json(editor, config["saveUrl"], {"content": broken, "base_version_id": config["baseVersionId"]})
    assert saved.status_code == 200 and saved.json["saved"]
    assert {(p["element_id"], p["severity"]) for p in saved.json["problems"]} == {("intake_register", "error")}
    assert "did you mean 'intake_clerk'" in saved.json["problems"][0]["message"]
    assert "草稿" in editor.get("/modeler/dispute_lifecycle").get_data(as_text=True)
    unsaved = post_json(editor, config["checkUrl"], {"file": config["file"], "content": config["xml"]})
    assert unsaved.json["problems"] == [], "check looks at the unsaved text"
    assert post_json(editor, config["deployUrl"], {}).status_code == 403
    without_token = editor.client.post(config["saveUrl"], json={"content": config["xml"]})
    assert without_token.status_code == 400, "CSRF applies to the JSON calls too"

    integrator = pages(INTEGRATOR)
    refused = post_json(integrator, config["deployUrl"], {"note": "x"})
    assert refused.status_code == 422 and refused.json["problems"][0]["element_id"] == "intake_register"
    assert post_json(integrator, config["saveUrl"], {"content": config["xml"]}).status_code == 403
    assert post_json(editor, config["saveUrl"], {"content": config["xml"]}).json["problems"] == []
    deployed = post_json(integrator, config["deployUrl"], {"note": "没有改动"})
    assert (deployed.status_code, deployed.json["version"], deployed.json["created"]) == (200, 1, False)
    assert processes.drafts_of("dispute_lifecycle") == {}


def test_the_form_editor_previews_with_the_mediators_renderer(pages):
    editor = pages(EDITOR)
    page = editor.get("/modeler/dispute_lifecycle/forms/village_mediate.schema.json").get_data(as_text=True)
    assert "village_mediate" in page and 'name="f.mediation_result"' in page, "rendered like the task page"
    preview = post_json(editor, "/modeler/forms/preview/new.schema.json", {"schema": json.dumps({
        "type": "object", "required": ["visit"],
        "properties": {"visit": {"type": "string", "format": "date", "title": "<b>回访日期</b>"}}})})
    assert preview.json["error"] is None
    assert 'type="date"' in preview.json["html"] and "&lt;b&gt;回访日期&lt;/b&gt;" in preview.json["html"]
    bad = post_json(editor, "/modeler/forms/preview/new.schema.json", {"schema": '{"type": "object", "required": 5}'})
    assert "not a valid JSON Schema" in bad.json["error"]
    unsupported = post_json(editor, "/modeler/forms/preview/x.json",
                            {"schema": '{"type": "object", "properties": {"x": {"type": "null"}}}'})
    assert unsupported.json["html"] is None and unsupported.json["error"]

    saved = editor.post("/modeler/dispute_lifecycle/forms/town_review.schema.json",
                        data={"content": '{"type": "object", "properties": {}}', "action": "save"})
    assert saved.status_code == 302
    assert processes.drafts_of("dispute_lifecycle")["town_review.schema.json"].kind == "form"


def test_a_policy_editor_starts_a_variant_and_an_integrator_deploys_it(pages):
    editor = pages(EDITOR)
    started = editor.post("/modeler/variants/new", data={"version_id": "1", "key": "dispute_lifecycle_nh"})
    assert started.status_code == 302 and started.location.endswith("/modeler/dispute_lifecycle_nh")
    config = modeler_config(editor.get("/modeler/dispute_lifecycle_nh").get_data(as_text=True))
    xml = config["xml"].replace('"village": "P15D",', '"village": "P10D",')
    assert post_json(editor, config["saveUrl"], {"content": xml})
    deployed = post_json(pages(INTEGRATOR), config["deployUrl"], {"note": "南湖街道"})
    assert deployed.status_code == 201 and deployed.json["key"] == "dispute_lifecycle_nh"
    version = processes.find_version("dispute_lifecycle_nh")
    assert version.top_process_id == "dispute_lifecycle" and '"village": "P10D"' in version.file_map("bpmn")["dispute_lifecycle.bpmn"]
    assert len(version.file_map("form")) == len(processes.find_version("dispute_lifecycle").file_map("form"))


def test_an_integrator_maps_a_region_and_migrates_running_cases_from_the_pages(sq_api, pages):
    integrator, clerk = sq_api(INTEGRATOR), sq_api(CLERK)
    at_intake, at_village = open_case(clerk), open_case(clerk)
    complete(clerk, at_village["id"], "intake_register")
    target = deploy_json(integrator, renamed_village_task(shipped_files())).json
    numbers = {case_row(c["id"]).number: c["id"] for c in (at_intake, at_village)}

    page = pages(INTEGRATOR)
    dry = page.get(f"/modeler/migrate?to={target['id']}").get_data(as_text=True)
    rows = dict(re.findall(r"<td>(JF[^<]+)</td><td>[^<]*</td>\s*<td>([^<]+)</td>", dry))
    assert {numbers[n]: state for n, state in rows.items()} == {at_intake["id"]: "可迁移", at_village["id"]: "不可迁移"}
    assert "village_mediate" in dry and case_row(at_intake["id"]).process_version.version == 1
    moved = page.post("/modeler/migrate", data={"to": target["id"]})
    assert moved.status_code == 200 and "已迁移" in moved.get_data(as_text=True)
    assert case_row(at_intake["id"]).process_version_id == target["id"]
    assert case_row(at_village["id"]).process_version.version == 1
    assert db.session.scalar(select(func.count()).select_from(CaseEvent).where(
        CaseEvent.kind == "process_migrated", CaseEvent.case_id == at_intake["id"])) == 1
    assert pages(EDITOR).post("/modeler/migrate", data={"to": target["id"]}).status_code == 403

    seven = deploy_json(integrator, seven_day_files(), key="dispute_lifecycle_7d", process_id="dispute_lifecycle")
    assert seven.status_code == 201, seven.json
    seven = seven.json
    assert pages(EDITOR).post("/modeler/variants/map", data={"unit_code": "QX-NH", "key": "dispute_lifecycle_7d"}).status_code == 403
    refused = page.post("/modeler/variants/map", data={"unit_code": "QX-NH", "key": "no_such_process"})
    assert refused.status_code == 302 and db.session.scalar(select(func.count()).select_from(ProcessVariant)) == 0
    assert "no_such_process" in page.get("/modeler").get_data(as_text=True)  # the flashed reason
    mapped = page.post("/modeler/variants/map", data={"unit_code": "QX-NH", "key": "dispute_lifecycle_7d"})
    assert mapped.status_code == 302
    southern = open_case(sq_api(SX_CLERK), unit="QX-NH-SX")
    assert case_row(southern["id"]).process_version_id == seven["id"]
    assert case_row(open_case(clerk)["id"]).process_version.key == "dispute_lifecycle"
    page.post("/modeler/variants/QX-NH/clear")
    assert case_row(open_case(sq_api(SX_CLERK), unit="QX-NH-SX")["id"]).process_version.key == "dispute_lifecycle"
