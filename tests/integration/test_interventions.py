"""Supervisor interventions through the API: each needs the role and a reason, and is on record."""
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.cases.models import CaseEvent, DisputeCase, HumanTask, Timer
from app.cases.services import fire_due_timers
from app.extensions import db
from app.notifications.models import Notification
from tests.conftest import user
from tests.factories import failed, form_data
from tests.integration.test_api_lifecycle import complete, detail, open_case, task_for

CLERK, MEDIATOR = "qx_fq_ds_intake_clerk", "qx_fq_ds_village_mediator"
TOWN_SUPERVISOR, OTHER_SUPERVISOR = "qx_fq_supervisor", "qx_nh_supervisor"


@pytest.fixture
def village_case(as_user):
    clerk = as_user(CLERK)
    case = open_case(clerk)
    complete(clerk, case["id"], "intake_register")
    return detail(clerk, case["id"])


def kinds(api, case_id):
    return [e["kind"] for e in detail(api, case_id)["events"]]


def test_interventions_need_the_supervisor_role_and_a_reason(as_user, village_case):
    case_id = village_case["id"]
    mediator, outsider, supervisor = as_user(MEDIATOR), as_user(OTHER_SUPERVISOR), as_user(TOWN_SUPERVISOR)
    assert mediator.post(f"/disputes/{case_id}/suspend", json={"reason": "x"}).status_code == 403
    assert outsider.post(f"/disputes/{case_id}/suspend", json={"reason": "x"}).status_code == 404
    missing = supervisor.post(f"/disputes/{case_id}/suspend", json={})
    assert missing.status_code == 422 and "reason" in missing.json["errors"]["json"]
    blank = supervisor.post(f"/disputes/{case_id}/suspend", json={"reason": "   "})
    assert blank.status_code == 422 and blank.json["errors"] == {"reason": ["required"]}
    assert "suspended" not in kinds(supervisor, case_id)


def test_extend_time_limit_moves_the_escalation(as_user, village_case, fake_clock):
    case_id, supervisor = village_case["id"], as_user(TOWN_SUPERVISOR)
    old_due = datetime.fromisoformat(village_case["due_at"])
    earlier = supervisor.post(f"/disputes/{case_id}/extend",
                              json={"due_at": (old_due - timedelta(days=1)).isoformat(), "reason": "x"})
    assert earlier.status_code == 422 and "due_at" in earlier.json["errors"]
    new_due = old_due + timedelta(days=7)
    response = supervisor.post(f"/disputes/{case_id}/extend",
                               json={"due_at": new_due.isoformat(), "reason": "双方同意延长调解期限"})
    assert response.status_code == 200, response.json
    assert datetime.fromisoformat(response.json["due_at"]) == new_due
    event = [e for e in response.json["events"] if e["kind"] == "time_limit_extended"][0]
    assert event["actor"]["username"] == TOWN_SUPERVISOR and event["data"]["reason"] == "双方同意延长调解期限"

    fake_clock.set(old_due + timedelta(seconds=1))
    fire_due_timers()
    assert detail(supervisor, case_id)["current_tier"] == "village", "the old limit no longer escalates"
    fake_clock.set(new_due + timedelta(seconds=1))
    fire_due_timers()
    assert detail(supervisor, case_id)["current_tier"] == "town"


def test_suspend_stops_work_and_time_then_resume_shifts_the_limits(as_user, village_case, fake_clock):
    case_id, supervisor, mediator = village_case["id"], as_user(TOWN_SUPERVISOR), as_user(MEDIATOR)
    due = datetime.fromisoformat(village_case["due_at"])
    assert supervisor.post(f"/disputes/{case_id}/suspend", json={"reason": "等待司法鉴定"}).json["status"] == "suspended"
    task = task_for(mediator, case_id, "village_mediate")
    refused = mediator.post(f"/tasks/{task['id']}/complete", json={"data": form_data("village_mediate")})
    assert refused.status_code == 409 and refused.json["reason"] == "suspended"

    fake_clock.advance(days=20)  # past both village timers: nothing fires while suspended
    assert fire_due_timers() == 0
    resumed = supervisor.post(f"/disputes/{case_id}/resume", json={"reason": "鉴定结论已出"})
    assert resumed.status_code == 200 and resumed.json["status"] == "open"
    assert datetime.fromisoformat(resumed.json["due_at"]) == due + timedelta(days=20)
    pending = db.session.scalars(select(Timer).where(Timer.case_id == case_id, Timer.status == "pending")).all()
    assert len(pending) == 2
    complete(mediator, case_id, "village_mediate")
    assert {"suspended", "resumed"} <= set(kinds(supervisor, case_id))


