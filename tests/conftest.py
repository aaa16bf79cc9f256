"""Shared fixtures: a controllable clock, apps on SQLite and on the local PostgreSQL.

Databases are built by the Alembic migrations (so the migrations are tested too), deployed with
the shipped workflows and seeded with the demo county once per session; each test then gets a
fresh copy (SQLite) or truncated case tables (PostgreSQL).
"""
import os
import re
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from flask import g
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import select, text

from app import clock, create_app
from app.config import TestConfig
from app.extensions import db

START = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
CASE_TABLES = ["login_failure", "notification", "case_event", "human_task", "timer", "workflow_state", "dispute_case", "api_token",
               "scheduler_lease", "case_day_rollup", "case_day_scope_rollup", "case_month_scope_rollup", "org_path_scope",
               "task_day_rollup", "rollup_state"]


class FakeClock:
    def __init__(self, start=START):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)
        return self.now

    def set(self, when):
        self.now = when


@pytest.fixture
def fake_clock():
    fake = FakeClock()
    clock.set_clock(fake)
    yield fake
    clock.set_clock(None)


def _build(url: str):
    return create_app(TestConfig, SQLALCHEMY_DATABASE_URI=url)


def _prepare(app):
    from app.cli import deploy_default_workflows
    from app.org.demo import seed_demo
    from app.scheduling.services import import_shipped_calendars

    with app.app_context():
        upgrade()
        deploy_default_workflows()
        import_shipped_calendars()
        seed_demo()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    _prepare(_build(f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def pg_database():
    name = f"tiaojie_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    try:
        _prepare(_build(url))
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _sqlite_app(template, tmp_path):
    path = tmp_path / "test.sqlite3"
    shutil.copy(template, path)
    return _build(f"sqlite:///{path}")


@pytest.fixture
def sqlite_app(sqlite_template, tmp_path, fake_clock):
    app = _sqlite_app(sqlite_template, tmp_path)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app(request, tmp_path, fake_clock):
    """The app on each backend; API scenario tests run once per backend."""
    if request.param == "sqlite":
        app = _sqlite_app(request.getfixturevalue("sqlite_template"), tmp_path)
    else:
        app = _build(request.getfixturevalue("pg_database"))
    with app.app_context():
        yield app
        db.session.remove()
        if request.param == "postgres":
            db.session.execute(text(f"TRUNCATE {', '.join(CASE_TABLES)} RESTART IDENTITY CASCADE"))
            db.session.commit()
        db.engine.dispose()


class FreshUserClient(FlaskClient):
    """A test client whose requests each identify their user anew.

    Tests hold one app context open (to query the database directly); Flask reuses it for the
    requests, so Flask-Login's per-context user cache would leak from one request to the next.
    Production pushes a fresh context per request; this gives tests the same.
    """

    def open(self, *args, **kwargs):
        g.pop("_login_user", None)
        g.pop("via_bearer", None)
        return super().open(*args, **kwargs)


@pytest.fixture
def pg_app(pg_database, fake_clock):
    """The app on PostgreSQL only, for what SQLite cannot show (row locks, many processes)."""
    app = _build(pg_database)
    with app.app_context():
        yield app
        db.session.remove()
        db.session.execute(text(f"TRUNCATE {', '.join(CASE_TABLES)} RESTART IDENTITY CASCADE"))
        db.session.commit()
        db.engine.dispose()


@pytest.fixture
def client(app):
    # Keep a more specific client class (the web fixture's) whatever order fixtures ran in.
    if not (app.test_client_class and issubclass(app.test_client_class, FreshUserClient)):
        app.test_client_class = FreshUserClient
    return app.test_client()


def user(username):
    from app.org.models import User

    return db.session.scalar(select(User).where(User.username == username))


class ApiClient:
    """Calls the JSON API as one demo user with a bearer token."""

    def __init__(self, client, username):
        from app.org.services import create_api_token

        self.client = client
        self.username = username
        self.headers = {"Authorization": f"Bearer {create_api_token(user(username), 'test')}"}

    def get(self, path, **kwargs):
        return self.client.get(f"/api/v1{path}", headers=self.headers, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.client.post(f"/api/v1{path}", headers=self.headers, json=json if json is not None else {}, **kwargs)


@pytest.fixture
def as_user(client):
    cache = {}

    def make(username):
        if username not in cache:
            cache[username] = ApiClient(client, username)
        return cache[username]

    return make


# ---------------------------------------------------------------------------------------------
# Web pages (mediator workspace, public intake): logged-in browsers-without-a-browser

class FreshPageClient(FreshUserClient):
    """Also forget what the previous request of the shared context cached in ``g``: Flask-Babel's
    language and Flask-WTF's CSRF token (which belongs to another cookie jar)."""

    def open(self, *args, **kwargs):
        g.pop("_flask_babel", None)
        g.pop("csrf_token", None)
        return super().open(*args, **kwargs)


class WebSession:
    """One person's cookie jar on the web pages; posts carry the session's CSRF token."""

    TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')

    def __init__(self, client, username=None):
        self.client = client
        self.username = username
        self._token = None

    def token(self):
        if self._token is None:
            page = self.client.get("/report/lookup")
            self._token = self.TOKEN.search(page.get_data(as_text=True)).group(1)
        return self._token

    def login(self, username, password="demo12345"):
        response = self.post("/login", data={"username": username, "password": password})
        assert response.status_code == 302, f"login as {username} failed"
        self.username = username
        return self

    def get(self, path, **kwargs):
        return self.client.get(path, **kwargs)

    def post(self, path, data=None, csrf=True, **kwargs):
        if data is None or isinstance(data, dict):
            data = dict(data or {})
            if csrf:
                data.setdefault("csrf_token", self.token())
        return self.client.post(path, data=data, **kwargs)


@pytest.fixture
def web(app, tmp_path):
    """``web(username)``: a logged-in WebSession (``web()``: anonymous), CSRF protection on."""
    app.config["WTF_CSRF_ENABLED"] = True
    app.config["ATTACHMENTS_DIR"] = str(tmp_path / "attachments")
    app.test_client_class = FreshPageClient

    def make(username=None):
        session = WebSession(app.test_client())
        return session.login(username) if username else session

    return make


@pytest.fixture(scope="session")
def compiled_translations():
    """Compile the .po catalogs to .mo when missing or stale (as `make setup` does), for tests that
    look at the English pages from a checkout that skipped the set-up."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parent.parent / "app" / "translations"
    for po in root.glob("*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            with po.open("rb") as source:
                catalog = read_po(source)
            with mo.open("wb") as target:
                write_mo(target, catalog)
    return root
