"""What the public intake keeps: one row per accepted report, for the per-client rate limit."""
from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.database import UTCDateTime, utcnow
from app.extensions import db


class PublicReport(db.Model):
    """A report a resident filed through the public page.

    ``client_key`` is an HMAC of the client's IP address (keyed with SECRET_KEY), so the table
    can count reports per client without keeping anyone's address. The limit lives in the
    database rather than in process memory because several app processes serve the same site.
    """

    __tablename__ = "public_report"
    __table_args__ = (Index("ix_public_report_client_at", "client_key", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_key: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[int] = mapped_column(ForeignKey("dispute_case.id"), index=True)
    created_at = mapped_column(UTCDateTime, default=utcnow)
