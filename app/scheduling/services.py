"""The working-day calendar kept in the database, and the scheduler lease for SQLite."""
from __future__ import annotations

import time
from datetime import date, timedelta

from sqlalchemy import delete, select

from app import clock
from app.database import UnitOfWork
from app.extensions import db
from app.scheduling import calendar
from app.scheduling.models import CalendarDay, SchedulerLease

#: Processes re-read the calendar this often, so an operator's import reaches every process.
CALENDAR_TTL_SECONDS = 600
_loaded_at: float | None = None


def import_calendar(text: str) -> tuple[int, int]:
    """Replace the calendar entries of the years the file covers; return (holidays, workdays)."""
    holidays, workdays = calendar.parse_calendar_file(text)
    years = {day.year for day in [*holidays, *workdays]}
    with UnitOfWork() as uow:
        for year in years:
            db.session.execute(delete(CalendarDay).where(
                CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31)))
        for day, name in holidays.items():
            db.session.add(CalendarDay(day=day, kind="holiday", name=name))
        for day, name in workdays.items():
            db.session.add(CalendarDay(day=day, kind="workday", name=name))
        uow.commit()
    reload_calendar()
    return len(holidays), len(workdays)


def import_shipped_calendars() -> list[str]:
    lines = []
    for path in calendar.SHIPPED:
        holidays, workdays = import_calendar(path.read_text("utf-8"))
        lines.append(f"{path.name}: {holidays} holidays, {workdays} adjusted working days")
    return lines


def reload_calendar() -> calendar.WorkingCalendar:
    global _loaded_at
    rows = db.session.scalars(select(CalendarDay)).all()
    loaded = calendar.WorkingCalendar(
        holidays=frozenset(r.day for r in rows if r.kind == "holiday"),
        workdays=frozenset(r.day for r in rows if r.kind == "workday"),
    )
    calendar.install(loaded)
    _loaded_at = time.monotonic()
    return loaded


def working_calendar() -> calendar.WorkingCalendar:
    if _loaded_at is None or time.monotonic() - _loaded_at > CALENDAR_TTL_SECONDS:
        return reload_calendar()
    return calendar.current()


def acquire_lease(name: str, holder: str, ttl_seconds: float) -> bool:
    """Take or renew the named lease; False while another holder's lease is still valid."""
    with UnitOfWork() as uow:
        now = clock.now()
        lease = db.session.get(SchedulerLease, name)
        if lease is None:
            db.session.add(SchedulerLease(name=name, holder=holder, expires_at=now + timedelta(seconds=ttl_seconds)))
        elif lease.holder == holder or lease.expires_at <= now:
            lease.holder, lease.expires_at = holder, now + timedelta(seconds=ttl_seconds)
        else:
            return False
        try:
            uow.commit()
        except Exception:  # another process inserted the lease at the same moment
            return False
    return True


def release_lease(name: str, holder: str) -> None:
    with UnitOfWork() as uow:
        db.session.execute(delete(SchedulerLease).where(SchedulerLease.name == name, SchedulerLease.holder == holder))
        uow.commit()
