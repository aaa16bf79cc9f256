"""How disputes come in outside the clerk's desk: a resident's QR-code report, a grid worker's
patrol report, and the resident's status lookup.

Rate limit (public reports): at most ``RATE_LIMIT`` accepted reports per client IP address per
``RATE_WINDOW``, counted in the ``public_report`` table. The database (not process memory) holds
the count because several app processes serve the site and a restart must not reset it. The
check and the insert are separate transactions, so a burst of simultaneous requests from one
address may get one or two more through; that is acceptable for a spam brake. Behind a reverse
proxy the app must see the client's address (e.g. werkzeug's ProxyFix), or every resident shares
the proxy's quota.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from app import clock
from app.cases import services as cases
from app.cases import workspace
from app.cases.catalog import CATEGORIES
from app.cases.models import DisputeCase
from app.database import UnitOfWork
from app.errors import DomainError, Forbidden, InvalidInput, NotFound
from app.extensions import db
from app.intake.models import PublicReport
from app.org import services as org
from app.org.models import Level, OrgUnit, User

RATE_LIMIT = 5
RATE_WINDOW = timedelta(hours=1)
PHONE = re.compile(r"^\+?[0-9][0-9-]{4,19}$")
DESCRIPTION_MAX = 2000


class RateLimited(DomainError):
    """Too many reports from one client in the window; ``retry_after`` is in seconds."""

    status = 429


def client_key(address: str | None, secret: str) -> str:
    """A keyed hash of the client's address: countable, but not the address itself."""
    return hmac.new(secret.encode(), (address or "unknown").encode(), hashlib.sha256).hexdigest()


def reporting_unit(code: str) -> OrgUnit:
    """The village/community a QR code names; any other code is NotFound."""
    unit = db.session.scalar(select(OrgUnit).where(OrgUnit.code == code))
    if unit is None or unit.level != Level.village:
        raise NotFound(f"no village or community with code {code}")
    return unit


def normalize_phone(phone: str | None) -> str:
    return re.sub(r"[\s-]", "", phone or "")


@dataclass
class ResidentReport:
    category: str
    description: str
    name: str
    phone: str
    location: str | None = None


def _check_report(report: ResidentReport) -> None:
    """Errors carry codes (required, invalid_choice, too_long, invalid_phone) the page translates."""
    errors: dict[str, list[str]] = {}
    if report.category not in CATEGORIES:
        errors["category"] = ["invalid_choice"]
    if not report.description:
        errors["description"] = ["required"]
    elif len(report.description) > DESCRIPTION_MAX:
        errors["description"] = ["too_long"]
    if not report.name:
        errors["name"] = ["required"]
    elif len(report.name) > 40:
        errors["name"] = ["too_long"]
    if not report.phone:
        errors["phone"] = ["required"]
    elif not PHONE.match(report.phone):
        errors["phone"] = ["invalid_phone"]
    if report.location and len(report.location) > 200:
        errors["location"] = ["too_long"]
    if errors:
        raise InvalidInput("the report has errors", errors=errors)


def recent_reports(key: str, now: datetime | None = None) -> list[datetime]:
    since = (now or clock.now()) - RATE_WINDOW
    return list(db.session.scalars(
        select(PublicReport.created_at).where(PublicReport.client_key == key, PublicReport.created_at > since)
        .order_by(PublicReport.created_at)))


def submit_resident_report(unit_code: str, report: ResidentReport, key: str) -> DisputeCase:
    """Open a case from a resident's QR-code report; it waits for the intake clerk's registration."""
    unit = reporting_unit(unit_code)
    report = ResidentReport(
        category=report.category, description=(report.description or "").strip(), name=(report.name or "").strip(),
        phone=normalize_phone(report.phone), location=(report.location or "").strip() or None,
    )
    _check_report(report)
    now = clock.now()
    recent = recent_reports(key, now)
    db.session.rollback()  # end the read transaction before start_case takes the write lock
    if len(recent) >= RATE_LIMIT:
        retry = int((recent[0] + RATE_WINDOW - now).total_seconds()) + 1
        raise RateLimited(f"at most {RATE_LIMIT} reports an hour from one address", retry_after=max(retry, 1))
    label = CATEGORIES[report.category][0]
    summary = report.description.replace("\n", " ")
    case = cases.start_case(None, cases.NewCase(
        title=f"{label}：{summary[:40]}{'…' if len(summary) > 40 else ''}",
        category=report.category, description=report.description, org_unit_id=unit.id, channel="qr_code",
        people_involved=1, parties=[{"name": report.name, "party_role": "applicant", "phone": report.phone}],
        location=report.location, reporter_name=report.name, reporter_phone=report.phone,
    ))
    with UnitOfWork() as uow:
        db.session.add(PublicReport(client_key=key, case_id=case.id, created_at=now))
        uow.commit()
    return case


@dataclass
class CaseStatusView:
    """All a resident learns from a lookup: no names, no description, no handlers."""

    number: str
    status: str
    current_tier: str | None
    opened_at: datetime
    closed_at: datetime | None


def lookup(number: str, phone: str) -> CaseStatusView | None:
    """The status of the case with this number if ``phone`` is the reporter's; else None.

    A wrong number and a wrong phone answer the same, so the lookup reveals nothing about which
    case numbers exist.
    """
    number, phone = (number or "").strip().upper(), normalize_phone(phone)
    if not number or not phone:
        return None
    case = db.session.scalar(select(DisputeCase).where(DisputeCase.number == number))
    if case is None or not case.reporter_phone or not hmac.compare_digest(
            normalize_phone(case.reporter_phone).encode(), phone.encode()):
        return None
    return CaseStatusView(case.number, case.status, case.current_tier, case.opened_at, case.closed_at)


# ---------------------------------------------------------------------------------------------
# Grid worker reports

def grids_of(actor: User) -> list[OrgUnit]:
    """The grids where the actor works as a grid worker."""
    return sorted({g.org_unit for g in actor.grants if g.role == "grid_worker" and g.org_unit.level == Level.grid},
                  key=lambda unit: unit.code)


@dataclass
class GridReport:
    grid_id: int
    category: str
    title: str
    description: str
    location: str | None = None
    people_involved: int = 2
    parties: list | None = None
    risk_level: str = "low"
    high_value: bool = False


def submit_grid_report(actor: User, report: GridReport) -> DisputeCase:
    """Open a case a grid worker found on patrol (channel grid_report, at their grid)."""
    if report.grid_id not in {unit.id for unit in grids_of(actor)}:
        raise Forbidden("reporting needs the grid worker role at that grid")
    case = cases.start_case(actor, cases.NewCase(
        title=report.title, category=report.category, description=report.description, org_unit_id=report.grid_id,
        channel="grid_report", risk_level=report.risk_level, people_involved=report.people_involved,
        parties=report.parties or [], location=report.location, reporter_name=actor.display_name,
        reporter_phone=actor.phone,
    ))
    if report.high_value:
        case = workspace.report_high_value(actor, case.id)
    return case


def village_units(actor: User) -> list[OrgUnit]:
    """Villages/communities inside the actor's units, for the printable QR sheet."""
    paths = org.scope_paths(actor)
    units = db.session.scalars(select(OrgUnit).where(OrgUnit.level == Level.village))
    mine = [unit for unit in units if any(unit.path.startswith(path) for path in paths)]
    return sorted(mine, key=lambda unit: unit.ancestor_ids())  # tree order: town by town
