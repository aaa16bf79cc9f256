"""What people type comes back as text: case data full of markup never becomes markup on a page,
a formula in an export stays text, and the session cookie is locked down.

Hostile text enters through every door a person has — the public QR page, the intake form, the
mediation form, a comment — and every page that shows it is parsed: no injected element, no
event-handler attribute, no javascript: link may exist in the DOM.
"""
import csv
import io

import pytest
from lxml import html as lxml_html
from sqlalchemy import select

from app.cases import services
from app.cases.models import DisputeCase, HumanTask
from app.config import Config
from app.exports import FORMULA_START, spreadsheet_safe
from app.extensions import db
from app.org.models import OrgUnit
from tests.conftest import user
from tests.factories import form_data

CLERK, MEDIATOR, SUPERVISOR = "qx_fq_ds_intake_clerk", "qx_fq_ds_village_mediator", "qx_supervisor"
COUNTY = "qx_county_center"
SCRIPT = "<script>alert('xss')</script>"
IMAGE = '"><img src=x onerror=alert(1)>'
LINK = '<a href="javascript:alert(2)">点我</a>'
TEMPLATE = "{{7*7}}{% raw %}"
FORMULA = "=HYPERLINK(\"http://evil.example\",\"点击\")"
HOSTILE = f"{SCRIPT}{IMAGE}{LINK}{TEMPLATE}"


def injected(page_text: str) -> list[str]:
    """Elements and attributes that only markup in the data could have put there."""
    tree = lxml_html.fromstring(page_text)
    found = []
    for script in tree.iter("script"):
        if "xss" in (script.text or "") or "alert" in (script.text or ""):
            found.append("script element with the injected code")
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag == "img" and element.get("src") == "x":
            found.append("injected img")
        if any(name.lower().startswith("on") for name in element.attrib):
            found.append(f"{element.tag} with an event handler attribute")
        if (element.get("href") or "").strip().lower().startswith("javascript:"):
            found.append(f"{element.tag} with a javascript: link")
    return found


def text(response):
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def unit(code):
    return db.session.scalar(select(OrgUnit).where(OrgUnit.code == code))


def ready(case_id, spec_name):
    db.session.expire_all()
    return db.session.scalar(select(HumanTask).where(
        HumanTask.case_id == case_id, HumanTask.spec_name == spec_name, HumanTask.status == "ready"))


@pytest.fixture
def hostile_case(web):
    """A case whose every free-text field carries markup: registered at intake as a mass dispute
    (30 people: the triage table sends it to the county, and the warnings list it), the county's
    consultation opinion, and a comment."""
    parties = [{"name": f"王{IMAGE}", "party_role": "applicant", "phone": "13800001111"},
               {"name": SCRIPT, "party_role": "respondent", "phone": "13900002222"}]
    case = services.start_case(user(CLERK), services.NewCase(
        title=f"{FORMULA}{SCRIPT}", category="neighbour", description=HOSTILE,
        org_unit_id=unit("QX-FQ-DS").id, parties=parties, people_involved=30, location=LINK))
    intake = form_data("intake_register", title=f"{FORMULA}{SCRIPT}", description=HOSTILE, parties=parties,
                       location=LINK, people_involved=30, risk_level="high")
    services.complete_task(user(CLERK), ready(case.id, "intake_register").id, intake)
    services.complete_task(user(COUNTY), ready(case.id, "county_accept").id,
                           form_data("county_accept", programs=["mediation"], acceptance_notes=HOSTILE))
    services.complete_task(user("qx_county_justice"), ready(case.id, "consult_justice").id,
                           form_data("consult_justice", justice_opinion=HOSTILE, legal_basis=IMAGE))
    mediator = web(MEDIATOR)
    assert mediator.post(f"/cases/{case.id}/comments", data={"body": HOSTILE}).status_code == 302
    db.session.expire_all()
    return db.session.get(DisputeCase, case.id), mediator


