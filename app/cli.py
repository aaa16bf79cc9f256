"""flask commands: seed-demo, workflows deploy/list, timers fire/list, users token."""
import os
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
    app.cli.add_command(rollups_group)


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
    """Deploy process versions, map regions to variants, compare versions, migrate cases."""


def _fail(exc: DomainError):
    """Print a service's refusal (every validation problem, or the field errors) and exit non-zero."""
    problems = exc.details.get("problems") if hasattr(exc, "details") else None
    if problems:
        for problem in problems:
            where = ":".join(part for part in (problem.get("file"), problem.get("element_id")) if part)
            click.echo(f"  {problem.get('severity', 'error')} {where or 'bundle'}: {problem['message']}", err=True)
    else:
        for field, messages in getattr(exc, "errors", {}).items():
            for message in messages:
                click.echo(f"  {field}: {message}", err=True)
    raise click.ClickException(exc.message) from None


def deploy_variant_workflows() -> list[str]:
    """Deploy every variant directory under WORKFLOWS_DIR (one with a variant.json)."""
    from app.processes import services as processes

    lines = []
    for directory in sorted(Path(current_app.config["WORKFLOWS_DIR"]).iterdir()):
        if directory.is_dir() and (directory / "variant.json").is_file():
            bundle = processes.read_bundle(directory, current_app.config["FORMS_DIR"], directory.name)
            version, created = processes.deploy(bundle, note="variant deployed from workflows/")
            lines.append(f"{version.key} v{version.version} {'deployed' if created else 'unchanged'}")
    return lines


@workflows.command("deploy")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--key", help="process key to deploy as (default: the directory name)")
@click.option("--note", default=None)
@click.option("--variant", "regions", multiple=True, metavar="REGION",
              help="org unit code whose new cases use this key from now on (repeatable)")
def deploy_command(directory, key, note, regions):
    """Deploy DIRECTORY (BPMN + DMN, or a variant.json; forms from FORMS_DIR), or every shipped
    bundle and variant."""
    from app.processes import services as processes

    try:
        if directory is None:
            for line in deploy_default_workflows() + deploy_variant_workflows():
                click.echo(line)
            if regions:
                raise click.UsageError("--variant needs a DIRECTORY")
            return
        path = Path(directory)
        bundle = processes.read_bundle(path, current_app.config["FORMS_DIR"], key or path.name)
        version, created, warnings = processes.deploy_checked(bundle, note=note)
        click.echo(f"{version.key} v{version.version} {'deployed' if created else 'unchanged'} ({version.content_hash[:12]})")
        for warning in warnings:
            click.echo(f"  warning {warning.file}:{warning.element_id}: {warning.message}", err=True)
        for region in regions:
            processes.set_variant(None, region, version.key, note=note)
            click.echo(f"new cases in {region} now use {version.key} (latest version)")
    except DomainError as exc:
        _fail(exc)


@workflows.command("list")
@click.argument("key", required=False)
def list_command(key):
    """List deployed versions (of KEY), the region mapping and pending drafts."""
    from app.processes import services as processes

    for version in processes.list_versions(key):
        runs = f" runs {version.process_id}" if version.process_id else ""
        click.echo(f"{version.key:<24} v{version.version:<4} {version.content_hash[:12]} "
                   f"{version.created_at:%Y-%m-%d %H:%M} {version.note or ''}{runs}")
    for variant in processes.list_variants():
        target = f"v{variant.version.version}" if variant.version else "latest"
        click.echo(f"variant: {variant.org_unit.code} ({variant.org_unit.name}) → {variant.key} {target}")
    for name in processes.list_keys():
        drafts = processes.drafts_of(name)
        if drafts and (key is None or name == key):
            click.echo(f"drafts:  {name}: {', '.join(drafts)}")


@workflows.command("show")
@click.argument("version_ref")
@click.option("--file", "file_name", help="print this file's content")
def show_command(version_ref, file_name):
    """Show a version (KEY, KEY:N or id): who deployed it, when, and its files."""
    from app.processes import services as processes

    try:
        version = processes.parse_version_ref(version_ref)
    except DomainError as exc:
        _fail(exc)
    if file_name:
        files = {f.name: f for f in version.files}
        if file_name not in files:
            raise click.ClickException(f"{version.key} v{version.version} has no file {file_name}")
        click.echo(files[file_name].content, nl=False)
        return
    click.echo(f"{version.key} v{version.version} (id {version.id}) runs {version.top_process_id}")
    click.echo(f"deployed {version.created_at:%Y-%m-%d %H:%M}Z by {version.author.username if version.author else 'the operator'}"
               f"{f': {version.note}' if version.note else ''}")
    click.echo(f"content hash {version.content_hash}")
    for file in version.files:
        click.echo(f"  {file.kind:<5} {file.name} ({len(file.content.encode('utf-8'))} bytes)")


