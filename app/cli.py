"""flask commands: seed-demo, workflows deploy/list, timers fire/list, users token."""
from pathlib import Path

import click
from flask import current_app
from sqlalchemy import select

from app import clock
from app.errors import DomainError


def register_cli(app):
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(scheduler)
    app.cli.add_command(calendar_group)
    app.cli.add_command(serve_command)
    app.cli.add_command(doctor_command)
    app.cli.add_command(workflows)
    app.cli.add_command(timers)
    app.cli.add_command(users)


def deploy_default_workflows() -> list[str]:
    """Deploy every bundle under WORKFLOWS_DIR (one sub-directory per process key)."""
    from app.processes import services as processes

    lines = []
    for directory in sorted(Path(current_app.config["WORKFLOWS_DIR"]).iterdir()):
        if directory.is_dir() and any(directory.glob("*.bpmn")):
            bundle = processes.read_bundle(directory, current_app.config["FORMS_DIR"], directory.name)
            version, created = processes.deploy(bundle, note="deployed from workflows/")
            lines.append(f"{version.key} v{version.version} {'deployed' if created else 'unchanged'}")
    return lines


@click.command("seed-demo")
def seed_demo_command():
    """Deploy the shipped workflows and create the demo county and its users (idempotent)."""
    from app.org.demo import DEMO_PASSWORD, seed_demo

    for line in deploy_default_workflows():
        click.echo(line)
    from app.scheduling.services import import_shipped_calendars

    for line in import_shipped_calendars():
        click.echo(line)
    logins = seed_demo()
    click.echo(f"\nDemo logins (password for all: {DEMO_PASSWORD}):")
    shown = set()
    for username, role, unit in logins:
        if role in shown and role not in ("village_mediator", "intake_clerk"):
            continue
        shown.add(role)
        click.echo(f"  {username:<32} {role:<18} {unit}")
    click.echo(f"  ... {len(logins)} users in all; `flask users list` shows every one")


@click.group()
def workflows():
    """Deploy and list process versions."""


@workflows.command("deploy")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--key", help="process id to deploy (default: the directory name)")
@click.option("--note", default=None)
def deploy_command(directory, key, note):
    """Deploy DIRECTORY (BPMN + DMN; forms from FORMS_DIR), or every shipped bundle."""
    from app.processes import services as processes

    try:
        if directory is None:
            for line in deploy_default_workflows():
                click.echo(line)
            return
        path = Path(directory)
        bundle = processes.read_bundle(path, current_app.config["FORMS_DIR"], key or path.name)
        version, created = processes.deploy(bundle, note=note)
        click.echo(f"{version.key} v{version.version} {'deployed' if created else 'unchanged'} ({version.content_hash[:12]})")
    except DomainError as exc:
        for field, messages in getattr(exc, "errors", {}).items():
            for message in messages:
                click.echo(f"  {field}: {message}", err=True)
        raise click.ClickException(exc.message) from None


@workflows.command("list")
def list_command():
    from app.processes import services as processes

    for version in processes.list_versions():
        click.echo(f"{version.key:<24} v{version.version:<4} {version.content_hash[:12]} {version.created_at:%Y-%m-%d %H:%M} {version.note or ''}")


@click.group()
def timers():
    """Inspect and fire engine timers."""


@timers.command("fire")
def fire_command():
    """Fire every timer that is due now (the scheduler does this continuously)."""
    from app.cases.services import fire_due_timers

    click.echo(f"fired {fire_due_timers()} timer(s)")


@timers.command("list")
@click.option("--hours", default=24, help="show timers due within this many hours")
def timers_list_command(hours):
    from datetime import timedelta

    from app.cases.models import DisputeCase, Timer
    from app.extensions import db

    horizon = clock.now() + timedelta(hours=hours)
    rows = db.session.execute(
        select(Timer, DisputeCase.number).join(DisputeCase, DisputeCase.id == Timer.case_id)
        .where(Timer.status == "pending", Timer.due_at <= horizon).order_by(Timer.due_at)
    ).all()
    for timer, number in rows:
        state = "OVERDUE" if timer.due_at <= clock.now() else "due"
        click.echo(f"{state:<8} {timer.due_at:%Y-%m-%d %H:%M}Z {number} {timer.kind:<10} {timer.name}")
    click.echo(f"{len(rows)} timer(s) due within {hours} h")
    lags = sorted(db.session.scalars(select(Timer.lag_ms).where(Timer.status == "fired", Timer.lag_ms.is_not(None))
                                     .order_by(Timer.fired_at.desc()).limit(1000)))
    if lags:
        p50, p99 = lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        click.echo(f"firing lag over the last {len(lags)} fired: p50 {p50} ms, p99 {p99} ms")


