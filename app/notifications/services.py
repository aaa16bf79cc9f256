"""Create in-app notifications inside the caller's transaction; deliver them after it commits."""
from __future__ import annotations

import logging

from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from app import clock
from app.database import UnitOfWork, insert_later
from app.errors import NotFound
from app.extensions import db
from app.notifications import senders
from app.notifications.models import Notification
from app.org.models import User

log = logging.getLogger("tiaojie.notifications")
_PENDING = "pending_notifications"


def notify(users, kind: str, message: str, case_id: int | None = None) -> int:
    """Add one notification per distinct user; the caller's service commits.

    ``users`` are anything with ``id``, ``username`` and ``phone``: User objects or contact rows.
    """
    seen = set()
    for user in users:
        if user is None or user.id in seen:
            continue
        seen.add(user.id)
        insert_later(Notification.__table__, {"user_id": user.id, "case_id": case_id, "kind": kind,
                                              "message": message, "created_at": clock.now(), "read_at": None})
        db.session.info.setdefault(_PENDING, []).append(
            {"user_id": user.id, "username": user.username, "phone": user.phone, "kind": kind, "message": message})
    return len(seen)


@event.listens_for(Session, "after_commit")
def _deliver(session):
    for item in session.info.pop(_PENDING, []):
        for sender in senders.senders():
            try:
                sender.send(**item)
            except Exception:  # a failing gateway must not break the committed step
                log.exception("sender %r failed", sender)


@event.listens_for(Session, "after_rollback")
def _forget(session):
    session.info.pop(_PENDING, None)


def list_for(user: User, unread_only: bool = False, limit: int = 50) -> list[Notification]:
    stmt = select(Notification).where(Notification.user_id == user.id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    return list(db.session.scalars(stmt.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)))


def get_for(user: User, notification_id: int) -> Notification:
    found = db.session.get(Notification, notification_id)
    if found is None or found.user_id != user.id:
        raise NotFound(f"notification {notification_id} not found")
    return found


def unread_count(user: User) -> int:
    return db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None))) or 0


def mark_read(user: User, notification_id: int | None = None) -> int:
    """Mark one (or, with None, all) of the user's notifications read; return how many changed."""
    with UnitOfWork() as uow:
        stmt = update(Notification).where(Notification.user_id == user.id, Notification.read_at.is_(None))
        if notification_id is not None:
            get_for(user, notification_id)
            stmt = stmt.where(Notification.id == notification_id)
        changed = db.session.execute(stmt.values(read_at=clock.now())).rowcount
        uow.commit()
    return changed
