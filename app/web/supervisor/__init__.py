"""The supervisor console: instance list, instance page, dashboard, reports, heat map.

Only holders of the supervisor role get in (403 otherwise); each sees their units' subtrees.
Pages only read; the intervention forms on the instance page post to app.web.interventions.
"""
from flask import Blueprint, render_template
from flask_login import current_user

from app.errors import DomainError, Forbidden, NotFound
from app.extensions import login_manager
from app.supervision import queries
from app.web.supervisor import labels

bp = Blueprint("supervisor", __name__, url_prefix="/supervisor")


@bp.before_request
def _supervisors_only():
    """Anonymous visitors log in first; logged-in people without the role get 403."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    queries.require_supervisor(current_user)
    return None


@bp.app_context_processor
def _helpers():
    def is_supervisor() -> bool:
        return current_user.is_authenticated and bool(queries.supervisor_paths(current_user))

    return {"is_supervisor": is_supervisor, "sv_label": labels.label, "sv_choices": labels.choices,
            "pct": labels.pct, "span_text": labels.span_text}


@bp.errorhandler(NotFound)
def _not_found(exc):
    return render_template("errors/404.html"), 404


@bp.errorhandler(Forbidden)
def _forbidden(exc):
    return render_template("errors/403.html"), 403


@bp.errorhandler(DomainError)
def _domain_error(exc):
    return render_template("errors/domain.html", message=exc.message), exc.status


from app.web.supervisor import routes  # noqa: E402,F401  (attach the views to bp)
