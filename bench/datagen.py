"""Bench data: N dispute cases over a county-sized org tree, every one of them real.

    .venv/bin/python bench/datagen.py -n 10000               # SQLite, kept afterwards (prints the URL)
    .venv/bin/python bench/datagen.py -n 1000000 --pg        # PostgreSQL (COPY)

How: a few *template* cases are driven through the real services (start_case, complete_task) at
the demo village 东山村, one per outcome and per open stage, on a clock that moves a day per
step. Every generated case is a copy of one template: its ``dispute_case`` row, its
``workflow_state`` blob, its ``human_task``, ``timer`` and ``case_event`` rows, re-pointed at
its own village or grid (tasks at the village/town/county of that unit), its own number (also
inside the state), category and channel (also inside the state). Closed cases are shifted back
in time over two years; open ones keep the template's times, so their pending timers agree
with the engine state and inbox, completion and timers work on them like on any case.

Outcome mix (closed): 70 % resolved at the village, 20 % town, 8 % county, 2 % litigated.
Open share (default 4 %) spread over intake, village (mediation and follow-up visit), town
(dispatch, mediation), county (acceptance, mediation) and court, opened 0-30 days ago (the older
ones past their time limit). The demo county (2 towns, 5 villages) is grown with synthetic
towns and villages (no users) so that cases spread as in a real county (default 200 villages).

Rows go in with PostgreSQL COPY, or SQLite executemany in large transactions. Notifications
are not copied (they are not part of a case's stored state or its projections).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

ROOT_IMPORT = __import__("pathlib").Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT_IMPORT))

from sqlalchemy import func, insert, select, text  # noqa: E402

from bench.common import BenchDatabase, Progress, prepare_app  # noqa: E402

CATEGORIES = [("neighbour", 22), ("marriage_family", 18), ("housing_homestead", 12), ("contract", 9),
              ("damages", 8), ("labour", 7), ("property_mgmt", 6), ("traffic", 5), ("forest_land", 3),
              ("consumer", 3), ("business", 2), ("land_requisition", 1), ("pollution", 1), ("medical", 1),
              ("village_affairs", 1), ("other", 1)]
CHANNELS = [("grid_report", 35), ("walk_in", 25), ("hotline_12345", 15), ("qr_code", 12), ("app", 8),
            ("hotline_12348", 3), ("referral", 2)]

CLOSED_MIX = [("closed_village", 70), ("closed_town", 20), ("closed_county", 8), ("closed_court", 2)]
OPEN_MIX = [("open_intake", 5), ("open_village", 45), ("open_follow_up", 10), ("open_town_dispatch", 10),
            ("open_town_mediate", 15), ("open_county_accept", 5), ("open_county_mediate", 5), ("open_court", 5)]
#: how long ago open templates were opened (days); village limits are 15 days, so the older are overdue
OPEN_AGES = (0, 3, 8, 13, 20, 30)

OK, FAIL = "ok", "fail"
_TO_COURT = [("intake_register", OK), ("village_mediate", FAIL), ("town_dispatch", OK), ("town_mediate", FAIL),
             ("county_accept", OK), ("consult_justice", OK), ("consult_petition", OK), ("county_mediate", FAIL)]
#: the steps that bring a template to its state
PATHS = {
    "closed_village": [("intake_register", OK), ("village_mediate", OK), ("follow_up_visit", OK)],
    "closed_town": _TO_COURT[:3] + [("town_mediate", OK), ("follow_up_visit", OK)],
    "closed_county": _TO_COURT[:7] + [("county_mediate", OK), ("follow_up_visit", OK)],
    "closed_court": _TO_COURT + [("court_premediation", OK), ("court_filing", OK), ("court_ruling", OK)],
    "open_intake": [],
    "open_village": _TO_COURT[:1],
    "open_follow_up": [("intake_register", OK), ("village_mediate", OK)],
    "open_town_dispatch": _TO_COURT[:2],
    "open_town_mediate": _TO_COURT[:3],
    "open_county_accept": _TO_COURT[:4],
    "open_county_mediate": _TO_COURT[:7],
    "open_court": _TO_COURT,
}
TEMPLATE_UNIT = "QX-FQ-DS"
TEMPLATE_CATEGORY, TEMPLATE_CHANNEL = "housing_homestead", "walk_in"


def weighted(pairs):
    values, weights = [v for v, _ in pairs], [w for _, w in pairs]
    return lambda rng: rng.choices(values, weights)[0]


# ---------------------------------------------------------------------------------------------
# The org tree

def grow_org_tree(target_villages: int = 200, villages_per_town: int = 10, grids_per_village: int = 2) -> int:
    """Add synthetic towns, villages and grids (bulk insert, no users) up to ``target_villages``."""
    from app.extensions import db
    from app.org.models import Level, OrgUnit

    existing = db.session.scalar(select(func.count()).select_from(OrgUnit).where(OrgUnit.level == Level.village))
    county = db.session.scalar(select(OrgUnit).where(OrgUnit.level == Level.county))
    next_id = db.session.scalar(select(func.max(OrgUnit.id))) + 1
    rows, missing, town_no = [], max(0, target_villages - existing), 0
    while missing > 0:
        town_no += 1
        town_id, next_id = next_id, next_id + 1
        town_path = f"{county.path}{town_id}/"
        rows.append({"id": town_id, "code": f"SYN-T{town_no:03d}", "name": f"合成镇{town_no}", "level": Level.town,
                     "parent_id": county.id, "path": town_path})
        for v in range(1, min(villages_per_town, missing) + 1):
            village_id, next_id = next_id, next_id + 1
            code = f"SYN-T{town_no:03d}-V{v:02d}"
            rows.append({"id": village_id, "code": code, "name": f"合成镇{town_no}第{v}村", "level": Level.village,
                         "parent_id": town_id, "path": f"{town_path}{village_id}/"})
            for g in range(1, grids_per_village + 1):
                rows.append({"id": next_id, "code": f"{code}-G{g}", "name": f"第{g}网格", "level": Level.grid,
                             "parent_id": village_id, "path": f"{town_path}{village_id}/{next_id}/"})
                next_id += 1
            missing -= 1
    if rows:
        db.session.execute(insert(OrgUnit), rows)
        _add_people(rows)
        if db.engine.dialect.name == "postgresql":
            for table in ("org_unit", "app_user", "role_grant"):
                db.session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
        db.session.commit()
    return len(rows)


def _add_people(units: list[dict]) -> None:
    """One user per role per synthetic unit, as the demo seed has, sharing the demo password hash."""
    from app.extensions import db
    from app.org.demo import GRID_ROLES, TOWN_ROLES, VILLAGE_ROLES
    from app.org.models import RoleGrant, User

    password_hash = db.session.scalar(select(User.password_hash).limit(1))
    next_id = db.session.scalar(select(func.max(User.id))) + 1
    roles = {"town": TOWN_ROLES, "village": VILLAGE_ROLES, "grid": GRID_ROLES}
    users, grants = [], []
    for unit in units:
        for role in roles[unit["level"].value]:
            users.append({"id": next_id, "username": f"{unit['code'].lower().replace('-', '_')}_{role}",
                          "display_name": f"{unit['name']}{role}", "password_hash": password_hash, "active": True})
            grants.append({"user_id": next_id, "role": role, "org_unit_id": unit["id"], "org_path": unit["path"]})
            next_id += 1
    db.session.execute(insert(User), users)
    db.session.execute(insert(RoleGrant), grants)


# ---------------------------------------------------------------------------------------------
# Templates through the real services

@dataclass
class Template:
    kind: str
    case: dict
    state: dict
    tasks: list[dict]
    timers: list[dict]
    events: list[dict]
    #: per template unit id: its level (to re-point tasks at the clone's village/town/county)
    unit_levels: dict = field(default_factory=dict)
    #: per template user id: (role, level of the unit) — clones get the same role at their own unit
    user_roles: dict = field(default_factory=dict)


def _user_for_task(task):
    from app.extensions import db
    from app.org import services as org
    from app.org.models import User

    row = org.task_candidates(task.lane, task.org_path)[0]
    return db.session.get(User, row[0])


def drive_case(kind: str, started: datetime, step: timedelta, category: str = TEMPLATE_CATEGORY):
    """Open a case at the template village at ``started`` and take it through ``PATHS[kind]``."""
    from app import clock
    from app.cases import services
    from app.cases.models import HumanTask, TaskStatus
    from app.extensions import db
    from app.org.models import OrgUnit, User
    from tests.factories import failed, form_data

    when = started
    with clock.at(when):
        clerk = db.session.scalar(select(User).where(User.username == "qx_fq_ds_intake_clerk"))
        unit = db.session.scalar(select(OrgUnit).where(OrgUnit.code == TEMPLATE_UNIT))
        case = services.start_case(clerk, services.NewCase(
            title=form_data("intake_register")["title"], category=category, channel=TEMPLATE_CHANNEL,
            description=form_data("intake_register")["description"], org_unit_id=unit.id,
            parties=form_data("intake_register")["parties"], location="东山村三组"))
    case_id = case.id
    for spec_name, result in PATHS[kind]:
        when += step
        with clock.at(when):
            task = db.session.scalar(select(HumanTask).where(
                HumanTask.case_id == case_id, HumanTask.spec_name == spec_name, HumanTask.status == TaskStatus.ready))
            if task is None:
                raise RuntimeError(f"{kind}: no ready {spec_name} on case {case_id}")
            data = form_data(spec_name, category=category) if spec_name == "intake_register" else (
                form_data(spec_name) if result == OK else failed(spec_name))
            services.complete_task(_user_for_task(task), task.id, data)
    db.session.remove()
    return case_id


def _rows(model, case_id):
    from app.extensions import db

    table = model.__table__
    return [dict(r._mapping) for r in db.session.execute(select(table).where(table.c.case_id == case_id))]


def capture(kind: str, case_id: int) -> Template:
    from app.cases.models import CaseEvent, DisputeCase, HumanTask, Timer, WorkflowState
    from app.extensions import db
    from app.org.models import OrgUnit, RoleGrant

    case = dict(db.session.execute(select(DisputeCase.__table__).where(DisputeCase.id == case_id)).one()._mapping)
    [state] = _rows(WorkflowState, case_id)
    tasks, timers, events = _rows(HumanTask, case_id), _rows(Timer, case_id), _rows(CaseEvent, case_id)
    for row in tasks + timers + events:
        row.pop("id")
    unit_ids = {case["org_unit_id"]} | {t["org_unit_id"] for t in tasks}
    levels = {u.id: u.level.value for u in db.session.scalars(select(OrgUnit).where(OrgUnit.id.in_(unit_ids)))}
    user_ids = ({case["created_by_id"]} | {t["assignee_id"] for t in tasks} | {t["completed_by_id"] for t in tasks}
                | {e["actor_id"] for e in events}) - {None}
    user_roles = {user_id: (role, level.value) for user_id, role, level in db.session.execute(
        select(RoleGrant.user_id, RoleGrant.role, OrgUnit.level).join(OrgUnit, OrgUnit.id == RoleGrant.org_unit_id)
        .where(RoleGrant.user_id.in_(user_ids)))}
    db.session.remove()
    return Template(kind, case, state, tasks, timers, events, levels, user_roles)


def make_templates(now: datetime, open_ages=OPEN_AGES) -> dict[str, list[Template]]:
    """Drive one case per closed outcome and one per open stage and age; return their rows."""
    templates: dict[str, list[Template]] = {}
    for kind, _ in CLOSED_MIX:
        # a day per step, opened well before the two-year window so every shift lands in the past
        case_id = drive_case(kind, now - timedelta(days=60), timedelta(days=1))
        templates[kind] = [capture(kind, case_id)]
    for kind, _ in OPEN_MIX:
        templates[kind] = []
        for age in open_ages:
            steps = len(PATHS[kind])
            gap = timedelta(hours=6) if age == 0 else timedelta(days=age) / (steps + 1)
            started = now - timedelta(days=age) - (timedelta(hours=6) * (steps + 1) if age == 0 else timedelta())
            case_id = drive_case(kind, started, gap)
            templates[kind].append(capture(kind, case_id))
    return templates


# ---------------------------------------------------------------------------------------------
# Cloning

@dataclass
class Units:
    """Where cases are opened, and each village's town."""

    places: list  # (unit_id, path, level, village_id, village_path, town_id, town_path)
    county: tuple  # (id, path)
    users: dict = field(default_factory=dict)  # (unit id, role) -> user id
    first_grid: dict = field(default_factory=dict)  # village id -> its first grid's id

    @classmethod
    def load(cls) -> Units:
        from app.extensions import db
        from app.org.models import OrgUnit, RoleGrant

        units = {u.id: u for u in db.session.scalars(select(OrgUnit))}
        county = next(u for u in units.values() if u.level.value == "county")
        places = []
        for u in units.values():
            if u.level.value not in ("village", "grid"):
                continue
            village = u if u.level.value == "village" else units[u.parent_id]
            town = units[village.parent_id]
            places.append((u.id, u.path, u.level.value, village.id, village.path, town.id, town.path))
        places.sort()
        users = {(unit_id, role): user_id for user_id, unit_id, role in db.session.execute(
            select(RoleGrant.user_id, RoleGrant.org_unit_id, RoleGrant.role))}
        first_grid = {}
        for u in sorted(units.values(), key=lambda u: u.id):
            if u.level.value == "grid":
                first_grid.setdefault(u.parent_id, u.id)
        db.session.remove()
        return cls(places, (county.id, county.path), users, first_grid)


