"""Dashboard, report and early-warning figures over a known population of cases, asserted exactly,
on SQLite and PostgreSQL. Cases are written straight into the projections (no workflow runs): the
statistics must come from SQL over dispute_case / case_event alone.

The clock stands at 2026-11-02 09:00 Shanghai (a Monday); the default period is the 30 local days
2026-10-04 .. 2026-11-02.
"""
import csv
import io
import re
from collections import Counter
from datetime import date, timedelta

import pytest

from app.extensions import db
from app.supervision import queries, reports
from tests.supervision_data import SHANGHAI, insert_case, local, unit

TOWN_SUPERVISOR = "qx_fq_supervisor"
COUNTY_SUPERVISOR = "qx_supervisor"
NOW = local(2026, 11, 2, 9)
VILLAGES = ["QX-FQ-DS", "QX-FQ-XH", "QX-FQ-LT"]
CATEGORIES = ["neighbour", "marriage_family", "contract", "labour"]
CHANNELS = ["walk_in", "hotline_12345", "grid_report"]
PERIOD = (date(2026, 10, 4), date(2026, 11, 2))


def village_of(code):
    return code if code.count("-") == 2 else code.rsplit("-", 1)[0]


def build_population():
    """The town 枫桥镇: 100 decided cases (70 village, 20 town, 8 county, 2 litigated) closed in
    the period, other closures, open and overdue cases, flagged cases; and a few in 南湖街道.
    Returns the specs of the 枫桥镇 cases (what each was given), for computing expectations."""
    specs = []

    def add(**spec):
        insert_case(**spec)
        specs.append({"category": "neighbour", "channel": "walk_in", "satisfaction": None, "due_at": None,
                      "closed_at": None, "outcome": None, "resolved_tier": None, "time_limit_fired": False} | spec)

    for i in range(100):
        if i < 70:
            outcome, tier = "resolved", "village"
        elif i < 90:
            outcome, tier = "resolved", "town"
        elif i < 98:
            outcome, tier = "resolved", "county"
        else:
            outcome, tier = "litigated", "court"
        closed_at = local(2026, 10, 5) + timedelta(days=i % 28)
        opened_at = local(2026, 9, 20) if i < 20 else closed_at - timedelta(days=i % 5 + 1)
        add(unit_code=f"{VILLAGES[i % 3]}-G1" if i % 10 == 0 else VILLAGES[i % 3], status="closed",
            outcome=outcome, resolved_tier=tier, category=CATEGORIES[i % 4], channel=CHANNELS[i % 3],
            opened_at=opened_at, closed_at=closed_at, time_limit_fired=i % 10 == 3,
            satisfaction={8: "dissatisfied", 9: None}.get(i % 10, "basically_satisfied" if i % 10 in (6, 7) else "satisfied"))
    # Closed in the period without a decision: 3 withdrawn, 2 not accepted (one ran out of time).
    for i in range(5):
        add(unit_code="QX-FQ-XH", status="closed", outcome="withdrawn" if i < 3 else "not_accepted",
            category="other", channel="walk_in", opened_at=local(2026, 10, 18), closed_at=local(2026, 10, 20),
            time_limit_fired=i == 4, current_tier="village")
    # The period's edges in local time: 00:30 on Oct 4 is in, 23:30 on Oct 3 is not.
    add(unit_code="QX-FQ-LT", status="closed", outcome="withdrawn", category="other", channel="app",
        opened_at=local(2026, 10, 1), closed_at=local(2026, 10, 4, 0, 30), current_tier="village")
    add(unit_code="QX-FQ-LT", status="closed", outcome="resolved", resolved_tier="village", category="other",
        channel="app", opened_at=local(2026, 10, 1), closed_at=local(2026, 10, 3, 23, 30))
    # Closed before the period.
    for _ in range(4):
        add(unit_code="QX-FQ-DS", status="closed", outcome="resolved", resolved_tier="village",
            opened_at=local(2026, 9, 25), closed_at=local(2026, 9, 28))
    # Open on 2026-10-25: 4 overdue, 1 overdue still at intake, 1 suspended past its (frozen) limit,
    # 6 within their limits; three of them flagged (mass, stability, both).
    past, future = NOW - timedelta(days=1), NOW + timedelta(days=3)
    for _ in range(4):
        add(unit_code="QX-FQ-DS", status="open", current_tier="town", due_at=past, category="neighbour",
            channel="hotline_12345", opened_at=local(2026, 10, 25))
    add(unit_code="QX-FQ-XH", status="intake", current_tier="", due_at=past, category="contract",
        channel="qr_code", opened_at=local(2026, 10, 25))
    add(unit_code="QX-FQ-XH", status="suspended", due_at=past, category="contract", channel="qr_code",
        opened_at=local(2026, 10, 25))
    for i in range(6):
        add(unit_code="QX-FQ-LT", status="open", due_at=future, category="labour", channel="walk_in",
            opened_at=local(2026, 10, 25), people_involved=(12, 2, 30)[i] if i < 3 else 2,
            risk_level=("low", "high", "high")[i] if i < 3 else "low")
    # 南湖街道: another town's cases, invisible to 枫桥镇's supervisor.
    for _ in range(5):
        insert_case("QX-NH-QY", status="closed", outcome="resolved", resolved_tier="village",
                    opened_at=local(2026, 10, 10), closed_at=local(2026, 10, 12), satisfaction="satisfied")
    for _ in range(2):
        insert_case("QX-NH-SX", status="open", due_at=past, opened_at=local(2026, 10, 30), people_involved=50)
    db.session.commit()
    return specs


