"""Read side of the supervisor console: case lists, instance diagrams, statistics, early warnings
and the heat map. Everything is SQL over the projections (``dispute_case``, ``human_task``,
``timer``, ``case_event``); nothing here loads a workflow.

Scope: a supervisor sees the subtrees of the units where they hold the ``supervisor`` role, and
nothing else (another town's case answers 404, as everywhere else in the product).

Definitions every figure uses (the dashboard, the reports and the API say the same):

* **period**: local calendar dates ``start``..``end`` inclusive, in the deployment's time zone
  (Asia/Shanghai); a case counts for the period its ``opened_at`` / ``closed_at`` falls in.
* **open**: a case not closed (intake, open or suspended).
* **overdue**: ``due_at`` (the current tier's time limit) has passed and the case is being handled
  (status intake or open). A suspended case is not overdue: its time limits stand still.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from lxml import etree
from sqlalchemy import Date, and_, cast, exists, func, literal, literal_column, or_, select, text
from sqlalchemy import case as when

from app import clock
from app.cases.catalog import CATEGORIES, CHANNELS, TIER_ORDER, TIERS
from app.cases.models import CaseEvent, CaseStatus, DisputeCase, HumanTask, TaskStatus, Timer
from app.errors import Forbidden, NotFound
from app.extensions import db
from app.org.models import Level, OrgUnit, RoleGrant, User
from app.org.roles import TASK_ROLES
from app.processes.models import ProcessVersion

SUPERVISOR = "supervisor"
#: statuses of a case still being worked on; time limits run only in these
HANDLING = (CaseStatus.intake, CaseStatus.open)
#: statuses of a case that is not closed
NOT_CLOSED = (CaseStatus.intake, CaseStatus.open, CaseStatus.suspended)
#: tiers whose "resolved at or below" share the dashboard reports
RATE_TIERS = ("village", "town", "county")
#: outcomes that decide a dispute on its merits (the base of the resolution figures)
DECIDED = ("resolved", "litigated")
SATISFIED = ("satisfied", "basically_satisfied")
#: a case involving at least this many people is a mass dispute (涉众)
MASS_PEOPLE = 10
#: the risk level of a stability-risk dispute (涉稳)
STABILITY_RISK = "high"
GRANULARITIES = ("day", "week", "month")
#: the heat map looks at tasks completed in the last this many days unless told otherwise
HEATMAP_DAYS = 90
MAX_PERIOD_DAYS = 3 * 366

# Hot spots (see hot_spots()).
HOT_WINDOW_DAYS = 7
HOT_BASELINE_WEEKS = 4
HOT_FACTOR = 2
HOT_MIN_CASES = 3


def zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["TIMEZONE"])


def local_today(now: datetime) -> date:
    return now.astimezone(zone()).date()


def local_midnight(day: date) -> datetime:
    """The UTC instant a local calendar day starts."""
    return datetime(day.year, day.month, day.day, tzinfo=zone()).astimezone(UTC)


def _dialect() -> str:
    return db.session.get_bind().dialect.name


# ---------------------------------------------------------------------------------------------
# Scope

def supervisor_paths(user: User) -> list[str]:
    """Org paths of the subtrees ``user`` supervises (nested grants collapsed into the outer one)."""
    paths = sorted({g.org_path for g in user.grants if g.role == SUPERVISOR})
    return [p for p in paths if not any(p != q and p.startswith(q) for q in paths)]


def require_supervisor(user: User) -> list[str]:
    """The user's supervised subtrees; Forbidden when they supervise nothing."""
    paths = supervisor_paths(user)
    if not paths:
        raise Forbidden("the supervisor console needs the supervisor role")
    return paths


def in_paths(column, paths: list[str]):
    return or_(*[column.startswith(path, autoescape=True) for path in paths]) if paths else literal(False)


def _tree_key(unit: OrgUnit):
    return [int(part) for part in unit.path.strip("/").split("/") if part]


def units_in_scope(paths: list[str], with_grids: bool = True) -> list[OrgUnit]:
    """The units of the supervised subtrees in tree order (a unit, then its children)."""
    stmt = select(OrgUnit).where(in_paths(OrgUnit.path, paths))
    if not with_grids:
        stmt = stmt.where(OrgUnit.level != Level.grid)
    return sorted(db.session.scalars(stmt), key=_tree_key)


def resolve_unit(paths: list[str], unit_id: int | None) -> OrgUnit:
    """The chosen unit, which must lie in the supervised subtrees (404 otherwise); by default the
    top of the first subtree."""
    if unit_id is None:
        return db.session.scalar(select(OrgUnit).where(OrgUnit.path == paths[0]))
    unit = db.session.get(OrgUnit, unit_id)
    if unit is None or not any(unit.path.startswith(path) for path in paths):
        raise NotFound(f"org unit {unit_id} not found")
    return unit


def children_of(unit: OrgUnit) -> list[OrgUnit]:
    return sorted(db.session.scalars(select(OrgUnit).where(OrgUnit.parent_id == unit.id)), key=_tree_key)