CASE_TIME_COLUMNS = ("opened_at", "closed_at", "due_at", "updated_at", "suspended_at")
TASK_TIME_COLUMNS = ("claimed_at", "created_at", "due_at", "completed_at")
TIMER_TIME_COLUMNS = ("due_at", "fired_at")


def _shift(row: dict, columns, delta: timedelta) -> dict:
    if not delta:
        return row
    for key in columns:
        if row.get(key) is not None:
            row[key] = row[key] + delta
    return row


class Cloner:
    def __init__(self, templates: dict[str, list[Template]], units: Units, now: datetime, seed: int = 7):
        self.templates, self.units, self.now = templates, units, now
        self.rng = random.Random(seed)
        self.category, self.channel = weighted(CATEGORIES), weighted(CHANNELS)
        self.closed_kind, self.open_kind = weighted(CLOSED_MIX), weighted(OPEN_MIX)
        self._state_cache: dict[tuple, str] = {}
        villages = [p for p in units.places if p[2] == "village"]
        grids = [p for p in units.places if p[2] == "grid"]
        self.place = lambda rng: rng.choice(villages) if rng.random() < 0.6 or not grids else rng.choice(grids)

    def _state(self, template: Template, category: str, channel: str) -> str:
        key = (id(template), category, channel)
        state = self._state_cache.get(key)
        if state is None:
            state = template.state["state"].replace(f'"{TEMPLATE_CATEGORY}"', f'"{category}"').replace(
                f'"{TEMPLATE_CHANNEL}"', f'"{channel}"')
            self._state_cache[key] = state
        return state

    def clone(self, case_id: int, template: Template, *, place=None, delta=None, category=None, channel=None):
        """Rows for one case copied from ``template``: (case, state, tasks, timers, events)."""
        rng = self.rng
        place = place or self.place(rng)
        unit_id, path, _level, village_id, village_path, town_id, town_path = place
        category = category or self.category(rng)
        channel = channel or self.channel(rng)
        if delta is None:
            delta = timedelta()
        tcase = template.case
        opened = tcase["opened_at"] + delta
        number = f"JF{opened:%Y}{case_id:07d}"
        old_number = tcase["number"]
        case = _shift(dict(tcase), CASE_TIME_COLUMNS, delta)
        case.update(id=case_id, number=number, org_unit_id=unit_id, org_path=path, category=category, channel=channel)
        by_level = {"village": (village_id, village_path), "grid": (village_id, village_path),
                    "town": (town_id, town_path), "county": self.units.county}
        grid_id = unit_id if _level == "grid" else self.units.first_grid.get(village_id)
        unit_at = {"village": village_id, "grid": grid_id, "town": town_id}
        users = self.units.users

        def person(user_id):
            """The template's actor → whoever holds the same role at this case's units."""
            if user_id is None or user_id not in template.user_roles:
                return user_id
            role, level = template.user_roles[user_id]
            return user_id if level == "county" else users.get((unit_at.get(level), role))

        case["created_by_id"] = person(case["created_by_id"])
        state = {**template.state, "case_id": case_id,
                 "state": self._state(template, category, channel).replace(old_number, number)}
        tasks = []
        for t in template.tasks:
            row = _shift(dict(t), TASK_TIME_COLUMNS, delta)
            row["case_id"] = case_id
            row["org_unit_id"], row["org_path"] = by_level[template.unit_levels[t["org_unit_id"]]]
            row["assignee_id"], row["completed_by_id"] = person(row["assignee_id"]), person(row["completed_by_id"])
            tasks.append(row)
        timers = [_shift(dict(t), TIMER_TIME_COLUMNS, delta) | {"case_id": case_id} for t in template.timers]
        events = []
        for e in template.events:
            row = dict(e)
            row["case_id"], row["at"], row["actor_id"] = case_id, e["at"] + delta, person(e["actor_id"])
            if old_number in row["message"]:
                row["message"] = row["message"].replace(old_number, number)
            events.append(row)
        return case, state, tasks, timers, events

    def random_case(self, case_id: int, open_share: float):
        rng = self.rng
        if rng.random() < open_share:
            template = rng.choice(self.templates[self.open_kind(rng)])
            return self.clone(case_id, template)
        template = self.templates[self.closed_kind(rng)][0]
        # opened uniformly over the last two years, closed (template duration later) before now
        span = self.now - timedelta(days=20) - template.case["closed_at"]
        delta = span - timedelta(seconds=rng.uniform(0, 710 * 86400))
        return self.clone(case_id, template, delta=delta)


