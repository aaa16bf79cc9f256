"""Supervisor dashboard benchmark on PostgreSQL: how long the console's queries take over many cases.

    .venv/bin/python bench/dashboard.py              # 1,000,000 cases (several minutes to load)
    .venv/bin/python bench/dashboard.py --quick      # 50,000 cases
    .venv/bin/python bench/dashboard.py -n 200000 --runs 11 --keep

A fresh database is created on the local PostgreSQL (TEST_PG_ADMIN_DSN, as the tests use), built by
the migrations, deployed and seeded with the demo county; N cases are then COPYed straight into the
projections over its 5 villages and 10 grids, opened over the last two years:

* 95 % closed; of the decided ones ≈ 70 % resolved at the village, 20 % at the town, 8 % at the
  county, 2 % litigated; 1 % withdrawn; ≈ 10 % had a time limit fire (a ``time_limit`` event);
* 5 % open, at every tier (village 60 %, town 25 %, county 10 %, court 5 %), a third past their
  time limit; some mass (≥ 10 people) and high-risk cases;
* events: case_opened for all, closed for the closed ones, time_limit where one fired (≈ 2.1 per
  case); human_task: one completed task per tier a case passed, one ready task per open case.

Each measured operation runs once to warm up, then ``--runs`` times; p50/p95/max in ms go to
stdout and bench/results/dashboard-postgresql[-quick].json. The target is ≤ 300 ms for the whole
dashboard of the county (every case) at 1M, and for the 365-day trend, the 90-day heat map, the
monthly report and the rendered page. After the load the daily rollups are rebuilt
(rollups.rebuild_all, timed); the queries then read full past days from them and today live
(``LIVE`` rows: the same figures with the rollups bypassed); finally incremental refreshes are
timed (nothing changed; 100 past cases changed; the next day).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import clock, create_app  # noqa: E402
from app.config import Config  # noqa: E402
from app.extensions import db  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")

CATEGORIES = [("neighbour", 22), ("marriage_family", 18), ("housing_homestead", 12), ("contract", 9),
              ("damages", 8), ("labour", 7), ("property_mgmt", 6), ("traffic", 5), ("forest_land", 3),
              ("consumer", 3), ("business", 2), ("land_requisition", 1), ("pollution", 1), ("medical", 1),
              ("village_affairs", 1), ("other", 1)]
CHANNELS = [("grid_report", 35), ("walk_in", 25), ("hotline_12345", 15), ("qr_code", 12), ("app", 8),
            ("hotline_12348", 3), ("referral", 2)]
SATISFACTION = [("satisfied", 70), ("basically_satisfied", 20), ("dissatisfied", 4), (None, 6)]
TIER_TASKS = {"village": ("village_mediate", "village_mediator"), "town": ("town_mediate", "town_mediator"),
              "county": ("county_mediate", "county_center"), "court": ("court_premediation", "court_clerk")}
TIERS = ["village", "town", "county", "court"]


def weighted(pairs):
    values = [value for value, _ in pairs]
    weights = [weight for _, weight in pairs]
    return lambda rng: rng.choices(values, weights)[0]


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def create_database() -> tuple[str, str]:
    name = f"tiaojie_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare_app(url: str):
    from flask_migrate import upgrade

    from app.cli import deploy_default_workflows
    from app.org.demo import seed_demo
    from app.scheduling.services import import_shipped_calendars

    app = create_app(Config, SQLALCHEMY_DATABASE_URI=url.replace("postgresql://", "postgresql+psycopg://"),
                     WTF_CSRF_ENABLED=False, TESTING=True)
    with app.app_context():
        upgrade()
        deploy_default_workflows()
        import_shipped_calendars()
        seed_demo()
        db.session.remove()
    return app


def generate(dsn: str, count: int, now: datetime, seed: int = 7, shuffle: bool = False) -> dict:
    """COPY ``count`` cases (+ events, tasks) into the database; return what was made.

    Cases are written in the order they opened, as a running system writes them (ids and table
    pages follow time); ``shuffle`` opens them at random times instead, scattering every period's
    cases over the whole table: the worst case for anything that reads rows, not just indexes.
    """
    rng = random.Random(seed)
    category, channel, satisfaction = weighted(CATEGORIES), weighted(CHANNELS), weighted(SATISFACTION)
    with psycopg.connect(dsn) as conn:
        units = conn.execute("SELECT id, path, level FROM org_unit WHERE level IN ('village', 'grid')").fetchall()
        version_id = conn.execute("SELECT max(id) FROM process_version").fetchone()[0]
    span = timedelta(days=730).total_seconds()
    made = {"cases": 0, "closed": 0, "open": 0, "events": 0, "tasks": 0}
    case_columns = (
        "id, number, title, description, category, channel, risk_level, people_involved, parties, org_unit_id, "
        "org_path, process_version_id, status, current_tier, start_tier, resolved_tier, outcome, satisfaction, "
        "is_major, escalation_count, reopen_count, opened_at, closed_at, due_at, updated_at, lock_version, "
        "high_value_reported, high_value_confirmed")
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur:
            events, tasks = [], []
            with cur.copy(f"COPY dispute_case ({case_columns}) FROM STDIN") as copy:
                for case_id in range(1, count + 1):
                    unit_id, path, _level = rng.choice(units)
                    progress = rng.random() if shuffle else (case_id - 1 + rng.random()) / count
                    opened = now - timedelta(seconds=span * (1 - progress))
                    duration = timedelta(hours=rng.expovariate(1 / (24 * 9)))
                    closed_at = opened + duration
                    is_open = rng.random() < 0.05 or closed_at >= now
                    fired = rng.random() < 0.10
                    people = rng.choice((2, 2, 2, 3, 4, 5, 12)) if rng.random() < 0.05 else 2
                    risk = "high" if rng.random() < 0.01 else rng.choice(("low", "low", "medium"))
                    if is_open:
                        tier = rng.choices(TIERS, (60, 25, 10, 5))[0]
                        due = now + timedelta(days=rng.uniform(-10, 20))
                        status = "open"
                        row = (case_id, f"BN{case_id:09d}", "基准纠纷", "", category(rng), channel(rng), risk, people,
                               "[]", unit_id, path, version_id, status, tier, "village", None, None, None,
                               False, TIERS.index(tier), 0, opened, None, due, opened, 1, False, False)
                        made["open"] += 1
                        passed = TIERS[: TIERS.index(tier)]
                        spec, lane = TIER_TASKS[tier]
                        tasks.append((case_id, f"r{case_id}", spec, spec, lane, tier, unit_id, path, "ready", opened,
                                      None))
                    else:
                        draw = rng.random()
                        if draw < 0.01:
                            outcome, tier = "withdrawn", None
                        else:
                            outcome, tier = rng.choices(
                                (("resolved", "village"), ("resolved", "town"), ("resolved", "county"),
                                 ("litigated", "court")), (70, 20, 8, 2))[0]
                        current = tier or "village"
                        row = (case_id, f"BN{case_id:09d}", "基准纠纷", "", category(rng), channel(rng), risk, people,
                               "[]", unit_id, path, version_id, "closed", current, "village", tier, outcome,
                               satisfaction(rng) if outcome == "resolved" else None, False,
                               TIERS.index(current), 0, opened, closed_at, None, closed_at, 1, False, False)
                        made["closed"] += 1
                        passed = TIERS[: TIERS.index(current) + 1]
                        events.append((case_id, closed_at, "closed", "结案"))
                    copy.write_row(row)
                    events.append((case_id, opened, "case_opened", "登记纠纷"))
                    if fired:
                        events.append((case_id, opened + duration / 2, "time_limit", "办理时限届满"))
                    step = duration / max(len(passed), 1)
                    for index, passed_tier in enumerate(passed):
                        spec, lane = TIER_TASKS[passed_tier]
                        created = opened + step * index
                        tasks.append((case_id, f"c{case_id}-{index}", spec, spec, lane, passed_tier, unit_id, path,
                                      "completed", created, created + step * rng.uniform(0.2, 1.0)))
                    made["cases"] += 1
            with cur.copy("COPY case_event (case_id, at, kind, message) FROM STDIN") as copy:
                for row in events:
                    copy.write_row(row)
            with cur.copy("COPY human_task (case_id, task_id, spec_name, title, lane, tier, org_unit_id, org_path, "
                          "status, created_at, completed_at) FROM STDIN") as copy:
                for row in tasks:
                    copy.write_row(row)
            made["events"], made["tasks"] = len(events), len(tasks)
            cur.execute("SELECT setval(pg_get_serial_sequence('dispute_case', 'id'), %s)", (count,))
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE dispute_case")
        conn.execute("VACUUM ANALYZE case_event")
        conn.execute("VACUUM ANALYZE human_task")
    made["load_seconds"] = round(time.perf_counter() - started, 1)
    return made


def measure(name, fn, runs) -> dict:
    fn()  # warm up (spec caches, plan caches, connection)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    result = {"p50_ms": round(percentile(times, 0.5), 1), "p95_ms": round(percentile(times, 0.95), 1),
              "max_ms": round(max(times), 1), "runs": runs}
    print(f"  {name:<44} p50 {result['p50_ms']:>8.1f} ms   p95 {result['p95_ms']:>8.1f} ms   max {result['max_ms']:>8.1f}")
    return result


def run_queries(app, now: datetime, runs: int) -> dict:
    from sqlalchemy import select

    from app.org.models import OrgUnit
    from app.processes.models import ProcessVersion
    from app.supervision import queries, reports
    from app.supervision.queries import CaseFilters, Period

    figures = {}
    with app.app_context():
        clock.set_clock(lambda: now)
        try:
            county, town, village = (db.session.scalar(select(OrgUnit).where(OrgUnit.code == code))
                                     for code in ("QX", "QX-FQ", "QX-FQ-DS"))
            last30 = queries.default_period(now)
            year = Period(last30.end - timedelta(days=364), last30.end)
            paths = [county.path]
            pv = db.session.scalar(select(ProcessVersion).order_by(ProcessVersion.id.desc()))

            def timed(name, fn):
                try:
                    figures[name] = measure(name, lambda: (fn(), db.session.rollback()), runs)
                except Exception as exc:  # keep measuring the rest; the report says what failed
                    db.session.rollback()
                    figures[name] = {"error": repr(exc)[:300]}
                    print(f"  {name:<44} FAILED: {exc!r}"[:200])

            timed("dashboard county, 30 days (all figures)", lambda: queries.dashboard(county, last30, now))
            timed("dashboard town, 30 days", lambda: queries.dashboard(town, last30, now))
            timed("dashboard village, 30 days", lambda: queries.dashboard(village, last30, now))
            timed("dashboard county, 365 days by week", lambda: queries.dashboard(county, year, now, "week"))
            timed("  count_period county 30 days", lambda: queries.count_period(
                county, last30, now, queries.children_of(county)))
            for granularity in queries.GRANULARITIES:
                timed(f"trend county 365 days per {granularity}", lambda g=granularity: queries.trend(county, year, g))
            timed("  trend county 30 days", lambda: queries.trend(county, last30))
            timed("  hot_spots county", lambda: queries.hot_spots(county, last30.end))
            timed("  flagged county", lambda: queries.flagged_cases(county))
            timed("report monthly county", lambda: reports.build_report(county, "monthly", last30.end, now))
            timed("case list county, page 1", lambda: queries.list_cases(paths, CaseFilters(), now))
            timed("case list county, overdue", lambda: queries.list_cases(paths, CaseFilters(overdue=True), now))
            timed("case list county, category+30 days", lambda: queries.list_cases(paths, CaseFilters(
                category="labour", opened_from=last30.start, opened_to=last30.end), now))
            last90 = queries.default_period(now, queries.HEATMAP_DAYS)
            timed("heat map county, 90 days", lambda: queries.heatmap(county, pv, last90))
            # The same without the rollups (all live), fewer runs: the before/after ratio in one run.
            live_runs, runs = runs, 3
            timed("LIVE dashboard county, 365 days by week", lambda: queries.dashboard(county, year, now, "week", live=True))
            timed("LIVE heat map county, 90 days", lambda: queries.heatmap(county, pv, last90, live=True))
            timed("LIVE trend county 365 days per day", lambda: queries.trend(county, year, "day", live=True))
            timed("LIVE report monthly county", lambda: reports.build_report(county, "monthly", last30.end, now, live=True))
            runs = live_runs

            client = app.test_client()
            client.post("/login", data={"username": "qx_supervisor", "password": "demo12345"})

            def page(url):
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)

            timed("GET /supervisor/dashboard (rendered)", lambda: page("/supervisor/dashboard"))
            timed("GET /api/v1/supervision/dashboard", lambda: page("/api/v1/supervision/dashboard"))
            timed("GET /supervisor/cases", lambda: page("/supervisor/cases"))
        finally:
            clock.set_clock(None)
            db.session.remove()
    return figures


def build_rollups(app, now: datetime) -> dict:
    """A full rollup rebuild after the bulk load (as the data generators must do)."""
    from app.supervision import rollups

    with app.app_context():
        started = time.perf_counter()
        through = rollups.rebuild_all(now)
        seconds = time.perf_counter() - started
        rows = {table: db.session.execute(db.text(f"SELECT count(*) FROM {table}")).scalar()
                for table in ("case_day_rollup", "case_day_scope_rollup", "case_month_scope_rollup", "task_day_rollup")}
        db.session.remove()
    print(f"  rollups rebuilt through {through} in {seconds:.1f} s: {rows}", flush=True)
    return {"rebuild_all_seconds": round(seconds, 1), "through": through.isoformat(), "rows": rows}


def time_refreshes(app, now: datetime, changed: int = 100) -> dict:
    """Incremental refreshes: nothing changed; ``changed`` past cases changed (their days redone);
    the next day (one new day)."""
    from sqlalchemy import update

    from app.cases.models import DisputeCase
    from app.supervision import rollups

    out = {}
    with app.app_context():
        def timed_refresh(name, at):
            started = time.perf_counter()
            result = rollups.refresh(at)
            out[name] = {"ms": round((time.perf_counter() - started) * 1000, 1), **result}
            print(f"  refresh {name:<32} {out[name]['ms']:>9.1f} ms  {result}", flush=True)

        timed_refresh("nothing changed", now + timedelta(minutes=5))
        ids = random.Random(3).sample(range(1, db.session.scalar(db.select(db.func.max(DisputeCase.id))) + 1), changed)
        later = now + timedelta(minutes=10)
        db.session.execute(update(DisputeCase).where(DisputeCase.id.in_(ids)).values(updated_at=later))
        db.session.commit()
        timed_refresh(f"{changed} past cases changed", later)
        timed_refresh("next day", now + timedelta(days=1))
        db.session.remove()
    return out


def explain(dsn: str, now: datetime) -> None:
    """Print the plan of the closed-cases aggregate (the heaviest query) for the record."""
    with psycopg.connect(dsn) as conn:
        plan = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) SELECT count(*), sum(CASE WHEN NOT EXISTS (SELECT 1 FROM "
            "case_event e WHERE e.kind = 'time_limit' AND e.case_id = c.id) THEN 1 ELSE 0 END) FROM dispute_case c "
            "WHERE c.org_path LIKE '/1/%%' AND c.status = 'closed' AND c.closed_at >= %s AND c.closed_at < %s",
            (now - timedelta(days=30), now)).fetchall()
    print("\n".join(line for (line,) in plan))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--cases", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="50,000 cases")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards (prints its name)")
    parser.add_argument("--explain", action="store_true", help="print the main query's plan")
    parser.add_argument("--shuffle", action="store_true", help="cases in random physical order (worst case)")
    parser.add_argument("--reuse", metavar="DATABASE", help="time a database kept by an earlier --keep run")
    args = parser.parse_args(argv)
    count = 50_000 if args.quick else args.cases
    now = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)

    if args.reuse:
        name, dsn = args.reuse, f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{args.reuse}"
        args.keep = True
    else:
        name, dsn = create_database()
    print(f"database {name}: migrating and seeding ...", flush=True)
    try:
        app = prepare_app(dsn)
        if args.reuse:
            with psycopg.connect(dsn) as conn:
                count = conn.execute("SELECT count(*) FROM dispute_case").fetchone()[0]
            made = {"cases": count, "reused": name}
        else:
            print(f"generating {count:,} cases{' (shuffled)' if args.shuffle else ''} ...", flush=True)
            made = generate(dsn, count, now, shuffle=args.shuffle)
        made["order"] = "shuffled" if args.shuffle else "chronological"
        print(f"  {made}", flush=True)
        if args.explain:
            explain(dsn, now)
        made["rollups"] = build_rollups(app, now)
        print(f"timing ({args.runs} runs after a warm-up):", flush=True)
        figures = run_queries(app, now, args.runs)
        refreshes = time_refreshes(app, now)
        with app.app_context():
            db.engine.dispose()
        with psycopg.connect(dsn) as conn:
            server = conn.execute("SHOW server_version").fetchone()[0]
            size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
        report = {
            "backend": "postgresql", "server_version": server, "database_size": size, "cases": count,
            "generated": made, "now": now.isoformat(), "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "target_ms": 300,
            "dashboard_county_p95_ms": figures["dashboard county, 30 days (all figures)"]["p95_ms"],
            "timings": figures, "rollup_refresh": refreshes,
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        suffix = ("-quick" if args.quick else "") + ("-shuffled" if args.shuffle else "")
        out = RESULTS / f"dashboard-postgresql{suffix}.json"
        out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out.relative_to(ROOT)}")
    finally:
        if args.keep:
            print(f"kept database {name} ({dsn})")
        else:
            drop_database(name)


if __name__ == "__main__":
    main()