def test_withdrawn_case_closes_and_cancels_everything(as_user, village_case, fake_clock):
    case_id, supervisor = village_case["id"], as_user(TOWN_SUPERVISOR)
    closed = supervisor.post(f"/disputes/{case_id}/withdraw", json={"reason": "双方自行和解，申请撤回"}).json
    assert (closed["status"], closed["outcome"], closed["open_tasks"]) == ("closed", "withdrawn", [])
    assert db.session.scalars(select(Timer.status).where(Timer.case_id == case_id)).all() == ["cancelled"] * 2
    fake_clock.advance(days=40)
    assert fire_due_timers() == 0
    again = supervisor.post(f"/disputes/{case_id}/withdraw", json={"reason": "x"})
    assert again.status_code == 409 and again.json["reason"] == "closed"


def test_reassign_only_to_a_holder_of_the_role(as_user, village_case):
    case_id, supervisor = village_case["id"], as_user(TOWN_SUPERVISOR)
    task = task_for(as_user(MEDIATOR), case_id, "village_mediate")
    wrong = supervisor.post(f"/tasks/{task['id']}/reassign",
                            json={"assignee_id": user("qx_nh_sx_village_mediator").id, "reason": "x"})
    assert wrong.status_code == 422 and "assignee_id" in wrong.json["errors"]
    done = supervisor.post(f"/tasks/{task['id']}/reassign",
                           json={"assignee_id": user(MEDIATOR).id, "reason": "原承办人休假"})
    assert done.status_code == 200 and done.json["assignee"]["username"] == MEDIATOR
    assert "reassigned" in kinds(supervisor, case_id)
    assert db.session.scalar(select(Notification).where(
        Notification.user_id == user(MEDIATOR).id, Notification.message.contains("改派")))


def test_supervision_order_answered_by_the_handler(as_user, village_case, fake_clock):
    case_id, supervisor, mediator = village_case["id"], as_user(TOWN_SUPERVISOR), as_user(MEDIATOR)
    due = (fake_clock.now + timedelta(days=3)).isoformat()
    order = supervisor.post(f"/disputes/{case_id}/supervision-orders",
                            json={"instruction": "请三日内上门调解并反馈进展", "due_at": due})
    assert order.status_code == 201 and order.json["status"] == "open"
    told = db.session.scalars(select(Notification.kind).where(Notification.user_id == user(MEDIATOR).id)).all()
    assert "supervision" in told
    assert as_user(CLERK).post(f"/supervision-orders/{order.json['id']}/answer",
                               json={"answer": "不是我的案子"}).status_code == 403
    answered = mediator.post(f"/supervision-orders/{order.json['id']}/answer", json={"answer": "已上门，双方同意周五再谈"})
    assert answered.status_code == 200 and answered.json["status"] == "answered"
    assert mediator.post(f"/supervision-orders/{order.json['id']}/answer", json={"answer": "again"}).status_code == 409
    assert {"supervision_order", "supervision_answered"} <= set(kinds(supervisor, case_id))


