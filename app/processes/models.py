"""Process versions (immutable once stored), drafts being edited, and the regional variants.

- ``process_version``: one deployed bundle (BPMN + DMN + forms), identified by key + number.
  Cases point at the version they run on; a version is never changed or deleted.
- ``process_draft``: one file of a bundle as a policy editor last saved it in the modeler (or the
  form editor). Deploying the drafts of a key makes the next version and clears them.
- ``process_variant``: which process new cases opened in an org unit's subtree use. The most
  specific unit on a case's path wins; without any, the default key's latest version is used.
  Running cases keep their version (moving them is a migration).
"""
from __future__ import annotations

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import UTCDateTime, utcnow
from app.extensions import db
from app.org.models import OrgUnit, User


class ProcessVersion(db.Model):
    """One deployed bundle (BPMN + DMN + forms), stored once and shared by all its cases."""

    __tablename__ = "process_version"
    __table_args__ = (UniqueConstraint("key", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: what the version is deployed as: the default lifecycle or a variant such as
    #: ``dispute_lifecycle_7day`` (versions of one key are numbered 1, 2, ...)
    key: Mapped[str] = mapped_column(String(80), index=True)
    version: Mapped[int]
    #: the BPMN process that runs (None: the same as ``key``); a variant key runs the same process
    process_id: Mapped[str | None] = mapped_column(String(80))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    note: Mapped[str | None] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    created_at = mapped_column(UTCDateTime, default=utcnow)

    files: Mapped[list[ProcessFile]] = relationship(
        back_populates="version", cascade="all, delete-orphan", order_by="ProcessFile.name"
    )
    author: Mapped[User | None] = relationship()

    @property
    def top_process_id(self) -> str:
        return self.process_id or self.key

    def file_map(self, kind: str) -> dict[str, str]:
        return {f.name: f.content for f in self.files if f.kind == kind}

    def __repr__(self):
        return f"<ProcessVersion {self.key} v{self.version}>"


class ProcessFile(db.Model):
    __tablename__ = "process_file"
    __table_args__ = (UniqueConstraint("version_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("process_version.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    #: "bpmn", "dmn" or "form"
    kind: Mapped[str] = mapped_column(String(10))
    content: Mapped[str] = mapped_column(Text)

    version: Mapped[ProcessVersion] = relationship(back_populates="files")


class ProcessDraft(db.Model):
    """One file of a key's next version as last saved in the modeler or the form editor."""

    __tablename__ = "process_draft"
    __table_args__ = (UniqueConstraint("key", "file_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), index=True)
    file_name: Mapped[str] = mapped_column(String(200))
    #: "bpmn", "dmn" or "form"
    kind: Mapped[str] = mapped_column(String(10))
    content: Mapped[str] = mapped_column(Text)
    #: the version the editor opened (its other files complete the bundle on deploy)
    base_version_id: Mapped[int | None] = mapped_column(ForeignKey("process_version.id"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    updated_at = mapped_column(UTCDateTime, default=utcnow)

    base_version: Mapped[ProcessVersion | None] = relationship()
    author: Mapped[User | None] = relationship()


class ProcessVariant(db.Model):
    """New cases opened in ``org_unit``'s subtree use ``key`` (pinned ``version`` or the latest)."""

    __tablename__ = "process_variant"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"), unique=True)
    key: Mapped[str] = mapped_column(String(80))
    #: a pinned version; None follows the key's latest version
    version_id: Mapped[int | None] = mapped_column(ForeignKey("process_version.id"))
    note: Mapped[str | None] = mapped_column(Text)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    updated_at = mapped_column(UTCDateTime, default=utcnow)

    org_unit: Mapped[OrgUnit] = relationship(lazy="joined")
    version: Mapped[ProcessVersion | None] = relationship()
