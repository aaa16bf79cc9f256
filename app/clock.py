"""The one source of "now" for services, the engine's timers and the scheduler.

Tests replace it with a controllable clock instead of sleeping for timers to fall due; a
service call may also pin the time for its own thread with ``at(when)``.
"""
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_now_fn: Callable[[], datetime] | None = None
_pinned: ContextVar[datetime | None] = ContextVar("pinned_now", default=None)


def now() -> datetime:
    """Return the current time, aware and in UTC."""
    pinned = _pinned.get()
    if pinned is not None:
        return pinned
    return _now_fn() if _now_fn is not None else datetime.now(UTC)


def set_clock(fn: Callable[[], datetime] | None) -> None:
    """Make ``now()`` call ``fn`` everywhere (None restores the real clock)."""
    global _now_fn
    _now_fn = fn


@contextmanager
def at(when: datetime | None):
    """Pin ``now()`` to ``when`` in this thread/context only (None leaves the clock alone)."""
    if when is None:
        yield
        return
    if when.tzinfo is None:
        raise ValueError("clock.at() needs an aware datetime")
    token = _pinned.set(when.astimezone(UTC))
    try:
        yield
    finally:
        _pinned.reset(token)