def test_named_leader_makes_the_county_stage_ask_for_instruction(as_user, village_case):
    case_id, county_supervisor = village_case["id"], as_user("qx_supervisor")
    not_leader = county_supervisor.post(f"/disputes/{case_id}/leader",
                                        json={"leader_id": user(MEDIATOR).id, "reason": "x"})
    assert not_leader.status_code == 422
    named = county_supervisor.post(f"/disputes/{case_id}/leader",
                                   json={"leader_id": user("qx_county_leader").id, "reason": "涉及三十余户，列为重大案件"})
    assert named.status_code == 200 and named.json["is_major"] is True
    assert db.session.get(DisputeCase, case_id).leader_id == user("qx_county_leader").id

    complete(as_user(MEDIATOR), case_id, "village_mediate", failed("village_mediate"))
    complete(as_user("qx_fq_town_dispatcher"), case_id, "town_dispatch",
             form_data("town_dispatch", dispatch_action="refer_county"))
    # the county centre accepts without ticking "major": the leader's designation carries it
    complete(as_user("qx_county_center"), case_id, "county_accept")
    complete(as_user("qx_county_justice"), case_id, "consult_justice")
    complete(as_user("qx_county_petition"), case_id, "consult_petition")
    assert task_for(as_user("qx_county_leader"), case_id, "leader_instruction")


def test_a_named_leader_survives_escalations_by_time_limit(as_user, village_case, fake_clock):
    case_id, county_supervisor = village_case["id"], as_user("qx_supervisor")
    named = county_supervisor.post(f"/disputes/{case_id}/leader",
                                   json={"leader_id": user("qx_county_leader").id, "reason": "重大案件"})
    assert named.status_code == 200
    # nobody acts: the village and then the town time limit escalate the case to the county
    fake_clock.advance(days=16)
    fire_due_timers()
    fake_clock.advance(days=16)
    fire_due_timers()
    case = detail(county_supervisor, case_id)
    assert (case["current_tier"], case["is_major"]) == ("county", True), "the timer did not undo the designation"
    complete(as_user("qx_county_center"), case_id, "county_accept")
    complete(as_user("qx_county_justice"), case_id, "consult_justice")
    complete(as_user("qx_county_petition"), case_id, "consult_petition")
    assert task_for(as_user("qx_county_leader"), case_id, "leader_instruction")


def test_every_intervention_event_names_who_and_when(as_user, village_case, fake_clock):
    case_id, supervisor = village_case["id"], as_user(TOWN_SUPERVISOR)
    supervisor.post(f"/disputes/{case_id}/suspend", json={"reason": "暂缓"})
    supervisor.post(f"/disputes/{case_id}/resume", json={"reason": "继续"})
    rows = db.session.scalars(select(CaseEvent).where(
        CaseEvent.case_id == case_id, CaseEvent.kind.in_(["suspended", "resumed"])).order_by(CaseEvent.id)).all()
    assert [(r.kind, r.actor.username, r.at) for r in rows] == [
        ("suspended", TOWN_SUPERVISOR, fake_clock.now.astimezone(UTC)),
        ("resumed", TOWN_SUPERVISOR, fake_clock.now.astimezone(UTC))]


def test_intervention_forms_post_with_csrf_and_land_on_record(app, web, as_user, village_case):
    from flask import render_template
    from flask_login import login_user, logout_user

    case_id = village_case["id"]
    supervisor, mediator = web(TOWN_SUPERVISOR), web(MEDIATOR)
    no_reason = supervisor.post(f"/supervisor/cases/{case_id}/interventions/suspend", data={"reason": ""})
    assert no_reason.status_code == 302
    assert "suspended" not in kinds(as_user(TOWN_SUPERVISOR), case_id)
    without_token = supervisor.post(f"/supervisor/cases/{case_id}/interventions/suspend",
                                    data={"reason": "x"}, csrf=False)
    assert without_token.status_code == 400
    done = supervisor.post(f"/supervisor/cases/{case_id}/interventions/suspend", data={"reason": "等待鉴定"})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/supervisor/cases/{case_id}")
    assert detail(as_user(TOWN_SUPERVISOR), case_id)["status"] == "suspended"
    refused = mediator.post(f"/supervisor/cases/{case_id}/interventions/resume", data={"reason": "x"})
    assert refused.status_code == 403, "a mediator who sees the case gets the 403 page, not a redirect"
    assert detail(as_user(TOWN_SUPERVISOR), case_id)["status"] == "suspended", "a mediator cannot intervene"

    case = db.session.get(DisputeCase, case_id)
    with app.test_request_context():
        login_user(user(TOWN_SUPERVISOR))
        html = render_template("supervisor/_interventions.html", case=case)
        assert f'action="/supervisor/cases/{case_id}/interventions/resume"' in html
        assert "interventions/suspend" not in html, "a suspended case offers resume instead"
        logout_user()
        login_user(user(MEDIATOR))
        assert render_template("supervisor/_interventions.html", case=case).strip() == ""


