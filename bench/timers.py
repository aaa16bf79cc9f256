"""Timer benchmark: firing lag (due → fired) and burst throughput.

    .venv/bin/python bench/timers.py                 # SQLite, 10,000-timer burst, 200 lag timers
    .venv/bin/python bench/timers.py --quick         # 1,000 and 60: under a minute
    .venv/bin/python bench/timers.py --pg            # the same on the local PostgreSQL

Burst: one case is opened and registered through the real services; its engine state and
projections are then copied to N/2 cases in bulk (each waits at the village with a reminder and a
time limit), the clock jumps past both, and ``fire_due_timers`` fires all N. Every firing loads
the case's workflow, runs the engine, saves state and rewrites projections and events.

Lag: a real TimerScheduler runs while cases arrive whose reminders fall due 5-32 s after
registration on the real clock; lag = fired_at - due_at as recorded per timer.

Figures go to stdout and bench/results/timers-<backend>.json (``--tag burst10k``: timers-<backend>-burst10k.json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
from sqlalchemy import func, insert, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import clock, create_app  # noqa: E402
from app.cases import services  # noqa: E402
from app.cases.models import CaseEvent, DisputeCase, HumanTask, Timer, WorkflowState  # noqa: E402
from app.config import Config  # noqa: E402
from app.extensions import db  # noqa: E402
from app.org.models import OrgUnit, User  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def prepare_app(url):
    from flask_migrate import upgrade

    from app.cli import deploy_default_workflows
    from app.org.demo import seed_demo
    from app.scheduling.services import import_shipped_calendars

    app = create_app(Config, SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        upgrade()
        deploy_default_workflows()
        import_shipped_calendars()
        seed_demo()
    return app


def open_registered_case(overrides=None):
    from tests.factories import form_data

    clerk = db.session.scalar(select(User).where(User.username == "qx_fq_ds_intake_clerk"))
    unit = db.session.scalar(select(OrgUnit).where(OrgUnit.code == "QX-FQ-DS"))
    case = services.start_case(clerk, services.NewCase(
        title="基准测试纠纷", category="neighbour", description="bench", org_unit_id=unit.id,
        time_limit_overrides=overrides))
    task = db.session.scalar(select(HumanTask).where(HumanTask.case_id == case.id, HumanTask.status == "ready"))
    services.complete_task(clerk, task.id, form_data("intake_register"))
    return case.id


def clone_case(template_id, copies, batch=1000):
    """Copy one case's row, state and projections ``copies`` times with bulk inserts."""
    case = db.session.get(DisputeCase, template_id)
    state = db.session.get(WorkflowState, template_id)
    tasks = db.session.scalars(select(HumanTask).where(HumanTask.case_id == template_id)).all()
    timers = db.session.scalars(select(Timer).where(Timer.case_id == template_id)).all()
    columns = [c.key for c in DisputeCase.__table__.columns if c.key != "id"]
    base = {key: getattr(case, key) for key in columns}
    next_id = (db.session.scalar(select(func.max(DisputeCase.id))) or 0) + 1
    for start in range(0, copies, batch):
        ids = range(next_id + start, next_id + min(copies, start + batch))
        db.session.execute(insert(DisputeCase), [{**base, "id": i, "number": f"BENCH{i:08d}"} for i in ids])
        db.session.execute(insert(WorkflowState), [
            {"case_id": i, "serializer_version": state.serializer_version, "state": state.state, "row_version": 1}
            for i in ids])
        db.session.execute(insert(HumanTask), [
            {c.key: getattr(t, c.key) for c in HumanTask.__table__.columns if c.key != "id"} | {"case_id": i}
            for i in ids for t in tasks])
        db.session.execute(insert(Timer), [
            {c.key: getattr(t, c.key) for c in Timer.__table__.columns if c.key != "id"} | {"case_id": i}
            for i in ids for t in timers])
        db.session.commit()
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("SELECT setval(pg_get_serial_sequence('dispute_case', 'id'), "
                                "(SELECT max(id) FROM dispute_case))"))
        db.session.commit()


