"""The timer scheduler: reminders then escalation at each tier, start-up catch-up, leases, races.

Time is a controllable clock; no test sleeps for a timer to fall due. Tests that start the real
APScheduler only wait (bounded) for its start-up sweep to finish.
"""
import gc
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.orm.exc import StaleDataError

from app.cases import services
from app.cases.models import CaseEvent, DisputeCase, HumanTask, Timer, WorkflowState
from app.database import write_versioned_together
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.notifications import senders
from app.notifications.models import Notification
from app.org.models import OrgUnit
from app.scheduling.scheduler import TimerScheduler
from tests.conftest import user
from tests.factories import failed, form_data

ROOT = Path(__file__).resolve().parents[2]


def open_case(fake_clock=None, **intake):
    unit = db.session.scalar(select(OrgUnit).where(OrgUnit.code == "QX-FQ-DS"))
    overrides = intake.pop("time_limit_overrides", None)
    case = services.start_case(user("qx_fq_ds_intake_clerk"), services.NewCase(
        title="宅基地纠纷", category=intake.get("category", "housing_homestead"), description="d",
        org_unit_id=unit.id, time_limit_overrides=overrides))
    complete(case.id, "intake_register", "qx_fq_ds_intake_clerk", form_data("intake_register", **intake))
    return fresh(case.id)


def fresh(case_id):
    """The case as committed now (the scheduler works in its own session)."""
    db.session.expire_all()
    return db.session.get(DisputeCase, case_id)


def ready_task(case_id, spec_name):
    return db.session.scalar(select(HumanTask).where(
        HumanTask.case_id == case_id, HumanTask.spec_name == spec_name, HumanTask.status == "ready"))


def complete(case_id, spec_name, username, data=None):
    task = ready_task(case_id, spec_name)
    assert task is not None, f"{spec_name} not ready"
    services.complete_task(user(username), task.id, data or form_data(spec_name))
    return task


def notified(username, kind):
    return db.session.scalars(select(Notification.message).where(
        Notification.user_id == user(username).id, Notification.kind == kind)).all()


def events(case_id, kind):
    return db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.kind == kind)
                              .order_by(CaseEvent.id)).all()


@pytest.fixture
def run_once(sqlite_app):
    scheduler = TimerScheduler(sqlite_app)
    return scheduler.run_once


def test_reminder_then_escalation_at_every_tier_tells_the_right_people(sqlite_app, fake_clock, run_once):
    start = fake_clock.now
    case = open_case()
    assert notified("qx_fq_ds_village_mediator", "assignment")

    # village: reminder after 10 days to the mediator and the supervisors above, limit at 15
    fake_clock.set(start + timedelta(days=10, seconds=1))
    assert run_once() == 1
    assert len(events(case.id, "reminder")) == 1
    for who in ("qx_fq_ds_village_mediator", "qx_fq_supervisor", "qx_supervisor"):
        assert any(case.number in m for m in notified(who, "reminder")), who
    assert not notified("qx_nh_supervisor", "reminder"), "another town's supervisor is not bothered"
    assert run_once() == 0

    fake_clock.set(start + timedelta(days=15, seconds=1))
    assert run_once() == 1
    assert fresh(case.id).current_tier == "town"
    assert any(case.number in m for m in notified("qx_fq_town_dispatcher", "escalation"))

    # town: 10 / 15 days from the moment the town received it
    town_start = fake_clock.now
    fake_clock.set(town_start + timedelta(days=15, seconds=1))
    assert run_once() == 2, "reminder and limit were both due"
    assert fresh(case.id).current_tier == "county"
    assert notified("qx_county_center", "escalation")

    county_start = fake_clock.now
    fake_clock.set(county_start + timedelta(days=20, seconds=1))
    assert run_once() == 1 and fresh(case.id).current_tier == "county"
    fake_clock.set(county_start + timedelta(days=30, seconds=1))
    assert run_once() == 1
    final = fresh(case.id)
    assert (final.current_tier, final.escalation_count) == ("court", 3)
    reasons = [e.data["reason"] for e in events(case.id, "escalated")]
    assert reasons == ["time_limit"] * 3
    assert len(events(case.id, "reminder")) == 3
    lags = db.session.scalars(select(Timer.lag_ms).where(Timer.case_id == case.id, Timer.status == "fired")
                              .order_by(Timer.id)).all()
    five_days = 5 * 86400 * 1000
    # lag = fired - due: 1 s on this clock, except the town reminder, first seen 5 days late
    assert lags == [1000, 1000, five_days + 1000, 1000, 1000, 1000]


