"""supervisor console: saved filters and reporting indexes

Revision ID: 0005_supervisor_views
Revises: 0004_authoring
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import app.database  # noqa: F401  (custom column types such as UTCDateTime)

revision = "0005_supervisor_views"
down_revision = "0004_authoring"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