def test_a_residents_markup_on_the_qr_page_stays_text_for_the_clerk(web):
    resident = web()
    sent = resident.post("/report/QX-FQ-DS", data={
        "category": "neighbour", "description": HOSTILE, "name": f"赵{IMAGE}", "phone": "13800002222",
        "location": LINK}, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert sent.status_code == 302
    case = db.session.scalar(select(DisputeCase).where(DisputeCase.channel == "qr_code"))
    assert case.description == HOSTILE, "stored as typed: escaping happens on output"
    clerk = web(CLERK)
    task = ready(case.id, "intake_register")
    for path in ("/inbox?scope=claimable", f"/tasks/{task.id}", f"/cases/{case.id}"):
        page = text(clerk.get(path))
        assert injected(page) == [], path
    form = text(clerk.get(f"/tasks/{task.id}"))
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in form, "shown as text, not dropped"
    refused = resident.post("/report/QX-FQ-DS", data={
        "category": "neighbour", "description": HOSTILE, "name": "", "phone": "not a phone"},
        environ_base={"REMOTE_ADDR": "203.0.113.10"})
    assert refused.status_code == 422 and injected(refused.get_data(as_text=True)) == []


def test_case_text_full_of_markup_renders_as_text_on_every_page(hostile_case, web):
    case, mediator = hostile_case
    supervisor = web(SUPERVISOR)
    pages = {
        "mediator inbox": mediator.get("/inbox"),
        "mediator case list": mediator.get("/cases?q=HYPERLINK"),
        "mediator case page": mediator.get(f"/cases/{case.id}"),
        "supervisor case list": supervisor.get("/supervisor/cases"),
        "supervisor case page": supervisor.get(f"/supervisor/cases/{case.id}"),
        "supervisor dashboard (flagged cases)": supervisor.get("/supervisor/dashboard"),
        "supervisor daily report": supervisor.get("/supervisor/reports?kind=daily"),
        "county task page": web("qx_county_petition").get(f"/tasks/{ready(case.id, 'consult_petition').id}"),
        "county case page": web(COUNTY).get(f"/cases/{case.id}"),
    }
    shown = 0
    for name, response in pages.items():
        page = text(response)
        assert injected(page) == [], name
        shown += "&lt;script&gt;" in page
    assert shown >= 5, "the hostile text is on the pages, escaped (not silently missing)"
    case_page = text(pages["supervisor case page"])
    assert "{{7*7}}" in case_page and ">49<" not in case_page, "data is never evaluated as a template"


def test_the_json_api_returns_the_text_as_data(hostile_case, as_user):
    case, _ = hostile_case
    body = as_user(SUPERVISOR).get(f"/disputes/{case.id}")
    assert body.status_code == 200 and body.content_type.startswith("application/json")
    assert body.json["description"] == HOSTILE and body.json["title"] == f"{FORMULA}{SCRIPT}"


def test_exports_keep_formulas_as_text(hostile_case, web, as_user):
    case, _ = hostile_case
    supervisor = web(SUPERVISOR)
    listing = supervisor.get("/supervisor/cases/export.csv")
    rows = list(csv.reader(io.StringIO(listing.get_data(as_text=True).lstrip("\ufeff"))))
    titles = [cell for row in rows for cell in row if "HYPERLINK" in cell]
    assert titles and all(cell.startswith("'=") for cell in titles), titles

    with_formula_comment = web(MEDIATOR)
    assert with_formula_comment.post(f"/cases/{case.id}/comments", data={"body": FORMULA}).status_code == 302
    events = as_user(SUPERVISOR).client.get(f"/api/v1/disputes/{case.id}/events.csv",
                                            headers=as_user(SUPERVISOR).headers)
    assert events.status_code == 200
    cells = [cell for row in csv.reader(io.StringIO(events.get_data(as_text=True).lstrip("\ufeff"))) for cell in row]
    assert any("HYPERLINK" in cell for cell in cells), "the comment and the title are in the log"
    assert not [cell for cell in cells if cell.startswith(FORMULA_START)]


def test_formula_like_cells_are_quoted_and_nothing_else_changes():
    assert [spreadsheet_safe(value) for value in ("=1+1", "+86 138", "-3", "@SUM(A1)", "\t=x", "调解", "", None, 5)] == [
        "'=1+1", "'+86 138", "'-3", "'@SUM(A1)", "'\t=x", "调解", "", "", 5]


def test_the_session_cookie_is_http_only_same_site_and_secure_in_production(sqlite_app):
    assert (Config.SESSION_COOKIE_HTTPONLY, Config.SESSION_COOKIE_SAMESITE) == (True, "Lax")
    assert Config.SESSION_COOKIE_SECURE is True, "secure unless SESSION_COOKIE_SECURE=0"
    assert (Config.REMEMBER_COOKIE_HTTPONLY, Config.REMEMBER_COOKIE_SECURE) == (True, True)
    sqlite_app.config["SESSION_COOKIE_SECURE"] = True
    try:
        response = sqlite_app.test_client().post(
            "/login", data={"username": CLERK, "password": "demo12345"}, base_url="https://localhost")
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie, cookie
    finally:
        sqlite_app.config["SESSION_COOKIE_SECURE"] = False


def test_the_detector_sees_markup_that_was_not_escaped():
    raw = injected(f"<html><body><p>{HOSTILE}</p></body></html>")
    assert {"script element with the injected code", "injected img", "img with an event handler attribute",
            "a with a javascript: link"} <= set(raw)
    assert injected("<html><body><p>&lt;script&gt;alert(1)&lt;/script&gt;</p></body></html>") == []