def supervised_case(user: User, case_id: int) -> DisputeCase:
    """One case in the user's supervised subtrees (404 outside them, as for anyone else)."""
    paths = require_supervisor(user)
    case = db.session.get(DisputeCase, case_id)
    if case is None or not any(case.org_path.startswith(path) for path in paths):
        raise NotFound(f"dispute {case_id} not found")
    return case


def handlers_in_scope(paths: list[str]) -> list[User]:
    """People who work tasks in the supervised subtrees (the case list's handler filter)."""
    return list(db.session.scalars(
        select(User).join(RoleGrant, RoleGrant.user_id == User.id)
        .where(in_paths(RoleGrant.org_path, paths), RoleGrant.role.in_(sorted(TASK_ROLES)), User.active)
        .distinct().order_by(User.username)))


# ---------------------------------------------------------------------------------------------
# Instance list

@dataclass
class Period:
    """Local calendar dates ``start``..``end``, both included."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def bounds(self) -> tuple[datetime, datetime]:
        """[first instant, first instant after) in UTC."""
        return local_midnight(self.start), local_midnight(self.end + timedelta(days=1))


def default_period(now: datetime, days: int = 30) -> Period:
    """The last ``days`` local days up to and including today."""
    today = local_today(now)
    return Period(today - timedelta(days=days - 1), today)


@dataclass
class CaseFilters:
    """The case list's filters; ``parse`` drops values that are not valid instead of failing."""

    unit: int | None = None
    tier: str | None = None
    status: str | None = None
    category: str | None = None
    channel: str | None = None
    overdue: bool = False
    opened_from: date | None = None
    opened_to: date | None = None
    closed_from: date | None = None
    closed_to: date | None = None
    handler: int | None = None
    q: str | None = None

    NAMES = ("unit", "tier", "status", "category", "channel", "overdue", "opened_from", "opened_to",
             "closed_from", "closed_to", "handler", "q")

    @classmethod
    def parse(cls, args) -> CaseFilters:
        def choice(name, allowed):
            value = args.get(name) or None
            return value if value in allowed else None

        def integer(name):
            try:
                return int(args.get(name) or "") or None
            except ValueError:
                return None

        def day(name):
            try:
                return date.fromisoformat(args.get(name) or "")
            except ValueError:
                return None

        return cls(
            unit=integer("unit"), tier=choice("tier", TIERS), status=choice("status", NOT_CLOSED + ("closed",)),
            category=choice("category", CATEGORIES), channel=choice("channel", CHANNELS),
            overdue=args.get("overdue") in ("1", "true", "on"), opened_from=day("opened_from"),
            opened_to=day("opened_to"), closed_from=day("closed_from"), closed_to=day("closed_to"),
            handler=integer("handler"), q=(args.get("q") or "").strip()[:100] or None,
        )

    def as_args(self) -> dict[str, str]:
        """The non-empty filters as query-string arguments (links, saved filters, exports)."""
        out = {}
        for name in self.NAMES:
            value = getattr(self, name)
            if value is None or value is False:
                continue
            out[name] = "1" if value is True else value.isoformat() if isinstance(value, date) else str(value)
        return out


