"""The issue-7 scenarios, each a function over a prepared bench database (see bench/run.py).

* queries: inbox (service and GET /api/v1/tasks), supervisor case list with filters, dashboard;
* footprint: retained memory per loaded instance (tracemalloc), stored bytes per open/closed case;
* http_completion: village mediations completed through gunicorn, 1 and 4 clients;
* bare_ceiling: the same step done by bare SpiffWorkflow on its stock JSON, one SQLite write each;
* lifecycle: intake → village → town → county → court, every step an HTTP call;
* profile_completion: where one completion's time goes (cProfile, in process).
"""
from __future__ import annotations

import cProfile
import gc
import http.client
import io
import json
import os
import pstats
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import LargeBinary, select, text, type_coerce

from bench.common import ROOT, Progress, percentile, summary_ms
from bench.datagen import add_open_cases

MEDIATOR = "qx_fq_ds_village_mediator"
SUPERVISOR = "qx_supervisor"
PASSWORD = "demo12345"


def _timed(fn, runs: int) -> dict:
    fn()  # warm-up: caches, plans, connections
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return summary_ms(times)


def _report(name: str, figures: dict) -> dict:
    print(f"  {name:<60} p50 {figures['p50_ms']:>8.2f} ms  p95 {figures['p95_ms']:>8.2f} ms", flush=True)
    return figures


# ---------------------------------------------------------------------------------------------
# Queries at scale

