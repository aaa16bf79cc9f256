"""Every route (web and API) × every demo user and an anonymous visitor, in scope and out of scope.

The expected answer comes from the rules below, written from the roles' meaning and independent
of the app's code:
- a case is visible to anyone holding any role at its unit or above (else 404);
- a task is visible to the holders of its lane's role at or below its unit and to supervisors
  above it (else 404); only the lane's role holders may work or claim it (others who see it: 403);
- interventions need the supervisor role above the case (visible without it: 403);
- the supervisor console needs the supervisor role (403), and shows a case only inside the
  supervisor's subtree (404);
- process authoring needs policy_editor or integrator; editing drafts needs policy_editor,
  deploying, migrating and mapping variants need integrator (403);
- QR sheets are for supervisors and county staff (403), for villages in their units (404);
- grid reports are for grid workers (403); a notification or saved filter is its owner's (404);
- anonymous visitors are sent to log in (web: a redirect to /login, API: 401), except on the
  public pages (QR-code report, lookup, login), which answer everyone alike.
An allowed request is one that got past authorization: any answer but the refusals (it may
still be refused on its merits; the requests are chosen so that almost none changes anything).
``test_the_matrix_covers_every_route`` keeps the table complete as routes are added.
The table is rendered into docs/authorization.md.
"""
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from sqlalchemy import select

from app.cases.models import CaseAttachment
from app.extensions import db
from app.notifications.models import Notification
from app.org.models import OrgUnit, User
from app.processes.models import ProcessVersion
from app.supervision.models import SavedFilter
from tests.integration.test_api_lifecycle import CLERK, MEDIATOR, complete, open_case, task_for

DOC = Path(__file__).resolve().parents[2] / "docs" / "authorization.md"
TOWN_SUPERVISOR = "qx_fq_supervisor"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PAST = "2020-01-01T08:00:00+08:00"
FUTURE = "2099-01-01T08:00:00+08:00"
REFUSALS = {"login", "403", "404"}


@dataclass(frozen=True)
class Route:
    method: str
    rule: str          # as in app.url_map
    path: str          # with {case}, {task}, ... filled from the fixture's records
    kind: str          # the rule that decides who gets past authorization (see expected())
    json: dict | None = None
    form: dict | None = None
    files: bool = False

    @property
    def api(self):
        return self.rule.startswith("/api/")

    @property
    def label(self):
        return f"{self.method} {self.path}"