def burst(app, timers):
    with app.app_context():
        start = clock.now()
        template = open_registered_case()
        clone_case(template, timers // 2 - 1)
        due = db.session.scalar(select(func.count()).select_from(Timer).where(Timer.status == "pending"))
        db.session.remove()
        t0 = time.perf_counter()
        fired = services.fire_due_timers(now=start + timedelta(days=40), limit=timers * 2)
        elapsed = time.perf_counter() - t0
        escalated = db.session.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.kind == "escalated"))
    return {"timers_due": due, "fired": fired, "seconds": round(elapsed, 2),
            "timers_per_second": round(fired / elapsed, 1), "cases_escalated": escalated}


def lag(app, count, sweep_seconds=2.0):
    """Cases arrive while the scheduler runs (as in production); each reminder is due 5-32 s
    after its case was registered, so every timer is planned by a sweep before it falls due."""
    from app.scheduling.scheduler import TimerScheduler

    scheduler = TimerScheduler(app, sweep_seconds=sweep_seconds)
    scheduler.start()
    try:
        with app.app_context():
            ids = [open_registered_case({"village_reminder": f"PT{5 + (i * 27) // max(1, count - 1)}S"})
                   for i in range(count)]
            db.session.remove()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with app.app_context():
                fired = db.session.scalar(select(func.count()).select_from(Timer).where(
                    Timer.case_id.in_(ids), Timer.spec_name == "village_reminder", Timer.status == "fired"))
                db.session.remove()
            if fired == count:
                break
            time.sleep(0.5)
    finally:
        scheduler.shutdown()
    with app.app_context():
        lags = db.session.scalars(select(Timer.lag_ms).where(
            Timer.case_id.in_(ids), Timer.spec_name == "village_reminder", Timer.status == "fired")).all()
    return {"timers": count, "fired": len(lags), "sweep_seconds": sweep_seconds,
            "lag_ms_p50": percentile(lags, 0.5) if lags else None,
            "lag_ms_p99": percentile(lags, 0.99) if lags else None,
            "lag_ms_max": max(lags) if lags else None,
            "lag_ms_mean": round(statistics.fmean(lags), 1) if lags else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pg", action="store_true", help="use the local PostgreSQL (creates and drops a database)")
    parser.add_argument("--timers", type=int, default=None)
    parser.add_argument("--tag", default="", help="suffix for the results file (timers-<backend>-<tag>.json)")
    args = parser.parse_args()
    burst_timers = args.timers or (1000 if args.quick else 10_000)
    lag_timers = 60 if args.quick else 200

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"tiaojie_bench_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        if args.pg:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url_for = lambda: f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"  # noqa: E731
        else:
            url_for = lambda: f"sqlite:///{tmp}/bench.sqlite3"  # noqa: E731
        try:
            app = prepare_app(url_for())
            print(f"burst: {burst_timers} due timers ...", flush=True)
            burst_result = burst(app, burst_timers)
            print(f"  fired {burst_result['fired']} in {burst_result['seconds']} s: "
                  f"{burst_result['timers_per_second']} timers/s", flush=True)
            print(f"lag: {lag_timers} timers due 5-32 s after their case arrives, real clock ...", flush=True)
            lag_result = lag(app, lag_timers)
            print(f"  p50 {lag_result['lag_ms_p50']} ms, p99 {lag_result['lag_ms_p99']} ms, "
                  f"max {lag_result['lag_ms_max']} ms", flush=True)
            with app.app_context():
                db.engine.dispose()
        finally:
            if args.pg:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    backend = "postgresql" if args.pg else "sqlite"
    report = {
        "benchmark": "timers", "backend": backend, "quick": args.quick,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "burst": burst_result, "lag": lag_result,
        "targets": {"lag_p99_le_1000ms": lag_result["lag_ms_p99"] is not None and lag_result["lag_ms_p99"] <= 1000,
                    "burst_ge_400_per_s": burst_result["timers_per_second"] >= 400},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = f"-{args.tag}" if args.tag else "-quick" if args.quick else ""
    out = RESULTS / f"timers-{backend}{suffix}.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"targets: {report['targets']}  → {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