def in_period(moment, start=PERIOD[0], end=PERIOD[1]):
    return moment is not None and start <= moment.astimezone(SHANGHAI).date() <= end


def expected(specs, start=PERIOD[0], end=PERIOD[1]):
    """The figures, counted the plain way over the specs."""
    closed = [s for s in specs if s["status"] == "closed" and in_period(s["closed_at"], start, end)]
    decided = [s for s in closed if s["outcome"] in ("resolved", "litigated")]
    return {
        "opened": sum(in_period(s["opened_at"], start, end) for s in specs),
        "closed": len(closed),
        "decided": len(decided),
        "resolved": sum(s["outcome"] == "resolved" for s in decided),
        "litigated": sum(s["outcome"] == "litigated" for s in decided),
        "at_or_below": {
            "village": sum(s["resolved_tier"] == "village" for s in decided),
            "town": sum(s["resolved_tier"] in ("village", "town") for s in decided),
            "county": sum(s["resolved_tier"] in ("village", "town", "county") for s in decided),
        },
        "on_time": sum(not s.get("time_limit_fired") for s in closed),
        "rated": sum(s.get("satisfaction") is not None for s in closed),
        "satisfied": sum(s.get("satisfaction") in ("satisfied", "basically_satisfied") for s in closed),
        "overdue": sum(s["status"] in ("open", "intake") and s.get("due_at") is not None and s["due_at"] < NOW
                       for s in specs),
    }


def as_dict(figures):
    return {name: getattr(figures, name) for name in (
        "opened", "closed", "decided", "resolved", "litigated", "at_or_below", "on_time", "rated", "satisfied",
        "overdue")}


@pytest.fixture
def population(app, fake_clock):
    fake_clock.set(NOW)
    return build_population()


