"""JSON API /api/v1 (flask-smorest): OpenAPI generated from the marshmallow schemas."""
from flask import g, jsonify, request
from flask_login import current_user

from app.api.errors import error_body
from app.errors import DomainError
from app.extensions import csrf


def register_api(app, api):
    from app.api import auth, disputes, interventions, notifications, processes, supervision, tasks

    modules = (auth, disputes, tasks, notifications, interventions, processes, supervision)
    for module in modules:
        # Bearer clients send no CSRF token; cookie sessions are checked in require_login.
        csrf.exempt(module.blp)
        api.register_blueprint(module.blp, url_prefix=f"/api/v1{module.PREFIX}")
    api_blueprints = {module.blp.name for module in modules}

    @app.before_request
    def _authenticate():
        """Authenticate before arguments are parsed: nobody learns anything unless logged in."""
        if (request.blueprint in api_blueprints and request.endpoint not in PUBLIC_ENDPOINTS
                and request.method != "OPTIONS"):
            require_login()

    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    api.spec.components.security_scheme("session", {"type": "apiKey", "in": "cookie", "name": "session"})

    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError):
        if not request.path.startswith("/api/"):
            raise exc
        body = error_body(exc)
        headers = {"Retry-After": str(exc.details["retry_after"])} if "retry_after" in exc.details else {}
        return jsonify(body), exc.status, headers


PUBLIC_ENDPOINTS = {"api_auth.Tokens"}


def require_login():
    """Answer 401 unless a session or bearer token identifies the caller; CSRF-check sessions."""
    from flask_smorest import abort

    if not current_user.is_authenticated:
        abort(401, message="login required: send 'Authorization: Bearer <token>' or log in")
    if not g.get("via_bearer") and request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()
    return current_user._get_current_object()
