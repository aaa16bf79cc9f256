"""Transactions and row locks shared by every service.

Services own their transaction: ``with UnitOfWork() as uow: ...; uow.commit()``. Leaving the
block without committing rolls back, so an exception half-way never leaves a half-written case.
"""
import fcntl
import time
import zlib
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import Table, bindparam, event, inspect, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.types import DateTime, LargeBinary, TypeDecorator

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
    rows = lock_rows(model, [row_id])
    return rows[0] if rows else None


def lock_row_column(column, row_id):
    """lock_row, reading only one column of the row (None when there is no such row): for a
    caller that holds the row as it read it before the lock and only asks whether it changed."""
    session = db.session
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        _queue_for_sqlite_writer(session())
    return session.execute(_column_lock_statement(column, dialect), {"row_id": row_id}).scalar()


@lru_cache
def _column_lock_statement(column, dialect: str):
    # built once per column: every completion locks its case this way (see org.services)
    table = column.table
    if dialect == "sqlite":
        return update(table).where(table.c.id == bindparam("row_id")).values(id=table.c.id).returning(column)
    return select(column).where(table.c.id == bindparam("row_id")).with_for_update()


def lock_rows(model, row_ids, *options) -> list:
    """lock_row for several rows at once, in id order (so two lockers never wait on each other in
    a cycle); missing ids are left out. ``options`` load what the caller needs with the rows."""
    session = db.session
    ids = sorted(set(row_ids))
    if session.get_bind().dialect.name == "sqlite":
        _queue_for_sqlite_writer(session())
        # on the table, not the mapped class: an ORM UPDATE would first look for the rows among
        # the session's objects to keep them in step, and nothing changes here
        table = model.__table__
        session.execute(update(table).where(table.c.id.in_(ids)).values(id=table.c.id))
    stmt = (
        select(model)
        .where(model.id.in_(ids))
        .order_by(model.id)
        .with_for_update(of=model)
        .options(*options)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(stmt))


def write_versioned_together(rows: list, *keys: str) -> None:
    """Write the changed ``keys`` of these versioned ORM rows (one mapped class) now, in one
    executemany, each checked against the version it was read at, and leave them clean.

    The ORM sends each versioned row's UPDATE on its own, to check its row count: one round trip
    per row, a timer batch's biggest single cost on PostgreSQL. psycopg pipelines an executemany,
    and the summed row count checks every row at once: if any row moved on since it was read,
    this raises StaleDataError as the ORM would, and the caller's transaction rolls back.
    """
    changed = [row for row in rows if any(inspect(row).attrs[key].history.has_changes() for key in keys)]
    if not changed:
        return
    mapper = inspect(changed[0]).mapper
    version_column = mapper.version_id_col
    version_key = mapper.get_property_by_column(version_column).key
    (primary_key,) = mapper.primary_key
    primary_key_attr = mapper.get_property_by_column(primary_key).key
    statement = (
        update(mapper.local_table)
        .where(primary_key == bindparam("row_pk"), version_column == bindparam("row_read_version"))
        .values({mapper.get_property(key).columns[0].key: bindparam(f"row_{key}") for key in keys}
                | {version_column.key: bindparam("row_next_version")})
    )
    params = []
    for row in changed:
        read_version = inspect(row).committed_state.get(version_key, getattr(row, version_key))
        params.append({"row_pk": getattr(row, primary_key_attr), "row_read_version": read_version,
                       "row_next_version": read_version + 1} | {f"row_{key}": getattr(row, key) for key in keys})
    with db.session.no_autoflush:
        matched = db.session.connection().execute(statement, params).rowcount
    if matched != len(changed):
        raise StaleDataError(f"{mapper.local_table.name}: {len(changed) - matched} of {len(changed)} rows "
                             "were changed by someone else since they were read")
    for row, values in zip(changed, params, strict=True):
        for key in keys:
            set_committed_value(row, key, getattr(row, key))
        set_committed_value(row, version_key, values["row_next_version"])


_WRITER_LOCK = "sqlite_writer_lock"
#: How long a writer waits for the others before SQLite's own busy timeout takes over.
WRITER_WAIT_SECONDS = 30.0


