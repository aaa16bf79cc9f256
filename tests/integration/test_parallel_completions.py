"""1,000 completions from four OS processes at once on one PostgreSQL leave every case consistent.

250 cases wait for village mediation. Four worker processes (each its own app, engine and
sandbox on the same database) take every case through four steps — village mediation fails,
the town command room dispatches, town mediation succeeds, the grid worker's follow-up visit
closes the case — by calling the completion service, as the API does. Cases are worked alone or
with deliberate collisions: two processes submitting every step of a case at once (as one
mediator on two devices, or as two holders of the role), all four at once, or one process
completing while another claims and releases the same task (so the completer meets
``claimed_by_other`` on its first try at each step, then races the next claim).

Afterwards: every attempt got a clean answer (success or a documented 409 code), each of the
1,000 tasks succeeded exactly once and has exactly one completion event by its winner, no task
row is duplicated, claims and releases each left one event, the version counters moved once
per engine step, and every case's projections match its stored state.
"""
import json
import multiprocessing
import os
import random
import signal
import time
from collections import Counter, defaultdict
from datetime import timedelta
from itertools import cycle
from multiprocessing.connection import wait
from threading import BrokenBarrierError

import pytest
from sqlalchemy import delete, func, select, text

from app.cases.doctor import examine
from app.cases.models import CaseEvent, CaseStatus, DisputeCase, HumanTask, TaskStatus, WorkflowState
from app.extensions import db
from app.org.models import RoleGrant, User
from app.org.services import grant_role, unit_by_code
from tests.conftest import CASE_TABLES, START, user
from tests.factories import failed, form_data
from tests.integration.test_scheduler import open_case

CASES = 250
WORKERS = 4
STEPS = (
    ("village_mediate", failed("village_mediate")),
    ("town_dispatch", form_data("town_dispatch")),
    ("town_mediate", form_data("town_mediate")),
    ("follow_up_visit", form_data("follow_up_visit")),
)
#: who works each step: the demo holder of the role, and a second holder of the same role
PRIMARY = {"village_mediate": "qx_fq_ds_village_mediator", "town_dispatch": "qx_fq_town_dispatcher",
           "town_mediate": "qx_fq_town_mediator", "follow_up_visit": "qx_fq_ds_g1_grid_worker"}
RIVAL = {"village_mediate": "pc_ds_village_mediator", "town_dispatch": "pc_fq_town_dispatcher",
         "town_mediate": "pc_fq_town_mediator", "follow_up_visit": "qx_fq_ds_g2_grid_worker"}
SECOND_HOLDERS = (("pc_ds_village_mediator", "village_mediator", "QX-FQ-DS"),
                  ("pc_fq_town_dispatcher", "town_dispatcher", "QX-FQ"),
                  ("pc_fq_town_mediator", "town_mediator", "QX-FQ"))
#: one case in ten of each kind; "same": one user on two processes, "rivals": two holders
MODES = ("solo", "same", "rivals", "claim", "solo", "same", "claim", "rivals", "crowd", "solo")
PAIRS = ((0, 1), (2, 3), (0, 2), (1, 3), (0, 3), (1, 2))
BARRIER_TIMEOUT = 90
WORKER_DEADLINE = 240


# ---------------------------------------------------------------------------------------------
# The worker process