@dataclass
class Page:
    items: list
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max((self.total + self.per_page - 1) // self.per_page, 1)


def _date_range(stmt, column, start: date | None, end: date | None):
    if start is not None:
        stmt = stmt.where(column >= local_midnight(start))
    if end is not None:
        stmt = stmt.where(column < local_midnight(end + timedelta(days=1)))
    return stmt


def case_conditions(paths: list[str], filters: CaseFilters, now: datetime):
    """The WHERE clause of the case list: the supervised subtrees narrowed by the filters."""
    conditions = [in_paths(DisputeCase.org_path, paths)]
    if filters.unit is not None:
        unit = resolve_unit(paths, filters.unit)
        conditions.append(DisputeCase.org_path.startswith(unit.path, autoescape=True))
    for name in ("tier", "status", "category", "channel"):
        value = getattr(filters, name)
        if value:
            column = DisputeCase.current_tier if name == "tier" else getattr(DisputeCase, name)
            conditions.append(column == value)
    if filters.overdue:
        conditions.append(overdue_condition(now))
    if filters.handler is not None:
        conditions.append(exists().where(
            HumanTask.case_id == DisputeCase.id, HumanTask.status == TaskStatus.ready,
            HumanTask.assignee_id == filters.handler))
    if filters.q:
        like = f"%{filters.q}%"
        conditions.append(or_(DisputeCase.title.like(like), DisputeCase.number.like(like)))
    return conditions


def overdue_condition(now: datetime):
    return and_(DisputeCase.due_at < now, DisputeCase.status.in_(HANDLING))


def _filtered(stmt, paths, filters, now):
    stmt = stmt.where(*case_conditions(paths, filters, now))
    stmt = _date_range(stmt, DisputeCase.opened_at, filters.opened_from, filters.opened_to)
    return _date_range(stmt, DisputeCase.closed_at, filters.closed_from, filters.closed_to)


def list_cases(paths: list[str], filters: CaseFilters, now: datetime, page: int = 1, per_page: int = 20) -> Page:
    """One page of the matching cases, newest first."""
    stmt = _filtered(select(DisputeCase), paths, filters, now)
    total = db.session.scalar(_filtered(select(func.count()), paths, filters, now)) or 0
    items = list(db.session.scalars(
        stmt.order_by(DisputeCase.opened_at.desc(), DisputeCase.id.desc())
        .limit(per_page).offset((page - 1) * per_page)))
    return Page(items, total, page, per_page)


EXPORT_COLUMNS = ("number", "title", "category", "channel", "unit", "status", "current_tier", "outcome",
                  "resolved_tier", "satisfaction", "risk_level", "people_involved", "opened_at", "closed_at",
                  "due_at", "overdue")


def export_rows(paths: list[str], filters: CaseFilters, now: datetime, batch: int = 1000):
    """Every matching case as a dict of EXPORT_COLUMNS, newest first, fetched ``batch`` rows at a
    time (a server-side cursor on PostgreSQL) so an export of any size streams in little memory."""
    names = {unit.id: unit.name for unit in db.session.scalars(select(OrgUnit).where(in_paths(OrgUnit.path, paths)))}
    columns = (DisputeCase.number, DisputeCase.title, DisputeCase.category, DisputeCase.channel,
               DisputeCase.org_unit_id, DisputeCase.status, DisputeCase.current_tier, DisputeCase.outcome,
               DisputeCase.resolved_tier, DisputeCase.satisfaction, DisputeCase.risk_level,
               DisputeCase.people_involved, DisputeCase.opened_at, DisputeCase.closed_at, DisputeCase.due_at)
    stmt = _filtered(select(*columns), paths, filters, now).order_by(
        DisputeCase.opened_at.desc(), DisputeCase.id.desc())
    result = db.session.execute(stmt.execution_options(yield_per=batch, stream_results=True))
    for row in result:
        values = row._asdict()
        values["unit"] = names.get(values.pop("org_unit_id"), "")
        values["overdue"] = bool(values["due_at"] and values["due_at"] < now and values["status"] in HANDLING)
        yield values


# ---------------------------------------------------------------------------------------------
# Instance page: the case's own diagrams with its state marked

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
_diagram_cache: dict[tuple[int, str], list[Diagram]] = {}


@dataclass
class Diagram:
    """One BPMN file of a process version, drawn as one tab."""

    file: str
    xml: str
    #: process id → its name
    processes: dict[str, str]
    #: every flow element id in the file → the process it belongs to
    elements: dict[str, str]
    #: call activity id → the process it calls
    calls: dict[str, str]
    #: flow element id → its name (as drawn)
    names: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return next(iter(self.processes.values()), self.file)


def _read_diagram(name: str, xml: str) -> Diagram:
    root = etree.fromstring(xml.encode("utf-8"), parser=_XML)
    processes, elements, calls, names = {}, {}, {}, {}
    for process in root.iter(f"{{{BPMN}}}process"):
        pid = process.get("id")
        processes[pid] = process.get("name") or pid
        for element in process.iter():
            if element is process or not isinstance(element.tag, str) or not element.get("id"):
                continue
            elements[element.get("id")] = pid
            if element.get("name"):
                names[element.get("id")] = element.get("name")
            if element.tag == f"{{{BPMN}}}callActivity" and element.get("calledElement"):
                calls[element.get("id")] = element.get("calledElement")
    return Diagram(name, xml, processes, elements, calls, names)


def version_diagrams(version: ProcessVersion) -> list[Diagram]:
    """The version's diagrams: the file holding the process ``version.key`` first, then the files
    of the processes it calls (breadth first). Cached per version: versions never change."""
    cache_key = (version.id, version.content_hash)
    if cache_key in _diagram_cache:
        return _diagram_cache[cache_key]
    files = [_read_diagram(name, xml) for name, xml in sorted(version.file_map("bpmn").items())]
    by_process = {pid: diagram for diagram in files for pid in diagram.processes}
    ordered, queue = [], [version.key]
    while queue:
        diagram = by_process.get(queue.pop(0))
        if diagram is None or diagram in ordered:
            continue
        ordered.append(diagram)
        queue.extend(diagram.calls.values())
    if len(_diagram_cache) > 64:
        _diagram_cache.clear()
    _diagram_cache[cache_key] = ordered
    return ordered


def case_tasks(case: DisputeCase) -> list[HumanTask]:
    """All the case's tasks (ready, completed, cancelled), oldest first."""
    return list(db.session.scalars(
        select(HumanTask).where(HumanTask.case_id == case.id).order_by(HumanTask.created_at, HumanTask.id)))


#: marker classes on the diagram, strongest last (CSS gives the later ones priority)
MARKERS = ("sv-cancelled", "sv-fired", "sv-completed", "sv-active", "sv-overdue")


def instance_markers(case: DisputeCase, diagrams: list[Diagram], now: datetime) -> dict[str, dict[str, list[str]]]:
    """Marker classes per diagram file and element id: tasks completed / active (ready) / overdue
    (ready past the time limit) / cancelled (closed without completion), boundary timers that
    fired. A call activity takes the marks of the tasks inside the process it calls, so the main
    diagram shows where the case is even though its tasks live in sub-process diagrams."""
    owner = {}  # element id → (file, process)
    callers = defaultdict(list)  # process id → [(file, call activity id)]
    for diagram in diagrams:
        for element, pid in diagram.elements.items():
            owner.setdefault(element, (diagram.file, pid))
        for activity, called in diagram.calls.items():
            callers[called].append((diagram.file, activity))
    marks: dict[tuple[str, str], set[str]] = defaultdict(set)

    def mark(element: str, cls: str):
        if element not in owner:
            return
        file, pid = owner[element]
        seen = set()
        target, process = (file, element), pid
        marks[target].add(cls)
        # Carry the mark up through every call activity that calls this element's process.
        pending = [process]
        while pending:
            process = pending.pop()
            if process in seen:
                continue
            seen.add(process)
            for caller_file, activity in callers.get(process, []):
                marks[(caller_file, activity)].add(cls)
                pending.append(owner.get(activity, (None, None))[1])

    for task in case_tasks(case):
        if task.status == TaskStatus.completed:
            mark(task.spec_name, "sv-completed")
        elif task.status == TaskStatus.ready:
            mark(task.spec_name, "sv-active")
            if task.due_at is not None and task.due_at < now and case.status in HANDLING:
                mark(task.spec_name, "sv-overdue")
        else:
            mark(task.spec_name, "sv-cancelled")
    for spec_name in db.session.scalars(select(Timer.spec_name).where(Timer.case_id == case.id, Timer.status == "fired")):
        mark(spec_name, "sv-fired")
    out: dict[str, dict[str, list[str]]] = {diagram.file: {} for diagram in diagrams}
    for (file, element), classes in marks.items():
        out[file][element] = [cls for cls in MARKERS if cls in classes]
    return out


# ---------------------------------------------------------------------------------------------
# Dashboard

@dataclass
class Figures:
    """Counts behind every dashboard figure; all additive, so breakdowns sum to the totals.

    ``opened``: cases opened in the period. ``closed``: cases closed in the period (any outcome).
    ``decided``: of those, closed as resolved or litigated; ``resolved`` / ``litigated`` split it.
    ``at_or_below[tier]``: decided cases whose ``resolved_tier`` is that tier or a lower one
    (a litigated case counts at the court tier, above every mediation tier).
    ``on_time``: closed cases on which no time limit ever fired (no ``case_event`` of kind
    ``time_limit``: no tier's 办理时限 ran out, so the case was never escalated by the clock).
    ``rated`` / ``satisfied``: closed cases with a satisfaction rating / rated satisfied or
    basically satisfied. ``overdue``: open cases past their time limit now (a snapshot, not a
    period figure; see the module docstring).
    """

    opened: int = 0
    closed: int = 0
    decided: int = 0
    resolved: int = 0
    litigated: int = 0
    at_or_below: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RATE_TIERS, 0))
    on_time: int = 0
    rated: int = 0
    satisfied: int = 0
    overdue: int = 0

    def add(self, other: Figures) -> None:
        for name in ("opened", "closed", "decided", "resolved", "litigated", "on_time", "rated", "satisfied",
                     "overdue"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for tier in RATE_TIERS:
            self.at_or_below[tier] += other.at_or_below[tier]

    def rates(self) -> dict:
        """Shares as fractions rounded to 4 places (None when there is nothing to divide by).

        ``resolved_at_or_below[tier]`` = at_or_below[tier] / decided; ``litigation`` = litigated /
        decided; ``mediation_success`` = resolved / decided; ``on_time`` = on_time / closed;
        ``satisfaction`` = satisfied / rated.
        """
        return {
            "resolved_at_or_below": {tier: ratio(self.at_or_below[tier], self.decided) for tier in RATE_TIERS},
            "litigation": ratio(self.litigated, self.decided),
            "mediation_success": ratio(self.resolved, self.decided),
            "on_time": ratio(self.on_time, self.closed),
            "satisfaction": ratio(self.satisfied, self.rated),
        }


def ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


@dataclass
class Breakdown:
    key: str | int
    name: str | None
    figures: Figures


@dataclass
class TrendPoint:
    bucket: str
    start: date
    opened: int = 0
    closed: int = 0


@dataclass
class HotSpot:
    """A category in a village whose last 7 days exceed its baseline (see hot_spots())."""

    unit_id: int
    unit_name: str
    category: str
    count: int
    baseline: int

    @property
    def weekly_average(self) -> float:
        return self.baseline / HOT_BASELINE_WEEKS

    @property
    def ratio(self) -> float | None:
        return round(self.count / self.weekly_average, 2) if self.baseline else None


@dataclass
class Dashboard:
    unit: OrgUnit
    period: Period
    granularity: str
    figures: Figures
    by_category: list[Breakdown]
    by_channel: list[Breakdown]
    by_unit: list[Breakdown]
    trend: list[TrendPoint]
    hot_spots: list[HotSpot]
    flagged: dict
    generated_at: datetime


def _count_if(condition):
    return func.sum(when((condition, 1), else_=0))


def _local_bucket(column, granularity: str = "day"):
    """The local calendar day a timestamp falls on, or the first day of its ISO week / month, in SQL.

    PostgreSQL converts with the zone's rules; SQLite has no zone database, so it shifts by the
    zone's current UTC offset (exact for zones without daylight saving time, such as Asia/Shanghai).
    """
    if _dialect() == "postgresql":
        local = func.timezone(current_app.config["TIMEZONE"], column)
        if granularity in ("week", "month"):
            return cast(func.date_trunc(granularity, local), Date)
        return cast(local, Date)
    offset = int(datetime.now(zone()).utcoffset().total_seconds() // 60)
    modifiers = {"week": ("-6 days", "weekday 1"), "month": ("start of month",)}.get(granularity, ())
    return func.date(column, f"{offset:+d} minutes", *modifiers)


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _closed_columns():
    tier_rank = {tier: TIER_ORDER[: TIER_ORDER.index(tier) + 1] for tier in RATE_TIERS}
    decided = DisputeCase.outcome.in_(DECIDED)
    return [
        func.count(),
        _count_if(decided),
        _count_if(DisputeCase.outcome == "resolved"),
        _count_if(DisputeCase.outcome == "litigated"),
        *[_count_if(and_(decided, DisputeCase.resolved_tier.in_(tier_rank[tier]))) for tier in RATE_TIERS],
        _count_if(DisputeCase.satisfaction.is_not(None)),
        _count_if(DisputeCase.satisfaction.in_(SATISFIED)),
    ]


@dataclass
class Counts:
    """What one pass over a period yields: the figures in total and by category, by channel and by
    unit bucket (each on its own: the breakdowns are margins, never crossed), and cases opened /
    closed per local day (the trend)."""

    total: Figures
    by: dict[str, dict]  # "category" | "channel" | "unit" → key → Figures
    opened_days: dict[date, int]
    closed_days: dict[date, int]


#: PostgreSQL's default work_mem (4 MB) makes the planner sort a month of a large county's closures
#: on disk instead of hashing them in memory (85 ms against 45 ms at 1M cases); the console's read
#: transaction raises it for itself only (SET LOCAL).
AGGREGATE_SETTINGS = {"work_mem": "32MB"}

# Positions in the per-group tallies count_period() keeps before building Figures.
_OPENED, _CLOSED, _DECIDED, _RESOLVED, _LITIGATED, _VILLAGE, _TOWN, _COUNTY, _RATED, _SATISFIED, _LATE, _OVERDUE = \
    range(12)


def _path_bucketer(unit: OrgUnit, children: list[OrgUnit] | None):
    """org path → the child of ``unit`` it falls under (``unit`` itself when directly at it)."""
    cache: dict[str, int] = {}

    def bucket_of(path: str) -> int:
        if path not in cache:
            cache[path] = next((child.id for child in children or () if path.startswith(child.path)), unit.id)
        return cache[path]
    return bucket_of


def count_period(unit: OrgUnit, period: Period, now: datetime, children: list[OrgUnit] | None = None,
                 granularity: str = "day", live: bool = False, with_trend: bool = True,
                 with_figures: bool = True) -> Counts:
    """Figures in total and by category, channel and child unit (of ``children``, else ``unit``),
    and the trend.

    Full past days up to the rollups' last refreshed day come from the rollups, summed by each
    breakdown on its own (app/supervision/rollups.py); the rest of the period (today, days not
    refreshed yet) live from the projections, or all of it when ``live``. The split is at a local
    day boundary, so each case is counted once. Live, it is four GROUP BY queries:

    1. cases opened, by (category, channel, org path, local day / week / month);
    2. cases closed, by the same keys, with the closure counts as conditional sums;
    3. of those, the ones a time limit fired on (a semi-join on case_event): on_time = closed − these;
    4. cases overdue now (always live: a snapshot), by (category, channel, org path).

    Org paths are mapped to child units here, not in SQL (a handful of paths, no LIKE per row).
    Each reads one covering index on PostgreSQL (see app/supervision/models.py).
    """
    from app.supervision import rollups

    if _dialect() == "postgresql":
        for name, value in AGGREGATE_SETTINGS.items():
            db.session.execute(text(f"SET LOCAL {name} = '{value}'"))
    bucket_of = _path_bucketer(unit, children)
    total = [0] * 12
    tallies: dict[str, dict] = {margin: defaultdict(lambda: [0] * 12) for margin in ("category", "channel", "unit")}
    opened_days: dict[date, int] = defaultdict(int)
    closed_days: dict[date, int] = defaultdict(int)
    scope = DisputeCase.org_path.startswith(unit.path, autoescape=True)
    keys = (DisputeCase.category, DisputeCase.channel, DisputeCase.org_path)

    def add(category, channel, path, position, values):
        """One live row (a cell of the cross product) counts in the total and in every breakdown."""
        for tally in (total, tallies["category"][category], tallies["channel"][channel],
                      tallies["unit"][bucket_of(path)]):
            for offset, value in enumerate(values):
                tally[position + offset] += int(value or 0)

    remaining: Period | None = period
    through = None if live else rollups.covered_through()
    if through is not None and through >= period.start:
        last = min(through, period.end)
        for margin, key, *values in (rollups.case_margins(unit.path, period.start, last) if with_figures else ()):
            # CASE_COUNTS: opened, closed .. satisfied, late; the category margin also makes the total
            if margin == "category":
                targets = (tallies["category"][key], total)
            elif margin == "channel":
                targets = (tallies["channel"][key],)
            else:
                targets = (tallies["unit"][bucket_of(key)],)
            for tally in targets:
                for offset, value in enumerate(values):
                    tally[_OPENED + offset] += value
        if with_trend:
            for day, opened_count, closed_count in rollups.case_days(unit.path, period.start, last):
                opened_days[day] += opened_count
                closed_days[day] += closed_count
        remaining = Period(last + timedelta(days=1), period.end) if last < period.end else None

    if remaining is not None:
        start, end = remaining.bounds()
        opened_day = _local_bucket(DisputeCase.opened_at, granularity).label("day")
        opened = select(*keys, opened_day, func.count()).where(
            scope, DisputeCase.opened_at >= start, DisputeCase.opened_at < end).group_by(*keys, opened_day)
        for category, channel, path, day, count in db.session.execute(opened):
            add(category, channel, path, _OPENED, (count,))
            opened_days[_as_date(day)] += count

        in_period = (scope, DisputeCase.status == CaseStatus.closed, DisputeCase.closed_at >= start,
                     DisputeCase.closed_at < end)
        closed_day = _local_bucket(DisputeCase.closed_at, granularity).label("day")
        closed = select(*keys, closed_day, *_closed_columns()).where(*in_period).group_by(*keys, closed_day)
        for category, channel, path, day, *values in db.session.execute(closed):
            add(category, channel, path, _CLOSED, values)
            closed_days[_as_date(day)] += values[0]

        fired = exists().where(CaseEvent.kind == "time_limit", CaseEvent.case_id == DisputeCase.id)
        late = select(*keys, func.count()).where(*in_period, fired).group_by(*keys)
        for category, channel, path, count in db.session.execute(late) if with_figures else ():
            add(category, channel, path, _LATE, (count,))

    overdue = select(*keys, func.count()).where(scope, overdue_condition(now)).group_by(*keys)
    for category, channel, path, count in db.session.execute(overdue) if with_figures else ():
        add(category, channel, path, _OVERDUE, (count,))

    def figures(t):
        return Figures(
            opened=t[_OPENED], closed=t[_CLOSED], decided=t[_DECIDED], resolved=t[_RESOLVED],
            litigated=t[_LITIGATED], at_or_below={"village": t[_VILLAGE], "town": t[_TOWN], "county": t[_COUNTY]},
            on_time=t[_CLOSED] - t[_LATE], rated=t[_RATED], satisfied=t[_SATISFIED], overdue=t[_OVERDUE])

    return Counts(figures(total), {margin: {key: figures(t) for key, t in rows.items()} for margin, rows in tallies.items()},
                  dict(opened_days), dict(closed_days))


def period_totals(unit: OrgUnit, period: Period, now: datetime, live: bool = False) -> Figures:
    """Every figure of ``unit``'s subtree over ``period``, without breakdowns; see count_period()."""
    return count_period(unit, period, now, live=live, with_trend=False).total


def _breakdown(by_key: dict, names: dict | None = None) -> list[Breakdown]:
    rows: dict = defaultdict(Figures, by_key)
    if names is not None:
        for key in names:
            rows.setdefault(key, Figures())
        ordered = [key for key in names if key in rows] + sorted(key for key in rows if key not in names)
        return [Breakdown(key, names.get(key), rows[key]) for key in ordered]
    return [Breakdown(key, None, figures) for key, figures in
            sorted(rows.items(), key=lambda item: (-item[1].opened, -item[1].closed, str(item[0])))]


def _bucket_start(day: date, granularity: str) -> date:
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def _bucket_label(start: date, granularity: str) -> str:
    if granularity == "week":
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if granularity == "month":
        return f"{start:%Y-%m}"
    return start.isoformat()


def trend_points(period: Period, granularity: str, opened: dict[date, int], closed: dict[date, int]) -> list[TrendPoint]:
    """The period's days, ISO weeks (from Monday) or months with their counts; ``opened`` / ``closed``
    are keyed by day or by the first day of a week / month. The first and last week/month are cut
    at the period's edges."""
    points: dict[date, TrendPoint] = {}
    day = period.start
    while day <= period.end:
        key = _bucket_start(day, granularity)
        points.setdefault(key, TrendPoint(_bucket_label(key, granularity), max(key, period.start)))
        day += timedelta(days=1)
    for counts, attribute in ((opened, "opened"), (closed, "closed")):
        for day, count in counts.items():
            point = points.get(_bucket_start(day, granularity))
            if point is not None:
                setattr(point, attribute, getattr(point, attribute) + count)
    return list(points.values())


def trend(unit: OrgUnit, period: Period, granularity: str = "day", live: bool = False) -> list[TrendPoint]:
    """Cases opened and closed per local day, week or month of the period (see trend_points)."""
    counts = count_period(unit, period, clock.now(), None, granularity, live=live, with_figures=False)
    return trend_points(period, granularity, counts.opened_days, counts.closed_days)


def _village_of(unit: OrgUnit, units: dict[int, OrgUnit]) -> OrgUnit:
    """The village/community a unit belongs to (a grid's parent); the unit itself otherwise."""
    if unit.level == Level.grid and unit.parent_id in units:
        return units[unit.parent_id]
    return unit


def hot_spots(unit: OrgUnit, end: date, live: bool = False) -> list[HotSpot]:
    """Categories rising in a village: the early warning (预警) for high-frequency issues.

    Rule: for each village/community (a grid's cases count for its village) and category, take
    ``count`` = cases opened in the 7 local days ending on ``end`` (inclusive) and ``baseline`` =
    cases opened in the 28 days before those. It is a hot spot when ``count`` ≥ 3 and ``count`` ≥
    2 × the baseline's weekly average (baseline / 4); a category new to the village (baseline 0)
    is a hot spot from 3 cases. Sorted by count, then by how far above the baseline.

    Full past days come from ``case_day_rollup``'s opened counts, the rest live (all when ``live``).
    """
    from app.supervision import rollups
    from app.supervision.models import CaseDayRollup

    window_start = end - timedelta(days=HOT_WINDOW_DAYS - 1)
    baseline_start = window_start - timedelta(days=HOT_WINDOW_DAYS * HOT_BASELINE_WEEKS)
    counted: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    live_from = baseline_start
    through = None if live else rollups.covered_through()
    if through is not None and through >= baseline_start:
        rolled_last = min(through, end)
        recent = CaseDayRollup.day >= window_start
        stmt = (select(CaseDayRollup.org_path, CaseDayRollup.category,
                       func.sum(when((recent, CaseDayRollup.opened), else_=0)),
                       func.sum(when((~recent, CaseDayRollup.opened), else_=0)))
                .where(CaseDayRollup.org_path.startswith(unit.path, autoescape=True),
                       CaseDayRollup.day >= baseline_start, CaseDayRollup.day <= rolled_last)
                .group_by(CaseDayRollup.org_path, CaseDayRollup.category))
        for path, category, in_window, before in db.session.execute(stmt):
            counted[(path, category)][0] += int(in_window or 0)
            counted[(path, category)][1] += int(before or 0)
        live_from = rolled_last + timedelta(days=1)
    if live_from <= end:
        split, finish = local_midnight(window_start), local_midnight(end + timedelta(days=1))
        stmt = (
            select(DisputeCase.org_path, DisputeCase.category,
                   _count_if(DisputeCase.opened_at >= split), _count_if(DisputeCase.opened_at < split))
            .where(DisputeCase.org_path.startswith(unit.path, autoescape=True),
                   DisputeCase.opened_at >= local_midnight(live_from), DisputeCase.opened_at < finish)
            .group_by(DisputeCase.org_path, DisputeCase.category)
        )
        for path, category, in_window, before in db.session.execute(stmt):
            counted[(path, category)][0] += int(in_window or 0)
            counted[(path, category)][1] += int(before or 0)
    if not counted:
        return []
    units = {u.id: u for u in db.session.scalars(select(OrgUnit))}
    village_of_path = {u.path: _village_of(u, units).id for u in units.values()}  # once per unit, not per row
    totals: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for (path, category), (count, baseline) in counted.items():
        into = totals[(village_of_path[path], category)]
        into[0] += count
        into[1] += baseline
    spots = [
        HotSpot(village_id, units[village_id].name, category, count, baseline)
        for (village_id, category), (count, baseline) in totals.items()
        if count >= HOT_MIN_CASES and count * HOT_BASELINE_WEEKS >= HOT_FACTOR * baseline
    ]
    return sorted(spots, key=lambda s: (-s.count, s.ratio is not None, -(s.ratio or 0), s.unit_name, s.category))


def flagged_cases(unit: OrgUnit, limit: int = 50) -> dict:
    """Open cases flagged for attention: mass disputes (涉众: ≥ 10 people involved) and stability
    risks (涉稳: risk level high). Counts over all of them, the ``limit`` newest listed.

    The constants are inlined (not bound) so PostgreSQL matches the partial index
    ``ix_case_flagged_open`` whatever plan it caches.
    """
    mass = DisputeCase.people_involved >= literal_column(str(int(MASS_PEOPLE)))
    stability = DisputeCase.risk_level == literal_column(f"'{STABILITY_RISK}'")
    conditions = (DisputeCase.org_path.startswith(unit.path, autoescape=True),
                  DisputeCase.status != literal_column(f"'{CaseStatus.closed}'"), or_(mass, stability))
    total, mass_count, stability_count = db.session.execute(
        select(func.count(), _count_if(mass), _count_if(stability)).where(*conditions)).one()
    items = list(db.session.scalars(
        select(DisputeCase).where(*conditions).order_by(DisputeCase.opened_at.desc(), DisputeCase.id.desc())
        .limit(limit)))
    return {"total": int(total or 0), "mass": int(mass_count or 0), "stability": int(stability_count or 0),
            "items": items}


def dashboard(unit: OrgUnit, period: Period, now: datetime, granularity: str = "day", live: bool = False) -> Dashboard:
    """Every dashboard figure for ``unit``'s subtree and ``period`` (see Figures for definitions)."""
    children = children_of(unit)
    counts = count_period(unit, period, now, children, granularity, live=live)
    totals = counts.total
    unit_names = {child.id: child.name for child in children}
    unit_rows = _breakdown(counts.by["unit"], unit_names)
    for row in unit_rows:
        if row.key == unit.id:
            row.name = unit.name
    return Dashboard(
        unit=unit, period=period, granularity=granularity, figures=totals,
        by_category=[row for row in _breakdown(counts.by["category"], dict.fromkeys(CATEGORIES))
                     if _nonzero(row.figures)],
        by_channel=[row for row in _breakdown(counts.by["channel"], dict.fromkeys(CHANNELS)) if _nonzero(row.figures)],
        by_unit=unit_rows, trend=trend_points(period, granularity, counts.opened_days, counts.closed_days),
        hot_spots=hot_spots(unit, period.end, live=live),
        flagged=flagged_cases(unit), generated_at=now,
    )


def _nonzero(figures: Figures) -> bool:
    return bool(figures.opened or figures.closed or figures.overdue)


# ---------------------------------------------------------------------------------------------
# Heat map

@dataclass
class TaskHeat:
    spec_name: str
    title: str
    passed: int
    median_seconds: float | None
    waiting: int


def heatmap(unit: OrgUnit, version: ProcessVersion, period: Period | None = None, live: bool = False) -> dict[str, TaskHeat]:
    """Per user-task spec of ``version``, over the cases of ``unit``'s subtree: how many tasks were
    completed (``passed``), their median time from ready to completed, and how many wait now.

    ``period`` restricts ``passed`` and the median to tasks completed in it (the pages and the API
    default to the last HEATMAP_DAYS days); None means all history. ``waiting`` is always now.
    Full past days come from ``task_day_rollup``, the rest live (all of it when ``live``). The
    median comes from a duration histogram summed in SQL, on both paths alike: within ≈ 9 % of
    the exact median (see rollups.median_seconds).
    """
    from app.supervision import rollups

    histograms: dict[str, list[int]] = {}

    def merge(found: dict[str, list[int]]):
        for spec, counts in found.items():
            into = histograms.setdefault(spec, [0] * len(counts))
            for index, count in enumerate(counts):
                into[index] += count

    first = period.start if period is not None else None
    last = period.end if period is not None else None
    read_live = True
    through = None if live else rollups.covered_through()
    if through is not None and (first is None or through >= first):
        rolled_last = through if last is None else min(through, last)
        merge(rollups.task_histograms(version.id, unit.path, first, rolled_last))
        first = rolled_last + timedelta(days=1)
        read_live = last is None or first <= last
    if read_live:
        start = local_midnight(first) if first is not None else None
        end = local_midnight(last + timedelta(days=1)) if last is not None else None
        merge(rollups.live_histograms(version.id, unit.path, start, end))

    titles = {element: name for diagram in version_diagrams(version) for element, name in diagram.names.items()}
    heat = {spec: TaskHeat(spec, titles.get(spec, spec), sum(counts), rollups.median_seconds(counts), 0)
            for spec, counts in histograms.items() if sum(counts)}
    # A ready task belongs to a case not closed; the literals let PostgreSQL use the partial
    # indexes ix_case_open_cover and ix_human_task_ready_cover (app/supervision/models.py).
    waiting = select(HumanTask.spec_name, func.count()).where(
        HumanTask.case_id == DisputeCase.id, DisputeCase.process_version_id == version.id,
        DisputeCase.org_path.startswith(unit.path, autoescape=True),
        DisputeCase.status != literal_column(f"'{CaseStatus.closed}'"),
        HumanTask.status == literal_column(f"'{TaskStatus.ready}'")).group_by(HumanTask.spec_name)
    for spec, count in db.session.execute(waiting):
        heat.setdefault(spec, TaskHeat(spec, titles.get(spec, spec), 0, None, 0)).waiting = count
    return heat


def process_versions() -> list[ProcessVersion]:
    """Every deployed process version, newest first within a key (the heat map's choices)."""
    return list(db.session.scalars(
        select(ProcessVersion).order_by(ProcessVersion.key, ProcessVersion.version.desc())))
