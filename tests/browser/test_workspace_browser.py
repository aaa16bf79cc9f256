"""A dispute from the QR code to its closing, clicked through in Debian's chromium on a phone-sized
screen: resident → intake clerk → village mediator (fails) → town command room → town mediator
(succeeds) → grid worker's follow-up visit → the resident sees the case closed.

The app runs in a background thread (werkzeug) on a copy of the migrated, seeded SQLite template.
"""
import struct
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest

from tests.browser.conftest import live_app, serve

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PHONE = {"width": 375, "height": 812}
TODAY = date.today().isoformat()


@pytest.fixture(scope="module")
def live_server(sqlite_template, tmp_path_factory):
    """The app on a free port of 127.0.0.1, on its own copy of the seeded database."""
    app = live_app(sqlite_template, tmp_path_factory, "live", ATTACHMENTS_DIR=str(tmp_path_factory.mktemp("att")))
    with serve(app) as base:
        yield base


@pytest.fixture
def phone(browser):
    """A new browser context sized like a phone, in Chinese, per person."""
    contexts = []

    def open_page():
        context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                      locale="zh-CN")
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@contextmanager
def navigating(page):
    with page.expect_navigation(wait_until="load"):
        yield


def click(page, selector):
    with navigating(page):
        page.click(selector)


def login(page, base, username):
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", "demo12345")
    click(page, "button.primary")
    assert page.url.endswith("/inbox"), page.url


def open_claimable_task(page, base, number):
    """From the team queue, open the case's task (completing claims it)."""
    page.goto(f"{base}/inbox?scope=claimable")
    item = page.locator("li.task", has_text=number)
    assert item.count() == 1, f"{number} not in the queue"
    with navigating(page):
        item.locator("a.task-title").click()
    assert "/tasks/" in page.url


def submit_task(page, base):
    click(page, "button[name=action][value=submit]")
    assert page.url.endswith("/inbox") or "/tasks/" in page.url
    assert "已提交" in page.locator(".flash.success").first.inner_text()


def png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.unlink(missing_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000, f"{name} looks empty"
    width, height = png_size(path)
    assert width == PHONE["width"] * 2 and height >= PHONE["height"] * 2
    return path


def test_a_dispute_from_qr_code_to_closed_on_a_phone(live_server, phone):
    base = live_server

    # 1. a resident scans the village's code and reports
    resident = phone()
    resident.goto(f"{base}/report/QX-FQ-DS")
    assert "东山村" in resident.locator("h1 + .lead").inner_text()
    resident.select_option("#category", "neighbour")
    resident.fill("#description", "楼上住户装修噪音持续到深夜，多次沟通无果。")
    resident.fill("#name", "赵丽华")
    resident.fill("#phone", "13800002222")
    click(resident, "button.primary")
    number = resident.locator("#case-number").inner_text()
    assert number.startswith("JF")

    # 2. the intake clerk claims it and registers it; a mistake is shown next to its field
    clerk = phone()
    login(clerk, base, "qx_fq_ds_intake_clerk")
    clerk.goto(f"{base}/inbox?scope=claimable")
    item = clerk.locator("li.task", has_text=number)
    assert "邻里纠纷" in item.inner_text() and "赵丽华" in item.inner_text()
    with navigating(clerk):
        item.locator("button", has_text="认领").click()
    assert "/tasks/" in clerk.url and "已认领" in clerk.locator(".flash.success").inner_text()
    screenshot_inbox = clerk.url
    assert clerk.input_value("#f-parties-0-name") == "赵丽华", "the form starts from the report"
    clerk.fill("#f-people_involved", "0")
    click(clerk, "button[name=action][value=submit]")
    error = clerk.locator(".field.has-error:has(#f-people_involved) .field-error")
    assert error.inner_text() == "不能小于 1"
    assert clerk.locator(".field.has-error:has(#f-source_type) .field-error").inner_text() == "必填"
    assert clerk.input_value("#f-parties-0-name") == "赵丽华", "entered values are kept"
    screenshot(clerk, "task-page-375.png")

    clerk.fill("#f-people_involved", "2")
    clerk.select_option("#f-source_type", "application")
    clerk.fill("#f-parties-1-name", "钱某")
    clerk.select_option("#f-parties-1-party_role", "respondent")
    clerk.click("button.add-row")  # JavaScript adds a third, empty row
    assert clerk.locator("#f-parties-2-name").input_value() == ""
    clerk.check("#f-accepted-0")
    clerk.fill("#f-location", "东山村三组")
    submit_task(clerk, base)
    assert screenshot_inbox != clerk.url and clerk.url.endswith("/inbox")

    # 3. the village mediator records a failed mediation
    mediator = phone()
    login(mediator, base, "qx_fq_ds_village_mediator")
    mediator.goto(f"{base}/inbox?scope=claimable")
    assert mediator.locator("li.task", has_text=number).count() == 1
    screenshot(mediator, "inbox-375.png")
    open_claimable_task(mediator, base, number)
    mediator.fill("#f-mediation_date", TODAY)
    mediator.fill("#f-process_notes", "双方分歧较大，未能达成一致。")
    mediator.select_option("#f-mediation_result", "failed")
    mediator.select_option("#f-failure_reason", "no_agreement")
    submit_task(mediator, base)

    # 4. the town command room dispatches it to joint mediation
    dispatcher = phone()
    login(dispatcher, base, "qx_fq_town_dispatcher")
    open_claimable_task(dispatcher, base, number)
    dispatcher.select_option("#f-platform", "safety_law")
    dispatcher.select_option("#f-dispatch_action", "joint_mediation")
    dispatcher.fill("#f-instructions", "请镇调委会牵头联合调解")
    submit_task(dispatcher, base)

    # 5. the town mediator succeeds
    town = phone()
    login(town, base, "qx_fq_town_mediator")
    open_claimable_task(town, base, number)
    town.fill("#f-mediation_date", TODAY)
    town.fill("#f-process_notes", "组织双方协商，约定施工时间。")
    town.select_option("#f-mediation_result", "success")
    town.fill("#f-agreement_summary", "装修限于每日8时至18时，楼上住户赔偿500元。")
    town.fill("#f-agreement_amount", "500")
    submit_task(town, base)

    # 6. the grid worker visits and the case closes
    grid = phone()
    login(grid, base, "qx_fq_ds_g1_grid_worker")
    open_claimable_task(grid, base, number)
    grid.fill("#f-visit_date", TODAY)
    grid.select_option("#f-visit_method", "in_person")
    grid.select_option("#f-agreement_fulfilled", "fully")
    grid.select_option("#f-satisfaction", "satisfied")
    submit_task(grid, base)
    assert grid.locator("li.task", has_text=number).count() == 0

    # the clerk's case page and the resident's lookup both say closed
    clerk.goto(f"{base}/inbox")
    clerk.goto(clerk.url.replace("/inbox", "/cases?q=" + number))
    with navigating(clerk):
        clerk.locator("a.task-title").first.click()
    facts = clerk.locator(".facts").first.inner_text()
    assert "已结案" in facts
    timeline = clerk.locator("#timeline").inner_text()
    assert "调解不成，由村(社)上交镇街" in timeline and "结案" in timeline
    resident.goto(f"{base}/report/lookup")
    resident.fill("#number", number)
    resident.fill("#phone", "13800002222")
    click(resident, "button.primary")
    result = resident.locator("#lookup-result").inner_text()
    assert "已结案" in result and "赵丽华" not in resident.content()

    # every page fits a 375 px screen: nothing scrolls sideways
    for page in (clerk, mediator, grid, resident):
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], page.url
