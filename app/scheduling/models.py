"""The holiday calendar and the scheduler lease."""
from datetime import date

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.database import UTCDateTime
from app.extensions import db


class CalendarDay(db.Model):
    """A date that differs from the Monday-Friday rule: a holiday or an adjusted working day."""

    __tablename__ = "calendar_day"

    day: Mapped[date] = mapped_column(primary_key=True)
    #: "holiday" or "workday"
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(80), default="")


class SchedulerLease(db.Model):
    """Who runs the timer scheduler on SQLite, which has no SKIP LOCKED: one holder at a time."""

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str] = mapped_column(String(120))
    expires_at = mapped_column(UTCDateTime)
