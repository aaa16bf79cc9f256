"""Working days: China's 12345 hotline and the courts count time limits in working days.

A working day is Monday to Friday unless it is a public holiday, plus the weekend days the State
Council declares working days (调休). The calendar is data the operator updates every year
(`flask calendar import FILE`); 2026's official schedule ships in calendars/cn-2026.json.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from app import clock

SHIPPED = sorted((Path(__file__).parent / "calendars").glob("*.json"))
_WORKING_SPEC = re.compile(r"^\s*(\d{1,3})\s*WD\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class WorkingCalendar:
    holidays: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)
    zone: ZoneInfo = ZoneInfo("Asia/Shanghai")

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, start: date, count: int) -> date:
        """The date ``count`` working days after ``start`` (``start`` itself does not count)."""
        day = start
        while count > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count -= 1
        return day

    def duration_from(self, now: datetime, spec: str) -> str:
        """Turn a time-limit spec into the ISO-8601 duration a BPMN timer understands.

        "P15D" and other ISO durations pass through; "10WD" means ten working days, counted in
        local dates from ``now`` and returned as the equivalent calendar duration ("P14D").
        """
        match = _WORKING_SPEC.match(spec) if isinstance(spec, str) else None
        if match is None:
            return spec
        today = now.astimezone(self.zone).date()
        return f"P{(self.add_working_days(today, int(match.group(1))) - today).days}D"


def parse_calendar_file(text: str) -> tuple[dict[date, str], dict[date, str]]:
    """Read a calendar JSON file into (holidays, workdays), each date → name."""
    data = json.loads(text)
    holidays: dict[date, str] = {}
    for span in data.get("holidays", []):
        day, last = date.fromisoformat(span["from"]), date.fromisoformat(span.get("to", span["from"]))
        if last < day:
            raise ValueError(f"holiday {span.get('name', '')}: 'to' is before 'from'")
        while day <= last:
            holidays[day] = span.get("name", "")
            day += timedelta(days=1)
    workdays = {date.fromisoformat(entry["date"]): entry.get("name", "") for entry in data.get("workdays", [])}
    clash = set(holidays) & set(workdays)
    if clash:
        raise ValueError(f"dates both holiday and working day: {sorted(clash)}")
    return holidays, workdays


_current = WorkingCalendar()
_lock = threading.Lock()


def current() -> WorkingCalendar:
    return _current


def install(calendar: WorkingCalendar) -> None:
    """Make ``calendar`` the one timers use from now on (in this process)."""
    global _current
    with _lock:
        _current = calendar


def is_working_days(spec) -> bool:
    """Whether ``spec`` is a working-days time limit such as "10WD"."""
    return isinstance(spec, str) and _WORKING_SPEC.match(spec) is not None


def duration_of(spec: str) -> str:
    """Diagram helper: a time limit ("P15D", or "10WD" for working days) as an ISO duration.

    Timer expressions call it (``duration_of(time_limits["village"])``) when the timer starts,
    so working days are counted from that moment on the installed calendar.
    """
    return current().duration_from(clock.now(), spec)
