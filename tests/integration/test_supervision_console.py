"""The supervisor console's pages on SQLite and PostgreSQL: who gets in, what each supervisor sees,
the case list's filters, saved filters, CSV/XLSX exports, the instance page and the heat map."""
import csv
import io
import json
import re
import zipfile
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from sqlalchemy import delete, select

from app.cases import services
from app.cases.models import HumanTask
from app.extensions import db
from app.supervision import queries
from app.supervision.models import SavedFilter
from app.web.supervisor import labels
from tests.conftest import user
from tests.factories import INTAKE, form_data
from tests.supervision_data import insert_case, insert_task, local, unit, version

TOWN_SUPERVISOR = "qx_fq_supervisor"
OTHER_TOWN_SUPERVISOR = "qx_nh_supervisor"
COUNTY_SUPERVISOR = "qx_supervisor"
MEDIATOR = "qx_fq_ds_village_mediator"
CLERK = "qx_fq_ds_intake_clerk"
NOW = local(2026, 11, 2, 9)
SHEET = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


@pytest.fixture
def now(app, fake_clock):
    fake_clock.set(NOW)
    yield NOW
    # Saved filters belong to the demo users, which outlive a PostgreSQL test; leave none behind.
    db.session.rollback()
    db.session.execute(delete(SavedFilter))
    db.session.commit()


def text(response):
    return response.get_data(as_text=True)


def listed_numbers(body):
    return re.findall(r'<a class="number" href="/supervisor/cases/\d+">([^<]+)</a>', body)


def csv_rows(response):
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def xlsx_rows(response):
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    assert archive.testzip() is None
    assert {"[Content_Types].xml", "xl/workbook.xml", "xl/worksheets/sheet1.xml"} <= set(archive.namelist())
    sheet = ElementTree.fromstring(archive.read("xl/worksheets/sheet1.xml"))
    rows = []
    for row in sheet.iter(f"{SHEET}row"):
        values = []
        for cell in row:
            inline = cell.find(f"{SHEET}is/{SHEET}t")
            values.append(inline.text if inline is not None else cell.find(f"{SHEET}v").text)
        rows.append(values)
    return rows


def open_workflow_case(title="王某与李某宅基地边界纠纷"):
    """A real case run by the engine, registered and now waiting at the village."""
    case = services.start_case(user(CLERK), services.NewCase(
        title=title, category="housing_homestead", description="围墙越界约半米", org_unit_id=unit("QX-FQ-DS").id,
        parties=INTAKE["parties"]))
    task = db.session.scalar(select(HumanTask).where(HumanTask.case_id == case.id, HumanTask.status == "ready"))
    services.complete_task(user(CLERK), task.id, form_data("intake_register", title=title))
    return case


# ---------------------------------------------------------------------------------------------
# Who gets in

def test_only_supervisors_get_in_and_each_sees_their_subtree(now, web):
    mine = insert_case("QX-FQ-DS", status="open", opened_at=local(2026, 10, 30), title="枫桥的案件")
    theirs = insert_case("QX-NH-QY", status="open", opened_at=local(2026, 10, 30), title="南湖的案件")
    db.session.commit()

    mediator = web(MEDIATOR)
    for path in ("/supervisor/cases", "/supervisor/dashboard", "/supervisor/reports", "/supervisor/heatmap",
                 f"/supervisor/cases/{mine.id}", "/supervisor/cases/export.csv", "/supervisor/cases/export.xlsx"):
        response = mediator.get(path)
        assert response.status_code == 403, path
        assert "无权操作" in text(response)
    assert "督办/统计" not in text(mediator.get("/inbox"))
    anonymous = web().get("/supervisor/cases")
    assert anonymous.status_code == 302 and "/login" in anonymous.location

    town = web(TOWN_SUPERVISOR)
    assert "督办/统计" in text(town.get("/inbox"))
    listing = text(town.get("/supervisor/cases"))
    assert listed_numbers(listing) == [mine.number]
    assert town.get(f"/supervisor/cases/{mine.id}").status_code == 200
    assert town.get(f"/supervisor/cases/{theirs.id}").status_code == 404
    assert town.get("/supervisor/cases/999999").status_code == 404
    assert town.get(f"/supervisor/cases?unit={unit('QX-NH').id}").status_code == 404
    assert town.get(f"/supervisor/dashboard?unit={unit('QX-NH').id}").status_code == 404
    assert town.get(f"/supervisor/cases/export.csv?unit={unit('QX-NH').id}").status_code == 404
    exported = [row[0] for row in csv_rows(town.get("/supervisor/cases/export.csv"))[1:]]
    assert exported == [mine.number]
    assert [row[0] for row in xlsx_rows(town.get("/supervisor/cases/export.xlsx"))[1:]] == [mine.number]
    board = text(town.get("/supervisor/dashboard"))
    assert 'data-figure="opened"><span class="sv-kpi-label">受理</span><span class="sv-kpi-value">1<' in board

    other = web(OTHER_TOWN_SUPERVISOR)
    assert listed_numbers(text(other.get("/supervisor/cases"))) == [theirs.number]
    assert other.get(f"/supervisor/cases/{mine.id}").status_code == 404

    county = web(COUNTY_SUPERVISOR)
    assert sorted(listed_numbers(text(county.get("/supervisor/cases")))) == sorted([mine.number, theirs.number])
    assert county.get(f"/supervisor/cases/{theirs.id}").status_code == 200


