"""Read-only supervision figures for integrators: the dashboard and the task heat map.

Only holders of the supervisor role may call these (403 otherwise); a unit outside their
subtrees answers 404. Figures are defined in app.supervision.queries.
"""
from datetime import timedelta

from flask.views import MethodView
from flask_smorest import Blueprint

from app import clock
from app.api import require_login
from app.errors import NotFound
from app.extensions import db
from app.processes.models import ProcessVersion
from app.supervision import queries
from app.supervision.schemas import (
    DashboardQuerySchema,
    DashboardSchema,
    HeatmapQuerySchema,
    TaskHeatSchema,
)

PREFIX = "/supervision"
blp = Blueprint("api_supervision", __name__, description="Supervision statistics (read-only)")


@blp.route("/dashboard")
class Dashboard(MethodView):
    @blp.arguments(DashboardQuerySchema, location="query")
    @blp.response(200, DashboardSchema)
    def get(self, args):
        """Dashboard figures for a unit and period: counts, shares, breakdowns, trend, warnings."""
        paths = queries.require_supervisor(require_login())
        unit = queries.resolve_unit(paths, args.get("unit"))
        now = clock.now()
        end = args.get("to") or queries.local_today(now)
        start = args.get("from_") or end - timedelta(days=29)
        if start > end:
            start = end
        return queries.dashboard(unit, queries.Period(start, end), now, args.get("granularity") or "day")


@blp.route("/heatmap")
class Heatmap(MethodView):
    @blp.arguments(HeatmapQuerySchema, location="query")
    @blp.response(200, TaskHeatSchema(many=True))
    def get(self, args):
        """Per user task of a process version: tasks completed in the period, their median time, waiting now."""
        paths = queries.require_supervisor(require_login())
        unit = queries.resolve_unit(paths, args.get("unit"))
        version = db.session.get(ProcessVersion, args["version"])
        if version is None:
            raise NotFound(f"process version {args['version']} not found")
        now = clock.now()
        end = args.get("to") or queries.local_today(now)
        start = min(args.get("from_") or end - timedelta(days=queries.HEATMAP_DAYS - 1), end)
        heat = queries.heatmap(unit, version, queries.Period(start, end))
        return sorted(heat.values(), key=lambda item: item.spec_name)
