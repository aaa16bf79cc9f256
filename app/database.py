"""Transactions and row locks shared by every service.

Services own their transaction: ``with UnitOfWork() as uow: ...; uow.commit()``. Leaving the
block without committing rolls back, so an exception half-way never leaves a half-written case.
"""
from datetime import UTC, datetime

from sqlalchemy import event, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.types import DateTime, TypeDecorator

from app import clock
from app.extensions import db


class UnitOfWork:
    """Group one service call's writes into a single transaction."""

    def __enter__(self):
        self.session = db.session
        return self

    def __exit__(self, *exc_info):
        # After a commit there is nothing left to roll back; otherwise this discards the work.
        self.session.rollback()

    def commit(self):
        self.session.commit()


def lock_row(model, row_id):
    """Load one row for update, blocking other writers of it until this transaction ends.

    PostgreSQL: ``SELECT ... FOR UPDATE``. SQLite has no row locks, so a no-op write first takes
    the database write lock (it must be the transaction's first statement, which services ensure
    by locking before they write anything).
    """
    session = db.session
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(model).where(model.id == row_id).values(id=model.id))
    stmt = (
        select(model)
        .where(model.id == row_id)
        .with_for_update(of=model)
        .execution_options(populate_existing=True)
    )
    return session.execute(stmt).scalar_one_or_none()


def utcnow() -> datetime:
    return clock.now()


class UTCDateTime(TypeDecorator):
    """Store aware datetimes as UTC and hand them back aware, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC was expected")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


@event.listens_for(Engine, "connect")
def _tune_sqlite(dbapi_connection, connection_record):
    """WAL lets readers run beside the writer; a busy timeout makes writers queue, not fail."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