@workflows.command("diff")
@click.argument("old_ref")
@click.argument("new_ref")
def diff_command(old_ref, new_ref):
    """Unified diff of every file that differs between two versions (KEY:N or id)."""
    from app.processes import services as processes

    try:
        old, new = processes.parse_version_ref(old_ref), processes.parse_version_ref(new_ref)
    except DomainError as exc:
        _fail(exc)
    changes = processes.diff_versions(old, new)
    for change in changes:
        click.echo(change["diff"], nl=False)
    if not changes:
        click.echo("no differences")


@workflows.group("variant")
def variant_group():
    """Which process version new cases use, per region (org unit code)."""


@variant_group.command("set")
@click.argument("region")
@click.argument("key")
@click.option("--version", "number", type=int, help="pin this version (default: follow the latest)")
@click.option("--note", default=None)
def variant_set_command(region, key, number, note):
    """New cases opened in REGION's subtree use KEY."""
    from app.processes import services as processes

    try:
        variant = processes.set_variant(None, region, key, number, note)
    except DomainError as exc:
        _fail(exc)
    click.echo(f"new cases in {region} use {variant.key} {f'v{number}' if number else '(latest version)'}")


@variant_group.command("clear")
@click.argument("region")
def variant_clear_command(region):
    """REGION's new cases use the default process again."""
    from app.processes import services as processes

    try:
        cleared = processes.clear_variant(None, region)
    except DomainError as exc:
        _fail(exc)
    click.echo(f"{region}: {'mapping removed' if cleared else 'had no mapping'}")


@variant_group.command("list")
def variant_list_command():
    from app.processes import services as processes

    for variant in processes.list_variants():
        target = f"v{variant.version.version}" if variant.version else "latest"
        click.echo(f"{variant.org_unit.code:<16} {variant.org_unit.name:<10} {variant.key} {target} {variant.note or ''}")


@workflows.command("migrate")
@click.argument("target_ref")
@click.option("--from", "source_ref", help="only cases on this version (default: the other versions of TARGET's key)")
@click.option("--case", "numbers", multiple=True, help="case number (repeatable; default: every open case)")
@click.option("--dry-run", is_flag=True, help="report what would change per case; change nothing")
def migrate_command(target_ref, source_ref, numbers, dry_run):
    """Move running cases to TARGET (KEY:N or id); refuses cases whose steps it removed."""
    from app.cases.models import DisputeCase
    from app.extensions import db
    from app.processes import services as processes

    try:
        target = processes.parse_version_ref(target_ref)
        source = processes.parse_version_ref(source_ref) if source_ref else None
        case_ids = None
        if numbers:
            found = dict(db.session.execute(select(DisputeCase.number, DisputeCase.id)
                                            .where(DisputeCase.number.in_(numbers))).all())
            missing = sorted(set(numbers) - set(found))
            if missing:
                raise click.ClickException(f"no such case: {', '.join(missing)}")
            case_ids = list(found.values())
        reports = processes.migrate_cases(None, target, case_ids, source, dry_run=dry_run)
    except DomainError as exc:
        _fail(exc)
    for report in reports:
        verdict = ("would move" if report["ok"] else "refused") if dry_run else ("moved" if report["migrated"] else "refused")
        click.echo(f"{report['number']}: {verdict} {report['from']} → {report['to']}")
        for line in report["refusals"]:
            click.echo(f"    refused: {line}")
        for line in report["changes"]:
            click.echo(f"    change: {line}")
        for line in report["dropped"]:
            click.echo(f"    dropped: {line}")
    moved = sum(1 for r in reports if (r["ok"] if dry_run else r["migrated"]))
    click.echo(f"{moved} of {len(reports)} case(s) {'would move' if dry_run else 'moved'}")


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
    if not once:
        from app.cases.services import warm_up_script_workers

        warm_up_script_workers()
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
    if "SESSION_COOKIE_SECURE" not in os.environ:
        # This server speaks plain HTTP: a Secure cookie would never come back and login would loop.
        app.config["SESSION_COOKIE_SECURE"] = app.config["REMEMBER_COOKIE_SECURE"] = False
    from app.cases.services import warm_up_script_workers

    warm_up_script_workers()
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


@click.group("rollups")
def rollups_group():
    """The supervisor console's daily rollups (the scheduler refreshes them)."""


@rollups_group.command("rebuild")
def rollups_rebuild_command():
    """Recompute every past day from the projections (after a bulk load or a restore)."""
    import time

    from app.supervision import rollups

    started = time.perf_counter()
    through = rollups.rebuild_all()
    click.echo(f"rollups rebuilt through {through.isoformat()} in {time.perf_counter() - started:.1f} s")


@rollups_group.command("refresh")
def rollups_refresh_command():
    """Add the days ended since the last refresh and redo the days changed cases touched."""
    from app.supervision import rollups

    click.echo(str(rollups.refresh()))