def _worker(number, url, plan, barriers, ready, out_path, base_time):
    """Work through ``plan`` (this process's share, in the global case order) and write what
    every attempt answered to ``out_path``."""
    os.setpgrp()  # its own process group: the test kills the group (sandbox workers too) if it must
    import logging
    from datetime import datetime

    from app import clock, create_app
    from app.cases import services
    from app.config import TestConfig
    from app.errors import Conflict

    logging.disable(logging.INFO)  # one log line per notification is noise here
    started, base = time.monotonic(), datetime.fromisoformat(base_time)
    clock.set_clock(lambda: base + timedelta(seconds=time.monotonic() - started))
    jitter = random.Random(number)
    attempts = []
    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        ids = {name: id_ for name, id_ in db.session.execute(select(User.username, User.id).where(
            User.username.in_(set(PRIMARY.values()) | set(RIVAL.values()))))}

        def task_of(case_id, step, deadline=30.0):
            # The step's task appears when the previous step commits (in this process or another).
            until = time.monotonic() + deadline
            while True:
                task_id = db.session.scalar(select(HumanTask.id).where(
                    HumanTask.case_id == case_id, HumanTask.spec_name == step))
                db.session.rollback()
                if task_id is not None or time.monotonic() > until:
                    return task_id
                time.sleep(0.005)

        def attempt(action, case_id, step, username, task_id, data=None):
            actor = db.session.get(User, ids[username])
            began = time.time()
            try:
                if action == "complete":
                    services.complete_task(actor, task_id, data)
                elif action == "claim":
                    services.claim_task(actor, task_id)
                else:
                    services.release_task(actor, task_id)
                outcome, status = "ok", 200
            except Conflict as exc:
                outcome, status = exc.details.get("code", "conflict"), exc.status
            except Exception as exc:  # noqa: BLE001 - anything else is what the test looks for
                outcome, status = f"error {type(exc).__name__}: {exc}", 500
            finally:
                db.session.remove()
            attempts.append({"worker": number, "case": case_id, "step": step, "action": action,
                             "user": username, "task": task_id, "outcome": outcome, "status": status,
                             "began": began, "ended": time.time()})
            return outcome

        def complete_until_done(case_id, step, username, data, task_id):
            # A held task is retried (the holder may release it); anything else ends the step.
            for _ in range(500):
                outcome = attempt("complete", case_id, step, username, task_id, data)
                if outcome != "claimed_by_other":
                    return
                time.sleep(jitter.uniform(0.001, 0.004))

        def rendezvous(key):
            if key is not None:
                barriers[key].wait(BARRIER_TIMEOUT)

        # Warm up before the start line: parse the process spec, start the sandbox workers.
        services.load_instance(db.session.get(DisputeCase, plan[0]["case"])).snapshot()
        db.session.remove()
        ready.wait(BARRIER_TIMEOUT)
        try:
            for job in plan:
                case_id, role, sync = job["case"], job["role"], job["sync"]
                rendezvous(sync)
                for step, data in STEPS:
                    if role in ("primary", "rival"):
                        username = PRIMARY[step] if role == "primary" else RIVAL[step]
                        complete_until_done(case_id, step, username, data, task_of(case_id, step))
                    elif role == "completer":
                        task_id = task_of(case_id, step)
                        rendezvous(sync)  # the claimer holds the task now
                        attempt("complete", case_id, step, PRIMARY[step], task_id, data)
                        rendezvous(sync)  # ... and releases it after this
                        complete_until_done(case_id, step, PRIMARY[step], data, task_id)
                    else:  # claimer
                        task_id = task_of(case_id, step)
                        attempt("claim", case_id, step, RIVAL[step], task_id)
                        rendezvous(sync)
                        rendezvous(sync)
                        attempt("release", case_id, step, RIVAL[step], task_id)
                        # then race the completer's retry: claim again, release if that won
                        if attempt("claim", case_id, step, RIVAL[step], task_id) == "ok":
                            attempt("release", case_id, step, RIVAL[step], task_id)
        except BrokenBarrierError:
            attempts.append({"worker": number, "outcome": "error: a partner process did not arrive",
                             "action": "rendezvous"})
            for barrier in barriers.values():
                barrier.abort()  # let the other processes fail fast instead of waiting too
    with open(out_path, "w") as out:
        json.dump(attempts, out)


# ---------------------------------------------------------------------------------------------
# The test

def _plan(cases):
    """Each worker's jobs in the global case order; a job's ``sync`` names the barrier its
    participants meet at (deadlock-free: everyone meets in the same order)."""
    plans = [[] for _ in range(WORKERS)]
    kinds, pairs = {}, cycle(PAIRS)
    for n, case_id in enumerate(cases):
        mode = kinds[case_id] = MODES[n % len(MODES)]
        if mode == "solo":
            plans[n % WORKERS].append({"case": case_id, "role": "primary", "sync": None})
            continue
        if mode == "crowd":
            for w in range(WORKERS):
                plans[w].append({"case": case_id, "role": "primary" if w % 2 == 0 else "rival", "sync": "all"})
            continue
        a, b = next(pairs)
        key = f"{a}-{b}"
        roles = {"same": ("primary", "primary"), "rivals": ("primary", "rival"),
                 "claim": ("completer", "claimer")}[mode]
        plans[a].append({"case": case_id, "role": roles[0], "sync": key})
        plans[b].append({"case": case_id, "role": roles[1], "sync": key})
    return plans, kinds


