"""Workflow state is stored compressed; migration 0008 converts existing rows both ways."""
import zlib

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import select, text

from app.cases.models import WorkflowState
from app.extensions import db
from tests.conftest import CASE_TABLES, ApiClient, _build, _sqlite_app
from tests.integration.test_api_lifecycle import CLERK, complete, open_case


def _raw_state(case_id):
    return db.session.execute(text("SELECT state FROM workflow_state WHERE case_id = :id"), {"id": case_id}).scalar_one()


def test_state_is_stored_compressed_and_reads_back_as_json(app, as_user):
    case = open_case(as_user(CLERK))
    complete(as_user(CLERK), case["id"], "intake_register")
    db.session.expire_all()
    state = db.session.get(WorkflowState, case["id"]).state
    raw = bytes(_raw_state(case["id"]))
    assert zlib.decompress(raw).decode("utf-8") == state and state.startswith("{")
    assert len(raw) * 3 < len(state.encode("utf-8")), "compression should shrink the JSON several times"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_migration_0008_converts_existing_states_and_back(backend, request, tmp_path, fake_clock):
    if backend == "sqlite":
        app = _sqlite_app(request.getfixturevalue("sqlite_template"), tmp_path)
    else:
        app = _build(request.getfixturevalue("pg_database"))
    with app.app_context():
        client = ApiClient(app.test_client(), CLERK)
        case = open_case(client)
        complete(client, case["id"], "intake_register")
        state = db.session.scalar(select(WorkflowState.state).where(WorkflowState.case_id == case["id"]))
        db.session.remove()
        try:
            downgrade(revision="0007_rollups")
            assert _raw_state(case["id"]) == state, "downgrade writes the JSON text back"
            db.session.remove()
            upgrade()
            assert zlib.decompress(bytes(_raw_state(case["id"]))).decode("utf-8") == state
            db.session.expire_all()
            assert db.session.get(WorkflowState, case["id"]).state == state
        finally:
            db.session.remove()
            if backend == "postgres":
                db.session.execute(text(f"TRUNCATE {', '.join(CASE_TABLES)} RESTART IDENTITY CASCADE"))
                db.session.commit()
            db.engine.dispose()