# ---------------------------------------------------------------------------------------------
# List, filters, exports

def test_every_filter_narrows_the_list_and_the_export(now, web):
    handler = user("qx_fq_town_mediator")
    cases = {
        "village_open": insert_case("QX-FQ-DS", status="open", current_tier="village", category="neighbour",
                                    channel="qr_code", opened_at=local(2026, 10, 1), due_at=NOW + timedelta(days=2)),
        "town_overdue": insert_case("QX-FQ-XH", status="open", current_tier="town", category="contract",
                                    channel="hotline_12345", opened_at=local(2026, 10, 10), due_at=NOW - timedelta(hours=1)),
        "suspended_late": insert_case("QX-FQ-XH", status="suspended", current_tier="town", category="contract",
                                      channel="hotline_12345", opened_at=local(2026, 10, 11),
                                      due_at=NOW - timedelta(days=3)),
        "grid_closed": insert_case("QX-FQ-LT-G2", status="closed", outcome="resolved", resolved_tier="village",
                                   category="labour", channel="grid_report", opened_at=local(2026, 10, 20),
                                   closed_at=local(2026, 10, 25)),
        "county_closed": insert_case("QX-FQ-LT", status="closed", outcome="resolved", resolved_tier="county",
                                     category="labour", channel="walk_in", opened_at=local(2026, 9, 1),
                                     closed_at=local(2026, 10, 31, 23, 50)),
    }
    insert_task(cases["town_overdue"], "town_mediate", status="ready", created_at=local(2026, 10, 12),
                assignee_id=handler.id, lane="town_mediator", tier="town")
    insert_task(cases["village_open"], "village_mediate", status="completed", created_at=local(2026, 10, 2),
                completed_at=local(2026, 10, 3), assignee_id=handler.id)
    insert_case("QX-NH-QY", status="open", current_tier="town", category="contract", opened_at=local(2026, 10, 10),
                due_at=NOW - timedelta(hours=1))
    db.session.commit()
    numbers = {name: case.number for name, case in cases.items()}
    session = web(TOWN_SUPERVISOR)

    def listed(query):
        body = text(session.get(f"/supervisor/cases?{query}"))
        exported = [row[0] for row in csv_rows(session.get(f"/supervisor/cases/export.csv?{query}"))[1:]]
        assert sorted(exported) == sorted(listed_numbers(body)), query
        return {name for name, number in numbers.items() if number in exported}

    assert listed("") == set(numbers)
    assert listed("tier=town") == {"town_overdue", "suspended_late"}
    assert listed("status=suspended") == {"suspended_late"}
    assert listed("status=closed&category=labour") == {"grid_closed", "county_closed"}
    assert listed(f"unit={unit('QX-FQ-LT').id}") == {"grid_closed", "county_closed"}
    assert listed(f"unit={unit('QX-FQ-LT-G2').id}") == {"grid_closed"}
    assert listed("channel=hotline_12345") == {"town_overdue", "suspended_late"}
    # Overdue: past the time limit and being handled; a suspended case's clock stands still.
    assert listed("overdue=1") == {"town_overdue"}
    assert listed("opened_from=2026-10-10&opened_to=2026-10-20") == {"town_overdue", "suspended_late", "grid_closed"}
    # Dates are Shanghai dates: 23:50 on Oct 31 is Oct 31, although it is 15:50 UTC.
    assert listed("closed_from=2026-10-31&closed_to=2026-10-31") == {"county_closed"}
    assert listed("closed_to=2026-10-30") == {"grid_closed"}
    # Handler: holds an open task of the case (a completed one does not count).
    assert listed(f"handler={handler.id}") == {"town_overdue"}
    assert listed("q=" + numbers["grid_closed"]) == {"grid_closed"}
    assert listed("tier=nonsense&status=whatever") == set(numbers), "invalid values are ignored"