def between_read_and_lock(app, monkeypatch, change):
    """Run ``change(case_id)`` as another request would (its own app context and session) once,
    after complete_task has read the case and run the engine and before it takes the lock."""
    import threading

    from app.cases import services

    lock = services.lock_case_changes
    done = []

    def lock_after_the_change(case_id):
        if not done:
            done.append(case_id)

            def other_request():
                with app.app_context():
                    change(case_id)
                    db.session.remove()

            thread = threading.Thread(target=other_request)
            thread.start()
            thread.join()
        return lock(case_id)

    monkeypatch.setattr(services, "lock_case_changes", lock_after_the_change)
    return done


def test_a_leader_named_while_a_mediator_submits_is_kept(app, as_user, village_case, monkeypatch):
    """The engine runs on the state as read, before the case's lock: a change that lands between
    the read and the lock must make the completion run again on the stored state, not overwrite it."""
    from app.supervision.services import assign_leader

    case_id, leader_id = village_case["id"], user("qx_county_leader").id
    between_read_and_lock(app, monkeypatch, lambda case_id: assign_leader(
        user("qx_supervisor"), case_id, leader_id, "重大案件"))
    complete(as_user(MEDIATOR), case_id, "village_mediate", failed("village_mediate"))
    case = detail(as_user("qx_supervisor"), case_id)
    assert case["current_tier"] == "town" and case["is_major"], "the completion undid the designation"
    events = kinds(as_user("qx_supervisor"), case_id)
    assert events.count("leader_assigned") == 1 and events.count("escalated") == 1


def test_a_suspension_while_a_mediator_submits_refuses_the_submission(app, as_user, village_case, monkeypatch):
    """The case row changed after the read: the lock sees its counter moved, reads the case again
    and finds it suspended, so nothing of the submission is written."""
    from app.supervision.services import suspend_case

    case_id, mediator = village_case["id"], as_user(MEDIATOR)
    task = task_for(mediator, case_id, "village_mediate")
    changed = between_read_and_lock(app, monkeypatch, lambda case_id: suspend_case(
        user(TOWN_SUPERVISOR), case_id, "等待司法鉴定"))
    refused = mediator.post(f"/tasks/{task['id']}/complete", json={"data": form_data("village_mediate")})
    assert changed == [case_id]
    assert refused.status_code == 409 and refused.json["reason"] == "suspended", refused.json
    case = detail(as_user(TOWN_SUPERVISOR), case_id)
    assert case["status"] == "suspended" and case["current_tier"] == "village"
    assert kinds(as_user(TOWN_SUPERVISOR), case_id).count("task_completed") == 1, "the intake's only"
    assert mediator.get(f"/tasks/{task['id']}").json["status"] == "ready"


def test_a_release_while_the_holder_submits_leaves_the_task_theirs(app, as_user, village_case, monkeypatch):
    """Only the task's row changed after the read (a supervisor released it): the completion
    must see that, or it would keep the holder it read and write a completed task nobody held."""
    from app.cases.services import release_task

    case_id, mediator = village_case["id"], as_user(MEDIATOR)
    task = task_for(mediator, case_id, "village_mediate")
    assert mediator.post(f"/tasks/{task['id']}/claim").status_code == 200
    between_read_and_lock(app, monkeypatch, lambda case_id: release_task(user(TOWN_SUPERVISOR), task["id"]))
    done = mediator.post(f"/tasks/{task['id']}/complete", json={"data": form_data("village_mediate")})
    assert done.status_code == 200, done.json
    assert done.json["assignee"]["username"] == MEDIATOR
    stored = db.session.get(HumanTask, task["id"])
    db.session.refresh(stored)
    assert stored.status == "completed" and stored.assignee_id == stored.completed_by_id == user(MEDIATOR).id
    events = kinds(mediator, case_id)
    assert events[events.index("task_claimed"):][:3] == ["task_claimed", "task_released", "task_completed"]