R = Route
ROUTES = [
    # --- public and personal pages
    R("GET", "/", "/", "public"),
    R("GET", "/login", "/login", "public"),
    R("POST", "/login", "/login", "public", form={"username": "", "password": ""}),
    R("POST", "/language/<code>", "/language/zh_CN", "public", form={}),
    R("GET", "/report/<unit_code>", "/report/QX-FQ-DS", "public"),
    R("POST", "/report/<unit_code>", "/report/QX-FQ-DS", "public", form={"category": "", "description": ""}),
    R("GET", "/report/<unit_code>/thanks", "/report/QX-FQ-DS/thanks", "public"),
    R("GET", "/report/lookup", "/report/lookup", "public"),
    R("POST", "/report/lookup", "/report/lookup", "public", form={"number": "TJ-0", "phone": "0"}),
    R("GET", "/home", "/home", "login"),
    R("GET", "/inbox", "/inbox", "login"),
    R("GET", "/cases", "/cases", "login"),
    R("GET", "/notifications", "/notifications", "login"),
    R("POST", "/notifications/read", "/notifications/read", "login", form={}),
    R("POST", "/notifications/<int:notification_id>/read", "/notifications/{notification}/read", "own_notification",
      form={}),
    R("GET", "/grid/report", "/grid/report", "grid"),
    R("POST", "/grid/report", "/grid/report", "grid", form={"title": ""}),
    # --- a case and its task (web)
    R("GET", "/cases/<int:case_id>", "/cases/{case}", "case"),
    R("POST", "/cases/<int:case_id>/comments", "/cases/{case}/comments", "case", form={"body": "矩阵测试"}),
    R("POST", "/cases/<int:case_id>/attachments", "/cases/{case}/attachments", "case", form={}),
    R("GET", "/cases/<int:case_id>/attachments/<int:attachment_id>", "/cases/{case}/attachments/{attachment}",
      "case"),
    R("POST", "/cases/<int:case_id>/high-value/confirm", "/cases/{case}/high-value/confirm", "intervene", form={}),
    R("GET", "/tasks/<int:task_id>", "/tasks/{task}", "task"),
    R("POST", "/tasks/<int:task_id>", "/tasks/{task}", "work", form={"mediation_result": "maybe"}),
    R("POST", "/tasks/<int:task_id>/claim", "/tasks/{task}/claim", "work", form={}),
    R("POST", "/tasks/<int:task_id>/release", "/tasks/{task}/release", "release", form={}),
    # --- supervisor console (web)
    R("GET", "/supervisor/", "/supervisor/", "supervisor"),
    R("GET", "/supervisor/cases", "/supervisor/cases", "supervisor"),
    R("GET", "/supervisor/cases/<int:case_id>", "/supervisor/cases/{case}", "supervisor_case"),
    R("POST", "/supervisor/cases/<int:case_id>/interventions/<action>", "/supervisor/cases/{case}/interventions/resume",
      "intervene", form={"reason": "矩阵测试"}),
    R("GET", "/supervisor/cases/export.csv", "/supervisor/cases/export.csv", "supervisor"),
    R("GET", "/supervisor/cases/export.xlsx", "/supervisor/cases/export.xlsx", "supervisor"),
    R("GET", "/supervisor/dashboard", "/supervisor/dashboard", "supervisor"),
    R("GET", "/supervisor/heatmap", "/supervisor/heatmap", "supervisor"),
    R("GET", "/supervisor/reports", "/supervisor/reports", "supervisor"),
    R("POST", "/supervisor/filters", "/supervisor/filters", "supervisor", form={"name": ""}),
    R("POST", "/supervisor/filters/<int:filter_id>/delete", "/supervisor/filters/{filter}/delete", "own_filter",
      form={}),
    R("GET", "/admin/qr", "/admin/qr", "qr"),
    R("GET", "/admin/units/<code>/qr.png", "/admin/units/QX-FQ-DS/qr.png", "qr_unit"),
    R("GET", "/admin/units/<code>/qr.svg", "/admin/units/QX-FQ-DS/qr.svg", "qr_unit"),
    # --- process authoring (web)
    R("GET", "/modeler", "/modeler", "author"),
    R("GET", "/modeler/<key>", "/modeler/{key}", "author"),
    R("GET", "/modeler/<key>/diff", "/modeler/{key}/diff?from={version}&to={version}", "author"),
    R("GET", "/modeler/<key>/forms", "/modeler/{key}/forms", "author"),
    R("GET", "/modeler/<key>/forms/<name>", "/modeler/{key}/forms/intake_register.schema.json", "author"),
    R("POST", "/modeler/<key>/check", "/modeler/{key}/check", "author", json={}),
    R("POST", "/modeler/forms/preview/<name>", "/modeler/forms/preview/intake_register.schema.json", "author",
      json={}),
    R("GET", "/modeler/migrate", "/modeler/migrate", "author"),
    R("POST", "/modeler/<key>/files/<file_name>", "/modeler/{key}/files/dispute_lifecycle.bpmn", "edit", json={}),
    # the editor saves a draft and discards it again, so the integrator below finds none to deploy
    R("POST", "/modeler/<key>/forms/<name>", "/modeler/{key}/forms/intake_register.schema.json", "edit",
      form={"action": "save", "content": "{}"}),
    R("POST", "/modeler/<key>/discard", "/modeler/{key}/discard", "edit", form={}),
    R("POST", "/modeler/variants/new", "/modeler/variants/new", "edit", form={"version_id": "{version}", "key": "!"}),
    R("POST", "/modeler/<key>/deploy", "/modeler/{key}/deploy", "deploy", json={}),
    R("POST", "/modeler/migrate", "/modeler/migrate", "deploy", form={"from": "{version}", "to": "{version}"}),
    R("POST", "/modeler/variants/map", "/modeler/variants/map", "deploy", form={"unit_code": "", "key": ""}),
    R("POST", "/modeler/variants/<unit_code>/clear", "/modeler/variants/QX-NH-SX/clear", "deploy", form={}),
    # --- JSON API
    R("GET", "/api/v1/openapi.json", "/api/v1/openapi.json", "public"),
    R("POST", "/api/v1/tokens", "/api/v1/tokens", "public", json={}),
    R("GET", "/api/v1/me", "/api/v1/me", "login"),
    R("GET", "/api/v1/disputes", "/api/v1/disputes", "login"),
    R("POST", "/api/v1/disputes", "/api/v1/disputes", "town", json={
        "title": "矩阵测试", "category": "neighbour", "description": "x", "org_unit_id": "{town}",
        "channel": "walk_in", "parties": [{"name": "甲", "party_role": "applicant"}]}),
    R("GET", "/api/v1/disputes/<int:case_id>", "/api/v1/disputes/{case}", "case"),
    R("GET", "/api/v1/disputes/<int:case_id>/events.csv", "/api/v1/disputes/{case}/events.csv", "case"),
    R("GET", "/api/v1/tasks", "/api/v1/tasks", "login"),
    R("GET", "/api/v1/tasks/<int:task_id>", "/api/v1/tasks/{task}", "task"),
    R("GET", "/api/v1/tasks/<int:task_id>/form", "/api/v1/tasks/{task}/form", "task"),
    R("POST", "/api/v1/tasks/<int:task_id>/complete", "/api/v1/tasks/{task}/complete", "work",
      json={"data": {"mediation_result": "maybe"}}),
    R("POST", "/api/v1/tasks/<int:task_id>/claim", "/api/v1/tasks/{task}/claim", "work", json={}),
    R("POST", "/api/v1/tasks/<int:task_id>/release", "/api/v1/tasks/{task}/release", "release", json={}),
    R("GET", "/api/v1/notifications", "/api/v1/notifications", "login"),
    R("POST", "/api/v1/notifications/read", "/api/v1/notifications/read", "login", json={}),
    R("POST", "/api/v1/notifications/<int:notification_id>/read", "/api/v1/notifications/{notification}/read",
      "own_notification", json={}),
    R("POST", "/api/v1/tasks/<int:task_id>/reassign", "/api/v1/tasks/{task}/reassign", "intervene",
      json={"assignee_id": 0, "reason": "矩阵测试"}),
    R("POST", "/api/v1/disputes/<int:case_id>/extend", "/api/v1/disputes/{case}/extend", "intervene",
      json={"due_at": PAST, "reason": "矩阵测试"}),
    R("POST", "/api/v1/disputes/<int:case_id>/leader", "/api/v1/disputes/{case}/leader", "intervene",
      json={"leader_id": 0, "reason": "矩阵测试"}),
    R("POST", "/api/v1/disputes/<int:case_id>/suspend", "/api/v1/disputes/{suspended}/suspend", "intervene",
      json={"reason": "矩阵测试"}),
    R("POST", "/api/v1/disputes/<int:case_id>/resume", "/api/v1/disputes/{case}/resume", "intervene",
      json={"reason": "矩阵测试"}),
    R("POST", "/api/v1/disputes/<int:case_id>/withdraw", "/api/v1/disputes/{withdrawn}/withdraw", "intervene",
      json={"reason": "矩阵测试"}),
    R("POST", "/api/v1/disputes/<int:case_id>/supervision-orders", "/api/v1/disputes/{case}/supervision-orders",
      "intervene", json={"instruction": "矩阵测试", "due_at": PAST}),
    R("POST", "/api/v1/supervision-orders/<int:order_id>/answer", "/api/v1/supervision-orders/{order}/answer",
      "handler", json={"answer": "矩阵测试"}),
    R("GET", "/api/v1/process-versions", "/api/v1/process-versions", "login"),
    R("POST", "/api/v1/process-versions", "/api/v1/process-versions", "deploy", json={}),
    R("GET", "/api/v1/process-versions/<int:version_id>", "/api/v1/process-versions/{version}", "login"),
    R("GET", "/api/v1/process-versions/<int:version_id>/diff/<int:other_id>",
      "/api/v1/process-versions/{version}/diff/{version}", "login"),
    R("POST", "/api/v1/process-versions/<int:version_id>/migrate", "/api/v1/process-versions/{version}/migrate",
      "deploy", json={"dry_run": True}),
    R("GET", "/api/v1/process-versions/variants", "/api/v1/process-versions/variants", "login"),
    R("PUT", "/api/v1/process-versions/variants/<unit_code>", "/api/v1/process-versions/variants/QX-NH-SX",
      "deploy", json={"key": "{key}"}),
    R("DELETE", "/api/v1/process-versions/variants/<unit_code>", "/api/v1/process-versions/variants/QX-NH-SX",
      "deploy"),
    R("GET", "/api/v1/supervision/dashboard", "/api/v1/supervision/dashboard", "supervisor"),
    R("GET", "/api/v1/supervision/heatmap", "/api/v1/supervision/heatmap?version={version}", "supervisor"),
    # last: it ends the session
    R("POST", "/logout", "/logout", "logout", form={}),
]


