"""The mediator workspace: inbox, task pages, case pages, grid worker reports.

Views are thin: read the request, call one service, map domain errors to pages. Every POST
carries the CSRF token (CSRFProtect checks it before the view runs).
"""
from flask import Blueprint, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import RequestEntityTooLarge

from app.cases.workspace import ATTACHMENT_MAX_BYTES
from app.errors import DomainError, Forbidden, NotFound
from app.extensions import rest_api
from app.notifications import services as notifications
from app.org import services as org
from app.web.mediator import labels
from app.web.public.admin import may_print_codes

bp = Blueprint("mediator", __name__)


@bp.app_context_processor
def _template_helpers():
    return {
        "label": labels.label, "choices": labels.choices, "due_info": labels.due_info,
        "local_time": labels.local_time, "party_names": labels.party_names, "nav": _nav,
        "sees_case": _sees_case,
    }


def _sees_case(case) -> bool:
    """Whether the case page opens for this user (grid workers see tasks, not village cases)."""
    return current_user.is_authenticated and org.sees_path(current_user, case.org_path)


def _nav() -> dict:
    """Which workspace pages the logged-in user's roles open (for the top navigation)."""
    if not current_user.is_authenticated:
        return {}
    return {
        "grid_report": any(g.role == "grid_worker" for g in current_user.grants),
        "qr": may_print_codes(current_user),
        "unread": notifications.unread_count(current_user),
    }


@bp.errorhandler(NotFound)
def _not_found(exc):
    return render_template("errors/404.html"), 404


@bp.errorhandler(Forbidden)
def _forbidden(exc):
    return render_template("errors/403.html"), 403


@bp.errorhandler(DomainError)
def _domain_error(exc):
    """Anything else a service refused (e.g. diagram code failing on this case): nothing was saved."""
    return render_template("errors/domain.html", message=exc.message), exc.status


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc):
    """A body over MAX_CONTENT_LENGTH is refused before the view runs; say so on a page."""
    case_id = (request.view_args or {}).get("case_id")
    return render_template("errors/413.html", case_id=case_id, max_mb=ATTACHMENT_MAX_BYTES // (1024 * 1024)), 413


@bp.app_errorhandler(CSRFError)
def _csrf_failed(exc):
    """A page instead of JSON when a form's token is missing or stale (the API keeps its JSON)."""
    if request.path.startswith("/api/"):
        return rest_api.handle_http_exception(exc)
    return render_template("errors/csrf.html", reason=exc.description), 400


from app.web.mediator import routes  # noqa: E402,F401  (attach the views to bp)
