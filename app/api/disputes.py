"""Disputes: open one, list those in my units, read one with its tasks and history."""
import csv
import io
import json
from zoneinfo import ZoneInfo

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api import require_login
from app.cases import queries, services
from app.cases.schemas import CaseDetailSchema, CasePageSchema, CaseQuerySchema, NewCaseSchema
from app.exports import spreadsheet_safe

PREFIX = "/disputes"
blp = Blueprint("api_disputes", __name__, description="Dispute cases")


def _detail(case):
    case.open_tasks = queries.open_tasks(case)
    case.events = queries.case_events(case)
    return case


@blp.route("")
class Disputes(MethodView):
    @blp.arguments(CaseQuerySchema, location="query")
    @blp.response(200, CasePageSchema)
    def get(self, args):
        """Disputes in the caller's units, newest first."""
        return queries.list_cases(require_login(), **args)

    @blp.arguments(NewCaseSchema)
    @blp.response(201, CaseDetailSchema)
    def post(self, payload):
        """Report a dispute; it starts its workflow and waits for the intake clerk."""
        actor = require_login()
        case = services.start_case(actor, services.NewCase(**payload))
        return _detail(case)


@blp.route("/<int:case_id>")
class Dispute(MethodView):
    @blp.response(200, CaseDetailSchema)
    def get(self, case_id):
        """One dispute: fields, open tasks and the full event history."""
        return _detail(queries.get_case(require_login(), case_id))


@blp.route("/<int:case_id>/events.csv")
class EventExport(MethodView):
    @blp.doc(responses={"200": {"description": "the case's full event log", "content": {"text/csv": {}}}})
    def get(self, case_id):
        """Export the case's event log (who, when, what) as CSV for the file or an audit."""
        case = queries.get_case(require_login(), case_id)
        rows = queries.case_events(case)
        zone = ZoneInfo(current_app.config["TIMEZONE"])

        # One case's log is small: write it whole while the session is open (a generator would
        # run after the request's session is gone and could not load the actors).
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["case_number", "event_id", "time_utc", "time_local", "actor", "kind", "message", "data"])
        for event in rows:
            writer.writerow([spreadsheet_safe(cell) for cell in (
                case.number, event.id, event.at.isoformat(), event.at.astimezone(zone).isoformat(),
                event.actor.username if event.actor else "system", event.kind, event.message,
                json.dumps(event.data, ensure_ascii=False) if event.data else "")])
        # BOM: spreadsheet programs then read the Chinese right
        return Response("\ufeff" + out.getvalue(), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{case.number}-events.csv"'})