def test_a_timer_whose_work_was_done_does_nothing(sqlite_app, fake_clock, run_once):
    case = open_case()
    complete(case.id, "village_mediate", "qx_fq_ds_village_mediator")
    fake_clock.advance(days=60)
    assert run_once() == 0
    statuses = set(db.session.scalars(select(Timer.status).where(Timer.case_id == case.id)))
    assert statuses == {"cancelled"}
    assert ready_task(case.id, "follow_up_visit") is not None


def test_late_submit_after_escalation_is_refused_and_changes_nothing(sqlite_app, fake_clock, run_once):
    case = open_case()
    task = ready_task(case.id, "village_mediate")
    fake_clock.advance(days=16)
    run_once()
    before = fresh(case.id).lock_version
    with pytest.raises(Conflict) as refused:
        services.complete_task(user("qx_fq_ds_village_mediator"), task.id, form_data("village_mediate"))
    assert refused.value.details["code"] == "escalated_by_time_limit"
    db.session.rollback()
    assert fresh(case.id).lock_version == before


def spoil_town_time_limit(case_id):
    """Give one case data its diagram's town timer cannot use (as a hand-edited or migrated
    case might carry): the village time limit fires, the escalation starts the town timer and the
    engine fails on "Pbogus"."""
    case = db.session.get(DisputeCase, case_id)
    instance = services.load_instance(case)
    limits = dict(instance.snapshot().variables["time_limits"], town="Pbogus")
    instance.update_data({"time_limits": limits})
    case.workflow_state.state = instance.dump()
    db.session.commit()


def test_a_case_whose_timers_fail_is_parked_on_record_and_the_rest_fire(sqlite_app, fake_clock, run_once):
    cases = [open_case().id for _ in range(3)]
    spoil_town_time_limit(cases[1])
    lock_version, state_version = fresh(cases[1]).lock_version, fresh(cases[1]).workflow_state.row_version
    fake_clock.advance(days=16)
    assert run_once() == 4, "reminder and time limit of the two sound cases, in the batch that failed"
    assert [fresh(i).current_tier for i in cases] == ["town", "village", "town"]
    spoiled = fresh(cases[1])
    assert spoiled.workflow_state.row_version == state_version, "nothing of the failed firing was kept"
    assert spoiled.lock_version == lock_version + 1, "one change to the case: its timers parked"
    assert set(db.session.scalars(select(Timer.status).where(Timer.case_id == spoiled.id))) == {"stuck"}
    stuck = events(spoiled.id, "timer_stuck")
    assert len(stuck) == 2 and all("Invalid duration" in e.data["error"] for e in stuck)
    assert ready_task(spoiled.id, "village_mediate") is not None, "the case waits for a supervisor"
    assert run_once() == 0, "a parked timer is not claimed again: the queue moves on"


def test_intake_refuses_a_time_limit_no_timer_could_use(sqlite_app, fake_clock):
    before = db.session.scalar(select(func.count()).select_from(DisputeCase))
    with pytest.raises(InvalidInput) as refused:
        open_case(time_limit_overrides={"town": "Pbogus", "village": "P7D"})
    assert set(refused.value.errors) == {"time_limit_overrides.town"}
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(DisputeCase)) == before
    working_days = open_case(time_limit_overrides={"village": "3WD"})
    assert working_days.due_at is not None


def test_a_burst_fires_in_batches_each_case_once(sqlite_app, fake_clock, monkeypatch):
    monkeypatch.setattr(services, "TIMER_BATCH", 2)
    commits = []
    monkeypatch.setattr(db.session, "commit", lambda real=db.session.commit: commits.append(1) or real())
    cases = [open_case().id for _ in range(5)]
    commits.clear()
    fake_clock.advance(days=16)
    assert services.fire_due_timers() == 10
    assert len(commits) == 3, "five cases in batches of two: three transactions"
    per_case = db.session.execute(select(CaseEvent.case_id, func.count()).where(
        CaseEvent.kind.in_(["reminder", "time_limit"]), CaseEvent.case_id.in_(cases)).group_by(CaseEvent.case_id)).all()
    assert sorted(n for _, n in per_case) == [2] * 5
    assert services.fire_due_timers() == 0


