"""The daily rollups (app/supervision/rollups.py) against live SQL over the projections, on SQLite
and PostgreSQL: the same figures after a refresh, changes to past days followed, each case counted
once across the rollup/live split.

The clock stands at 2026-11-02 09:00 Shanghai; a refresh then covers every day up to Nov 1.
"""
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from app.cases.models import CaseEvent, DisputeCase
from app.extensions import db
from app.scheduling.scheduler import TimerScheduler
from app.supervision import queries, reports, rollups
from app.supervision.models import CaseDayRollup, CaseDayScopeRollup, CaseMonthScopeRollup, TaskDayRollup
from tests.integration.test_supervision_stats import NOW, as_dict, build_population
from tests.supervision_data import insert_case, insert_task, local, unit, version

YESTERDAY = date(2026, 11, 1)


def board_figures(board):
    """Everything a dashboard shows except the generation time, as plain values."""
    return {
        "figures": as_dict(board.figures),
        "by_category": [(row.key, as_dict(row.figures)) for row in board.by_category],
        "by_channel": [(row.key, as_dict(row.figures)) for row in board.by_channel],
        "by_unit": [(row.key, as_dict(row.figures)) for row in board.by_unit],
        "trend": [(p.bucket, p.start, p.opened, p.closed) for p in board.trend],
        "hot_spots": [(s.unit_id, s.category, s.count, s.baseline) for s in board.hot_spots],
    }


def heat_figures(heat):
    return {spec: (item.passed, item.median_seconds, item.waiting) for spec, item in heat.items()}


def add_tasks():
    """Completed tasks on past days and today, of many durations, in both towns."""
    pv = version()
    for index in range(40):
        code = ("QX-FQ-DS", "QX-FQ-XH-G1", "QX-NH-QY")[index % 3]
        case = insert_case(code, status="open", opened_at=local(2026, 8, 1), process_version=pv,
                           due_at=NOW + timedelta(days=9))
        done = local(2026, 8, 10) + timedelta(days=index * 2, hours=index)
        if index % 8 == 0:
            done = NOW - timedelta(hours=index % 5 + 1)  # completed today: read live
        spec = ("village_mediate", "town_mediate", "county_mediate")[index % 3]
        insert_task(case, spec, status="completed", created_at=done - timedelta(minutes=7 * index ** 2 + 5),
                    completed_at=done)
        if index % 5 == 0:
            insert_task(case, "village_mediate", status="ready", created_at=done)
    db.session.commit()
    return pv


def every_view(pv, live):
    """Dashboard (30 days, 365 days by day/week/month), reports, trends and heat maps for the town
    and the county, read live or through the rollups."""
    out = {}
    year = queries.Period(date(2025, 11, 3), date(2026, 11, 2))
    for code in ("QX", "QX-FQ", "QX-FQ-XH"):
        place = unit(code)
        out[code, "dashboard"] = board_figures(queries.dashboard(place, queries.default_period(NOW), NOW, live=live))
        for granularity in queries.GRANULARITIES:
            out[code, "year", granularity] = board_figures(queries.dashboard(place, year, NOW, granularity, live=live))
            out[code, "trend", granularity] = [
                (p.bucket, p.opened, p.closed) for p in queries.trend(place, year, granularity, live=live)]
        for kind, day in (("daily", date(2026, 10, 20)), ("weekly", date(2026, 10, 28)),
                          ("monthly", date(2026, 10, 15)), ("monthly", date(2026, 11, 2))):
            report = reports.build_report(place, kind, day, NOW, live=live)
            out[code, kind, day] = (board_figures(report.dashboard), as_dict(report.previous_figures))
        for period in (queries.default_period(NOW, queries.HEATMAP_DAYS), year, None):
            out[code, "heat", period and period.start] = heat_figures(queries.heatmap(place, pv, period, live=live))
    db.session.rollback()
    return out


def add_hot_spot():
    """Traffic cases rising in 柳塘村 across the rollup/live split: 2 yesterday (rolled up), 2 today
    (live), 1 in the baseline weeks."""
    for code, opened_at in (("QX-FQ-LT", local(2026, 11, 1, 10)), ("QX-FQ-LT", local(2026, 11, 1, 15)),
                            ("QX-FQ-LT", NOW - timedelta(hours=1)), ("QX-FQ-LT", NOW - timedelta(hours=2)),
                            ("QX-FQ-LT", local(2026, 10, 12, 9))):
        insert_case(code, status="open", category="traffic", opened_at=opened_at, due_at=NOW + timedelta(days=9))
    db.session.commit()


@pytest.fixture
def population(app, fake_clock):
    fake_clock.set(NOW)
    specs = build_population()
    pv = add_tasks()
    add_hot_spot()
    return specs, pv