def _stop(process):
    """Kill a worker and its process group (sandbox workers, fork server) unless already gone."""
    if process.pid is None:
        return
    if process.exitcode is None:
        process.kill()
    process.join(10)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture
def second_holders(pg_app):
    """A second holder of the village mediator, town dispatcher and town mediator roles, removed
    afterwards (other tests count candidates); the case tables go first, they refer to them."""
    template = user("qx_fq_ds_village_mediator")
    for username, role, code in SECOND_HOLDERS:
        person = User(username=username, display_name=f"第二{role}", password_hash=template.password_hash)
        db.session.add(person)
        grant_role(person, role, unit_by_code(code))
    db.session.commit()
    yield
    db.session.rollback()
    db.session.execute(text(f"TRUNCATE {', '.join(CASE_TABLES)} RESTART IDENTITY CASCADE"))
    ids = select(User.id).where(User.username.in_([name for name, _, _ in SECOND_HOLDERS]))
    db.session.execute(delete(RoleGrant).where(RoleGrant.user_id.in_(ids)))
    db.session.execute(delete(User).where(User.id.in_(ids)))
    db.session.commit()


@pytest.mark.postgres
def test_four_processes_complete_1000_tasks_and_every_case_stays_consistent(pg_app, fake_clock, second_holders,
                                                                            tmp_path):
    cases = [open_case().id for _ in range(CASES)]
    before = dict(db.session.execute(select(DisputeCase.id, DisputeCase.lock_version)
                                     .where(DisputeCase.id.in_(cases))).all())
    plans, kinds = _plan(cases)
    url = pg_app.config["SQLALCHEMY_DATABASE_URI"]
    db.session.remove()

    context = multiprocessing.get_context("spawn")
    barriers = {f"{a}-{b}": context.Barrier(2) for a, b in PAIRS} | {"all": context.Barrier(WORKERS)}
    ready = context.Barrier(WORKERS)
    outputs = [tmp_path / f"worker-{n}.json" for n in range(WORKERS)]
    base_time = (START + timedelta(hours=1)).isoformat()
    workers = [context.Process(target=_worker, name=f"completer-{n}",
                               args=(n, url, plans[n], barriers, ready, str(outputs[n]), base_time))
               for n in range(WORKERS)]
    try:
        for process in workers:
            process.start()
        deadline = time.monotonic() + WORKER_DEADLINE
        running = list(workers)
        while running and time.monotonic() < deadline:
            for sentinel in wait([p.sentinel for p in running], timeout=deadline - time.monotonic()):
                process = next(p for p in running if p.sentinel == sentinel)
                running.remove(process)
                process.join()
                if process.exitcode != 0:  # its partners would wait for it at a barrier: free them
                    for barrier in [ready, *barriers.values()]:
                        barrier.abort()
        assert all(process.exitcode == 0 for process in workers), [p.exitcode for p in workers]
    finally:
        for process in workers:
            _stop(process)

    attempts = [entry for path in outputs for entry in json.loads(path.read_text())]
    answers = Counter((a["action"], a["outcome"]) for a in attempts)
    allowed = {("complete", "ok"), ("complete", "already_completed"), ("complete", "claimed_by_other"),
               ("claim", "ok"), ("claim", "already_completed"), ("release", "ok")}
    assert set(answers) <= allowed, answers
    assert all(a["status"] == (200 if a["outcome"] == "ok" else 409) for a in attempts)

    # Exactly one completion per task succeeded, and every task of every case was completed.
    tasks = {(a["case"], a["step"]): a["task"] for a in attempts}
    wins = defaultdict(list)
    for a in attempts:
        if a["action"] == "complete" and a["outcome"] == "ok":
            wins[a["task"]].append(a["user"])
    assert len(tasks) == CASES * len(STEPS) == len(set(tasks.values()))
    assert set(wins) == set(tasks.values()) and all(len(users) == 1 for users in wins.values()), \
        [t for t, users in wins.items() if len(users) != 1]
    assert answers["complete", "ok"] == CASES * len(STEPS) == 1000

    # The collisions happened as arranged: every losing submitter of a duel or crowd was told
    # the task was already completed; the completer of a claimed task was told who held it.
    per_case = Counter(kinds.values())
    losers = (per_case["same"] + per_case["rivals"]) * 1 + per_case["crowd"] * (WORKERS - 1)
    assert answers["complete", "already_completed"] == losers * len(STEPS)
    held = [a for a in attempts if a["outcome"] == "claimed_by_other"]
    assert len(held) >= per_case["claim"] * len(STEPS) and {kinds[a["case"]] for a in held} == {"claim"}
    assert answers["release", "ok"] == answers["claim", "ok"] >= per_case["claim"] * len(STEPS)

    # The database: one row per task, completed by the one who won, with one completion event.
    rows = db.session.execute(select(HumanTask.id, HumanTask.case_id, HumanTask.spec_name, HumanTask.task_id,
                                     HumanTask.status, HumanTask.completed_by_id, HumanTask.assignee_id)
                              .where(HumanTask.case_id.in_(cases))).all()
    assert Counter((r.case_id, r.spec_name) for r in rows).most_common(1)[0][1] == 1, "no duplicate task rows"
    assert len(rows) == CASES * (1 + len(STEPS)) and {r.status for r in rows} == {TaskStatus.completed}
    usernames = dict(db.session.execute(select(User.id, User.username)).all())
    by_row = {r.id: r for r in rows}
    assert all(usernames[by_row[task].completed_by_id] == users[0] for task, users in wins.items())
    assert all(by_row[task].assignee_id == by_row[task].completed_by_id for task in wins)
    completion_events = db.session.execute(select(CaseEvent.case_id, CaseEvent.task_id, CaseEvent.actor_id)
                                           .where(CaseEvent.kind == "task_completed",
                                                  CaseEvent.case_id.in_(cases))).all()
    assert Counter((e.case_id, e.task_id) for e in completion_events) == Counter((r.case_id, r.task_id) for r in rows)
    engine_ids = {r.id: r.task_id for r in rows}
    actors = {(e.case_id, e.task_id): e.actor_id for e in completion_events}
    assert all(actors[by_row[task].case_id, engine_ids[task]] == by_row[task].completed_by_id for task in wins)

    # Claims and releases each left one event, on the cases where they happened.
    claims = Counter(a["case"] for a in attempts if a["action"] == "claim" and a["outcome"] == "ok")
    for kind in ("task_claimed", "task_released"):
        logged = Counter(db.session.scalars(select(CaseEvent.case_id).where(CaseEvent.kind == kind)))
        assert logged == claims, kind

    # Every case closed at the town; its state was written once per engine step (start, intake
    # and the four steps), its change counter moved once per transaction that changed it (those
    # steps, each claim and each release), and its projections match its stored state.
    final = db.session.execute(select(DisputeCase.id, DisputeCase.status, DisputeCase.outcome,
                                      DisputeCase.resolved_tier, DisputeCase.lock_version, WorkflowState.row_version)
                               .join(WorkflowState, WorkflowState.case_id == DisputeCase.id)
                               .where(DisputeCase.id.in_(cases))).all()
    assert {(c.status, c.outcome, c.resolved_tier) for c in final} == {(CaseStatus.closed, "resolved", "town")}
    steps_per_case = Counter(e.case_id for e in completion_events)
    assert all(c.row_version == 2 + steps_per_case[c.id] for c in final), "one state write per engine step"
    assert all(c.lock_version == before[c.id] + len(STEPS) + 2 * claims[c.id] for c in final)
    assert db.session.scalar(select(func.count()).select_from(CaseEvent).where(
        CaseEvent.kind == "closed", CaseEvent.case_id.in_(cases))) == CASES
    assert examine(cases) == [], "every case's projections match its stored state"