# ---------------------------------------------------------------------------------------------
# Loading

class Writer:
    """Bulk writes: COPY on PostgreSQL, executemany in one transaction per batch on SQLite."""

    def __init__(self, engine):
        from app.cases.models import CaseEvent, DisputeCase, HumanTask, Timer, WorkflowState
        from app.database import CompressedText

        self.engine = engine
        self.pg = engine.dialect.name == "postgresql"
        self.tables = {name: model.__table__ for name, model in (
            ("dispute_case", DisputeCase), ("workflow_state", WorkflowState), ("human_task", HumanTask),
            ("timer", Timer), ("case_event", CaseEvent))}
        self.columns = {name: [c.name for c in table.columns if not (c.name == "id" and name != "dispute_case")]
                        for name, table in self.tables.items()}
        self.json_columns = {name: {c.name for c in table.columns if c.type.__class__.__name__ in ("JSON", "Variant")
                                    or "JSON" in repr(c.type)} for name, table in self.tables.items()}
        # COPY bypasses SQLAlchemy's type processing: compress those columns here
        self.compressed_columns = {name: {c.name: c.type for c in table.columns if isinstance(c.type, CompressedText)}
                                   for name, table in self.tables.items()}
        self._dumped: dict[int, tuple] = {}

    def write(self, batch: dict[str, list[dict]]) -> None:
        if self.pg:
            self._copy(batch)
        else:
            with self.engine.begin() as conn:
                for name in self.tables:
                    if batch[name]:
                        conn.execute(insert(self.tables[name]), batch[name])

    def _copy(self, batch):
        raw = self.engine.raw_connection()
        try:
            with raw.cursor() as cur:
                for name, rows in batch.items():
                    if not rows:
                        continue
                    columns, json_columns = self.columns[name], self.json_columns[name]
                    compressed = self.compressed_columns[name]
                    with cur.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row([self._json(row[c]) if c in json_columns else
                                            compressed[c].process_bind_param(row[c], None) if c in compressed else row[c]
                                            for c in columns])
            raw.commit()
        finally:
            raw.close()

    def _json(self, value):
        """JSON text of a column value; clones share their template's objects, so dump each once."""
        if value is None:
            return None
        hit = self._dumped.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        dumped = json.dumps(value, ensure_ascii=False)
        self._dumped[id(value)] = (value, dumped)
        return dumped

    def finish(self) -> None:
        with self.engine.begin() as conn:
            if self.pg:
                conn.execute(text("SELECT setval(pg_get_serial_sequence('dispute_case', 'id'), (SELECT max(id) FROM dispute_case))"))
            else:
                conn.execute(text("ANALYZE"))
                conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))  # so the file size is the data
        if self.pg:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for name in self.tables:
                    conn.execute(text(f"VACUUM ANALYZE {name}"))


