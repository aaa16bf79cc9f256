"""Deployed process versions: immutable once stored, identified by key + version number."""
from __future__ import annotations

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import UTCDateTime, utcnow
from app.extensions import db


class ProcessVersion(db.Model):
    """One deployed bundle (BPMN + DMN + forms), stored once and shared by all its cases."""

    __tablename__ = "process_version"
    __table_args__ = (UniqueConstraint("key", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), index=True)
    version: Mapped[int]
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    note: Mapped[str | None] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    created_at = mapped_column(UTCDateTime, default=utcnow)

    files: Mapped[list[ProcessFile]] = relationship(
        back_populates="version", cascade="all, delete-orphan", order_by="ProcessFile.name"
    )

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
