"""SQLite writers take turns on a file lock beside the database (app.database._queue_for_sqlite_writer).

The lock must be held from a case's lock to the end of its transaction, whichever way it ends,
and a second writer must wait for the first and then see what it wrote.
"""
import fcntl
import threading

import pytest
from sqlalchemy import update

from app.cases.models import DisputeCase
from app.database import UnitOfWork, lock_row
from app.extensions import db
from tests.integration.test_scheduler import open_case


def writer_lock_held(app) -> bool:
    """Whether some transaction holds the writer lock (a fresh descriptor cannot take it)."""
    with open(f"{db.engine.url.database}.writer-lock", "a") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe, fcntl.LOCK_UN)
        return False


@pytest.fixture
def case_id(sqlite_app):
    case_id = open_case().id
    db.session.remove()
    return case_id


def test_the_lock_is_held_from_the_case_lock_to_the_commit(sqlite_app, case_id):
    assert not writer_lock_held(sqlite_app)
    with UnitOfWork() as uow:
        lock_row(DisputeCase, case_id)
        assert writer_lock_held(sqlite_app)
        uow.commit()
    assert not writer_lock_held(sqlite_app)


def test_a_rolled_back_step_lets_the_next_writer_in(sqlite_app, case_id):
    with pytest.raises(RuntimeError), UnitOfWork():
        lock_row(DisputeCase, case_id)
        assert writer_lock_held(sqlite_app)
        raise RuntimeError("the step failed")
    assert not writer_lock_held(sqlite_app)


def test_a_transaction_that_already_writes_does_not_queue_behind_itself(sqlite_app, case_id):
    with UnitOfWork() as uow:
        db.session.execute(update(DisputeCase).where(DisputeCase.id == case_id).values(title="已改"))
        case = lock_row(DisputeCase, case_id)  # holds SQLite's own lock already
        assert case.title == "已改" and not writer_lock_held(sqlite_app)
        uow.commit()


def test_the_second_writer_waits_for_the_first_and_sees_its_write(sqlite_app, case_id):
    first_locked, first_may_commit = threading.Event(), threading.Event()
    seen = []

    def first():
        with sqlite_app.app_context(), UnitOfWork() as uow:
            lock_row(DisputeCase, case_id).title = "第一位写入"
            first_locked.set()
            first_may_commit.wait(10)
            uow.commit()
            db.session.remove()

    def second():
        with sqlite_app.app_context(), UnitOfWork():
            seen.append(lock_row(DisputeCase, case_id).title)
            db.session.remove()

    one = threading.Thread(target=first)
    one.start()
    assert first_locked.wait(10)
    two = threading.Thread(target=second)
    two.start()
    two.join(0.3)
    assert two.is_alive() and seen == [], "the second writer did not wait"
    first_may_commit.set()
    one.join(10)
    two.join(10)
    assert seen == ["第一位写入"]