def test_dashboard_figures_are_exact(population):
    town = unit("QX-FQ")
    board = queries.dashboard(town, queries.default_period(NOW), NOW)
    assert (board.period.start, board.period.end) == PERIOD

    figures = as_dict(board.figures)
    assert figures == expected(population)
    # The headline numbers, by hand: 70 + 20 + 8 resolved, 2 litigated; 3 + 2 + 1 closed undecided.
    assert (figures["decided"], figures["resolved"], figures["litigated"], figures["closed"]) == (100, 98, 2, 106)
    assert figures["at_or_below"] == {"village": 70, "town": 90, "county": 98}
    assert (figures["on_time"], figures["rated"], figures["satisfied"], figures["overdue"]) == (95, 90, 80, 5)
    assert board.figures.rates() == {
        "resolved_at_or_below": {"village": 0.7, "town": 0.9, "county": 0.98},
        "litigation": 0.02,
        "mediation_success": 0.98,
        "on_time": round(95 / 106, 4),
        "satisfaction": round(80 / 90, 4),
    }
    assert board.figures.rates()["on_time"] == 0.8962 and board.figures.rates()["satisfaction"] == 0.8889

    # Breakdowns: every row counted the plain way, and the rows add up to the totals.
    in_scope = population
    for rows, key_of in ((board.by_category, lambda s: s["category"]), (board.by_channel, lambda s: s["channel"]),
                         (board.by_unit, lambda s: unit(village_of(s["unit_code"])).id)):
        keys = {key_of(s) for s in in_scope}
        got = {row.key: as_dict(row.figures) for row in rows}
        want = {key: expected([s for s in in_scope if key_of(s) == key]) for key in keys}
        want = {key: value for key, value in want.items() if value["opened"] or value["closed"] or value["overdue"]
                or rows is board.by_unit}
        assert got == want
    assert [row.name for row in board.by_unit] == ["东山村", "溪湖社区", "柳塘村"]
    assert sum(row.figures.opened for row in board.by_unit) == figures["opened"]

    # Trend: per local day; the edge case closed at 00:30 local on Oct 4 lands on Oct 4.
    assert len(board.trend) == 30 and board.trend[0].bucket == "2026-10-04" and board.trend[-1].bucket == "2026-11-02"
    closed_days = Counter(s["closed_at"].astimezone(SHANGHAI).date().isoformat() for s in population
                          if s["status"] == "closed" and in_period(s["closed_at"]))
    opened_days = Counter(s["opened_at"].astimezone(SHANGHAI).date().isoformat() for s in population
                          if in_period(s["opened_at"]))
    assert {p.bucket: p.closed for p in board.trend if p.closed} == dict(closed_days)
    assert {p.bucket: p.opened for p in board.trend if p.opened} == dict(opened_days)
    assert closed_days["2026-10-04"] == 1

    weekly = queries.trend(town, queries.Period(*PERIOD), "week")
    assert [p.bucket for p in weekly] == ["2026-W40", "2026-W41", "2026-W42", "2026-W43", "2026-W44", "2026-W45"]
    assert weekly[0].start == date(2026, 10, 4) and weekly[1].start == date(2026, 10, 5)
    assert sum(p.closed for p in weekly) == 106 and sum(p.opened for p in weekly) == figures["opened"]
    monthly = queries.trend(town, queries.Period(*PERIOD), "month")
    assert [(p.bucket, p.closed) for p in monthly] == [
        ("2026-10", 106 - closed_days["2026-11-01"] - closed_days["2026-11-02"]),
        ("2026-11", closed_days["2026-11-01"] + closed_days["2026-11-02"])]

    # Flagged open cases: 涉众 (≥ 10 people) and 涉稳 (high risk); closed ones never count.
    assert (board.flagged["total"], board.flagged["mass"], board.flagged["stability"]) == (3, 2, 2)

    # The county sees both towns.
    county = queries.dashboard(unit("QX"), queries.default_period(NOW), NOW)
    assert (county.figures.decided, county.figures.at_or_below["village"], county.figures.overdue) == (105, 75, 7)
    assert county.figures.rates()["resolved_at_or_below"]["village"] == round(75 / 105, 4)
    assert [row.name for row in county.by_unit] == ["枫桥镇", "南湖街道"]
    assert county.flagged["mass"] == 4


