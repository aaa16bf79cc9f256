"""Set-up works for a new user: migrations build every table, seeding is idempotent, deploys version."""
from datetime import date

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from app.cli import deploy_default_workflows
from app.extensions import db
from app.org.demo import seed_demo
from app.org.models import Level, OrgUnit, RoleGrant, User
from app.org.roles import ROLES
from app.processes import services as processes


def test_migrations_match_the_models(sqlite_app):
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert diff == []
    tables = set(db.inspect(db.engine).get_table_names())
    assert set(db.metadata.tables) <= tables


def test_seed_demo_builds_the_county_once(sqlite_app):
    users_before = db.session.scalar(select(func.count()).select_from(User))
    logins = seed_demo()
    assert db.session.scalar(select(func.count()).select_from(User)) == users_before, "idempotent"
    levels = {level: db.session.scalar(select(func.count()).select_from(OrgUnit).where(OrgUnit.level == level))
              for level in Level}
    assert levels[Level.county] == 1 and levels[Level.town] == 2
    assert levels[Level.village] >= 4 and levels[Level.grid] >= levels[Level.village]
    # every unit has one holder of each role meant for its level
    for unit in db.session.scalars(select(OrgUnit)):
        roles = set(db.session.scalars(select(RoleGrant.role).where(RoleGrant.org_unit_id == unit.id)))
        expected = {code for code, role in ROLES.items() if role.level == unit.level}
        assert expected - {"supervisor"} <= roles, (unit.code, expected - roles)
    assert ("qx_fq_ds_village_mediator", "village_mediator", "东山村") in logins


def test_redeploying_identical_workflows_is_a_no_op(sqlite_app):
    assert deploy_default_workflows() == ["dispute_lifecycle v1 unchanged"]
    assert len(processes.list_versions()) == 1


def test_seed_demo_cli_prints_the_logins(sqlite_app):
    result = sqlite_app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "demo12345" in result.output and "qx_fq_ds_village_mediator" in result.output


def test_workflows_deploy_cli_reports_a_broken_diagram(sqlite_app, tmp_path):
    bundle = tmp_path / "broken"
    bundle.mkdir()
    (bundle / "broken.bpmn").write_text(
        '<?xml version="1.0"?><bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'id="d" targetNamespace="t"><bpmn:process id="broken" isExecutable="true">'
        '<bpmn:startEvent id="s"><bpmn:outgoing>f</bpmn:outgoing></bpmn:startEvent>'
        '<bpmn:sequenceFlow id="f" sourceRef="s" targetRef="missing_task"/></bpmn:process></bpmn:definitions>',
        encoding="utf-8",
    )
    result = sqlite_app.test_cli_runner().invoke(args=["workflows", "deploy", str(bundle)])
    assert result.exit_code != 0
    # names the element whose flow is broken and the id it points at
    assert "s: " in result.output and "missing_task" in result.output
    assert len(processes.list_versions()) == 1, "nothing half-deployed"


def test_operator_updates_the_holiday_calendar(sqlite_app, tmp_path):
    from app.scheduling import calendar

    next_year = tmp_path / "cn-2027.json"
    next_year.write_text('{"holidays": [{"from": "2027-01-01", "to": "2027-01-03", "name": "元旦"}],'
                         ' "workdays": [{"date": "2027-01-09", "name": "调休上班"}]}', encoding="utf-8")
    runner = sqlite_app.test_cli_runner()
    result = runner.invoke(args=["calendar", "import", str(next_year)])
    assert result.exit_code == 0 and "3 holidays, 1 adjusted working days" in result.output
    shown = runner.invoke(args=["calendar", "show", "2027"]).output.splitlines()
    assert shown == ["2027-01-01 holiday  元旦", "2027-01-02 holiday  元旦", "2027-01-03 holiday  元旦",
                     "2027-01-09 workday  调休上班"]
    assert calendar.current().is_working_day(date(2027, 1, 9))
    assert runner.invoke(args=["calendar", "show", "2026"]).output.count("holiday") == 33, "2026 untouched"

    broken = tmp_path / "broken.json"
    broken.write_text('{"holidays": [{"from": "2027-05-05", "to": "2027-05-01"}]}', encoding="utf-8")
    refused = runner.invoke(args=["calendar", "import", str(broken)])
    assert refused.exit_code != 0 and "not valid" in refused.output
