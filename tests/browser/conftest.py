"""Shared by the browser tests: Debian's chromium through Playwright, and the app served live."""
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app import create_app
from app.config import TestConfig

CHROMIUM = Path("/usr/bin/chromium")


def live_app(sqlite_template, tmp_path_factory, name, **settings):
    """An app on its own copy of the migrated, seeded SQLite template, CSRF on."""
    directory = tmp_path_factory.mktemp(name)
    shutil.copy(sqlite_template, directory / "live.sqlite3")
    return create_app(TestConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{directory / 'live.sqlite3'}",
                      WTF_CSRF_ENABLED=True, **settings)


@contextmanager
def serve(app):
    """Serve ``app`` on a free port of 127.0.0.1 in a background thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()


@pytest.fixture(scope="session")
def browser():
    # Fail, not skip: the browser tests are part of the suite and `make test` installs chromium.
    assert CHROMIUM.exists(), "Debian chromium is missing: apt-get install chromium fonts-wqy-microhei"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield chromium
        finally:
            chromium.close()