@click.group()
def users():
    """Users and API tokens."""


@users.command("list")
def users_list_command():
    from app.extensions import db
    from app.org.models import User

    for user in db.session.scalars(select(User).order_by(User.id)):
        grants = ", ".join(f"{g.role}@{g.org_unit.code}" for g in user.grants)
        click.echo(f"{user.username:<32} {user.display_name:<8} {grants}")


@users.command("token")
@click.argument("username")
@click.option("--name", default="cli")
def token_command(username, name):
    """Issue a bearer API token for USERNAME (printed once)."""
    from app.extensions import db
    from app.org.models import User
    from app.org.services import create_api_token

    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise click.ClickException(f"no user {username}")
    click.echo(create_api_token(user, name))


@click.group()
def scheduler():
    """The timer scheduler (run one or more beside the web processes)."""


@scheduler.command("run")
@click.option("--sweep", default=2.0, show_default=True, help="seconds between sweeps")
@click.option("--once", is_flag=True, help="fire what is due now and exit")
@click.option("--now", "now_text", default=None, help="with --once: pretend it is this ISO time (UTC)")
def scheduler_run_command(sweep, once, now_text):
    """Fire escalation and reminder timers on time; safe to run several on PostgreSQL."""
    from datetime import datetime

    from app.scheduling.scheduler import TimerScheduler

    timer_scheduler = TimerScheduler(current_app._get_current_object(), sweep_seconds=sweep, blocking=True)
    if once:
        when = datetime.fromisoformat(now_text.replace("Z", "+00:00")) if now_text else None
        with clock.at(when):
            click.echo(f"fired {timer_scheduler.run_once()} timer(s)")
        return
    try:
        timer_scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        timer_scheduler.shutdown()


@click.command("serve")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000)
def serve_command(host, port):
    """Serve the app for a single machine with the timer scheduler embedded (``make run``)."""
    from werkzeug.serving import run_simple

    from app.scheduling.scheduler import TimerScheduler

    app = current_app._get_current_object()
    timer_scheduler = TimerScheduler(app)
    timer_scheduler.start()
    click.echo(f"serving on http://{host}:{port} with the timer scheduler embedded")
    try:
        # app.run() refuses to start inside the flask CLI; the server it wraps does not.
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        timer_scheduler.shutdown()


@click.group("calendar")
def calendar_group():
    """The working-day calendar (holidays and adjusted working days)."""


@calendar_group.command("import")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
def calendar_import_command(files):
    """Import calendar JSON FILES (default: the shipped official calendars)."""
    from app.scheduling import services as scheduling

    try:
        if not files:
            for line in scheduling.import_shipped_calendars():
                click.echo(line)
        for path in files:
            holidays, workdays = scheduling.import_calendar(Path(path).read_text("utf-8"))
            click.echo(f"{path}: {holidays} holidays, {workdays} adjusted working days")
    except (ValueError, KeyError) as exc:
        raise click.ClickException(f"calendar file not valid: {exc}") from None


@calendar_group.command("show")
@click.argument("year", type=int)
def calendar_show_command(year):
    from datetime import date

    from app.extensions import db
    from app.scheduling.models import CalendarDay

    rows = db.session.scalars(select(CalendarDay).where(
        CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31)).order_by(CalendarDay.day))
    for row in rows:
        click.echo(f"{row.day} {row.kind:<8} {row.name}")


@click.command("doctor")
@click.option("--fix", is_flag=True, help="rebuild mismatched projections from the stored state")
@click.argument("case_ids", nargs=-1, type=int)
def doctor_command(fix, case_ids):
    """Check every case's projections against its stored workflow state."""
    from app.cases.doctor import examine

    findings = examine(list(case_ids) or None, fix=fix)
    for finding in findings:
        click.echo(f"{finding.number} (id {finding.case_id}):")
        for problem in finding.problems:
            click.echo(f"  - {problem}")
    verb = "rebuilt" if fix else "found"
    click.echo(f"{len(findings)} case(s) with mismatches {verb}" if findings else "all cases consistent")
    if findings and not fix:
        raise SystemExit(1)
