"""Grassroots dispute resolution on SpiffWorkflow: the application factory."""
from pathlib import Path

from flask import Flask, session

from app.config import Config
from app.extensions import babel, csrf, db, login_manager, migrate, rest_api


def _select_locale():
    """Chinese first, whatever the browser says; English only when the user switches."""
    return session.get("locale") or "zh_CN"


def create_app(config: type | None = None, **overrides) -> Flask:
    """Build the app: configuration, extensions, blueprints, CLI; nothing else.

    ``config`` is a settings class (default: Config, read from the environment); keyword
    ``overrides`` replace single settings, e.g. ``SQLALCHEMY_DATABASE_URI``.
    """
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(config or Config)
    app.config.update(overrides)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"),
        render_as_batch=True, compare_type=True,
    )
    login_manager.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=_select_locale)
    from app import models  # noqa: F401  (register every table with the metadata)
    from app.api import register_api
    from app.api.errors import ApiErrorSchema

    rest_api.ERROR_SCHEMA = ApiErrorSchema  # documents what domain errors add to the body
    rest_api.init_app(app)
    from app.web import register_web

    register_api(app, rest_api)
    register_web(app)

    from app.cli import register_cli

    register_cli(app)
    return app
