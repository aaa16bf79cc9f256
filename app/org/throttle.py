"""Login throttling: after repeated failures an account (and the address trying it) must wait.

Counted in the database so it holds across app processes and restarts. Five failures within
fifteen minutes lock that username for fifteen minutes, whichever address tries; a lock never
reveals whether the username exists.
"""
from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from app import clock
from app.database import UnitOfWork, UTCDateTime
from app.extensions import db

MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)


class LoginFailure(db.Model):
    __tablename__ = "login_failure"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), index=True)
    #: keyed hash of the client address (never the address itself)
    client: Mapped[str] = mapped_column(String(64))
    at = mapped_column(UTCDateTime, index=True)


def _client_key(address: str | None) -> str:
    return hashlib.sha256(f"login:{address or '-'}".encode()).hexdigest()


def locked_for(username: str) -> timedelta | None:
    """How long ``username`` must still wait, or None when it may try."""
    since = clock.now() - WINDOW
    failures = db.session.scalars(select(LoginFailure.at).where(
        LoginFailure.username == username, LoginFailure.at > since).order_by(LoginFailure.at)).all()
    if len(failures) < MAX_FAILURES:
        return None
    return failures[-MAX_FAILURES] + WINDOW - clock.now()


def record_failure(username: str, address: str | None) -> None:
    with UnitOfWork() as uow:
        db.session.add(LoginFailure(username=username[:80], client=_client_key(address), at=clock.now()))
        db.session.execute(delete(LoginFailure).where(LoginFailure.at < clock.now() - 2 * WINDOW))
        uow.commit()


def clear(username: str) -> None:
    with UnitOfWork() as uow:
        db.session.execute(delete(LoginFailure).where(LoginFailure.username == username))
        uow.commit()