def load_cases(cloner: Cloner, count: int, open_share: float = 0.04, batch_size: int = 5000,
               progress: bool = True) -> dict:
    """Generate and write ``count`` cases after the existing ones; return counts and seconds."""
    from app.cases.models import DisputeCase
    from app.extensions import db

    writer = Writer(db.engine)
    first = (db.session.scalar(select(func.max(DisputeCase.id))) or 0) + 1
    db.session.remove()
    made = {"cases": 0, "open": 0, "closed": 0, "tasks": 0, "timers": 0, "events": 0}
    bar = Progress(count, f"cases ({db.engine.dialect.name})") if progress else None
    started = time.perf_counter()
    for start in range(0, count, batch_size):
        batch = {name: [] for name in writer.tables}
        for case_id in range(first + start, first + min(count, start + batch_size)):
            case, state, tasks, timers, events = cloner.random_case(case_id, open_share)
            batch["dispute_case"].append(case)
            batch["workflow_state"].append(state)
            batch["human_task"] += tasks
            batch["timer"] += timers
            batch["case_event"] += events
            made["open" if case["status"] != "closed" else "closed"] += 1
        writer.write(batch)
        made["cases"] += len(batch["dispute_case"])
        made["tasks"] += len(batch["human_task"])
        made["timers"] += len(batch["timer"])
        made["events"] += len(batch["case_event"])
        if bar:
            bar.update(len(batch["dispute_case"]))
    if bar:
        bar.close()
    writer.finish()
    made["load_seconds"] = round(time.perf_counter() - started, 1)
    made["cases_per_second"] = round(count / max(made["load_seconds"], 1e-9))
    return made


