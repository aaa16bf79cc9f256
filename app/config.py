"""Settings read from the environment, with embedded-friendly defaults.

Every setting a deployment may change is listed here with its environment variable, so an
operator reads one file to learn what can be tuned.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


class Config:
    #: SQLAlchemy URL. SQLite under instance/ is the embedded default; PostgreSQL for scale-out
    #: (``postgresql+psycopg://user@host/db``).
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{BASE_DIR / 'instance' / 'tiaojie.sqlite3'}"
    )
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    #: Signs sessions and CSRF tokens; a fixed development value is replaced in production.
    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-change-me")
    #: Time zone pages show times in; everything is stored in UTC.
    TIMEZONE = os.environ.get("TIMEZONE", "Asia/Shanghai")
    #: Directory holding the deployable workflow bundle (BPMN, DMN) and its forms.
    WORKFLOWS_DIR = os.environ.get("WORKFLOWS_DIR", str(BASE_DIR / "workflows"))
    FORMS_DIR = os.environ.get("FORMS_DIR", str(BASE_DIR / "forms"))
    #: Process key new disputes start with unless a variant says otherwise.
    DEFAULT_PROCESS_KEY = os.environ.get("DEFAULT_PROCESS_KEY", "dispute_lifecycle")
    #: CPU budget, in seconds, for one piece of diagram code (script, condition, timer).
    SCRIPT_TIME_BUDGET = float(os.environ.get("SCRIPT_TIME_BUDGET", "1.0"))
    #: "process": diagram code runs in worker processes with a hard kill (half a second past the
    #: budget) and a memory cap, except expressions proven cheap. "inline": everything runs in the
    #: web/scheduler process, restricted but killable only by the budget check: development only.
    SCRIPT_ISOLATION = os.environ.get("SCRIPT_ISOLATION", "process")
    #: Worker processes per app process (each evaluates one piece of code at a time).
    SCRIPT_WORKERS = int(os.environ.get("SCRIPT_WORKERS", "2"))
    #: Memory cap of one worker (its data segment, RLIMIT_DATA) in MiB; a warm worker uses ~65.
    SCRIPT_MEMORY_LIMIT_MB = int(os.environ.get("SCRIPT_MEMORY_LIMIT_MB", "256"))

    BABEL_DEFAULT_LOCALE = "zh_CN"
    BABEL_DEFAULT_TIMEZONE = TIMEZONE
    LANGUAGES = ("zh_CN", "en")

    # The session cookie never reaches scripts or other sites, and only travels over HTTPS
    # (`flask serve`, the plain-HTTP demo on loopback, turns Secure off unless told otherwise).
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = os.environ.get("SESSION_COOKIE_SECURE", "1") == "1"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", str(16 * 1024 * 1024)))

    # flask-smorest: the OpenAPI document and its Swagger UI (served from the installed package).
    API_TITLE = "Dispute resolution API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api/v1"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = None


class TestConfig(Config):
    TESTING = True
    SECRET_KEY = "test"
    SESSION_COOKIE_SECURE = REMEMBER_COOKIE_SECURE = False  # the test client speaks plain HTTP
    SQLALCHEMY_DATABASE_URI = "sqlite://"
