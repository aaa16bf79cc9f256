"""Words the console shows for codes, shares and durations, in the reader's language."""
from __future__ import annotations

from flask_babel import gettext as _

from app.web.mediator import labels as base

STATUS = {**base.STATUS, "suspended": ("已中止", "Suspended")}
GRANULARITY = {"day": ("按日", "By day"), "week": ("按周", "By week"), "month": ("按月", "By month")}
REPORT_KINDS = {
    "daily": ("日报送", "Daily report"),
    "weekly": ("周研判", "Weekly analysis"),
    "monthly": ("月专题", "Monthly review"),
}
LEVELS = {"county": ("县", "County"), "town": ("镇街", "Town"), "village": ("村(社)", "Village"),
          "grid": ("网格", "Grid")}
TABLES = {**base.TABLES, "status": STATUS, "granularity": GRANULARITY, "report": REPORT_KINDS, "level": LEVELS}


def label(table: str, code) -> str:
    if code is None or code == "":
        return "—"
    pair = TABLES[table].get(code)
    if pair is None:
        return str(code)
    return pair[1] if base.english() else pair[0]


def choices(table: str) -> list[tuple[str, str]]:
    return [(code, label(table, code)) for code in TABLES[table]]


def pct(value: float | None) -> str:
    """A share (0..1) as a percentage with one decimal, "—" when undefined."""
    return "—" if value is None else f"{value * 100:.1f}%"


def span_text(seconds: float | None) -> str:
    """A duration for people: days above one day, else hours, else minutes."""
    if seconds is None:
        return "—"
    if seconds >= 86400:
        return _("%(n)s天", n=f"{seconds / 86400:.1f}")
    if seconds >= 3600:
        return _("%(n)s小时", n=f"{seconds / 3600:.1f}")
    return _("%(n)s分钟", n=f"{seconds / 60:.0f}")