def expected(kind, grants, places, owner):
    """The rule for one route kind: "ok" (got past authorization), "403", "404" or "login"."""
    if kind == "logout":
        return "login"  # everyone lands on the login page
    if grants is None:  # anonymous
        return "same" if kind == "public" else "login"
    case, town, village = places["case_path"], places["town_path"], places["case_path"]
    roles = {role for role, _ in grants}
    sees = any(case.startswith(path) for _, path in grants)
    candidate = any(role == "village_mediator" and path.startswith(village) for role, path in grants)
    supervises = any(role == "supervisor" and case.startswith(path) for role, path in grants)
    sees_task = candidate or supervises
    rules = {
        "public": lambda: "same",
        "login": lambda: "ok",
        "case": lambda: "ok" if sees else "404",
        "town": lambda: "ok" if any(town.startswith(path) for _, path in grants) else "404",
        "task": lambda: "ok" if sees_task else "404",
        "work": lambda: "ok" if candidate else "403" if sees_task else "404",
        "handler": lambda: "ok" if candidate else "403" if sees else "404",
        "release": lambda: "ok" if supervises else "403" if candidate else "404",
        "intervene": lambda: "ok" if supervises else "403" if sees else "404",
        "supervisor": lambda: "ok" if "supervisor" in roles else "403",
        "supervisor_case": lambda: "ok" if supervises else "404" if "supervisor" in roles else "403",
        "author": lambda: "ok" if roles & {"policy_editor", "integrator"} else "403",
        "edit": lambda: "ok" if "policy_editor" in roles else "403",
        "deploy": lambda: "ok" if "integrator" in roles else "403",
        "qr": lambda: "ok" if "supervisor" in roles or places["county_path"] in {p for _, p in grants} else "403",
        "qr_unit": lambda: ("404" if not sees else "ok") if (
            "supervisor" in roles or places["county_path"] in {p for _, p in grants}) else "403",
        "grid": lambda: "ok" if "grid_worker" in roles else "403",
        "own_notification": lambda: "ok" if owner == "notification" else "404",
        "own_filter": lambda: "ok" if owner == "filter" else "404" if "supervisor" in roles else "403",
    }
    return rules[kind]()


