"""The timer scheduler: fires escalation and reminder timers on time, once, across processes.

The ``timer`` table is the truth. A sweep (every ``sweep_seconds``) fires whatever is due and
plans an APScheduler date job at the exact due time of every timer due within
``horizon_seconds``, so a timer fires within moments of falling due rather than at the next
sweep. On PostgreSQL any number of schedulers run side by side (rows are claimed with
``FOR UPDATE SKIP LOCKED``); on SQLite one scheduler holds a lease and the others wait.
Timers that fell due while nothing ran fire at start-up, oldest first.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import select

from app import clock
from app.cases import services as cases
from app.cases.models import Timer
from app.extensions import db
from app.scheduling import services
from app.supervision import rollups

log = logging.getLogger("tiaojie.scheduler")
LEASE_NAME = "timers"


class TimerScheduler:
    def __init__(self, app, sweep_seconds: float = 2.0, horizon_seconds: float = 120.0, blocking: bool = False):
        self.app = app
        self.sweep_seconds = sweep_seconds
        self.horizon_seconds = horizon_seconds
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        scheduler_class = BlockingScheduler if blocking else BackgroundScheduler
        # One worker thread: firing is database-bound, and one process's jobs should not
        # compete for the same case locks.
        self.scheduler = scheduler_class(
            timezone=UTC,
            # The rollup refresh gets its own thread: it may take seconds at scale and must not
            # delay timers.
            executors={"default": ThreadPoolExecutor(1), "rollups": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._planned: dict[int, datetime] = {}
        self._busy = threading.Lock()  # held while a sweep or firing runs
        self._rollups_busy = threading.Lock()  # held while a rollup refresh runs
        self._stopping = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.scheduler.add_job(self.sweep, "interval", seconds=self.sweep_seconds, id="sweep",
                               next_run_time=datetime.now(UTC))
        with self.app.app_context():
            rollup_seconds = rollups.refresh_seconds()
        if rollup_seconds > 0:
            self.scheduler.add_job(self.refresh_rollups, "interval", seconds=rollup_seconds, id="rollups",
                                   executor="rollups")
        log.info("timer scheduler %s starting (sweep %ss)", self.holder, self.sweep_seconds)
        self.scheduler.start()

    def shutdown(self) -> None:
        self._stopping.set()
        if self.scheduler.running:
            # Not wait=True: APScheduler then holds its job-store lock while waiting for the
            # worker, and a sweep planning a date job needs that lock: a deadlock. Wait below.
            self.scheduler.shutdown(wait=False)
        with self._busy, self._rollups_busy:  # let a sweep, firing or rollup refresh in flight finish
            pass
        with self.app.app_context():
            if self._uses_lease():
                services.release_lease(LEASE_NAME, self.holder)

    # -- jobs ------------------------------------------------------------------------------
    def sweep(self) -> int:
        """Fire what is due, then plan date jobs for what falls due within the horizon."""
        with self._busy, self.app.app_context():
            try:
                if self._stopping.is_set() or not self._may_fire():
                    return 0
                fired = cases.fire_due_timers()
                self._plan_due_soon()
                return fired
            finally:
                db.session.remove()

    def fire_now(self) -> int:
        with self._busy, self.app.app_context():
            try:
                if self._stopping.is_set() or not self._may_fire():
                    return 0
                return cases.fire_due_timers()
            finally:
                db.session.remove()

    def refresh_rollups(self) -> dict | None:
        """The supervisor console's daily rollups (app/supervision/rollups.py), on their own thread
        and lock (shutdown waits for it as for a sweep); on SQLite only the lease holder runs it."""
        with self._rollups_busy, self.app.app_context():
            try:
                if self._stopping.is_set() or not self._may_fire():
                    return None
                return rollups.refresh(clock.now())
            finally:
                db.session.remove()

    def run_once(self) -> int:
        """One sweep without the background machinery (CLI ``--once``, tests)."""
        return self.sweep()

    # -- helpers ---------------------------------------------------------------------------
    def _uses_lease(self) -> bool:
        return db.engine.dialect.name == "sqlite"

    def _may_fire(self) -> bool:
        if not self._uses_lease():
            return True
        ttl = max(10.0, self.sweep_seconds * 5)
        return services.acquire_lease(LEASE_NAME, self.holder, ttl)

    def _plan_due_soon(self) -> None:
        horizon = clock.now() + timedelta(seconds=self.horizon_seconds)
        rows = db.session.execute(
            select(Timer.id, Timer.due_at).where(Timer.status == "pending", Timer.due_at <= horizon)
        ).all()
        db.session.rollback()
        live = {row.id for row in rows}
        for timer_id in list(self._planned):
            if timer_id not in live:
                del self._planned[timer_id]
        for timer_id, due_at in rows:
            if self._planned.get(timer_id) == due_at or not self.scheduler.running or self._stopping.is_set():
                continue
            self.scheduler.add_job(self.fire_now, "date", run_date=due_at, id=f"timer-{timer_id}",
                                   replace_existing=True)
            self._planned[timer_id] = due_at

    def planned(self) -> dict[int, datetime]:
        return dict(self._planned)
