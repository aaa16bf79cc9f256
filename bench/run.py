"""Issue 7's benchmarks in one run: data at scale, queries, footprint, HTTP vs bare engine, lifecycle.

    flock /tmp/bench.lock .venv/bin/python bench/run.py --quick          # both backends, < 2 minutes
    flock /tmp/bench.lock .venv/bin/python bench/run.py --pg --scale 1000000
    flock /tmp/bench.lock .venv/bin/python bench/run.py --sqlite --scale 10000 100000
    flock /tmp/bench.lock .venv/bin/python bench/run.py --reuse postgresql+psycopg://.../tiaojie_bench_x \
        --scale 1000000 --tag 1m     # a database kept by --keep, measured again on the current code

Per backend and per scale: a fresh database gets N generated cases (bench/datagen.py), then the
inbox / case list / dashboard queries and the footprint are measured. At the first scale only,
the write scenarios run: a work set of cases waiting at 东山村's village mediation is completed
over HTTP through gunicorn (1 client taking turns with the bare SpiffWorkflow ceiling, which does
the same step, then 4 clients), a few cases go through the whole lifecycle over HTTP, and cProfile shows where
one completion's time goes. Figures go to stdout and bench/results/run-<backend>[-quick].json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import scenarios  # noqa: E402
from bench.common import RESULTS, ROOT, BenchDatabase, prepare_app  # noqa: E402
from bench.datagen import generate  # noqa: E402


def run_backend(backend: str, scales: list[int], args) -> dict:
    report = {"backend": backend, "scales": {}}
    for index, count in enumerate(scales):
        print(f"\n== {backend}, {count:,} cases ==", flush=True)
        with (ReusedDatabase(args.reuse) if args.reuse else BenchDatabase(backend, keep=args.keep)) as database:
            app = prepare_app(database.url)  # migrates a reused database to the current schema
            if args.reuse:
                made, templates, units = reused_figures(app), None, None
            else:
                made, templates, units = generate(app, count, open_ages=(0, 8, 20) if args.quick else
                                                  (0, 3, 8, 13, 20, 30))
            made["database_bytes"] = database.size_bytes()
            made["database_bytes_per_case"] = round(made["database_bytes"] / count)
            if not args.reuse:
                print(f"  loaded {made['cases']:,} cases ({made['open']:,} open) with {made['events']:,} events, "
                      f"{made['tasks']:,} tasks, {made['timers']:,} timers in {made['load_seconds']} s "
                      f"({made['cases_per_second']:,}/s); database {made['database_bytes'] / 2**20:,.0f} MiB", flush=True)
            figures = {"generated": made}
            print("queries:", flush=True)
            figures["queries"] = scenarios.queries(app, runs=args.runs)
            if backend == "postgresql" and args.explain:
                figures["inbox_plans"] = {name: scenarios.explain_inbox(app, name)
                                          for name in (scenarios.MEDIATOR, "qx_county_center")}
                for name, plans in figures["inbox_plans"].items():
                    print(f"-- inbox of {name}\n{plans}")
            print("footprint:", flush=True)
            figures["footprint"] = scenarios.footprint(app, sample=50 if args.quick else 200)
            if index == 0 and not args.no_http:
                figures.update(write_scenarios(app, database, templates, units, args))
            from app.extensions import db
            with app.app_context():
                db.engine.dispose()
        report["scales"][str(count)] = figures
    return report


class ReusedDatabase:
    """A PostgreSQL database kept by an earlier ``--keep`` run: measured again, never dropped."""

    def __init__(self, url: str):
        self.url, self.dsn = url, url.replace("postgresql+psycopg://", "postgresql://")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def size_bytes(self) -> int:
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def reused_figures(app) -> dict:
    """What the kept database holds, then the rollups rebuilt on the current code."""
    from sqlalchemy import func, select

    from app.cases.models import DisputeCase
    from app.extensions import db
    from app.supervision import rollups

    with app.app_context():
        cases = db.session.scalar(select(func.count()).select_from(DisputeCase))
        started = time.perf_counter()
        rollups.rebuild_all()
        made = {"cases": cases, "reused": True, "rollups": f"rebuilt in {time.perf_counter() - started:.1f} s"}
        db.session.remove()
    print(f"  reused {cases:,} cases; {made['rollups']}", flush=True)
    return made


def write_scenarios(app, database, templates, units, args) -> dict:
    completions = args.completions or (60 if args.quick else 400)
    warm = 4 * args.workers
    tasks = scenarios.work_set(app, templates, units, completions * 2 + warm + (41 if args.profile else 0))
    task_ids = [t for t, _ in tasks[warm:]]
    out = {}
    print("HTTP completion vs bare SpiffWorkflow (same run):", flush=True)
    server = scenarios.Gunicorn(database.url, workers=args.workers)
    try:
        scenarios.warm_workers(server, [t for t, _ in tasks[:warm]])
        out["http_1_client"], out["bare_spiffworkflow"] = scenarios.in_turns(
            server, app, task_ids[:completions], turns=args.turns)
        print(f"  in {args.turns} turns: 1 client {out['http_1_client']['per_second']}/s, p50 "
              f"{out['http_1_client']['p50_ms']} ms; bare {out['bare_spiffworkflow']['per_second']}/s, p50 "
              f"{out['bare_spiffworkflow']['p50_ms']} ms", flush=True)
        out["http_4_clients"] = scenarios.http_completion(server, task_ids[completions:2 * completions], 4)
        out["http_4_clients"].pop("latencies_s")
        out["ratio_http_1_client_to_bare"] = round(out["http_1_client"]["per_second"] / out["bare_spiffworkflow"]["per_second"], 2)
        out["ratio_http_4_clients_to_bare"] = round(out["http_4_clients"]["per_second"] / out["bare_spiffworkflow"]["per_second"], 2)
        print(f"  ratio HTTP/bare: 1 client {out['ratio_http_1_client_to_bare']}, "
              f"4 clients {out['ratio_http_4_clients_to_bare']} (target ≥ 1)", flush=True)
        print("full lifecycle over HTTP:", flush=True)
        out["lifecycle"] = scenarios.lifecycle(app, server, args.lifecycle or (3 if args.quick else 20))
    finally:
        server.stop()
    if os.environ.get("BENCH_PYSPY") and os.path.exists(os.environ["BENCH_PYSPY"]):
        out["py_spy"] = scenarios.summarize_collapsed(os.environ["BENCH_PYSPY"])
        print("  py-spy, share of the server's busy samples:")
        for name, share in out["py_spy"]["share_percent"].items():
            print(f"    {name:<60} {share:>5.1f} %")
    if args.profile:
        print("profile:", flush=True)
        out["profile"] = scenarios.profile_completion(app, task_ids[2 * completions:])
    return out


def targets(report: dict) -> dict:
    """Each issue-7 target this run can judge: met or not, with the figure."""
    result = {}
    scales = report["scales"]
    first = scales[min(scales, key=int)]
    if "ratio_http_1_client_to_bare" in first:
        for key in ("ratio_http_1_client_to_bare", "ratio_http_4_clients_to_bare"):
            result[key + " >= 1"] = {"figure": first[key], "met": first[key] >= 1}
    for count, figures in scales.items():
        queries = figures["queries"]
        inbox = max(v["p95_ms"] for k, v in queries.items() if k.startswith("inbox service"))
        api = queries["GET /api/v1/tasks (village mediator)"]["p95_ms"]
        dash = queries["dashboard: county, 30 days"]["p95_ms"]
        result[f"{count}: inbox p95 <= 20 ms"] = {"figure": max(inbox, api), "met": max(inbox, api) <= 20}
        result[f"{count}: dashboard p95 <= 300 ms"] = {"figure": dash, "met": dash <= 300}
        foot = figures["footprint"]
        for status in ("open", "closed"):
            if status in foot:
                kib = foot[status]["retained_kib_per_instance"]
                result[f"{count}: {status} instance retained <= 60 KiB"] = {"figure": kib, "met": kib <= 60}
        if "closed" in foot:
            stored = foot["closed"].get("pg_row_bytes_per_case", foot["closed"]["stored_bytes_per_case"])
            result[f"{count}: closed case stored <= 25 KB"] = {"figure": stored, "met": stored <= 25_000}
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10,000 cases, small samples: under two minutes")
    parser.add_argument("--pg", action="store_true", help="PostgreSQL only")
    parser.add_argument("--sqlite", action="store_true", help="SQLite only")
    parser.add_argument("--scale", type=int, nargs="+", help="case counts (default 10000 100000)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per query (after a warm-up)")
    parser.add_argument("--completions", type=int, default=None, help="HTTP completions per client setting")
    parser.add_argument("--lifecycle", type=int, default=None, help="cases taken intake → court over HTTP")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--turns", type=int, default=4,
                        help="1 client and the bare loop take this many turns each (the machine drifts)")
    parser.add_argument("--no-http", action="store_true", help="skip the write scenarios")
    parser.add_argument("--profile", action="store_true", help="cProfile 40 in-process completions")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the inbox (PostgreSQL)")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--reuse", metavar="URL", help="measure a PostgreSQL database kept by --keep again "
                        "(migrated, rollups rebuilt; no write scenarios)")
    parser.add_argument("--tag", default="", help="suffix for the result file names")
    parser.add_argument("--script-isolation", choices=("process", "inline"),
                        help="SCRIPT_ISOLATION for the app and gunicorn (default: the app's default)")
    args = parser.parse_args(argv)
    if args.reuse:
        args.pg, args.sqlite, args.no_http = True, False, True
    if args.script_isolation:
        os.environ["SCRIPT_ISOLATION"] = args.script_isolation  # read by app.config on first import
    args.runs = args.runs or (15 if args.quick else 40)
    scales = args.scale or ([10_000] if args.quick else [10_000, 100_000])
    backends = ["sqlite", "postgresql"]
    if args.pg != args.sqlite:
        backends = ["postgresql"] if args.pg else ["sqlite"]
    started = time.perf_counter()
    RESULTS.mkdir(parents=True, exist_ok=True)
    for backend in backends:
        report = run_backend(backend, scales, args)
        report.update(quick=args.quick, when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      machine={"cpus": os.cpu_count(), "python": platform.python_version()},
                      note="2 shared cores; both sides of each ratio measured in this run",
                      script_isolation=os.environ.get("SCRIPT_ISOLATION", "app default"))
        report["targets"] = targets(report)
        name = f"run-{backend}{'-quick' if args.quick else ''}{'-' + args.tag if args.tag else ''}.json"
        (RESULTS / name).write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")
        # --quick measures 60 completions: on PostgreSQL 4 clients measured 0.79 there, 1.11 with
        # --completions 400 and 1.18 in a full run of the same code, the same sitting
        print(f"\ntargets ({backend}{', quick: small samples, indicative only; judge with a full run' if args.quick else ''}):")
        for key, value in report["targets"].items():
            print(f"  {key:<48} {value['figure']:>10}  {'met' if value['met'] else 'NOT MET'}")
        print(f"→ {(RESULTS / name).relative_to(ROOT)}")
    print(f"\nwhole run: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