def test_dashboard_page_and_api_show_the_same_figures(population, web, as_user):
    page = web(TOWN_SUPERVISOR).get("/supervisor/dashboard")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    shown = dict(re.findall(r'data-figure="(\w+)">.*?class="sv-kpi-value">([^<]+)<', body))
    assert shown == {
        "opened": str(expected(population)["opened"]), "closed": "106",
        "resolved_at_or_below_village": "70.0%", "resolved_at_or_below_town": "90.0%",
        "resolved_at_or_below_county": "98.0%", "litigation": "2.0%", "mediation_success": "98.0%",
        "on_time": "89.6%", "overdue": "5", "satisfaction": "88.9%",
    }
    assert "南湖街道" not in body.split("</header>")[1]
    assert 'data-chart="trend"' in body and "vendor/echarts/echarts.min.js" in body

    api = as_user(TOWN_SUPERVISOR).get("/supervision/dashboard?from=2026-10-04&to=2026-11-02")
    assert api.status_code == 200
    data = api.get_json()
    assert data["unit"]["code"] == "QX-FQ" and data["period"] == {"start": "2026-10-04", "end": "2026-11-02"}
    assert {key: data["figures"][key] for key in ("closed", "decided", "resolved", "litigated", "on_time", "overdue")} \
        == {"closed": 106, "decided": 100, "resolved": 98, "litigated": 2, "on_time": 95, "overdue": 5}
    assert data["figures"]["at_or_below"] == {"village": 70, "town": 90, "county": 98}
    assert data["rates"] == {"resolved_at_or_below": {"village": 0.7, "town": 0.9, "county": 0.98},
                             "litigation": 0.02, "mediation_success": 0.98, "on_time": 0.8962, "satisfaction": 0.8889}
    assert {row["key"] for row in data["by_unit"]} == {unit(code).id for code in VILLAGES}
    assert sum(row["figures"]["closed"] for row in data["by_category"]) == 106
    assert len(data["trend"]) == 30 and data["flagged"]["total"] == 3

    # Defaults: the last 30 days up to today (Shanghai), the supervisor's own unit.
    assert as_user(TOWN_SUPERVISOR).get("/supervision/dashboard").get_json()["period"] == data["period"]
    # Another town's unit is outside the subtree; a mediator is not a supervisor.
    assert as_user(TOWN_SUPERVISOR).get(f"/supervision/dashboard?unit={unit('QX-NH').id}").status_code == 404
    assert as_user("qx_fq_ds_village_mediator").get("/supervision/dashboard").status_code == 403
    assert as_user(TOWN_SUPERVISOR).get("/supervision/dashboard?from=2026-11-02&to=2026-10-01").status_code == 422
    village = as_user(TOWN_SUPERVISOR).get(f"/supervision/dashboard?unit={unit('QX-FQ-XH').id}&from=2026-10-04&to=2026-11-02")
    assert village.get_json()["figures"]["closed"] == expected(
        [s for s in population if village_of(s["unit_code"]) == "QX-FQ-XH"])["closed"]


