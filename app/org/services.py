"""People and places: passwords, API tokens, the org tree and who may act where."""
from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from app.database import UnitOfWork
from app.errors import DomainError, InvalidInput, NotFound
from app.extensions import db
from app.org import throttle
from app.org.models import LEVEL_ORDER, ApiToken, Level, OrgUnit, RoleGrant, User
from app.org.roles import ROLES

_hasher = PasswordHasher()
# Verifying against this keeps unknown usernames as slow as wrong passwords.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


class LoginThrottled(DomainError):
    """Too many failed logins for this username lately; ``retry_after`` seconds to wait."""

    status = 429


def authenticate(username: str, password: str, address: str | None = None) -> User | None:
    """Return the active user with these credentials, or None; refuse while throttled."""
    wait = throttle.locked_for(username)
    if wait is not None:
        minutes = max(1, int(wait.total_seconds() // 60) + 1)
        raise LoginThrottled(f"too many failed logins: try again in {minutes} minute(s)",
                             retry_after=int(wait.total_seconds()) + 1)
    user = db.session.scalar(select(User).where(User.username == username))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        throttle.record_failure(username, address)
        return None
    if user is None or not user.active:
        throttle.record_failure(username, address)
        return None
    throttle.clear(username)
    return user


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(user: User, name: str) -> str:
    """Issue a bearer token; only its digest is stored, so show the returned value once."""
    token = "tj_" + secrets.token_urlsafe(32)
    with UnitOfWork() as uow:
        db.session.add(ApiToken(user_id=user.id, name=name, token_hash=_token_digest(token)))
        uow.commit()
    return token


# The statements every request or completion runs are built once, here, and bound per call:
# building and cache-keying an ORM select costs more Python than SQLite takes to run it (a
# completion request 8-9 % faster with these three, measured in one process).
_USER_BY_TOKEN = (
    select(User).join(ApiToken, ApiToken.user_id == User.id)
    .where(ApiToken.token_hash == bindparam("digest"), User.active)
    .options(joinedload(User.grants))
)


def user_for_token(token: str) -> User | None:
    """The active user a bearer token belongs to, with its grants, in one query (every API call)."""
    return db.session.scalars(_USER_BY_TOKEN, {"digest": _token_digest(token)}).unique().one_or_none()


def create_unit(code: str, name: str, level: Level, parent: OrgUnit | None = None) -> OrgUnit:
    """Add a unit under ``parent``; the caller's transaction commits it."""
    if parent is None and level != Level.county:
        raise InvalidInput("only a county may be a root unit", errors={"parent": ["required"]})
    if parent is not None and LEVEL_ORDER.index(level) != LEVEL_ORDER.index(parent.level) + 1:
        raise InvalidInput(
            f"a {level.value} cannot sit under a {parent.level.value}", errors={"level": ["wrong level"]}
        )
    unit = OrgUnit(code=code, name=name, level=level, parent=parent)
    db.session.add(unit)
    db.session.flush()
    unit.path = f"{parent.path if parent else '/'}{unit.id}/"
    return unit


def grant_role(user: User, role: str, unit: OrgUnit) -> RoleGrant:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role}", errors={"role": [f"one of {', '.join(ROLES)}"]})
    grant = RoleGrant(user=user, role=role, org_unit=unit, org_path=unit.path)
    db.session.add(grant)
    return grant


def unit_by_code(code: str) -> OrgUnit:
    unit = db.session.scalar(select(OrgUnit).where(OrgUnit.code == code))
    if unit is None:
        raise NotFound(f"org unit {code} not found")
    return unit


def list_units(levels: tuple[Level, ...] = (Level.county, Level.town, Level.village)) -> list[OrgUnit]:
    """Units in tree order (a parent before its children), for pickers."""
    return list(db.session.scalars(select(OrgUnit).where(OrgUnit.level.in_(levels)).order_by(OrgUnit.path)))


def unit_for_level(case_unit: OrgUnit, level: Level) -> OrgUnit:
    """The ancestor of ``case_unit`` at ``level``, or the unit itself if it sits higher up."""
    if LEVEL_ORDER.index(case_unit.level) <= LEVEL_ORDER.index(level):
        return case_unit
    return db.session.scalar(
        select(OrgUnit).where(OrgUnit.id.in_(case_unit.ancestor_ids()), OrgUnit.level == level)
    ) or case_unit


def scope_paths(user: User) -> list[str]:
    """Org paths whose subtrees the user may look into (every unit they hold a role at)."""
    return sorted({grant.org_path for grant in user.grants})


def sees_path(user: User, org_path: str) -> bool:
    return any(org_path.startswith(path) for path in scope_paths(user))


def works_lane_at(user: User, lane: str, org_path: str) -> bool:
    """True when the user holds ``lane``'s role at the task's unit or a unit below it."""
    return any(g.role == lane and g.org_path.startswith(org_path) for g in user.grants)


def supervises(user: User, org_path: str) -> bool:
    return any(g.role == "supervisor" and org_path.startswith(g.org_path) for g in user.grants)




# Who-to-tell look-ups return (id, username, phone) rows, not User objects: they run on every
# engine step and loading users with their grants tripled the cost of firing a timer.
_CONTACT = (User.id, User.username, User.phone)


_CANDIDATES = (
    select(*_CONTACT).join(RoleGrant, RoleGrant.user_id == User.id)
    # autoescape needs a literal; a bound prefix is escaped by like_prefix instead
    .where(RoleGrant.role == bindparam("lane"), RoleGrant.org_path.startswith(bindparam("prefix"), escape="\\"),
           User.active)
    .distinct()
)
_SUPERVISORS = (
    select(*_CONTACT).join(RoleGrant, RoleGrant.user_id == User.id)
    .where(RoleGrant.role == "supervisor", RoleGrant.org_path.in_(bindparam("paths", expanding=True)), User.active)
    .distinct()
)


def like_prefix(value: str) -> str:
    """``value`` with LIKE's wildcards escaped (escape character: backslash)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def task_candidates(lane: str, org_path: str) -> list:
    """Contacts of users who may take a task of ``lane`` at ``org_path`` (grant at or below it)."""
    return list(db.session.execute(_CANDIDATES, {"lane": lane, "prefix": like_prefix(org_path)}))


def supervisors_over(org_path: str) -> list:
    """Contacts of supervisors whose unit contains ``org_path`` (the unit or an ancestor)."""
    ancestors = [f"/{'/'.join(org_path.strip('/').split('/')[:depth])}/"
                 for depth in range(1, org_path.strip("/").count("/") + 2)]
    return list(db.session.execute(_SUPERVISORS, {"paths": ancestors}))