def test_rollups_give_the_live_figures_after_a_refresh(population):
    _, pv = population
    live = every_view(pv, live=True)
    assert any(view["hot_spots"] for view in live.values() if isinstance(view, dict) and "hot_spots" in view), \
        "the population raises hot spots, so the rollup path is compared on them too"
    assert rollups.covered_through() is None
    assert every_view(pv, live=False) == live  # never refreshed: everything is read live

    assert rollups.refresh(NOW) == {"rebuilt": True, "through": "2026-11-01"}
    assert rollups.covered_through() == YESTERDAY
    assert db.session.scalar(select(func.sum(CaseDayRollup.closed))) > 100
    assert db.session.scalar(select(func.sum(TaskDayRollup.passed))) == 35  # 5 of 40 completed today
    assert every_view(pv, live=False) == live

    # The 70/20/8/2 population reads the same through the rollups.
    town = queries.dashboard(unit("QX-FQ"), queries.default_period(NOW), NOW)
    assert (town.figures.decided, town.figures.at_or_below, town.figures.litigated) == (
        100, {"village": 70, "town": 90, "county": 98}, 2)

    # And the rollup rows are really what is read: skew the county's category rows of one day, and
    # the figure moves with them (its channel and unit rows, summed on their own, stay).
    county = unit("QX")
    day_rows = (CaseDayScopeRollup.scope_path == county.path, CaseDayScopeRollup.margin == "category",
                CaseDayScopeRollup.day == date(2026, 10, 20))
    rows = db.session.scalar(select(func.count()).where(*day_rows))
    db.session.execute(update(CaseDayScopeRollup).where(*day_rows).values(closed=CaseDayScopeRollup.closed + 1000))
    db.session.commit()
    skewed = queries.dashboard(county, queries.default_period(NOW), NOW)
    assert rows >= 1 and skewed.figures.closed == live["QX", "dashboard"]["figures"]["closed"] + 1000 * rows
    assert [row.figures.closed for row in skewed.by_unit] == [
        figures["closed"] for _, figures in live["QX", "dashboard"]["by_unit"]]
    # A year takes its whole months from the month rows (and a skewed day no longer counts there).
    year = queries.Period(date(2025, 11, 3), date(2026, 11, 2))
    month_rows = (CaseMonthScopeRollup.scope_path == county.path, CaseMonthScopeRollup.margin == "category",
                  CaseMonthScopeRollup.month == date(2026, 9, 1))
    months = db.session.scalar(select(func.count()).where(*month_rows))
    db.session.execute(update(CaseMonthScopeRollup).where(*month_rows).values(closed=CaseMonthScopeRollup.closed + 1000))
    db.session.commit()
    skewed_year = queries.dashboard(county, year, NOW, queries.GRANULARITIES[0])
    assert months >= 1 and skewed_year.figures.closed == (
        live["QX", "year", queries.GRANULARITIES[0]]["figures"]["closed"] + 1000 * months)
    rollups.rebuild_all(NOW)
    assert every_view(pv, live=False) == live


def close_event(case, at):
    """The event the engine writes when a case closes (services record every change)."""
    db.session.add(CaseEvent(case_id=case.id, at=at, kind="closed", message=f"结案：{case.outcome}"))