def test_a_batch_writes_its_states_together_each_checked_and_bumped_once(app, fake_clock, monkeypatch):
    cases = [open_case().id for _ in range(3)]
    versions = {i: fresh(i).workflow_state.row_version for i in cases}
    state_writes, collector_on = [], []
    real_fire = services._fire_locked_case
    monkeypatch.setattr(services, "_fire_locked_case",
                        lambda *a, **k: collector_on.append(gc.isenabled()) or real_fire(*a, **k))
    def listen(conn, cursor, statement, *rest):
        if statement.startswith("UPDATE workflow_state"):
            state_writes.append(statement)

    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        fake_clock.advance(days=16)
        assert services.fire_due_timers() == 6
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)
    assert len(state_writes) == 1, "three states, one (executemany) statement"
    assert collector_on == [False] * 3, "no cycle collection inside the batch"
    assert gc.isenabled(), "and back on after it"
    for case_id in cases:
        case = fresh(case_id)
        assert case.workflow_state.row_version == versions[case_id] + 1
        assert case.current_tier == "town"
        assert services.load_instance(case).snapshot().variables["tier"] == "town", "the state written is the new one"


def test_a_state_changed_since_it_was_read_is_not_overwritten(app):
    cases = [open_case().id for _ in range(2)]
    db.session.remove()
    states = db.session.scalars(select(WorkflowState).where(WorkflowState.case_id.in_(cases))
                                .order_by(WorkflowState.case_id)).all()
    read_versions = [s.row_version for s in states]
    # someone else steps the second case after this session read it
    db.session.connection().execute(update(WorkflowState.__table__).where(WorkflowState.case_id == cases[1])
                                    .values(row_version=WorkflowState.row_version + 1))
    for state in states:
        state.state = "{}"
    with pytest.raises(StaleDataError, match="1 of 2 rows"):
        write_versioned_together(states, "state")
    db.session.rollback()
    stored = db.session.scalars(select(WorkflowState).where(WorkflowState.case_id.in_(cases))
                                .order_by(WorkflowState.case_id)).all()
    assert [s.row_version for s in stored] == read_versions, "nothing of either write kept"
    assert all(s.state != "{}" for s in stored)


def test_sqlite_lease_lets_one_scheduler_fire_and_the_other_wait(sqlite_app, fake_clock):
    first, second = TimerScheduler(sqlite_app, sweep_seconds=2), TimerScheduler(sqlite_app, sweep_seconds=2)
    opened = fake_clock.now
    open_case()
    fake_clock.advance(seconds=1)
    open_case()
    fake_clock.set(opened + timedelta(days=10, milliseconds=500))
    assert first.run_once() == 1  # the first case's reminder; the lease is now the first's
    fake_clock.advance(seconds=1)
    assert second.run_once() == 0, "the lease is held: the second scheduler waits"
    assert db.session.scalar(select(func.count()).select_from(Timer).where(Timer.status == "fired")) == 1
    fake_clock.advance(seconds=10)  # the first scheduler stopped renewing: its lease lapses
    assert second.run_once() == 1


def test_started_scheduler_catches_up_oldest_first_and_plans_date_jobs(sqlite_app, fake_clock):
    cases = []
    for hours in (0, 1, 2):
        fake_clock.advance(hours=hours)
        cases.append(open_case().id)
    fake_clock.advance(days=40)
    soon = open_case(time_limit_overrides={"village_reminder": "PT90S"})

    scheduler = TimerScheduler(sqlite_app, sweep_seconds=3600)
    scheduler.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not scheduler.planned():
            time.sleep(0.05)
    finally:
        scheduler.shutdown()
    db.session.rollback()
    limits = db.session.scalars(select(CaseEvent.case_id).where(CaseEvent.kind == "time_limit")
                                .order_by(CaseEvent.id)).all()
    assert limits == cases, "the case overdue longest escalates first"
    reminder = db.session.scalar(select(Timer).where(Timer.case_id == soon.id, Timer.spec_name == "village_reminder"))
    assert reminder.status == "pending"
    assert scheduler.planned() == {reminder.id: reminder.due_at}, "a date job waits at the exact due time"


def test_notifications_are_sent_only_after_commit(sqlite_app, fake_clock, monkeypatch):
    recorder = senders.LoggingSender()
    senders.register(recorder)
    try:
        case = open_case()
        assert any(username == "qx_fq_ds_village_mediator" and kind == "assignment"
                   for username, kind, _ in recorder.sent)
        sent_before = len(recorder.sent)

        from app.engine import runtime

        monkeypatch.setattr(runtime.Instance, "dump", lambda self: (_ for _ in ()).throw(RuntimeError("boom")))
        with pytest.raises(RuntimeError):
            complete(case.id, "village_mediate", "qx_fq_ds_village_mediator", failed("village_mediate"))
        db.session.rollback()
        assert len(recorder.sent) == sent_before, "nothing is announced for a rolled-back step"
        assert not notified("qx_fq_town_dispatcher", "escalation")
    finally:
        senders.unregister(recorder)


