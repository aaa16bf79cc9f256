"""Markdown tables from bench/results/run-*.json (for docs/benchmarks.md).

    .venv/bin/python bench/report.py                 # run-sqlite.json + run-postgresql.json
    .venv/bin/python bench/report.py --tag quick     # run-*-quick.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS  # noqa: E402

BACKENDS = (("sqlite", "SQLite"), ("postgresql", "PostgreSQL"))


def load(tag: str) -> dict:
    found = {}
    for backend, _ in BACKENDS:
        path = RESULTS / (f"run-{backend}-{tag}.json" if tag else f"run-{backend}.json")
        if path.exists():
            found[backend] = json.loads(path.read_text())
    return found


def first_scale(report):
    return report["scales"][min(report["scales"], key=int)]


def write_table(reports) -> list[str]:
    lines = ["| figure | " + " | ".join(label for b, label in BACKENDS if b in reports) + " |",
             "| --- |" + " --- |" * len(reports)]

    def row(name, fn):
        cells = []
        for backend, _ in BACKENDS:
            if backend in reports:
                try:
                    cells.append(fn(first_scale(reports[backend])))
                except KeyError:
                    cells.append("—")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    def http(key):
        return lambda s: (f"{s[key]['per_second']}/s (p50 {s[key]['p50_ms']:.0f} ms, p95 {s[key]['p95_ms']:.0f} ms)")

    row("HTTP completion, 1 client", http("http_1_client"))
    row("HTTP completion, 4 clients", http("http_4_clients"))
    row("bare SpiffWorkflow round trip (stock JSON, SQLite write)", http("bare_spiffworkflow"))
    row("ratio HTTP 1 client / bare", lambda s: str(s["ratio_http_1_client_to_bare"]))
    row("ratio HTTP 4 clients / bare", lambda s: str(s["ratio_http_4_clients_to_bare"]))
    row("full lifecycle intake → court (24 requests)", lambda s: f"{s['lifecycle']['cases_per_second']} cases/s")
    return lines


def query_table(reports) -> list[str]:
    lines = []
    for backend, label in BACKENDS:
        if backend not in reports:
            continue
        scales = sorted(reports[backend]["scales"], key=int)
        lines += [f"**{label}** (p50 / p95 ms)", "",
                  "| query | " + " | ".join(f"{int(s):,} cases" for s in scales) + " |",
                  "| --- |" + " --- |" * len(scales)]
        names = [k for k in reports[backend]["scales"][scales[0]]["queries"] if not k.startswith("_")]
        for name in names:
            cells = []
            for s in scales:
                q = reports[backend]["scales"][s]["queries"]
                match = next((k for k in q if k.split(" (")[0] == name.split(" (")[0]), None)
                cells.append(f"{q[match]['p50_ms']:.1f} / {q[match]['p95_ms']:.1f}" if match else "—")
            lines.append(f"| {name.split(' (')[0]} | " + " | ".join(cells) + " |")
        sizes = [reports[backend]["scales"][s]["queries"].get("_inbox_sizes", {}) for s in scales]
        lines += ["", "ready tasks in those inboxes: " + "; ".join(
            f"{int(s):,}: " + ", ".join(f"{k} {v}" for k, v in size.items()) for s, size in zip(scales, sizes, strict=True)), ""]
    return lines


def footprint_table(reports) -> list[str]:
    lines = ["| figure | backend | scale | open case | closed case |", "| --- | --- | --- | --- | --- |"]
    for backend, label in BACKENDS:
        if backend not in reports:
            continue
        for s, figures in sorted(reports[backend]["scales"].items(), key=lambda kv: int(kv[0])):
            f = figures["footprint"]
            lines.append(f"| retained memory per loaded instance | {label} | {int(s):,} | "
                         f"{f['open']['retained_kib_per_instance']} KiB | {f['closed']['retained_kib_per_instance']} KiB |")
            lines.append(f"| stored bytes per case (text of every column) | {label} | {int(s):,} | "
                         f"{f['open']['stored_bytes_per_case']:,} B | {f['closed']['stored_bytes_per_case']:,} B |")
            if "pg_row_bytes_per_case" in f["open"]:
                lines.append(f"| on-disk row bytes per case (pg_column_size, TOAST-compressed) | {label} | {int(s):,} | "
                             f"{f['open']['pg_row_bytes_per_case']:,} B | {f['closed']['pg_row_bytes_per_case']:,} B |")
            g = figures["generated"]
            lines.append(f"| whole database / cases (with indexes) | {label} | {int(s):,} | "
                         f"{g['database_bytes_per_case']:,} B (all cases) | |")
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tag", default="", help="the run's file name suffix (quick, or run.py's --tag)")
    args = parser.parse_args()
    reports = load(args.tag)
    for part in (write_table(reports), [""], query_table(reports), footprint_table(reports)):
        print("\n".join(part))
    for backend, report in reports.items():
        print(f"\n{backend} targets:")
        for key, value in report["targets"].items():
            print(f"- {key}: {value['figure']} → {'met' if value['met'] else 'NOT met'}")
        for s, figures in report["scales"].items():
            g = figures["generated"]
            print(f"- load {int(s):,}: {g['load_seconds']} s ({g['cases_per_second']}/s), {g['events']:,} events, "
                  f"doctor {g.get('doctor')}")


if __name__ == "__main__":
    main()