def queries(app, runs: int = 30) -> dict:
    from app.cases import queries as case_queries
    from app.extensions import db
    from app.org.models import OrgUnit, User
    from app.org.services import create_api_token
    from app.supervision import queries as sv
    from app.supervision.queries import CaseFilters

    figures = {}
    now = datetime.now(UTC)
    with app.app_context():
        def user(name):
            return db.session.scalar(select(User).where(User.username == name))

        users = {name: user(name) for name in (MEDIATOR, "qx_fq_town_mediator", "qx_county_center")}
        county = db.session.scalar(select(OrgUnit).where(OrgUnit.code == "QX"))
        paths = [county.path]
        token = create_api_token(users[MEDIATOR], "bench")
        db.session.commit()
        sizes = {}
        for name, actor in users.items():
            page = case_queries.inbox(actor)
            sizes[name] = page.total
            figures[f"inbox service: {name} ({page.total} tasks)"] = _report(
                f"inbox service {name} ({page.total})",
                _timed(lambda actor=actor: (case_queries.inbox(actor), db.session.rollback()), runs))
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}

        def get_inbox():
            response = client.get("/api/v1/tasks", headers=headers)
            assert response.status_code == 200, response.status_code

        figures["GET /api/v1/tasks (village mediator)"] = _report("GET /api/v1/tasks (village mediator)",
                                                                  _timed(get_inbox, runs))
        filters = {
            "case list: county, all, page 1": CaseFilters(),
            "case list: county, open, village tier": CaseFilters(status="open", tier="village"),
            "case list: county, category labour": CaseFilters(category="labour"),
            "case list: county, overdue": CaseFilters(overdue=True),
            "case list: county, closed last 30 days": CaseFilters(
                status="closed", closed_from=sv.default_period(now).start),
        }
        for name, flt in filters.items():
            figures[name] = _report(name, _timed(
                lambda flt=flt: (sv.list_cases(paths, flt, now), db.session.rollback()), runs))
        period = sv.default_period(now)
        figures["dashboard: county, 30 days"] = _report("dashboard: county, 30 days", _timed(
            lambda: (sv.dashboard(county, period, now), db.session.rollback()), max(5, runs // 3)))
        db.session.remove()
    figures["_inbox_sizes"] = sizes
    return figures


def explain_inbox(app, username: str = MEDIATOR) -> str:
    """EXPLAIN ANALYZE of every statement one user's inbox sends (PostgreSQL).

    The statements are taken from the cursor as the inbox runs them, so the plans are those of
    the SQL actually sent, whatever shape the query code builds them in.
    """
    from sqlalchemy import event

    from app.cases import queries as case_queries
    from app.extensions import db
    from app.org.models import User

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            return ""
        actor = db.session.scalar(select(User).where(User.username == username))
        sent: list[tuple[str, object]] = []

        def capture(conn, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith("SELECT"):
                sent.append((statement, parameters))

        event.listen(db.engine, "before_cursor_execute", capture)
        try:
            case_queries.inbox(actor)
        finally:
            event.remove(db.engine, "before_cursor_execute", capture)
        out = []
        for number, (statement, parameters) in enumerate(sent, 1):
            plan = db.session.connection().exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters).scalars().all()
            out.append(f"-- statement {number}\n{statement}\n" + "\n".join(plan))
        db.session.remove()
    return "\n\n".join(out)


# ---------------------------------------------------------------------------------------------
# Footprint

def _stored_length(value) -> int:
    if isinstance(value, bytes | memoryview):
        return len(value)
    return len((json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)).encode())


def footprint(app, sample: int = 200) -> dict:
    from app import engine
    from app.cases import services
    from app.cases.models import CaseEvent, DisputeCase, HumanTask, Timer, WorkflowState
    from app.database import CompressedText
    from app.extensions import db
    from app.processes import services as processes
    from app.processes.models import ProcessVersion

    result = {}
    with app.app_context():
        pg = db.engine.dialect.name == "postgresql"
        version = db.session.scalar(select(ProcessVersion).order_by(ProcessVersion.id.desc()))
        parsed = processes.parsed_process(version)
        script_engine = services._script_engine()
        tables = [(DisputeCase.__table__, "id"), (WorkflowState.__table__, "case_id"), (HumanTask.__table__, "case_id"),
                  (Timer.__table__, "case_id"), (CaseEvent.__table__, "case_id")]
        for status_name, condition in (("open", DisputeCase.status != "closed"), ("closed", DisputeCase.status == "closed")):
            every = list(db.session.scalars(select(DisputeCase.id).where(condition).order_by(DisputeCase.id)))
            ids = every[::max(1, len(every) // sample)][:sample]  # spread evenly over the whole load
            if not ids:
                continue
            states = list(db.session.scalars(select(WorkflowState.state).where(WorkflowState.case_id.in_(ids))))
            # memory retained per loaded instance
            engine.Instance.load(parsed, states[0], script_engine)  # warm the caches
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            kept = [engine.Instance.load(parsed, s, script_engine) for s in states]
            gc.collect()
            retained = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
            del kept
            # stored bytes: every column's text as stored, and on PostgreSQL the on-disk row size
            per_table = {}
            for table, key in tables:
                # compressed columns as stored (bytes), not as the model hands them back
                columns = [type_coerce(c, LargeBinary).label(c.name) if isinstance(c.type, CompressedText) else c
                           for c in table.columns]
                rows = db.session.execute(select(*columns).where(table.c[key].in_(ids))).all()
                per_table[table.name] = sum(_stored_length(v) for row in rows for v in row if v is not None) / len(ids)
            figures = {
                "cases_sampled": len(ids),
                "retained_kib_per_instance": round(retained / len(states) / 1024, 1),
                "state_bytes_mean": round(sum(len(s.encode()) for s in states) / len(states)),
                "stored_bytes_per_case": round(sum(per_table.values())),
                "stored_bytes_by_table": {k: round(v) for k, v in per_table.items()},
            }
            if pg:
                disk = {}
                for table, key in tables:
                    disk[table.name] = db.session.scalar(text(
                        f"SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM {table.name} t WHERE t.{key} = ANY(:ids)"),
                        {"ids": ids}) / len(ids)
                figures["pg_row_bytes_per_case"] = round(sum(disk.values()))
                figures["pg_row_bytes_by_table"] = {k: round(v) for k, v in disk.items()}
            result[status_name] = figures
            print(f"  {status_name}: {figures['retained_kib_per_instance']} KiB retained per loaded instance, "
                  f"{figures['stored_bytes_per_case']:,} B stored per case"
                  + (f" ({figures['pg_row_bytes_per_case']:,} B on disk in PostgreSQL rows)" if pg else ""), flush=True)
        db.session.remove()
    return result


# ---------------------------------------------------------------------------------------------
# HTTP against gunicorn

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    def __init__(self, url: str, workers: int = 4):
        self.port = free_port()
        env = {**os.environ, "DATABASE_URL": url, "FLASK_APP": "wsgi.py", "SECRET_KEY": "bench"}
        command = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{self.port}",
                   "--log-level", "warning", "wsgi:app"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.request("GET", "/api/v1/openapi.json")
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        self.spy = None
        if os.environ.get("BENCH_PYSPY"):
            # sample the workers (collapsed stacks): a profile without cProfile's overhead
            self.spy = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "py-spy"), "record", "--pid", str(self.process.pid), "--subprocesses",
                 "--format", "raw", "--rate", "250", "-o", os.environ["BENCH_PYSPY"]],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)

    def request(self, method, path, body=None, token=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, (json.loads(data) if data else None)
        finally:
            conn.close()

    def token(self, username):
        status, body = self.request("POST", "/api/v1/tokens", {"username": username, "password": PASSWORD,
                                                               "name": "bench"})
        assert status == 201, (status, body)
        return body["token"]

    def stop(self):
        if self.spy is not None:
            self.spy.send_signal(signal.SIGINT)
            self.spy.wait(30)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def work_set(app, templates, units, count: int) -> list[tuple[int, str]]:
    """``count`` fresh cases waiting at 东山村's village mediation: (human_task id, engine task id)."""
    from app.cases.models import HumanTask
    from app.extensions import db

    with app.app_context():
        ids = add_open_cases(templates, units, "open_village", count)
        rows = db.session.execute(select(HumanTask.id, HumanTask.task_id).where(
            HumanTask.case_id.in_(ids), HumanTask.spec_name == "village_mediate", HumanTask.status == "ready")).all()
        db.session.remove()
    return [(r[0], r[1]) for r in rows]


def warm_workers(server: Gunicorn, tasks: list[int], clients: int = 4) -> None:
    """Complete a few tasks concurrently so every gunicorn worker has its spec cache, its database
    connections and its script workers before the clock starts (the bare side is warm too)."""
    from tests.factories import form_data

    token = server.token(MEDIATOR)
    body = {"data": form_data("village_mediate")}
    threads = [threading.Thread(target=lambda chunk: [server.request("POST", f"/api/v1/tasks/{t}/complete", body, token)
                                                      for t in chunk], args=(tasks[i::clients],))
               for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def http_completion(server: Gunicorn, tasks: list[int], clients: int) -> dict:
    from tests.factories import form_data

    token = server.token(MEDIATOR)
    body = {"data": form_data("village_mediate")}
    latencies, statuses, lock = [], {}, threading.Lock()
    bar = Progress(len(tasks), f"completions, {clients} client(s)")

    def run(chunk):
        for task_id in chunk:
            started = time.perf_counter()
            status, _ = server.request("POST", f"/api/v1/tasks/{task_id}/complete", body, token)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
                bar.update()

    threads = [threading.Thread(target=run, args=(tasks[i::clients],)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    bar.close()
    figures = {"clients": clients, "completions": len(tasks), "statuses": statuses, "seconds": round(wall, 2),
               "per_second": round(statuses.get(200, 0) / wall, 1), **summary_ms(latencies),
               "latencies_s": latencies}
    print(f"  HTTP {clients} client(s): {figures['per_second']} completions/s, p50 {figures['p50_ms']} ms, "
          f"p95 {figures['p95_ms']} ms, statuses {statuses}", flush=True)
    return figures


# ---------------------------------------------------------------------------------------------
# The bare-engine ceiling

def bare_ceiling(app, rounds: int) -> dict:
    """Stock SpiffWorkflow: deserialize the JSON with its spec, complete, serialize, one SQLite write."""
    from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment
    from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
    from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
    from SpiffWorkflow.util.task import TaskState

    from app.cases.models import DisputeCase, HumanTask, WorkflowState
    from app.engine.runtime import _StateOnlyConverter
    from app.extensions import db
    from app.processes import services as processes
    from app.scheduling import calendar
    from tests.factories import form_data

    stock = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))
    state_only = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure({**SPIFF_CONFIG, BpmnWorkflow: _StateOnlyConverter}))
    with app.app_context():
        # a case waiting at the village mediation, as the product stored it
        task = db.session.scalar(select(HumanTask).join(DisputeCase, DisputeCase.id == HumanTask.case_id).where(
            HumanTask.spec_name == "village_mediate", HumanTask.status == "ready").order_by(HumanTask.id.desc()))
        case = db.session.get(DisputeCase, task.case_id)
        state = db.session.get(WorkflowState, case.id).state
        # the product's state restored onto the library's own classes, written out as stock JSON
        parsed = processes.parsed_process(case.process_version)
        dct = json.loads(state)
        state_only.migrate(dct)
        blob = stock.serialize_json(state_only.from_dict(dct, spec=parsed.spec, subprocess_specs=parsed.subprocess_specs))
        task_uuid = UUID(task.task_id)
        # the stock engine with the diagrams' one domain helper (timer expressions call it)
        bare_engine = PythonScriptEngine(environment=TaskDataEnvironment({"duration_of": calendar.duration_of}))
        data = form_data("village_mediate")
        with tempfile.TemporaryDirectory() as tmp:
            conn = sqlite3.connect(os.path.join(tmp, "bare.sqlite3"), isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE workflow (id INTEGER PRIMARY KEY, state TEXT NOT NULL)")
            conn.executemany("INSERT INTO workflow VALUES (?, ?)", [(i, blob) for i in range(rounds)])
            times, sizes = [], []
            bar = Progress(rounds, "bare SpiffWorkflow round trips")
            started = time.perf_counter()
            for i in range(rounds):
                t0 = time.perf_counter()
                workflow = stock.deserialize_json(blob)
                workflow.script_engine = bare_engine
                ready = workflow.get_task_from_id(task_uuid)
                assert ready.state == TaskState.READY
                ready.data.update(data)
                ready.run()
                workflow.do_engine_steps()
                out = stock.serialize_json(workflow)
                conn.execute("BEGIN")
                conn.execute("UPDATE workflow SET state = ? WHERE id = ?", (out, i))
                conn.execute("COMMIT")
                times.append(time.perf_counter() - t0)
                sizes.append(len(out))
                bar.update()
            wall = time.perf_counter() - started
            bar.close()
            conn.close()
        db.session.remove()
    figures = {"rounds": rounds, "seconds": round(wall, 2), "per_second": round(rounds / wall, 1),
               "stock_json_bytes_before": len(blob), "stock_json_bytes_after": sizes[0],
               "product_state_bytes_before": len(state), **summary_ms(times), "latencies_s": times}
    print(f"  bare SpiffWorkflow: {figures['per_second']} round trips/s, p50 {figures['p50_ms']} ms "
          f"(stock JSON {len(blob):,} B vs product state {len(state):,} B)", flush=True)
    return figures


def in_turns(server: Gunicorn, app, tasks: list[int], turns: int) -> tuple[dict, dict]:
    """One client and the bare loop, taking turns on equal shares of ``tasks``.

    The machine's speed drifts by tens of percent within minutes; measured one after the other,
    the two sides of the ratio met different machines. In turns, a drift falls on both.
    """
    one, bare = [], []
    for turn in range(turns):
        share = tasks[turn::turns]
        one.append(http_completion(server, share, 1))
        bare.append(bare_ceiling(app, len(share)))
    return _merged(one), _merged(bare)


def _merged(parts: list[dict]) -> dict:
    """The turns' figures as one run: every latency, the summed time, the first turn's other figures."""
    latencies = [t for part in parts for t in part.pop("latencies_s")]
    seconds = sum(part["seconds"] for part in parts)
    done = sum(part["statuses"].get(200, 0) if "statuses" in part else part["rounds"] for part in parts)
    merged = {**parts[0], "turns": len(parts), "seconds": round(seconds, 2),
              "per_second": round(done / seconds, 1), "per_turn_per_second": [part["per_second"] for part in parts],
              **summary_ms(latencies)}
    if "statuses" in parts[0]:
        merged["completions"] = sum(part["completions"] for part in parts)
        merged["statuses"] = {code: sum(part["statuses"].get(code, 0) for part in parts)
                              for code in {code for part in parts for code in part["statuses"]}}
    else:
        merged["rounds"] = done
    return merged


# ---------------------------------------------------------------------------------------------
# Full lifecycle through HTTP

LIFECYCLE = [
    ("intake_register", "qx_fq_ds_intake_clerk", "ok"), ("village_mediate", MEDIATOR, "fail"),
    ("town_dispatch", "qx_fq_town_dispatcher", "ok"), ("town_mediate", "qx_fq_town_mediator", "fail"),
    ("county_accept", "qx_county_center", "ok"), ("consult_justice", "qx_county_justice", "ok"),
    ("consult_petition", "qx_county_petition", "ok"), ("county_mediate", "qx_county_center", "fail"),
    ("court_premediation", "qx_court_clerk", "ok"), ("court_filing", "qx_court_clerk", "ok"),
    ("court_ruling", "qx_court_clerk", "ok"),
]


def lifecycle(app, server: Gunicorn, cases: int) -> dict:
    from app.extensions import db
    from app.org.models import OrgUnit
    from tests.factories import failed, form_data

    with app.app_context():
        unit_id = db.session.scalar(select(OrgUnit.id).where(OrgUnit.code == "QX-FQ-DS"))
        db.session.remove()
    tokens = {name: server.token(name) for name in {u for _, u, _ in LIFECYCLE} | {SUPERVISOR}}
    intake = form_data("intake_register")
    new = {key: intake[key] for key in ("title", "category", "description", "channel", "parties")}
    new["org_unit_id"] = unit_id
    requests_made, step_times = 0, []
    bar = Progress(cases, "lifecycle cases")
    started = time.perf_counter()
    for _ in range(cases):
        status, case = server.request("POST", "/api/v1/disputes", new, tokens["qx_fq_ds_intake_clerk"])
        assert status == 201, (status, case)
        requests_made += 1
        for spec_name, username, result in LIFECYCLE:
            status, detail = server.request("GET", f"/api/v1/disputes/{case['id']}", token=tokens[SUPERVISOR])
            assert status == 200, (status, detail)
            task = next(t for t in detail["open_tasks"] if t["spec_name"] == spec_name)
            data = form_data(spec_name) if result == "ok" else failed(spec_name)
            t0 = time.perf_counter()
            status, body = server.request("POST", f"/api/v1/tasks/{task['id']}/complete", {"data": data}, tokens[username])
            step_times.append(time.perf_counter() - t0)
            assert status == 200, (spec_name, status, body)
            requests_made += 2
        status, detail = server.request("GET", f"/api/v1/disputes/{case['id']}", token=tokens[SUPERVISOR])
        assert detail["status"] == "closed" and detail["outcome"] == "litigated", detail["status"]
        requests_made += 1
        bar.update()
    wall = time.perf_counter() - started
    bar.close()
    figures = {"cases": cases, "seconds": round(wall, 2), "cases_per_second": round(cases / wall, 2),
               "requests": requests_made, "requests_per_case": requests_made // cases,
               "completion_step": summary_ms(step_times)}
    print(f"  lifecycle intake→court over HTTP: {figures['cases_per_second']} cases/s "
          f"({figures['requests_per_case']} requests each: create, 11 × (read case + complete), final read)", flush=True)
    return figures


# ---------------------------------------------------------------------------------------------
# Where a completion's time goes

def profile_completion(app, tasks: list[int], top: int = 30) -> dict:
    """cProfile over in-process POST /api/v1/tasks/<id>/complete (Flask test client, no network)."""
    from app.extensions import db
    from app.org.models import User
    from app.org.services import create_api_token
    from tests.factories import form_data

    with app.app_context():
        token = create_api_token(db.session.scalar(select(User).where(User.username == MEDIATOR)), "profile")
        db.session.commit()
        db.session.remove()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    body = {"data": form_data("village_mediate")}
    first, rest = tasks[0], tasks[1:]
    assert client.post(f"/api/v1/tasks/{first}/complete", json=body, headers=headers).status_code == 200
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for task_id in rest:
        response = client.post(f"/api/v1/tasks/{task_id}/complete", json=body, headers=headers)
        assert response.status_code == 200, response.json
    profiler.disable()
    wall = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(top)
    per = len(rest)

    def cum(fragment_file, name):
        total = 0.0
        for (filename, _line, function), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
            if function == name and fragment_file in filename:
                total = max(total, ct)
        return round(total / per * 1000, 2)

    breakdown = {
        "whole request (profiled)": round(wall / per * 1000, 2),
        "services.complete_task": cum("app/cases/services.py", "complete_task"),
        "  validate_form (jsonschema)": cum("app/cases/services.py", "validate_form"),
        "  _completed_step (before the lock)": cum("app/cases/services.py", "_completed_step"),
        "    _load (json + from_dict onto cached spec)": cum("app/cases/services.py", "_load"),
        "    Instance.complete (engine run)": cum("app/engine/runtime.py", "complete"),
        "    Instance.dump (serialize)": cum("app/engine/runtime.py", "dump"),
        "    Instance.snapshot": cum("app/engine/runtime.py", "snapshot"),
        "  _rows_of (the case's tasks and timers, before the lock)": cum("app/cases/services.py", "_rows_of"),
        "  lock_case_changes (the lock; reads the change counter)": cum("app/cases/services.py", "lock_case_changes"),
        "  _save_and_project (projections)": cum("app/cases/services.py", "_save_and_project"),
        "    _project_tasks": cum("app/cases/services.py", "_project_tasks"),
        "    _project_timers": cum("app/cases/services.py", "_project_timers"),
        "    _notify": cum("app/cases/services.py", "_notify"),
        "  commit (flush + COMMIT)": cum("app/database.py", "commit"),
        "require_login (token check)": cum("app/api/__init__.py", "require_login"),
    }
    print("  per-request profile (ms, cumulative, in process):")
    for name, value in breakdown.items():
        print(f"    {name:<60} {value:>7.2f}")
    return {"requests": per, "breakdown_ms": breakdown, "top_cumulative": buffer.getvalue()[-6000:]}


def percentiles_of(values):
    return {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95)}


# ---------------------------------------------------------------------------------------------
# py-spy's collapsed stacks → where the server's busy time went

SPY_KEYS = [
    # (label, function as py-spy names it — a suffix of its qualified name, file name)
    ("whole request (gunicorn handle_request)", "SyncWorker.handle_request", "sync.py"),
    ("services.complete_task", "complete_task", "services.py"),
    ("  get_visible_task (task, case and state in one read)", "get_visible_task", "services.py"),
    ("  validate_form (jsonschema)", "validate_form", "services.py"),
    ("  _completed_step (engine, before the lock)", "_completed_step", "services.py"),
    ("    _load (state JSON → workflow on cached spec)", "_load", "services.py"),
    ("    Instance.complete (engine run)", "Instance.complete", "runtime.py"),
    ("  _rows_of (the case's tasks and timers, before the lock)", "_rows_of", "services.py"),
    ("  lock_case_changes (the lock; reads the change counter)", "lock_case_changes", "services.py"),
    ("  _save_and_project", "_save_and_project", "services.py"),
    ("    Instance.dump (serialize)", "Instance.dump", "runtime.py"),
    ("    Instance.snapshot", "Instance.snapshot", "runtime.py"),
    ("    _project_tasks", "_project_tasks", "services.py"),
    ("    _project_timers", "_project_timers", "services.py"),
    ("    _notify", "_notify", "services.py"),
    ("  UnitOfWork.commit (flush + COMMIT)", "UnitOfWork.commit", "database.py"),
    ("token check (_authenticate)", "_authenticate", "__init__.py"),
    ("marshmallow (request/response schemas)", "", "marshmallow/"),
    ("SQLAlchemy, all of it (ORM + SQL + driver)", "", "sqlalchemy/"),
    ("  statements in the driver + database (do_execute)", "do_execute", "default.py"),
    ("  COMMIT in the driver + database (do_commit)", "do_commit", "default.py"),
]


def _frame_matches(frame: str, function: str, fragment: str) -> bool:
    name, _, where = frame.partition(" (")
    if fragment not in where:
        return False
    return not function or name == function or name.endswith("." + function)


def summarize_collapsed(path: str) -> dict:
    """Share of the busy samples (inside a request) under each key, from py-spy's raw output."""
    totals = dict.fromkeys([label for label, _, _ in SPY_KEYS], 0)
    busy = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            frames = stack.split(";")
            if not any(_frame_matches(f, "SyncWorker.handle_request", "sync.py") for f in frames):
                continue
            samples = int(count)
            busy += samples
            for label, function, fragment in SPY_KEYS:
                if any(_frame_matches(f, function, fragment) for f in frames):
                    totals[label] += samples
    return {"busy_samples": busy, "share_percent": {k: round(100 * v / max(busy, 1), 1) for k, v in totals.items()}}