def add_open_cases(templates, units: Units, kind: str, count: int, unit_code: str = TEMPLATE_UNIT,
                   age_index: int = 0, now: datetime | None = None) -> list[int]:
    """Clone ``count`` cases of an open ``kind`` at ``unit_code`` (a work set); return their ids."""
    from app.cases.models import DisputeCase
    from app.extensions import db
    from app.org.models import OrgUnit

    unit_id = db.session.scalar(select(OrgUnit.id).where(OrgUnit.code == unit_code))
    place = next(p for p in units.places if p[0] == unit_id)
    cloner = Cloner(templates, units, now or datetime.now(UTC))
    first = (db.session.scalar(select(func.max(DisputeCase.id))) or 0) + 1
    writer = Writer(db.engine)
    db.session.remove()
    batch = {name: [] for name in writer.tables}
    for case_id in range(first, first + count):
        rows = cloner.clone(case_id, templates[kind][age_index], place=place,
                            category=TEMPLATE_CATEGORY, channel=TEMPLATE_CHANNEL)
        for name, part in zip(("dispute_case", "workflow_state"), rows[:2], strict=True):
            batch[name].append(part)
        batch["human_task"] += rows[2]
        batch["timer"] += rows[3]
        batch["case_event"] += rows[4]
    writer.write(batch)
    if writer.pg:
        with db.engine.begin() as conn:
            conn.execute(text("SELECT setval(pg_get_serial_sequence('dispute_case', 'id'), (SELECT max(id) FROM dispute_case))"))
    return list(range(first, first + count))


