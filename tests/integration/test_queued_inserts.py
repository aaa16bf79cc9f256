"""Rows queued with app.database.insert_later: written together at commit, all or nothing.

On PostgreSQL the tables' multi-row INSERTs go to the server in one pipeline; a failure in one of
them must still surface as SQLAlchemy's exception and leave nothing of the transaction behind.
"""
import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app import clock
from app.cases.models import CaseEvent
from app.database import UnitOfWork, insert_later
from app.extensions import db
from app.notifications.models import Notification
from tests.conftest import user
from tests.integration.test_scheduler import open_case

MEDIATOR = "qx_fq_ds_village_mediator"


def counted(model, case_id):
    return db.session.scalar(select(func.count()).select_from(model).where(model.case_id == case_id))


def queue(case_id, message, event_kind="note"):
    insert_later(CaseEvent.__table__, {"case_id": case_id, "actor_id": None, "kind": event_kind,
                                       "message": message, "task_id": None, "data": None, "at": clock.now()})
    insert_later(Notification.__table__, {"user_id": user(MEDIATOR).id, "case_id": case_id, "kind": "assignment",
                                          "message": message, "created_at": clock.now(), "read_at": None})


@pytest.fixture
def case_id(app):
    return open_case().id


def test_queued_rows_of_several_tables_go_in_together_at_commit(app, case_id, monkeypatch):
    events, notes = counted(CaseEvent, case_id), counted(Notification, case_id)
    pipelines = []
    if db.engine.dialect.name == "postgresql":
        entered = psycopg.Connection.pipeline

        def counting_pipeline(self, *args, **kwargs):
            pipelines.append(self)
            return entered(self, *args, **kwargs)

        monkeypatch.setattr(psycopg.Connection, "pipeline", counting_pipeline)
    with UnitOfWork() as uow:
        queue(case_id, "一")
        queue(case_id, "二")
        uow.commit()
    assert (counted(CaseEvent, case_id), counted(Notification, case_id)) == (events + 2, notes + 2)
    if db.engine.dialect.name == "postgresql":
        assert len(pipelines) == 1, "both tables' INSERTs in one pipeline"


def test_a_failing_queued_insert_raises_sqlalchemys_error_and_keeps_nothing(app, case_id):
    events, notes = counted(CaseEvent, case_id), counted(Notification, case_id)
    with pytest.raises(IntegrityError), UnitOfWork() as uow:
        queue(case_id, "写入")
        queue(case_id, "违反约束", event_kind=None)  # case_event.kind is NOT NULL
        uow.commit()
    assert (counted(CaseEvent, case_id), counted(Notification, case_id)) == (events, notes)
    with UnitOfWork() as uow:  # the session and its connection work on
        queue(case_id, "之后")
        uow.commit()
    assert (counted(CaseEvent, case_id), counted(Notification, case_id)) == (events + 1, notes + 1)
