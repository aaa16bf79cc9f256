"""Server-rendered pages, one blueprint per audience."""
from zoneinfo import ZoneInfo

from flask import g, redirect, request, url_for
from flask_babel import get_locale

from app import clock
from app.extensions import login_manager
from app.i18n import translate
from app.org import services as org
from app.org.models import User


def register_web(app):
    from app.web.auth.routes import bp as auth_bp
    from app.web.mediator import bp as mediator_bp
    from app.web.public import admin_bp as qr_admin_bp
    from app.web.public import bp as public_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(mediator_bp)
    app.register_blueprint(public_bp)
    app.register_blueprint(qr_admin_bp)

    from app.web.supervisor import bp as supervisor_bp

    app.register_blueprint(supervisor_bp)

    from app.web.interventions import bp as interventions_bp
    from app.web.interventions import intervention_options

    app.register_blueprint(interventions_bp)
    app.jinja_env.globals["intervention_options"] = intervention_options

    from app.web.modeler import bp as modeler_bp

    app.register_blueprint(modeler_bp)

    @login_manager.user_loader
    def _load_user(user_id):
        from app.extensions import db

        user = db.session.get(User, int(user_id))
        return user if user is not None and user.active else None

    @login_manager.request_loader
    def _load_user_from_bearer(req):
        header = req.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            user = org.user_for_token(header.removeprefix("Bearer ").strip())
            if user is not None:
                g.via_bearer = True
            return user
        return None

    @login_manager.unauthorized_handler
    def _unauthorized():
        if request.path.startswith("/api/"):
            from flask_smorest import abort

            abort(401, message="login required")
        return redirect(url_for("auth.login", next=request.full_path))

    zone = ZoneInfo(app.config["TIMEZONE"])
    app.jinja_env.globals["now_utc"] = clock.now
    app.jinja_env.globals["get_locale"] = get_locale
    # Task names and form labels come from diagrams and schemas: see app/i18n.py.
    app.jinja_env.filters["tr"] = translate
    app.jinja_env.filters["localtime"] = lambda value: value.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    @app.route("/")
    def index():
        return redirect(url_for("auth.home"))
