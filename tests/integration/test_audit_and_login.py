"""The event log is append-only and exportable; logins are throttled after repeated failures."""
import csv
import io

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.extensions import db
from tests.integration.test_api_lifecycle import CLERK, complete, open_case


def test_the_database_refuses_to_rewrite_or_delete_events(app, as_user):
    case = open_case(as_user(CLERK))
    for statement in ("UPDATE case_event SET message = 'rewritten' WHERE case_id = :id",
                      "DELETE FROM case_event WHERE case_id = :id"):
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text(statement), {"id": case["id"]})
        db.session.rollback()
    messages = db.session.execute(text("SELECT message FROM case_event WHERE case_id = :id"), {"id": case["id"]})
    assert "rewritten" not in {row[0] for row in messages}


def test_event_log_exports_as_csv_for_those_who_see_the_case(app, as_user):
    clerk = as_user(CLERK)
    case = open_case(clerk)
    complete(clerk, case["id"], "intake_register")
    response = clerk.get(f"/disputes/{case['id']}/events.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert f'{case["number"]}-events.csv' in response.headers["Content-Disposition"]
    text_body = response.get_data(as_text=True)
    assert text_body.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text_body.lstrip("\ufeff"))))
    api_events = clerk.get(f"/disputes/{case['id']}").json["events"]
    assert [int(r["event_id"]) for r in rows] == [e["id"] for e in api_events]
    completed = [r for r in rows if r["kind"] == "task_completed"][0]
    assert completed["actor"] == CLERK and "受理登记" in completed["message"]
    assert completed["time_local"].endswith("+08:00")
    assert as_user("qx_nh_sx_village_mediator").get(f"/disputes/{case['id']}/events.csv").status_code == 404


def test_five_failed_logins_lock_the_username_for_fifteen_minutes(client, fake_clock):
    def token(password):
        return client.post("/api/v1/tokens", json={"username": CLERK, "password": password})

    for _ in range(5):
        assert token("wrong").status_code == 401
    locked = token("demo12345")
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 800
    assert "try again" in locked.json["message"]
    fake_clock.advance(minutes=15, seconds=1)
    assert token("demo12345").status_code == 201, "the lock lapses; success clears the count"
    assert token("wrong").status_code == 401 and token("demo12345").status_code == 201


def test_web_login_says_when_it_is_throttled(web, fake_clock):
    browser = web()
    for _ in range(5):
        assert browser.post("/login", data={"username": CLERK, "password": "nope"}).status_code == 401
    page = browser.post("/login", data={"username": CLERK, "password": "demo12345"})
    assert page.status_code == 429 and "登录失败次数过多" in page.get_data(as_text=True)
    fake_clock.advance(minutes=16)
    assert browser.post("/login", data={"username": CLERK, "password": "demo12345"}).status_code == 302