def test_notification_api_lists_counts_and_marks_read(app, fake_clock, as_user):
    open_case()
    mediator = as_user("qx_fq_ds_village_mediator")
    listed = mediator.get("/notifications").json
    assert listed["unread"] == 1 and listed["items"][0]["kind"] == "assignment"
    other = as_user("qx_nh_sx_village_mediator")
    assert other.post(f"/notifications/{listed['items'][0]['id']}/read").status_code == 404
    assert mediator.post(f"/notifications/{listed['items'][0]['id']}/read").json["marked"] == 1
    assert mediator.get("/notifications").json["unread"] == 0


@pytest.mark.postgres
@pytest.mark.parametrize("round_", range(4))
def test_user_and_timer_race_leaves_one_consistent_outcome(pg_app, fake_clock, round_):
    app = pg_app
    case = open_case()
    task = ready_task(case.id, "village_mediate")
    fake_clock.advance(days=15, seconds=1)
    barrier, outcome = threading.Barrier(2), {}

    def submit():
        with app.app_context():
            barrier.wait()
            try:
                services.complete_task(user("qx_fq_ds_village_mediator"), task.id, form_data("village_mediate"))
                outcome["submit"] = "completed"
            except Conflict as exc:
                outcome["submit"] = exc.details["code"]
            finally:
                db.session.remove()

    def fire():
        with app.app_context():
            barrier.wait()
            outcome["fired"] = services.fire_due_timers()
            db.session.remove()

    threads = [threading.Thread(target=submit), threading.Thread(target=fire)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    db.session.rollback()
    final = fresh(case.id)
    if outcome["submit"] == "completed":
        assert outcome["fired"] == 0 and final.current_tier == "village"
        assert ready_task(case.id, "follow_up_visit") is not None
    else:
        assert outcome["submit"] == "escalated_by_time_limit" and outcome["fired"] >= 1
        assert final.current_tier == "town" and ready_task(case.id, "town_dispatch") is not None
    ready = db.session.scalars(select(HumanTask.spec_name).where(
        HumanTask.case_id == case.id, HumanTask.status == "ready")).all()
    assert len(ready) == 1, f"exactly one next step, got {ready}"


@pytest.mark.postgres
def test_two_scheduler_processes_fire_each_of_1000_timers_once(pg_app, fake_clock):
    app = pg_app
    cases = [open_case().id for _ in range(500)]
    assert db.session.scalar(select(func.count()).select_from(Timer).where(Timer.status == "pending")) == 1000
    now = (fake_clock.now + timedelta(days=40)).isoformat()
    env = {**os.environ, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "FLASK_APP": "wsgi.py"}
    flask = [sys.executable, "-m", "flask", "scheduler", "run", "--once", "--now", now]
    procs = [subprocess.Popen(flask, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [line for _, err in outputs for line in err.splitlines() if "Error" in line]
    counts = [int(out.strip().split()[1]) for out, _ in outputs]
    db.session.rollback()
    assert sum(counts) == 1000, counts
    assert db.session.scalar(select(func.count()).select_from(Timer).where(Timer.status == "fired")) == 1000
    per_case = db.session.execute(
        select(CaseEvent.case_id, func.count()).where(CaseEvent.kind.in_(["reminder", "time_limit"]))
        .group_by(CaseEvent.case_id)).all()
    assert len(per_case) == 500 and all(n == 2 for _, n in per_case), "each timer fired exactly once"
    escalations = db.session.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.kind == "escalated"))
    assert escalations == 500
    assert set(db.session.scalars(select(DisputeCase.current_tier).where(DisputeCase.id.in_(cases)))) == {"town"}


@pytest.mark.postgres
def test_two_users_completing_one_task_at_once_one_wins(pg_app, fake_clock):
    case = open_case()
    complete(case.id, "village_mediate", "qx_fq_ds_village_mediator")
    task = ready_task(case.id, "follow_up_visit")
    barrier, outcomes = threading.Barrier(2), []

    def submit(username):
        with pg_app.app_context():
            barrier.wait()
            try:
                services.complete_task(user(username), task.id, form_data("follow_up_visit"))
                outcomes.append("completed")
            except Conflict as exc:
                outcomes.append(exc.details["code"])
            finally:
                db.session.remove()

    threads = [threading.Thread(target=submit, args=(name,))
               for name in ("qx_fq_ds_g1_grid_worker", "qx_fq_ds_g2_grid_worker")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) in (["already_completed", "completed"], ["claimed_by_other", "completed"])
    db.session.rollback()
    assert fresh(case.id).status == "closed"
    assert len(events(case.id, "task_completed")) == 3, "intake, mediation and one follow-up"