@pytest.mark.usefixtures("compiled_translations")
def test_exports_hold_every_matching_row_beyond_the_first_page(now, web):
    for i in range(45):
        insert_case(("QX-FQ-DS", "QX-FQ-XH", "QX-FQ-LT-G1")[i % 3], status="open", category="neighbour",
                    channel="walk_in", opened_at=local(2026, 10, 1) + timedelta(hours=i), title=f"邻里纠纷「{i}」&<>")
    for _ in range(7):
        insert_case("QX-FQ-DS", status="open", category="contract", opened_at=local(2026, 10, 2))
    for _ in range(4):
        insert_case("QX-NH-SX", status="open", category="neighbour", opened_at=local(2026, 10, 2))
    db.session.commit()
    session = web(TOWN_SUPERVISOR)

    first = text(session.get("/supervisor/cases?category=neighbour"))
    assert "共 45 件" in first and "第 1 / 3 页" in first and len(listed_numbers(first)) == 20
    last = text(session.get("/supervisor/cases?category=neighbour&page=3"))
    assert len(listed_numbers(last)) == 5 and 'rel="prev"' in last

    response = session.get("/supervisor/cases/export.csv?category=neighbour")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    rows = csv_rows(response)
    assert rows[0][:4] == ["案件编号", "纠纷概要", "纠纷类别", "来源渠道"]
    assert len(rows) == 46 and {row[2] for row in rows[1:]} == {"邻里纠纷"}
    assert {row[1] for row in rows[1:]} == {f"邻里纠纷「{i}」&<>" for i in range(45)}
    assert {row[4] for row in rows[1:]} == {"东山村", "溪湖社区", "柳塘村第1网格"}
    # Newest first, as on the page.
    assert [row[0] for row in rows[1:21]] == listed_numbers(first)

    sheet = session.get("/supervisor/cases/export.xlsx?category=neighbour")
    assert sheet.status_code == 200 and sheet.is_streamed
    assert sheet.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    table = xlsx_rows(sheet)
    assert table[0][0] == "案件编号" and len(table) == 46
    assert [row[:3] for row in table[1:]] == [row[:3] for row in rows[1:]]
    assert table[1][11] == "2", "people involved is a number cell"

    # English headers and labels on the English interface.
    session.post("/language/en", data={"next": "/supervisor/cases"})
    english = csv_rows(session.get("/supervisor/cases/export.csv?category=contract"))
    assert english[0][:3] == ["Case number", "Summary", "Category"] and len(english) == 8
    assert {row[2] for row in english[1:]} == {"Contracts"}


def test_saved_filters_are_named_and_private(now, web):
    insert_case("QX-FQ-XH", status="open", current_tier="town", category="contract", opened_at=local(2026, 10, 10),
                due_at=NOW - timedelta(hours=1))
    insert_case("QX-FQ-DS", status="open", category="neighbour", opened_at=local(2026, 10, 10))
    db.session.commit()
    session = web(TOWN_SUPERVISOR)
    saved = session.post("/supervisor/filters", data={"name": "镇级超期", "tier": "town", "overdue": "1",
                                                      "page": "3", "bogus": "x"})
    assert saved.status_code == 302 and "overdue=1" in saved.location and "tier=town" in saved.location
    row = db.session.scalar(select(SavedFilter))
    assert row.name == "镇级超期" and row.query == {"tier": "town", "overdue": "1"}
    assert row.user_id == user(TOWN_SUPERVISOR).id
    page = text(session.get("/supervisor/cases"))
    assert "镇级超期" in page and "/supervisor/cases?tier=town&amp;overdue=1" in page
    assert len(listed_numbers(text(session.get("/supervisor/cases?tier=town&overdue=1")))) == 1

    # Saving the same name replaces; an empty name is refused.
    session.post("/supervisor/filters", data={"name": "镇级超期", "category": "contract"})
    assert db.session.scalar(select(SavedFilter)).query == {"category": "contract"}
    refused = session.post("/supervisor/filters", data={"name": "  ", "category": "contract"}, follow_redirects=True)
    assert "请填写名称" in text(refused)
    assert len(db.session.scalars(select(SavedFilter)).all()) == 1

    other = web(OTHER_TOWN_SUPERVISOR)
    assert "镇级超期" not in text(other.get("/supervisor/cases"))
    assert other.post(f"/supervisor/filters/{row.id}/delete").status_code == 404
    assert session.post(f"/supervisor/filters/{row.id}/delete", csrf=False).status_code == 400
    assert session.post(f"/supervisor/filters/{row.id}/delete").status_code == 302
    assert db.session.scalars(select(SavedFilter)).all() == []