def test_refresh_follows_changes_to_past_days(population, fake_clock):
    _, pv = population
    # Cases to change later, written as the engine leaves them.
    reopened = insert_case("QX-FQ-DS", status="closed", outcome="resolved", resolved_tier="village",
                           satisfaction="dissatisfied", opened_at=local(2026, 10, 8), closed_at=local(2026, 10, 10))
    close_event(reopened, reopened.closed_at)
    late = insert_case("QX-FQ-LT", status="open", opened_at=local(2026, 10, 12), due_at=NOW - timedelta(days=3))
    withdrawn = insert_case("QX-FQ-XH", status="open", opened_at=local(2026, 10, 14), due_at=NOW + timedelta(days=3))
    moved = insert_case("QX-FQ-XH", status="closed", outcome="resolved", resolved_tier="town",
                        opened_at=local(2026, 10, 16), closed_at=local(2026, 10, 18), category="labour")
    close_event(moved, moved.closed_at)
    db.session.commit()
    rollups.refresh(NOW)
    before = every_view(pv, live=True)
    assert every_view(pv, live=False) == before

    later = NOW + timedelta(minutes=30)
    fake_clock.set(later)
    # A dissatisfied follow-up visit reopens the Oct 10 closure; a closure recorded late (closed
    # on Oct 30); a withdrawal today; a case reassigned to another town and recategorised.
    db.session.execute(update(DisputeCase).where(DisputeCase.id == reopened.id).values(
        status="open", closed_at=None, outcome=None, resolved_tier=None, current_tier="village",
        satisfaction=None, reopen_count=1, updated_at=later))
    db.session.add(CaseEvent(case_id=reopened.id, at=later, kind="reopened", message="当事人不满意，村(社)重新办理"))
    db.session.execute(update(DisputeCase).where(DisputeCase.id == late.id).values(
        status="closed", closed_at=local(2026, 10, 30, 16), outcome="resolved", resolved_tier="village",
        current_tier="village", due_at=None, updated_at=later))
    db.session.execute(update(DisputeCase).where(DisputeCase.id == withdrawn.id).values(
        status="closed", closed_at=later, outcome="withdrawn", due_at=None, updated_at=later))
    nanhu = unit("QX-NH-QY")
    db.session.execute(update(DisputeCase).where(DisputeCase.id == moved.id).values(
        org_unit_id=nanhu.id, org_path=nanhu.path, category="contract", updated_at=later))
    db.session.commit()

    after = every_view(pv, live=True)
    assert after != before
    october = lambda view: view["QX-FQ", "monthly", date(2026, 10, 15)][0]["figures"]  # noqa: E731
    # Live SQL says: October lost the reopened closure and the moved one, gained the late one.
    assert october(after)["closed"] == october(before)["closed"] - 1
    assert october(after)["opened"] == october(before)["opened"] - 1
    assert after["QX", "dashboard"]["figures"]["closed"] == before["QX", "dashboard"]["figures"]["closed"] + 1
    stale = every_view(pv, live=False)
    assert stale != after  # until the next refresh the rolled-up days still show the old state

    result = rollups.refresh(later)
    assert result["rebuilt"] is False and result["new_days"] == 0
    assert result["recomputed_days"] >= 4  # Oct 8/10 (reopen), 12/30 (late), 14 (withdrawal), 16/18 (move)
    assert every_view(pv, live=False) == after

    # The next day: Nov 2 joins the rollups, and still nothing changes.
    tomorrow = NOW + timedelta(days=1)
    fake_clock.set(tomorrow)
    assert rollups.refresh(tomorrow)["new_days"] == 1
    assert rollups.covered_through() == date(2026, 11, 2)
    assert every_view(pv, live=False) == every_view(pv, live=True)


def test_a_range_over_rollup_days_and_today_counts_each_case_once(app, fake_clock):
    fake_clock.set(NOW)
    # Both sides of the split at local midnight, opened and closed on either side.
    edges = [(local(2026, 11, 1, 0, 1), local(2026, 11, 1, 23, 59)),
             (local(2026, 11, 1, 23, 59), local(2026, 11, 2, 0, 1)),
             (local(2026, 11, 2, 0, 1), local(2026, 11, 2, 8, 0))]
    for opened, closed in edges:
        insert_case("QX-FQ-DS", status="closed", outcome="resolved", resolved_tier="village",
                    opened_at=opened, closed_at=closed)
    db.session.commit()
    rollups.refresh(NOW)
    assert rollups.covered_through() == YESTERDAY
    period = queries.Period(date(2026, 10, 31), date(2026, 11, 2))
    board = queries.dashboard(unit("QX"), period, NOW)
    assert (board.figures.opened, board.figures.closed) == (3, 3)
    assert [(p.bucket, p.opened, p.closed) for p in board.trend] == [
        ("2026-10-31", 0, 0), ("2026-11-01", 2, 1), ("2026-11-02", 1, 2)]
    # A case opened after the refresh, today, is read live.
    insert_case("QX-FQ-DS", status="open", opened_at=NOW - timedelta(minutes=5), due_at=NOW + timedelta(days=1))
    db.session.commit()
    assert queries.dashboard(unit("QX"), period, NOW).figures.opened == 4
    assert board_figures(queries.dashboard(unit("QX"), period, NOW)) == board_figures(
        queries.dashboard(unit("QX"), period, NOW, live=True))


def test_scheduler_job_and_cli_refresh_the_rollups(app, fake_clock):
    fake_clock.set(NOW)
    insert_case("QX-FQ-DS", status="closed", outcome="resolved", resolved_tier="village",
                opened_at=local(2026, 10, 20), closed_at=local(2026, 10, 21))
    db.session.commit()
    db.session.remove()
    timer_scheduler = TimerScheduler(app)
    try:
        assert timer_scheduler.refresh_rollups()["through"] == "2026-11-01"
        assert timer_scheduler.refresh_rollups()["rebuilt"] is False
    finally:
        timer_scheduler.shutdown()
    assert rollups.covered_through() == YESTERDAY
    db.session.execute(update(CaseDayRollup).values(closed=0))
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["rollups", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "rebuilt through 2026-11-01" in result.output
    db.session.expire_all()
    assert db.session.scalar(select(func.sum(CaseDayRollup.closed))) == 1
