"""Helpers shared by the bench scripts: databases, timing, percentiles, a progress bar."""
from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary_ms(times_s: list[float]) -> dict:
    """p50/p95/max in milliseconds of durations given in seconds."""
    ms = [t * 1000 for t in times_s]
    return {"p50_ms": round(percentile(ms, 0.5), 2), "p95_ms": round(percentile(ms, 0.95), 2),
            "max_ms": round(max(ms), 2), "runs": len(ms)}


class Progress:
    """A one-line progress bar on stderr (a line every 10 % when stderr is not a terminal).

    Hand-rolled rather than tqdm: twenty lines, no new dependency for the deployment image,
    and the bench output stays readable when piped to a log file.
    """

    def __init__(self, total: int, label: str):
        self.total, self.label, self.done = max(total, 1), label, 0
        self.started = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.next_line = 0.1

    def update(self, n: int = 1) -> None:
        self.done += n
        fraction = min(self.done / self.total, 1.0)
        elapsed = time.perf_counter() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate else 0.0
        text = (f"{self.label} [{'#' * int(fraction * 30):<30}] {self.done:,}/{self.total:,} "
                f"{rate:,.0f}/s eta {eta:,.0f}s")
        if self.tty:
            sys.stderr.write("\r" + text)
            sys.stderr.flush()
        elif fraction >= self.next_line or self.done >= self.total:
            sys.stderr.write(text + "\n")
            self.next_line = fraction + 0.1

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


class BenchDatabase:
    """A throw-away database: a SQLite file in a temp directory or a fresh PostgreSQL database."""

    def __init__(self, backend: str, keep: bool = False):
        self.backend, self.keep = backend, keep
        self.name = f"tiaojie_bench_{uuid.uuid4().hex[:10]}"
        self._tmp = None

    def __enter__(self) -> BenchDatabase:
        if self.backend == "postgresql":
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            self.dsn = f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{self.name}"
            self.url = self.dsn.replace("postgresql://", "postgresql+psycopg://")
        else:
            self._tmp = tempfile.mkdtemp(prefix="tiaojie_bench_", dir=os.environ.get("BENCH_TMP"))
            self.path = Path(self._tmp) / "bench.sqlite3"
            self.dsn = str(self.path)
            self.url = f"sqlite:///{self.path}"
        return self

    def size_bytes(self) -> int:
        if self.backend == "postgresql":
            with psycopg.connect(self.dsn) as conn:
                return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        return sum(p.stat().st_size for p in Path(self._tmp).iterdir())

    def __exit__(self, *exc):
        if self.keep:
            print(f"kept database: {self.url}")
            return
        if self.backend == "postgresql":
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        else:
            for path in Path(self._tmp).iterdir():
                path.unlink()
            os.rmdir(self._tmp)


def prepare_app(url: str, **config):
    """Migrate, deploy the shipped workflows, import the calendars and seed the demo county."""
    from flask_migrate import upgrade

    from app import create_app
    from app.cli import deploy_default_workflows
    from app.config import Config
    from app.extensions import db
    from app.org.demo import seed_demo
    from app.scheduling.services import import_shipped_calendars

    app = create_app(Config, SQLALCHEMY_DATABASE_URI=url, **config)
    with app.app_context():
        upgrade()
        deploy_default_workflows()
        import_shipped_calendars()
        seed_demo()
        db.session.remove()
    return app
