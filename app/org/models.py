"""Org units (county > town > village > grid), users, role grants and API tokens."""
from __future__ import annotations

import enum

from flask_login import UserMixin
from sqlalchemy import Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import UTCDateTime, utcnow
from app.extensions import db


class Level(enum.StrEnum):
    """Tier of an org unit, top-down. A dispute escalates from village up to county, then court."""

    county = "county"
    town = "town"
    village = "village"
    grid = "grid"


LEVEL_ORDER = [Level.county, Level.town, Level.village, Level.grid]


class OrgUnit(db.Model):
    """One body in the tree. ``path`` ("/1/4/9/") makes "this unit's subtree" a prefix match."""

    __tablename__ = "org_unit"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    level: Mapped[Level] = mapped_column(Enum(Level, native_enum=False, length=16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"))
    path: Mapped[str] = mapped_column(String(255), default="", index=True)

    parent: Mapped[OrgUnit | None] = relationship(remote_side=[id])

    def ancestor_ids(self) -> list[int]:
        return [int(part) for part in self.path.strip("/").split("/") if part]

    def __repr__(self):
        return f"<OrgUnit {self.code} {self.level.value}>"


class User(UserMixin, db.Model):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(default=True)
    created_at = mapped_column(UTCDateTime, default=utcnow)

    grants: Mapped[list[RoleGrant]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def is_active(self):
        return self.active

    def roles(self) -> set[str]:
        return {grant.role for grant in self.grants}

    def __repr__(self):
        return f"<User {self.username}>"


class RoleGrant(db.Model):
    """A user holds a role at an org unit; a lane of the same name routes tasks to them."""

    __tablename__ = "role_grant"
    __table_args__ = (UniqueConstraint("user_id", "role", "org_unit_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    role: Mapped[str] = mapped_column(String(40))
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"))
    # Copied from the unit so inbox queries match "grant inside the task's unit" without a join.
    org_path: Mapped[str] = mapped_column(String(255))

    user: Mapped[User] = relationship(back_populates="grants")
    org_unit: Mapped[OrgUnit] = relationship(lazy="joined")


Index("ix_role_grant_role_path", RoleGrant.role, RoleGrant.org_path)


class ApiToken(db.Model):
    """A bearer token for integrators; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at = mapped_column(UTCDateTime, default=utcnow)
    last_used_at = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship()
