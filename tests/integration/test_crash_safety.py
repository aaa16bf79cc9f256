"""No case is lost or half-written: `flask doctor`, and kill -9 of the app and the scheduler mid-work."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, func, select, update

from app.cases.doctor import examine
from app.cases.models import CaseEvent, DisputeCase, HumanTask, Timer
from app.extensions import db
from app.org.services import create_api_token
from tests.conftest import user
from tests.factories import form_data
from tests.integration.test_scheduler import open_case, ready_task

ROOT = Path(__file__).resolve().parents[2]


def test_doctor_finds_tampered_projections_and_rebuilds_them(sqlite_app, fake_clock):
    healthy, broken_tasks, broken_tier = open_case(), open_case(), open_case()
    assert examine() == []
    db.session.execute(delete(HumanTask).where(HumanTask.case_id == broken_tasks.id, HumanTask.status == "ready"))
    db.session.execute(update(DisputeCase).where(DisputeCase.id == broken_tier.id).values(current_tier="county"))
    db.session.execute(update(Timer).where(Timer.case_id == broken_tier.id).values(status="cancelled"))
    db.session.commit()

    runner = sqlite_app.test_cli_runner()
    report = runner.invoke(args=["doctor"])
    assert report.exit_code == 1
    assert f"{broken_tasks.number}" in report.output and "ready tasks" in report.output
    assert "current tier: projected county but the state says village" in report.output
    assert "pending timers" in report.output and healthy.number not in report.output

    fixed = runner.invoke(args=["doctor", "--fix"])
    assert fixed.exit_code == 0 and "2 case(s) with mismatches rebuilt" in fixed.output
    assert examine() == []
    assert ready_task(broken_tasks.id, "village_mediate") is not None
    assert db.session.scalar(select(func.count()).select_from(CaseEvent).where(
        CaseEvent.kind == "projection_rebuilt")) == 2


def _post(url, token, body):
    """POST JSON; the HTTP status, or None when the server is gone."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(app):
    return {**os.environ, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "FLASK_APP": "wsgi.py",
            "SECRET_KEY": "crash-test"}


def test_kill_9_of_the_app_mid_work_leaves_no_half_written_case(sqlite_app, fake_clock):
    cases = [open_case().id for _ in range(40)]
    token = create_api_token(user("qx_fq_ds_village_mediator"), "crash")
    tasks = {case_id: ready_task(case_id, "village_mediate").id for case_id in cases}
    db.session.remove()

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "from werkzeug.serving import run_simple; from wsgi import app; "
                               f"run_simple('127.0.0.1', {port}, app, threaded=True)"],
        cwd=ROOT, env=_env(sqlite_app), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/openapi.json", timeout=1).close()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        done, stop = [], threading.Event()

        def worker(task_ids):
            for task_id in task_ids:
                if stop.is_set():
                    return
                status = _post(f"{base}/tasks/{task_id}/complete", token, {"data": form_data("village_mediate")})
                if status is None:
                    return
                if status == 200:
                    done.append(task_id)

        ids = list(tasks.values())
        threads = [threading.Thread(target=worker, args=(ids[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        while len(done) < 10:
            time.sleep(0.01)
        server.send_signal(signal.SIGKILL)  # in the middle of the other completions
        stop.set()
        for thread in threads:
            thread.join(15)
    finally:
        server.kill()
        server.wait(10)

    assert examine() == [], "every case's projections match its stored state"
    completed = db.session.scalars(select(HumanTask.case_id).where(
        HumanTask.spec_name == "village_mediate", HumanTask.status == "completed")).all()
    assert 10 <= len(completed) < len(cases), "the kill landed mid-way"
    events = db.session.scalars(select(CaseEvent.case_id).where(
        CaseEvent.kind == "task_completed", CaseEvent.data["form"]["mediation_result"].as_string() == "success")).all()
    assert sorted(events) == sorted(completed), "an event exactly for each step that was saved"
    for case_id in cases:
        follow_up = ready_task(case_id, "follow_up_visit")
        assert (follow_up is not None) == (case_id in completed)


def test_kill_9_of_the_scheduler_mid_burst_then_restart_fires_each_timer_once(sqlite_app, fake_clock):
    cases = [open_case().id for _ in range(150)]
    db.session.remove()
    when = (fake_clock.now + timedelta(days=40)).isoformat()
    command = [sys.executable, "-m", "flask", "scheduler", "run", "--once", "--now", when]
    scheduler = subprocess.Popen(command, cwd=ROOT, env=_env(sqlite_app),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fired = db.session.scalar(select(func.count()).select_from(Timer).where(Timer.status == "fired"))
        db.session.remove()
        if fired >= 40:
            break
        time.sleep(0.05)
    scheduler.send_signal(signal.SIGKILL)
    scheduler.communicate(timeout=10)  # reap it and close its pipes
    partial = db.session.scalar(select(func.count()).select_from(Timer).where(Timer.status == "fired"))
    assert 40 <= partial < 300, "killed mid-burst"
    assert examine() == []

    # The dead scheduler's SQLite lease is still valid: a new one waits rather than double-firing.
    waiting = subprocess.run(command, cwd=ROOT, env=_env(sqlite_app), capture_output=True, text=True, timeout=300)
    assert waiting.returncode == 0 and waiting.stdout.strip() == "fired 0 timer(s)"
    # Once the lease has lapsed (its 10 s TTL, on the scheduler's clock), the restart takes over.
    later = (fake_clock.now + timedelta(days=40, seconds=11)).isoformat()
    rerun = subprocess.run(command[:-1] + [later], cwd=ROOT, env=_env(sqlite_app),
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert int(rerun.stdout.split()[1]) == 300 - partial, "the restart fires only what was left"
    per_case = dict(db.session.execute(select(CaseEvent.case_id, func.count()).where(
        CaseEvent.kind == "escalated").group_by(CaseEvent.case_id)).all())
    assert per_case == {case_id: 1 for case_id in cases}, "every case escalated exactly once"
    assert examine() == []