@pytest.mark.parametrize("kind, day, start, end", [
    ("daily", date(2026, 10, 20), date(2026, 10, 20), date(2026, 10, 20)),
    ("weekly", date(2026, 10, 28), date(2026, 10, 26), date(2026, 11, 1)),
    ("monthly", date(2026, 10, 15), date(2026, 10, 1), date(2026, 10, 31)),
])
def test_reports_give_every_figure_of_their_period(population, web, kind, day, start, end):
    town = unit("QX-FQ")
    report = reports.build_report(town, kind, day, NOW)
    assert (report.period.start, report.period.end) == (start, end)
    assert as_dict(report.dashboard.figures) == expected(population, start, end)
    previous = reports.previous_period(kind, report.period)
    assert previous.end == start - timedelta(days=1)
    assert as_dict(report.previous_figures) | {"overdue": 0} == expected(
        population, previous.start, previous.end) | {"overdue": 0}
    assert report.previous_figures.overdue == 5  # a snapshot: the same whatever the period

    session = web(TOWN_SUPERVISOR)
    page = session.get(f"/supervisor/reports?kind={kind}&date={day.isoformat()}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert f'data-report="{kind}"' in body and start.isoformat() in body and end.isoformat() in body
    shown = dict(re.findall(r'data-figure="(\w+)">.*?class="sv-kpi-value">([^<]+)<', body))
    want = expected(population, start, end)
    assert shown["closed"] == str(want["closed"]) and shown["opened"] == str(want["opened"])

    download = session.get(f"/supervisor/reports?kind={kind}&date={day.isoformat()}&format=csv")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    raw = download.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    table = {}
    for row in rows:  # the first occurrence: this period's figures (the previous period's follow)
        if len(row) >= 2:
            table.setdefault(row[0], row[1])
    assert table["受理"] == str(want["opened"]) and table["办结"] == str(want["closed"])
    decided = want["decided"]
    assert table["调解成功率"] == (f"{want['resolved'] / decided * 100:.1f}%" if decided else "—")
    assert table["当前超期"] == "5"


def test_monthly_report_matches_the_seed_example(population):
    """October as a whole: 枫桥镇 closed every decided case of the population that month."""
    report = reports.build_report(unit("QX-FQ"), "monthly", date(2026, 10, 1), NOW)
    october = expected(population, date(2026, 10, 1), date(2026, 10, 31))
    assert as_dict(report.dashboard.figures) == october
    assert report.dashboard.granularity == "week"
    assert sum(p.closed for p in report.dashboard.trend) == october["closed"]


@pytest.fixture
def clock_now(app, fake_clock):
    fake_clock.set(NOW)
    return NOW


def test_hot_spots_follow_the_documented_rule(clock_now):
    """Window: the 7 local days ending Nov 2 (Oct 27 .. Nov 2); baseline: the 28 days before
    (Sep 29 .. Oct 26). Hot: count ≥ 3 and count ≥ 2 × baseline / 4."""
    def opened(code, category, days_ago, n):
        for _ in range(n):
            insert_case(code, status="open", category=category, opened_at=local(2026, 11, 2, 8) - timedelta(days=days_ago),
                        due_at=NOW + timedelta(days=5))

    opened("QX-FQ-DS", "neighbour", 1, 3)        # 4 in the window (one from a grid) vs 4 before: 4 ≥ 2 → hot
    opened("QX-FQ-DS-G2", "neighbour", 6, 1)
    opened("QX-FQ-DS", "neighbour", 10, 4)
    opened("QX-FQ-XH", "contract", 2, 3)         # 3 vs 8 before: 3 < 4 → quiet
    opened("QX-FQ-XH", "contract", 20, 8)
    opened("QX-FQ-LT", "labour", 0, 3)           # new: 3 vs 0 → hot
    opened("QX-FQ-LT", "traffic", 3, 2)          # only 2 → quiet
    opened("QX-FQ-LT", "pollution", 7, 5)        # Oct 26 is outside the window → quiet
    opened("QX-FQ-XH", "medical", 1, 4)          # 4 vs 8 (avg 2): 4 ≥ 4 → hot, on the threshold
    opened("QX-FQ-XH", "medical", 27, 8)
    opened("QX-FQ-XH", "medical", 40, 20)        # before the baseline (Sep 23): ignored
    opened("QX-NH-QY", "neighbour", 1, 9)        # another town
    db.session.commit()

    spots = queries.hot_spots(unit("QX-FQ"), date(2026, 11, 2))
    got = [(s.unit_name, s.category, s.count, s.baseline, s.ratio) for s in spots]
    assert got == [
        ("东山村", "neighbour", 4, 4, 4.0),
        ("溪湖社区", "medical", 4, 8, 2.0),
        ("柳塘村", "labour", 3, 0, None),
    ]
    county = queries.hot_spots(unit("QX"), date(2026, 11, 2))
    assert ("青园社区", "neighbour", 9) in [(s.unit_name, s.category, s.count) for s in county]
    # Evaluated on an earlier day the window moves: on Oct 30 (Oct 24..30, baseline Sep 26..Oct 23)
    # 柳塘村's 5 pollution cases of Oct 26 are new, 东山村 has only the grid's one in the window.
    earlier = {(s.unit_name, s.category): s.count for s in queries.hot_spots(unit("QX-FQ"), date(2026, 10, 30))}
    assert earlier == {("柳塘村", "pollution"): 5}
