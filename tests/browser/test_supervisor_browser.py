"""The supervisor console in Debian's chromium: the instance page draws the case's own diagrams with
bpmn-js and marks where the case stands; the dashboard draws its charts with ECharts.

The app runs in a background thread (werkzeug) on a copy of the migrated, seeded SQLite template,
with one real case (run by the engine, waiting at the village) and a few cases written straight
into the projections for the charts.
"""
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.browser.conftest import live_app, serve

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DESKTOP = {"width": 1280, "height": 900}
SUPERVISOR = "qx_fq_supervisor"


def _seed(app) -> int:
    """One engine-run case waiting at the village, and closed/open cases for the charts."""
    from app.cases import services
    from app.cases.models import HumanTask
    from app.extensions import db
    from tests.conftest import user
    from tests.factories import INTAKE, form_data
    from tests.supervision_data import insert_case, unit

    with app.app_context():
        case = services.start_case(user("qx_fq_ds_intake_clerk"), services.NewCase(
            title="东山村宅基地边界纠纷", category="housing_homestead", description="围墙越界约半米",
            org_unit_id=unit("QX-FQ-DS").id, parties=INTAKE["parties"]))
        task = db.session.scalar(select(HumanTask).where(HumanTask.case_id == case.id, HumanTask.status == "ready"))
        services.complete_task(user("qx_fq_ds_intake_clerk"), task.id, form_data("intake_register"))
        now = datetime.now(UTC)
        for i in range(24):
            insert_case(("QX-FQ-DS", "QX-FQ-XH", "QX-FQ-LT")[i % 3], status="closed", outcome="resolved",
                        resolved_tier=("village", "village", "town", "county")[i % 4],
                        category=("neighbour", "contract", "labour")[i % 3],
                        channel=("walk_in", "qr_code", "hotline_12345")[i % 3],
                        opened_at=now - timedelta(days=20 - i % 15), closed_at=now - timedelta(days=10 - i % 9),
                        satisfaction="satisfied")
        db.session.commit()
        case_id = case.id
        db.session.remove()
    return case_id


@pytest.fixture(scope="module")
def console(sqlite_template, tmp_path_factory):
    """(base URL, id of the case waiting at the village)."""
    app = live_app(sqlite_template, tmp_path_factory, "console")
    case_id = _seed(app)
    with serve(app) as base:
        yield base, case_id


@pytest.fixture
def page(browser, console):
    base, _ = console
    context = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/login")
    page.fill("#username", SUPERVISOR)
    page.fill("#password", "demo12345")
    with page.expect_navigation(wait_until="load"):
        page.click("button.primary")
    assert page.url.endswith("/inbox"), page.url
    yield page
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def element(page, element_id):
    return page.locator(f'.sv-pane:not([hidden]) g.djs-element[data-element-id="{element_id}"]')


def test_instance_page_marks_the_active_task_on_the_diagram(page, console):
    base, case_id = console
    page.goto(f"{base}/supervisor/cases/{case_id}")
    page.wait_for_selector('[data-diagram][data-ready="true"]')

    # The main diagram: intake done, the village stage (a call activity) active.
    stage = element(page, "village_stage")
    assert stage.count() == 1
    assert "sv-active" in stage.get_attribute("class")
    assert "sv-completed" in element(page, "intake_register").get_attribute("class")
    assert "sv-active" not in element(page, "town_stage").get_attribute("class")
    assert page.locator(".bjs-powered-by").count() >= 1, "the bpmn.io watermark stays visible"
    # The marker is drawn, not just a class: the shape's stroke is the active colour.
    stroke = stage.locator(".djs-visual > :first-child").evaluate("el => getComputedStyle(el).stroke")
    assert stroke == "rgb(29, 95, 168)"

    # The called sub-process in its own tab: the village mediation task itself is active.
    page.click('[role=tab][data-file="village_mediation.bpmn"]')
    page.wait_for_selector('.sv-pane[data-file="village_mediation.bpmn"][data-ready="true"]')
    assert "sv-active" in element(page, "village_mediate").get_attribute("class")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "supervisor-case.png"), full_page=False)


def test_dashboard_draws_its_charts(page, console, compiled_translations):
    base, _ = console
    page.goto(f"{base}/supervisor/dashboard")
    for name in ("trend", "tiers", "category", "unit", "channel"):
        page.wait_for_selector(f'[data-chart="{name}"][data-ready="true"] canvas')
    canvas = page.locator('[data-chart="trend"] canvas').first
    box = canvas.bounding_box()
    assert box["width"] > 200 and box["height"] > 200
    # ECharts painted something: the canvas is not blank.
    painted = canvas.evaluate("""c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) { if (d[i]) { n++; } } return n; }""")
    assert painted > 1000
    assert page.locator('[data-figure="closed"] .sv-kpi-value').inner_text() == "24"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "supervisor-dashboard.png"), full_page=True)

    # English: the charts switch their built-in texts too.
    with page.expect_navigation(wait_until="load"):
        page.click("button[lang=en]")
    page.wait_for_selector('[data-chart="trend"][data-ready="true"] canvas')
    assert "Statistics" in page.locator("h1").inner_text()
