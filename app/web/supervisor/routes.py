"""Console pages. Views read the request, call one query and render; exports stream."""
from __future__ import annotations

from datetime import date, timedelta

from flask import (
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from app import clock
from app.cases import queries as case_queries
from app.errors import InvalidInput, NotFound
from app.extensions import db
from app.processes.models import ProcessVersion
from app.supervision import queries, reports, saved_filters
from app.supervision.queries import CaseFilters, Period
from app.web.mediator.labels import english, local_time
from app.web.supervisor import bp, labels

PER_PAGE = 20


def _user():
    return current_user._get_current_object()


def _int_arg(name: str, default: int | None = None) -> int | None:
    try:
        return int(request.args.get(name) or "")
    except ValueError:
        return default


def _date_arg(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name) or "")
    except ValueError:
        return None


def _period(now) -> Period:
    """The from/to dates of the request (default: the last 30 local days)."""
    default = queries.default_period(now)
    start, end = _date_arg("from") or default.start, _date_arg("to") or default.end
    if start > end:
        start, end = end, start
    if (end - start).days >= queries.MAX_PERIOD_DAYS:
        start = end - timedelta(days=queries.MAX_PERIOD_DAYS - 1)
    return Period(start, end)


@bp.get("/")
def index():
    return redirect(url_for("supervisor.dashboard"))


# ---------------------------------------------------------------------------------------------
# Instance list, saved filters, exports

@bp.get("/cases")
def cases():
    user, now = _user(), clock.now()
    paths = queries.require_supervisor(user)
    filters = CaseFilters.parse(request.args)
    page_number = max(_int_arg("page", 1) or 1, 1)
    page = queries.list_cases(paths, filters, now, page=page_number, per_page=PER_PAGE)
    return render_template(
        "supervisor/cases.html", page=page, filters=filters, args=filters.as_args(),
        units=queries.units_in_scope(paths, with_grids=False), handlers=queries.handlers_in_scope(paths),
        saved=saved_filters.saved_filters(user), now=now,
    )


def _export_table(filters: CaseFilters):
    user, now = _user(), clock.now()
    paths = queries.require_supervisor(user)
    if filters.unit is not None:
        queries.resolve_unit(paths, filters.unit)  # 404 before the response starts streaming
    header = [_("案件编号"), _("纠纷概要"), _("纠纷类别"), _("来源渠道"), _("所属单位"), _("状态"), _("当前层级"),
              _("办结结果"), _("化解层级"), _("满意度"), _("风险等级"), _("涉及人数"), _("登记时间"), _("结案时间"),
              _("办理期限"), _("是否超期")]
    yes, no = _("是"), _("否")

    def rows():
        for row in queries.export_rows(paths, filters, now):
            yield [
                row["number"], row["title"], labels.label("category", row["category"]),
                labels.label("channel", row["channel"]), row["unit"], labels.label("status", row["status"]),
                labels.label("tier", row["current_tier"]), labels.label("outcome", row["outcome"]),
                labels.label("tier", row["resolved_tier"]), labels.label("satisfaction", row["satisfaction"]),
                labels.label("risk", row["risk_level"]), row["people_involved"], local_time(row["opened_at"]),
                local_time(row["closed_at"]) if row["closed_at"] else "",
                local_time(row["due_at"]) if row["due_at"] else "", yes if row["overdue"] else no,
            ]

    return header, rows()


