"""Schemathesis over the published OpenAPI document: generated and mutated requests, in process.

Every operation is called by an intake clerk, a village mediator, a county supervisor and an
integrator, against a database that holds open cases (so small ids reach real rows). The checks:
no 5xx, only documented status codes and content types, and every response matching its schema.
Generation is derandomized so a failure reproduces on the next run.
"""
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from app import create_app
from app.config import TestConfig
from app.extensions import db
from app.org.models import OrgUnit, User
from app.org.services import create_api_token
from tests.conftest import _sqlite_app
from tests.factories import form_data

USERS = ["qx_fq_ds_intake_clerk", "qx_fq_ds_village_mediator", "qx_fq_supervisor", "qx_integrator"]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class Target:
    """The WSGI app schemathesis calls: the schema is read at collection time (the document needs
    no database), the requests go to the module's seeded app once its fixture has set it."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


TARGET = Target(create_app(TestConfig, SQLALCHEMY_DATABASE_URI="sqlite://"))
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", TARGET)


@pytest.fixture(scope="module")
def fuzzed_app(sqlite_template, tmp_path_factory):
    """One app for the module (hypothesis calls it thousands of times), with cases at two tiers."""
    app = _sqlite_app(sqlite_template, tmp_path_factory.mktemp("fuzz"))
    client = app.test_client()
    with app.app_context():
        tokens = {name: create_api_token(db.session.scalar(select(User).where(User.username == name)), "fuzz")
                  for name in USERS}
        unit = db.session.scalar(select(OrgUnit.id).where(OrgUnit.code == "QX-FQ-DS"))
        db.session.remove()
    clerk = {"Authorization": f"Bearer {tokens[USERS[0]]}"}
    mediator = {"Authorization": f"Bearer {tokens[USERS[1]]}"}
    for index in range(3):
        created = client.post("/api/v1/disputes", headers=clerk, json={
            "title": f"邻里漏水纠纷{index}", "category": "neighbour", "description": "楼上漏水",
            "org_unit_id": unit, "channel": "walk_in",
            "parties": [{"name": "张三", "party_role": "applicant"}, {"name": "李四", "party_role": "respondent"}]})
        assert created.status_code == 201, created.json
    tasks = client.get("/api/v1/tasks", headers=clerk).json["items"]
    intake = [t for t in tasks if t["spec_name"] == "intake_register"][0]
    done = client.post(f"/api/v1/tasks/{intake['id']}/complete", headers=clerk,
                       json={"data": form_data("intake_register")})
    assert done.status_code == 200, done.json
    assert any(t["spec_name"] == "village_mediate" for t in client.get("/api/v1/tasks", headers=mediator).json["items"])
    TARGET.app = app
    yield app, tokens
    TARGET.app = None
    with app.app_context():
        db.engine.dispose()


@schema.parametrize()
@settings(max_examples=12, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_error_and_every_response_as_documented(case, fuzzed_app):
    _, tokens = fuzzed_app
    for username in USERS:  # each generated request, as each role would send it
        case.call_and_validate(headers={"Authorization": f"Bearer {tokens[username]}"}, checks=CHECKS)
