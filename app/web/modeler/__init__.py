"""Process authoring pages for policy staff and integrators: the BPMN modeler, the form editor,
versions, diffs and drafts.

Who: policy editors open, edit and save drafts; integrators also deploy. Everyone else gets 403.
The modeler's save/check/deploy calls are JSON (CSRF token in the X-CSRFToken header); errors come
back as JSON with every validation problem, which the page draws on the diagram.
"""
from flask import Blueprint, jsonify, render_template, request
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import DomainError, Forbidden, NotFound
from app.processes import services

bp = Blueprint("modeler", __name__, url_prefix="/modeler")

AUTHORING_ROLES = (services.POLICY_EDITOR, services.INTEGRATOR)


def may_author(user) -> bool:
    return user.is_authenticated and any(services.has_role(user, role) for role in AUTHORING_ROLES)


@bp.app_context_processor
def _nav_helpers():
    return {"modeler_nav": lambda: may_author(current_user)}


def wants_json() -> bool:
    return request.is_json or request.accept_mimetypes.best == "application/json"


def _json_error(exc: DomainError):
    body = {"message": exc.message, "code": exc.status}
    if hasattr(exc, "errors"):
        body["errors"] = exc.errors
    body.update({key: value for key, value in exc.details.items() if value is not None})
    return jsonify(body), exc.status


@bp.errorhandler(DomainError)
def _domain_error(exc: DomainError):
    if wants_json():
        return _json_error(exc)
    if isinstance(exc, NotFound):
        return render_template("errors/404.html"), 404
    if isinstance(exc, Forbidden):
        return render_template("errors/403.html"), 403
    return render_template("errors/domain.html", message=exc.message), exc.status


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc):
    return jsonify({"message": "the diagram is too large", "code": 413}), 413


from app.web.modeler import routes  # noqa: E402,F401  (attach the views to bp)
