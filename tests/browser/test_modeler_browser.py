"""The process modeler in Debian's chromium: a policy editor changes a village time limit, saves,
sees the broken timer marked on the diagram, fixes it; an integrator deploys the draft.

The app runs in a background thread (werkzeug) on a copy of the migrated, seeded SQLite template.
"""
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.browser.conftest import live_app, serve

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DESKTOP = {"width": 1440, "height": 1000}
BUNDLE_JS = Path(__file__).resolve().parents[2] / "app" / "static" / "vendor" / "modeler" / "index.js"


@pytest.fixture(scope="module")
def live_modeler(sqlite_template, tmp_path_factory):
    assert BUNDLE_JS.exists(), "the modeler bundle is missing: run `make assets` (node assets/build.mjs)"
    app = live_app(sqlite_template, tmp_path_factory, "modeler")
    with serve(app) as base:
        yield app, base


@pytest.fixture
def desk(browser):
    contexts = []

    def open_page():
        context = browser.new_context(viewport=DESKTOP, locale="zh-CN")
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors
        return page

    yield open_page
    for context in contexts:
        context.close()


@contextmanager
def navigating(page):
    with page.expect_navigation(wait_until="load"):
        yield


def login(page, base, username):
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", "demo12345")
    with navigating(page):
        page.click("button.primary")
    assert page.url.endswith("/inbox"), page.url


def open_modeler(page, base):
    with navigating(page):
        page.click("nav.mainnav >> text=流程")
    assert page.url.endswith("/modeler")
    with navigating(page):
        page.click("#key-dispute_lifecycle a:has-text('继续编辑草稿'), #key-dispute_lifecycle a:has-text('打开') >> nth=0")
    page.wait_for_selector("body[data-modeler-ready='1']")


def select_element(page, element_id):
    """Click the element's shape on the canvas (centred in view first, as the problem list does)."""
    selected = "id => (tiaojieModeler.get('selection').get()[0] || {}).id === id"
    page.evaluate("id => tiaojieModeler.centerOn(id)", element_id)
    if not page.evaluate(selected, element_id):  # a click on the selected element deselects it
        page.click(f"#canvas g.djs-element[data-element-id='{element_id}']")
    page.wait_for_function(selected, arg=element_id)


def open_group(page, group_id):
    group = page.locator(f"#properties [data-group-id='group-{group_id}']")
    header = group.locator(".bio-properties-panel-group-header")
    if "open" not in (header.get_attribute("class") or ""):
        header.click()  # groups start collapsed
    return group


def set_timer(page, value):
    field = open_group(page, "timer").locator("#bio-properties-panel-timerEventDefinitionValue")
    field.fill(value)
    field.press("Tab")  # text fields commit after 600 ms or on blur


def save(page):
    page.click("#save-draft")
    page.wait_for_function("() => document.getElementById('modeler-status').textContent.includes('草稿已保存')")
    return page.locator("#modeler-status").inner_text()


def test_policy_editor_edits_a_timer_sees_the_problem_on_the_element_and_an_integrator_deploys(live_modeler, desk):
    app, base = live_modeler
    editor = desk()
    login(editor, base, "qx_policy_editor")
    open_modeler(editor, base)
    assert "dispute_lifecycle.bpmn" in editor.locator("nav.tabs").inner_text()

    # the product's own group: the intake task's form, offered from the bundle's forms
    select_element(editor, "intake_register")
    group = open_group(editor, "tiaojie")
    assert group.locator("select#bio-properties-panel-tjForm").input_value() == "intake_register.schema.json"

    # a broken duration: saved as a draft, and marked on the timer itself
    select_element(editor, "village_time_limit")
    set_timer(editor, '"P7X"')
    status = save(editor)
    assert "问题" in status
    badge = editor.locator(".djs-overlays[data-container-id='village_time_limit'] .tj-badge")
    badge.wait_for()
    assert "ISO-8601" in badge.get_attribute("title")
    problem = editor.locator("#problems li[data-element-id='village_time_limit']")
    assert "P7X" in problem.inner_text()
    assert "tj-error" in editor.locator("#canvas g.djs-element[data-element-id='village_time_limit']").get_attribute("class")
    ARTIFACTS.mkdir(exist_ok=True)
    editor.screenshot(path=str(ARTIFACTS / "modeler-problem.png"))

    # fixed: seven days for villages
    select_element(editor, "village_time_limit")
    set_timer(editor, '"P7D"')
    assert "检查通过" in save(editor)
    assert editor.locator(".tj-badge").count() == 0
    assert editor.js_errors == []

    # the policy editor cannot deploy; the integrator can
    assert editor.locator("#deploy-key").count() == 0
    integrator = desk()
    login(integrator, base, "qx_integrator")
    open_modeler(integrator, base)
    assert "草稿" in integrator.locator("h1").inner_text()
    integrator.fill("#deploy-note", "村级时限七天")
    integrator.click("#deploy-key")
    integrator.wait_for_function("() => document.body.dataset.deployedVersion === '2'")
    assert "第 2 版" in integrator.locator("#modeler-status").inner_text()
    assert integrator.js_errors == []

    with app.app_context():
        from app.processes import services as processes

        version = processes.latest_version("dispute_lifecycle")
        assert (version.version, version.note) == (2, "村级时限七天")
        assert version.author.username == "qx_integrator"
        text = version.file_map("bpmn")["dispute_lifecycle.bpmn"]
        assert '"P7D"' in text and "spiffworkflow:property" in text, "the spiffworkflow extensions survive bpmn-js"
        assert processes.drafts_of("dispute_lifecycle") == {}