# ---------------------------------------------------------------------------------------------
# Instance page

def diagram_json(body):
    found = re.search(r'<script type="application/json" data-diagram-json>(.*?)</script>', body, re.S)
    return json.loads(found.group(1))


def test_instance_page_draws_the_case_own_version_with_its_state(now, web, fake_clock):
    case = open_workflow_case()
    session = web(TOWN_SUPERVISOR)
    response = session.get(f"/supervisor/cases/{case.id}")
    assert response.status_code == 200
    body = text(response)
    assert case.number in body and "vendor/bpmn-js/bpmn-navigated-viewer.production.min.js" in body
    data = diagram_json(body)
    files = [d["file"] for d in data["diagrams"]]
    assert files[0] == "dispute_lifecycle.bpmn"
    assert set(files) == {"dispute_lifecycle.bpmn", "village_mediation.bpmn", "town_mediation.bpmn",
                          "county_mediation.bpmn", "litigation.bpmn"}
    main_xml = data["diagrams"][0]["xml"]
    assert 'id="dispute_lifecycle"' in main_xml and 'bpmndi:BPMNDiagram' in main_xml
    assert data["markers"]["dispute_lifecycle.bpmn"]["intake_register"] == ["sv-completed"]
    assert data["markers"]["dispute_lifecycle.bpmn"]["village_stage"] == ["sv-active"]
    assert data["markers"]["village_mediation.bpmn"] == {"village_mediate": ["sv-active"]}
    assert data["markers"]["town_mediation.bpmn"] == {}
    assert "村(社)调解" in body and "待认领" in body  # the open task, unclaimed
    assert "受理登记" in body and "办理记录" in body  # the event log
    assert "东山村三组" in body or "围墙越界约半米" in body  # the case data

    # Past the time limit (no scheduler runs here) the open task and its stage show as overdue.
    case_due = db.session.get(type(case), case.id).due_at
    fake_clock.set(case_due + timedelta(hours=1))
    late = diagram_json(text(session.get(f"/supervisor/cases/{case.id}")))
    assert late["markers"]["village_mediation.bpmn"]["village_mediate"] == ["sv-active", "sv-overdue"]
    assert late["markers"]["dispute_lifecycle.bpmn"]["village_stage"] == ["sv-active", "sv-overdue"]
    assert "已超期" in text(session.get(f"/supervisor/cases/{case.id}"))

    # The interventions template (written separately) has its place on the page.
    assert 'id="interventions"' in text(session.get(f"/supervisor/cases/{case.id}"))


def test_markers_follow_the_case_through_escalation(now):
    case = open_workflow_case()
    task = db.session.scalar(select(HumanTask).where(HumanTask.case_id == case.id, HumanTask.status == "ready"))
    services.complete_task(user(MEDIATOR), task.id, form_data("village_mediate", mediation_result="failed",
                                                                failure_reason="no_agreement"))
    db.session.expire_all()
    diagrams = queries.version_diagrams(case.process_version)
    markers = queries.instance_markers(db.session.get(type(case), case.id), diagrams, NOW)
    assert markers["village_mediation.bpmn"]["village_mediate"] == ["sv-completed"]
    assert markers["dispute_lifecycle.bpmn"]["village_stage"] == ["sv-completed"]
    assert markers["dispute_lifecycle.bpmn"]["town_stage"] == ["sv-active"]
    assert markers["town_mediation.bpmn"] == {"town_dispatch": ["sv-active"]}


# ---------------------------------------------------------------------------------------------
# Heat map

