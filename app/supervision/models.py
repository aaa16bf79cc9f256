"""Supervision orders (督办单) that a handler must answer (督办反馈) by their deadline."""
from __future__ import annotations

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import UTCDateTime, utcnow
from app.extensions import db
from app.org.models import User


class SupervisionOrder(db.Model):
    __tablename__ = "supervision_order"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("dispute_case.id"), index=True)
    issued_by_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    issued_at = mapped_column(UTCDateTime, default=utcnow)
    instruction: Mapped[str] = mapped_column(Text)
    due_at = mapped_column(UTCDateTime)
    #: open / answered
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    answered_at = mapped_column(UTCDateTime, nullable=True)
    answer: Mapped[str | None] = mapped_column(Text)

    issued_by: Mapped[User] = relationship(foreign_keys=[issued_by_id])
    answered_by: Mapped[User | None] = relationship(foreign_keys=[answered_by_id])