def outcome(response) -> str:
    if response.status_code == 401:
        return "login"
    if response.status_code in (302, 303) and urlparse(response.headers["Location"]).path == "/login":
        return "login"
    return str(response.status_code)


@pytest.fixture
def places(app, web, as_user):
    """One dispute waiting at 东山村's village mediation, with everything the routes point at."""
    case = open_case(as_user(CLERK))
    complete(as_user(CLERK), case["id"], "intake_register")
    task = task_for(as_user(MEDIATOR), case["id"], "village_mediate")
    supervisor = as_user(TOWN_SUPERVISOR)
    suspended = open_case(as_user(CLERK))
    assert supervisor.post(f"/disputes/{suspended['id']}/suspend", json={"reason": "矩阵"}).status_code == 200
    withdrawn = open_case(as_user(CLERK))
    assert supervisor.post(f"/disputes/{withdrawn['id']}/withdraw", json={"reason": "矩阵"}).status_code == 200
    order = supervisor.post(f"/disputes/{case['id']}/supervision-orders",
                            json={"instruction": "请尽快调解", "due_at": FUTURE})
    assert order.status_code == 201, order.json
    order_id = order.json["id"]
    mediator_page = web(MEDIATOR)
    uploaded = mediator_page.post(f"/cases/{case['id']}/attachments",
                                  data={"file": (io.BytesIO(PNG), "现场.png")}, content_type="multipart/form-data")
    assert uploaded.status_code == 302
    saved = web(TOWN_SUPERVISOR).post("/supervisor/filters", data={"name": "矩阵", "status": "open"})
    assert saved.status_code == 302
    mediator = db.session.scalar(select(User).where(User.username == MEDIATOR))
    version = db.session.scalar(select(ProcessVersion).where(ProcessVersion.key == "dispute_lifecycle")
                                .order_by(ProcessVersion.version.desc()))
    units = {u.code: u for u in db.session.scalars(select(OrgUnit))}
    return {
        "case": case["id"], "task": task["id"], "suspended": suspended["id"], "withdrawn": withdrawn["id"],
        "order": order_id,
        "attachment": db.session.scalar(select(CaseAttachment.id).where(CaseAttachment.case_id == case["id"])),
        "notification": db.session.scalar(select(Notification.id).where(Notification.user_id == mediator.id)),
        "notification_owner": MEDIATOR,
        "filter": db.session.scalar(select(SavedFilter.id)),
        "filter_owner": TOWN_SUPERVISOR,
        "version": version.id, "key": version.key, "town": units["QX-FQ"].id,
        "case_path": units["QX-FQ-DS"].path, "town_path": units["QX-FQ"].path, "county_path": units["QX"].path,
    }