def test_heat_map_counts_completed_tasks_and_their_median_time(now, web, as_user):
    pv = version()
    hours = {"village_mediate": [1, 2, 3, 10], "town_mediate": [24]}
    for spec, durations in hours.items():
        for h in durations:
            case = insert_case("QX-FQ-DS", status="open", opened_at=local(2026, 10, 1), process_version=pv)
            insert_task(case, spec, status="completed", created_at=local(2026, 10, 2),
                        completed_at=local(2026, 10, 2) + timedelta(hours=h), title="村(社)调解")
    waiting = insert_case("QX-FQ-XH", status="open", opened_at=local(2026, 10, 1))
    insert_task(waiting, "village_mediate", status="ready", created_at=local(2026, 10, 5))
    cancelled = insert_case("QX-FQ-XH", status="open", opened_at=local(2026, 10, 1))
    insert_task(cancelled, "village_mediate", status="cancelled", created_at=local(2026, 10, 5),
                completed_at=local(2026, 10, 25))
    other = insert_case("QX-NH-QY", status="open", opened_at=local(2026, 10, 1))
    insert_task(other, "village_mediate", status="completed", created_at=local(2026, 10, 2),
                completed_at=local(2026, 10, 30))
    db.session.commit()

    heat = queries.heatmap(unit("QX-FQ"), pv)
    # The median comes from a log-scale duration histogram (rollups.median_seconds): within half a
    # bucket, 2^(1/8) − 1 ≈ 9.05 %, of the exact one (2.5 h of 1, 2, 3, 10 h; 24 h of one task).
    within = 2 ** (1 / 8) - 1
    village, town = heat["village_mediate"], heat["town_mediate"]
    assert (village.passed, village.waiting, town.passed) == (4, 1, 1)
    assert abs(village.median_seconds / (2.5 * 3600) - 1) <= within
    assert abs(town.median_seconds / 86400 - 1) <= within
    assert town.title == "镇街联合调解"  # the name drawn in the diagram
    county = queries.heatmap(unit("QX"), pv)
    assert county["village_mediate"].passed == 5  # with 南湖街道's 28-day one: median 3 h
    assert abs(county["village_mediate"].median_seconds / (3 * 3600) - 1) <= within

    body = text(web(TOWN_SUPERVISOR).get(f"/supervisor/heatmap?version={pv.id}"))
    data = diagram_json(body)
    assert data["overlays"]["village_mediation.bpmn"]["village_mediate"] == \
        f"4件 · 中位 {labels.span_text(village.median_seconds)} · 在办 1"
    assert data["overlays"]["town_mediation.bpmn"]["town_mediate"] == f"1件 · 中位 {labels.span_text(town.median_seconds)}"
    assert data["markers"]["town_mediation.bpmn"]["town_mediate"] == ["sv-heat-5"]
    assert data["markers"]["village_mediation.bpmn"]["village_mediate"] == ["sv-heat-1"]

    api = as_user(TOWN_SUPERVISOR).get(f"/supervision/heatmap?version={pv.id}")
    assert api.status_code == 200
    assert {item["spec_name"]: (item["passed"], item["median_seconds"], item["waiting"]) for item in api.get_json()} \
        == {"village_mediate": (4, village.median_seconds, 1), "town_mediate": (1, town.median_seconds, 0)}


def test_exports_never_turn_a_reported_title_into_a_formula(now, web):
    insert_case("QX-FQ-DS", status="open", opened_at=local(2026, 10, 1), title='=HYPERLINK("http://evil","点击")')
    insert_case("QX-FQ-DS", status="open", opened_at=local(2026, 10, 2), title="-2+3")
    db.session.commit()
    session = web(TOWN_SUPERVISOR)
    titles = [row[1] for row in csv_rows(session.get("/supervisor/cases/export.csv"))[1:]]
    assert titles == ["'-2+3", "'=HYPERLINK(\"http://evil\",\"点击\")"]
    archive = zipfile.ZipFile(io.BytesIO(session.get("/supervisor/cases/export.xlsx").get_data()))
    sheet = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet and "=HYPERLINK(&quot;" not in sheet and '=HYPERLINK("http://evil"' in sheet
    assert [row[1] for row in xlsx_rows(session.get("/supervisor/cases/export.xlsx"))[1:]] == [
        "-2+3", '=HYPERLINK("http://evil","点击")']


@pytest.mark.usefixtures("compiled_translations")
def test_english_console_and_chart_locale(now, web, client):
    insert_case("QX-FQ-DS", status="closed", outcome="resolved", resolved_tier="village", opened_at=local(2026, 10, 20),
                closed_at=local(2026, 10, 21))
    db.session.commit()
    session = web(TOWN_SUPERVISOR)
    chinese = text(session.get("/supervisor/dashboard"))
    charts = json.loads(re.search(r"data-charts-json>(.*?)</script>", chinese, re.S).group(1))
    assert charts["locale"] == "ZH" and charts["tiers"]["labels"] == ["村(社)", "镇街", "县级"]
    assert charts["tiers"]["values"] == [100.0, 100.0, 100.0]
    session.post("/language/en", data={"next": "/supervisor/dashboard"})
    english = text(session.get("/supervisor/dashboard"))
    charts = json.loads(re.search(r"data-charts-json>(.*?)</script>", english, re.S).group(1))
    assert charts["locale"] == "EN" and charts["tiers"]["labels"] == ["Village", "Town", "County"]
    assert "Resolved at Village or below" in english and "Supervision" in english and "督办" not in english
    assert client.get("/api/v1/supervision/dashboard").status_code == 401