def _queue_for_sqlite_writer(session: Session) -> None:
    """Wait for the other SQLite writers (every process on this file) on a file lock.

    SQLite lets one writer in at a time; the others would wait in its busy handler, which sleeps
    1, 2, 5, 10 ... 100 ms between tries, so a step of a few ms left the lock idle most of the
    time with four gunicorn workers (4 clients completed no more per second than 1). Polling a
    file lock every 0.2 ms hands over within a fraction of a ms. A transaction that has already
    written holds SQLite's lock and skips this (waiting here could then wait on itself).
    """
    connection = session.connection()
    path = connection.engine.url.database
    if not path or path == ":memory:" or _WRITER_LOCK in session.info:
        return
    if connection.connection.dbapi_connection.in_transaction:
        return
    lock_file = open(f"{path}.writer-lock", "a")  # noqa: SIM115 (closed when the transaction ends)
    deadline = time.monotonic() + WRITER_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                break  # go on; SQLite's busy timeout decides
            time.sleep(0.0002)
    session.info[_WRITER_LOCK] = lock_file


@event.listens_for(Session, "after_transaction_end")
def _leave_sqlite_writer_queue(session, transaction):
    if transaction.parent is None:
        lock_file = session.info.pop(_WRITER_LOCK, None)
        if lock_file is not None:
            lock_file.close()  # releases the lock


_QUEUED = "queued_inserts"


def insert_later(table: Table, row: dict) -> None:
    """Queue a new row (case events, notifications, new tasks and timers) in this transaction.

    Queued rows go in as one multi-row INSERT per table just before the session's next flush,
    autoflushing query or commit, so queries see them as they would see added objects. A step writes a handful of
    each; as ORM objects every one was its own INSERT ... RETURNING plus bookkeeping, a
    measurable share of a timer firing. A rollback drops the queue with everything else.
    """
    db.session.info.setdefault(_QUEUED, {}).setdefault(table, []).append(row)


def _write_queued(session: Session) -> None:
    queued = session.info.pop(_QUEUED, None)
    if queued:
        connection = session.connection()
        with _in_one_round_trip(connection, len(queued)):
            for table, rows in queued.items():
                # inline: nothing fetched back (a single row would otherwise return its id)
                connection.execute(_inline_insert(table), rows)


@lru_cache
def _inline_insert(table: Table):
    return table.insert().inline()


@contextmanager
def _in_one_round_trip(connection, statements: int):
    """Send the statements of the block to PostgreSQL together and wait once, at the end.

    psycopg pipelines each executemany on its own, a wait for the server each; the events,
    notifications and new tasks of a step are three. In one pipeline they are one wait. A
    failure surfaces when the block ends, as SQLAlchemy's exception like any other.
    """
    dbapi = connection.dialect.loaded_dbapi
    if statements < 2 or connection.dialect.driver != "psycopg" or not dbapi.Pipeline.is_supported():
        yield
        return
    try:
        with connection.connection.dbapi_connection.pipeline():
            yield
    except dbapi.Error as exc:
        raise DBAPIError.instance(None, None, exc, dbapi.Error) from None


@event.listens_for(Session, "before_flush")
def _write_queued_before_flush(session, flush_context, instances):
    _write_queued(session)


@event.listens_for(Session, "before_commit")
def _write_queued_before_commit(session):
    _write_queued(session)


@event.listens_for(Session, "do_orm_execute")
def _write_queued_before_autoflushing_query(orm_execute_state):
    # Autoflush skips a session with no dirty objects, which would hide queued rows from a query.
    session = orm_execute_state.session
    if orm_execute_state.is_select and session.autoflush and session.info.get(_QUEUED):
        _write_queued(session)


@event.listens_for(Session, "after_rollback")
def _drop_queued(session):
    session.info.pop(_QUEUED, None)


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


class CompressedText(TypeDecorator):
    """Text stored zlib-compressed (a case's workflow state: JSON that shrinks about 6x).

    Level 1: a 20-50 KB state compresses in 0.15-0.3 ms and inflates in under 0.1 ms, within 10 %
    of level 6's size (measured on the lifecycle's states; docs/benchmarks.md). SQLite would
    otherwise store the JSON as it is; PostgreSQL's TOAST compressed it, but only on the server.
    """

    impl = LargeBinary
    cache_ok = True
    LEVEL = 1

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return zlib.compress(value.encode("utf-8"), self.LEVEL)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return zlib.decompress(value).decode("utf-8")


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
