"""Scale-out on one PostgreSQL: two app processes and two scheduler processes under a mixed load.

Mediators complete 200 village tasks through HTTP, spread over two gunicorn servers, while two
schedulers fire the due reminders and time limits of those same cases and of 200 more: users
and timers race for the same cases. Afterwards nothing is lost or duplicated: every request got
a clean answer, every saved step has exactly one event, no timer fired twice, and every case's
projections match its stored state.
"""
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
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.cases.doctor import examine
from app.cases.models import CaseEvent, HumanTask, Timer
from app.extensions import db
from app.org.services import create_api_token
from tests.conftest import user
from tests.factories import form_data
from tests.integration.test_scheduler import open_case, ready_task

ROOT = Path(__file__).resolve().parents[2]


def _port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url, token, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.postgres
def test_two_apps_and_two_schedulers_lose_and_duplicate_nothing(pg_app, fake_clock):
    # Idle cases opened on the test clock (3 weeks ago): on the real clock their timers are due now.
    idle = [open_case().id for _ in range(200)]
    # The worked cases' reminders are due now too. Every other worked case's 15-day time limit fell
    # due a minute ago, the others' fall due in an hour: whatever the machine's speed, the mediators
    # complete some cases and find others escalated, while the reminders fire on all of them.
    fifteen_days_ago = datetime.now(UTC) - timedelta(days=15)
    worked = []
    for n in range(200):
        fake_clock.set(fifteen_days_ago - timedelta(seconds=60) if n % 2 else fifteen_days_ago + timedelta(hours=1))
        worked.append(open_case().id)
    token = create_api_token(user("qx_fq_ds_village_mediator"), "scale-out")
    tasks = {ready_task(case_id, "village_mediate").id: case_id for case_id in worked}
    db.session.remove()

    env = {**os.environ, "DATABASE_URL": pg_app.config["SQLALCHEMY_DATABASE_URI"], "FLASK_APP": "wsgi.py",
           "SECRET_KEY": "scale-out"}
    ports = [_port(), _port()]
    apps = [subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "4", "-b",
                              f"127.0.0.1:{port}", "wsgi:app"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for port in ports]
    schedulers = [subprocess.Popen([sys.executable, "-m", "flask", "scheduler", "run", "--sweep", "0.5"],
                                   cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True) for _ in range(2)]
    answers = Counter()
    completed = []
    try:
        for port in ports:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=2).close()
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    assert time.monotonic() < deadline, "app process did not start"
                    time.sleep(0.2)

        def client(slice_):
            for n, task_id in enumerate(slice_):
                port = ports[n % 2]
                status = _post(f"http://127.0.0.1:{port}/api/v1/tasks/{task_id}/complete", token,
                               {"data": form_data("village_mediate")})
                answers[status] += 1
                if status == 200:
                    completed.append(task_id)

        task_ids = list(tasks)
        threads = [threading.Thread(target=client, args=(task_ids[i::8],)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)

        now = datetime.now(UTC)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            due = db.session.scalar(select(func.count()).select_from(Timer).where(
                Timer.status == "pending", Timer.due_at <= now))
            db.session.remove()
            if due == 0:
                break
            time.sleep(0.5)
    finally:
        for process in apps + schedulers:
            process.send_signal(signal.SIGTERM)
        for process in apps + schedulers:
            try:
                process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()

    assert set(answers) <= {200, 409} and sum(answers.values()) == 200, answers
    assert answers[200] > 0 and answers[409] > 0, f"users and timers raced: {answers}"
    assert db.session.scalar(select(func.count()).select_from(Timer).where(
        Timer.status == "pending", Timer.due_at <= now)) == 0, "every due timer fired"

    completions = Counter(db.session.scalars(select(CaseEvent.task_id).where(
        CaseEvent.kind == "task_completed", CaseEvent.case_id.in_(worked),
        CaseEvent.data["form"]["mediation_result"].as_string() == "success")))
    completed_rows = db.session.scalars(select(HumanTask.task_id).where(
        HumanTask.spec_name == "village_mediate", HumanTask.status == "completed")).all()
    assert len(completed_rows) == answers[200] == len(completions) and set(completions.values()) == {1}

    fired = db.session.execute(select(CaseEvent.case_id, CaseEvent.data["timer"].as_string())
                               .where(CaseEvent.kind.in_(["reminder", "time_limit"]))).all()
    assert len(fired) == len(set(fired)), "no timer fired twice"
    assert db.session.scalar(select(func.count()).select_from(Timer).where(Timer.status == "fired")) == len(fired)
    escalations = Counter(db.session.scalars(select(CaseEvent.case_id).where(CaseEvent.kind == "escalated")))
    assert set(escalations.values()) <= {1} and set(idle) <= set(escalations), "each idle case escalated once"
    assert examine() == [], "every case's projections match its stored state"
