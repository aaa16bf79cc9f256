"""process authoring: drafts, variants

Revision ID: 0004_authoring
Revises: 0003_supervision
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import app.database  # noqa: F401  (custom column types such as UTCDateTime)

revision = "0004_authoring"
down_revision = "0003_supervision"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