def _fill(value, places):
    if isinstance(value, str):
        filled = re.sub(r"\{(\w+)\}", lambda m: str(places[m.group(1)]), value)
        return int(filled) if value == "{town}" else filled
    if isinstance(value, dict):
        return {k: _fill(v, places) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, places) for v in value]
    return value


def call(route, places, page, api, bearer):
    """Send the route's request as one principal: the web page session, or the API bearer from a
    client without cookies (a logged-in session would make the API ask for a CSRF token)."""
    path = _fill(route.path, places)
    if route.api:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return api.open(path, method=route.method, headers=headers, json=_fill(route.json, places))
    if route.method == "GET":
        return page.get(path)
    if route.json is not None:
        return page.client.post(path, json=_fill(route.json, places), headers={"X-CSRFToken": page.token()})
    return page.post(path, data=_fill(route.form, places))


def undo(route, places, page, api, bearer):
    """Put back what an allowed request changed that later rows depend on."""
    if route.rule.endswith("/claim"):
        release = "/api/v1/tasks/{task}/release" if route.api else "/tasks/{task}/release"
        call(Route("POST", route.rule, release, "work", json={} if route.api else None, form=None if route.api
                   else {}), places, page, api, bearer)


def test_the_matrix_covers_every_route(app):
    served = {(method, rule.rule) for rule in app.url_map.iter_rules() if rule.endpoint != "static"
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    listed = {(route.method, route.rule) for route in ROUTES}
    assert served - listed == set(), "routes missing from the authorization matrix"
    assert listed - served == set(), "the matrix lists routes the app no longer serves"


def test_authorization_matrix(app, web, places, request):
    from app.org.services import create_api_token

    users = db.session.scalars(select(User).order_by(User.id)).all()
    principals = [(None, None, None)] + [(u.username, [(g.role, g.org_path) for g in u.grants],
                                          create_api_token(u, "matrix")) for u in users]
    db.session.commit()

    table, mismatches, public = [], [], {}
    for username, grants, bearer in principals:
        page, api = web(username) if username else web(), app.test_client()
        owner = ("notification" if username == places["notification_owner"] else
                 "filter" if username == places["filter_owner"] else None)
        row = []
        for route in ROUTES:
            want = expected(route.kind, grants, places, owner)
            response = call(route, places, page, api, bearer)
            got = outcome(response)
            response.close()  # a download holds its file open until then
            row.append(got)
            if got.startswith("5"):
                mismatches.append(f"{username or 'anonymous'} {route.label}: server error {got}")
            elif want == "same":
                public.setdefault(route.label, set()).add(got)
            elif want == "ok":
                if got in REFUSALS:
                    mismatches.append(f"{username} {route.label}: expected to get through, got {got}")
                undo(route, places, page, api, bearer)
            elif got != want:
                mismatches.append(f"{username or 'anonymous'} {route.label}: expected {want}, got {got}")
        roles = ", ".join(sorted({role for role, _ in grants})) if grants else "—"
        table.append((username or "(anonymous)", roles, row))

    mismatches += [f"{label}: a public route answered differently by caller: {sorted(codes)}"
                   for label, codes in public.items() if len(codes) > 1 or "403" in codes]
    assert mismatches == []
    kinds_seen = {code for _, _, row in table for code in row}
    assert {"login", "403", "404", "200"} <= kinds_seen

    if "sqlite" in request.node.callspec.id:
        rendered = _render(table)
        if os.environ.get("UPDATE_DOCS"):
            DOC.parent.mkdir(exist_ok=True)
            DOC.write_text(rendered, encoding="utf-8")
        assert DOC.read_text(encoding="utf-8") == rendered, "docs/authorization.md is stale: UPDATE_DOCS=1 pytest -k matrix"


def _render(table):
    lines = [
        "# Authorization matrix",
        "",
        "Generated by `tests/integration/test_authorization_matrix.py` (regenerate with",
        "`UPDATE_DOCS=1 .venv/bin/pytest -k authorization_matrix`). One dispute waits at 东山村 (village",
        "QX-FQ-DS, task 村(社)调解 in lane `village_mediator`); every demo user and an anonymous visitor",
        "call every route. `login`: sent to log in (web: redirect to /login; API: 401); 403: visible",
        "but not allowed; 404: outside the caller's units (or not theirs), so its existence is not",
        "revealed. Any other answer got past authorization: 200/201/204/302 did it, 400/409/422 refused",
        "the deliberately harmless request on its merits. The kind names the rule (see the test's",
        "docstring); the callers' roles are listed after the table.",
        "",
    ]
    header = "| route | kind | " + " | ".join(username for username, _, _ in table) + " |"
    lines += ["## Routes × callers", "", header, "|" + " --- |" * (len(table) + 2)]
    for index, route in enumerate(ROUTES):
        lines.append(f"| `{route.label}` | {route.kind} | " + " | ".join(row[index] for _, _, row in table) + " |")
    lines += ["", "## Callers", "", "| caller | roles |", "| --- | --- |"]
    lines += [f"| {username} | {roles} |" for username, roles, _ in table]
    return "\n".join(lines) + "\n"