def _download(body, mimetype: str, filename: str) -> Response:
    response = Response(stream_with_context(body), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/cases/export.csv")
def export_csv():
    header, rows = _export_table(CaseFilters.parse(request.args))
    stamp = clock.now().astimezone(queries.zone()).strftime("%Y%m%d-%H%M")
    return _download(reports.csv_stream(header, rows), "text/csv; charset=utf-8", f"cases-{stamp}.csv")


@bp.get("/cases/export.xlsx")
def export_xlsx():
    header, rows = _export_table(CaseFilters.parse(request.args))
    stamp = clock.now().astimezone(queries.zone()).strftime("%Y%m%d-%H%M")
    return _download(reports.xlsx_stream(header, rows, sheet_name=_("案件")),
                     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", f"cases-{stamp}.xlsx")


@bp.post("/filters")
def save_filter():
    args = {key: value for key, value in request.form.items() if key in CaseFilters.NAMES}
    try:
        saved = saved_filters.save_filter(_user(), request.form.get("name", ""), args)
    except InvalidInput as exc:
        flash(_("筛选条件未保存：%(reason)s", reason=_("请填写名称") if "required" in exc.errors.get("name", [])
                else exc.message), "error")
        return redirect(url_for("supervisor.cases", **CaseFilters.parse(args).as_args()))
    flash(_("已保存筛选条件「%(name)s」", name=saved.name), "success")
    return redirect(url_for("supervisor.cases", **saved.query))


@bp.post("/filters/<int:filter_id>/delete")
def delete_filter(filter_id):
    saved_filters.delete_filter(_user(), filter_id)
    flash(_("已删除筛选条件"), "success")
    return redirect(url_for("supervisor.cases"))


# ---------------------------------------------------------------------------------------------
# Instance page

def _diagram_payload(diagrams, markers=None, overlays=None, heat=None) -> dict:
    return {
        "diagrams": [{"file": d.file, "title": d.title, "xml": d.xml} for d in diagrams],
        "markers": markers or {},
        "overlays": overlays or {},
        "heat": heat or {},
    }


@bp.get("/cases/<int:case_id>")
def case(case_id):
    user, now = _user(), clock.now()
    case = queries.supervised_case(user, case_id)
    diagrams = queries.version_diagrams(case.process_version)
    markers = queries.instance_markers(case, diagrams, now)
    tasks = queries.case_tasks(case)
    return render_template(
        "supervisor/case.html", case=case, tasks=tasks, open_tasks=[t for t in tasks if t.status == "ready"],
        events=case_queries.case_events(case), diagram=_diagram_payload(diagrams, markers), now=now,
    )


# ---------------------------------------------------------------------------------------------
# Dashboard and reports

def _chart_data(board) -> dict:
    """What supervisor.js draws, already in the reader's language."""
    return {
        "locale": "EN" if english() else "ZH",
        "texts": {"opened": _("受理"), "closed": _("办结"), "overdue": _("超期"), "rate": _("化解率"),
                  "litigation": _("诉讼")},
        "trend": {"labels": [p.bucket for p in board.trend], "opened": [p.opened for p in board.trend],
                  "closed": [p.closed for p in board.trend]},
        "tiers": {"labels": [labels.label("tier", t) for t in queries.RATE_TIERS],
                  "values": [None if v is None else round(v * 100, 1)
                             for v in board.figures.rates()["resolved_at_or_below"].values()]},
        "category": [{"name": labels.label("category", row.key), "opened": row.figures.opened,
                      "closed": row.figures.closed} for row in board.by_category],
        "unit": [{"name": row.name or str(row.key), "opened": row.figures.opened, "closed": row.figures.closed,
                  "overdue": row.figures.overdue} for row in board.by_unit],
        "channel": [{"name": labels.label("channel", row.key), "value": row.figures.opened}
                    for row in board.by_channel if row.figures.opened],
    }


@bp.get("/dashboard")
def dashboard():
    user, now = _user(), clock.now()
    paths = queries.require_supervisor(user)
    unit = queries.resolve_unit(paths, _int_arg("unit"))
    granularity = request.args.get("granularity")
    period = _period(now)
    if granularity not in queries.GRANULARITIES:
        granularity = "day" if period.days <= 62 else "week" if period.days <= 366 else "month"
    board = queries.dashboard(unit, period, now, granularity)
    return render_template("supervisor/dashboard.html", board=board, rates=board.figures.rates(),
                           units=queries.units_in_scope(paths, with_grids=False), charts=_chart_data(board))


@bp.get("/reports")
def report():
    user, now = _user(), clock.now()
    paths = queries.require_supervisor(user)
    unit = queries.resolve_unit(paths, _int_arg("unit"))
    kind = request.args.get("kind") if request.args.get("kind") in reports.KINDS else "daily"
    day = _date_arg("date") or queries.local_today(now)
    result = reports.build_report(unit, kind, day, now)
    if request.args.get("format") == "csv":
        filename = f"report-{kind}-{result.period.start:%Y%m%d}.csv"
        return _download(reports.csv_stream([_("项目"), _("数值")], _report_rows(result)),
                         "text/csv; charset=utf-8", filename)
    return render_template("supervisor/report.html", report=result, board=result.dashboard,
                           rates=result.dashboard.figures.rates(), previous_rates=result.previous_figures.rates(),
                           units=queries.units_in_scope(paths, with_grids=False), kind=kind, day=day)


def _figure_rows(figures, rates) -> list[list]:
    rows = [[_("受理"), figures.opened], [_("办结"), figures.closed], [_("调解成功"), figures.resolved],
            [_("诉讼结案"), figures.litigated]]
    for tier in queries.RATE_TIERS:
        rows.append([_("%(tier)s及以下化解率", tier=labels.label("tier", tier)),
                     labels.pct(rates["resolved_at_or_below"][tier])])
    rows += [[_("诉讼占比"), labels.pct(rates["litigation"])], [_("调解成功率"), labels.pct(rates["mediation_success"])],
             [_("按时办结率"), labels.pct(rates["on_time"])], [_("当前超期"), figures.overdue],
             [_("满意率"), labels.pct(rates["satisfaction"])]]
    return rows


def _report_rows(result):
    board = result.dashboard
    yield [_("报告"), labels.label("report", result.kind)]
    yield [_("单位"), board.unit.name]
    yield [_("期间"), f"{result.period.start.isoformat()} — {result.period.end.isoformat()}"]
    yield []
    yield from _figure_rows(board.figures, board.figures.rates())
    yield []
    yield [_("上期"), f"{result.previous.start.isoformat()} — {result.previous.end.isoformat()}"]
    yield from _figure_rows(result.previous_figures, result.previous_figures.rates())
    for title, rows, table in ((_("按类别"), board.by_category, "category"), (_("按单位"), board.by_unit, None),
                               (_("按渠道"), board.by_channel, "channel")):
        yield []
        yield [title, _("受理"), _("办结"), _("调解成功"), _("诉讼结案"), _("当前超期")]
        for row in rows:
            name = labels.label(table, row.key) if table else (row.name or row.key)
            f = row.figures
            yield [name, f.opened, f.closed, f.resolved, f.litigated, f.overdue]
    yield []
    yield [_("热点预警"), _("近7日"), _("前4周周均"), _("倍数")]
    for spot in board.hot_spots:
        yield [f"{spot.unit_name} · {labels.label('category', spot.category)}", spot.count,
               f"{spot.weekly_average:g}", "—" if spot.ratio is None else f"{spot.ratio:g}"]
    yield []
    yield [_("涉众/涉稳在办案件"), board.flagged["total"], _("涉众"), board.flagged["mass"], _("涉稳"),
           board.flagged["stability"]]
    for item in board.flagged["items"]:
        yield [item.number, item.title, item.people_involved, labels.label("risk", item.risk_level)]


# ---------------------------------------------------------------------------------------------
# Heat map

@bp.get("/heatmap")
def heatmap():
    user, now = _user(), clock.now()
    paths = queries.require_supervisor(user)
    unit = queries.resolve_unit(paths, _int_arg("unit"))
    versions = queries.process_versions()
    version_id = _int_arg("version")
    if version_id is not None:
        version = db.session.get(ProcessVersion, version_id)
        if version is None:
            raise NotFound(f"process version {version_id} not found")
    else:
        key = current_app.config["DEFAULT_PROCESS_KEY"]
        version = next((v for v in versions if v.key == key), versions[0] if versions else None)
        if version is None:
            raise NotFound("no process version is deployed")
    default = queries.default_period(now, queries.HEATMAP_DAYS)
    period = Period(_date_arg("from") or default.start, _date_arg("to") or default.end)
    if period.start > period.end:
        period = Period(period.end, period.start)
    heat = queries.heatmap(unit, version, period)
    diagrams = queries.version_diagrams(version)
    longest = max((h.median_seconds or 0 for h in heat.values()), default=0)
    overlays, levels = {}, {}
    for diagram in diagrams:
        overlays[diagram.file], levels[diagram.file] = {}, {}
        for spec, item in heat.items():
            if diagram.elements.get(spec) is None:
                continue
            text = _("%(n)s件", n=item.passed)
            if item.median_seconds is not None:
                text += " · " + _("中位 %(t)s", t=labels.span_text(item.median_seconds))
            if item.waiting:
                text += " · " + _("在办 %(n)s", n=item.waiting)
            overlays[diagram.file][spec] = text
            level = 0 if not longest or item.median_seconds is None else max(
                1, min(5, -(-5 * item.median_seconds // longest)))
            levels[diagram.file][spec] = [f"sv-heat-{int(level)}"]
    rows = sorted(heat.values(), key=lambda h: (-(h.median_seconds or 0), h.spec_name))
    return render_template("supervisor/heatmap.html", version=version, versions=versions, unit=unit,
                           units=queries.units_in_scope(paths, with_grids=False), rows=rows, period=period,
                           diagram=_diagram_payload(diagrams, levels, overlays), now=now)