def check_sample(first_id: int, count: int, sample: int = 100) -> dict:
    """``flask doctor``'s check on an even sample of generated cases: projections match the state."""
    from app.cases.doctor import examine
    from app.extensions import db

    ids = list(range(first_id, first_id + count, max(1, count // sample)))
    findings = examine(ids)
    db.session.remove()
    return {"checked": len(ids), "mismatched": len(findings),
            "first_problem": findings[0].problems[0][:200] if findings else None}


def rebuild_rollups() -> str:
    try:
        from app.supervision import rollups
    except ImportError:
        return "no app.supervision.rollups module"
    started = time.perf_counter()
    rollups.rebuild_all()
    return f"rebuilt in {time.perf_counter() - started:.1f} s"


def generate(app, count: int, *, open_share: float = 0.04, villages: int = 200, seed: int = 7,
             open_ages=OPEN_AGES, progress: bool = True) -> tuple[dict, dict, Units]:
    """Grow the tree, make the templates, load ``count`` cases; return (figures, templates, units)."""
    from app.cases.models import DisputeCase
    from app.extensions import db

    now = datetime.now(UTC)
    with app.app_context():
        started = time.perf_counter()
        added = grow_org_tree(villages)
        templates = make_templates(now, open_ages)
        template_seconds = time.perf_counter() - started
        units = Units.load()
        first_id = (db.session.scalar(select(func.max(DisputeCase.id))) or 0) + 1
        db.session.remove()
        made = load_cases(Cloner(templates, units, now, seed), count, open_share, progress=progress)
        made["doctor"] = check_sample(first_id, count)
        made.update(units_added=added, villages=sum(1 for p in units.places if p[2] == "village"),
                    templates=sum(len(v) for v in templates.values()), template_seconds=round(template_seconds, 1))
        made["rollups"] = rebuild_rollups()
        db.session.remove()
    return made, templates, units


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--cases", type=int, default=10_000)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL (default SQLite)")
    parser.add_argument("--open-share", type=float, default=0.04)
    parser.add_argument("--villages", type=int, default=200)
    parser.add_argument("--drop", action="store_true", help="drop the database afterwards (default: keep it)")
    args = parser.parse_args(argv)
    with BenchDatabase("postgresql" if args.pg else "sqlite", keep=not args.drop) as database:
        app = prepare_app(database.url)
        made, _templates, _units = generate(app, args.cases, open_share=args.open_share, villages=args.villages)
        with app.app_context():
            from app.extensions import db
            db.engine.dispose()
        made["database_bytes"] = database.size_bytes()
        print(json.dumps(made, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
