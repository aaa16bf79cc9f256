"""rollups: daily case and task rollups for the supervisor console

Revision ID: 0007_rollups
Revises: 0006_audit

Long dashboard ranges, the heat map and the reports read full past days from these tables and
only today (and days not yet refreshed) live; see app/supervision/rollups.py.
"""
import sqlalchemy as sa
from alembic import op

import app.database  # noqa: F401  (custom column types such as UTCDateTime)

revision = "0007_rollups"
down_revision = "0006_audit"
branch_labels = None
depends_on = None

#: keep in step with app.supervision.models.DURATION_BUCKETS
DURATION_BUCKETS = 82
CASE_COUNTS = ("opened", "closed", "decided", "resolved", "litigated", "at_village", "at_town", "at_county",
               "rated", "satisfied", "late")


def upgrade():
    op.create_table(
        "case_day_rollup",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("org_path", sa.String(length=255), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in CASE_COUNTS],
        sa.PrimaryKeyConstraint("day", "org_path", "category", "channel", name=op.f("pk_case_day_rollup")),
    )
    op.create_table(
        "case_day_unit_rollup",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("org_path", sa.String(length=255), nullable=False),
        sa.Column("opened", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "org_path", name=op.f("pk_case_day_unit_rollup")),
    )
    op.create_table(
        "task_day_rollup",
        sa.Column("process_version_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("org_path", sa.String(length=255), nullable=False),
        sa.Column("spec_name", sa.String(length=120), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        *[sa.Column(f"h{bucket}", sa.Integer(), nullable=False) for bucket in range(DURATION_BUCKETS)],
        sa.PrimaryKeyConstraint("process_version_id", "day", "org_path", "spec_name",
                                name=op.f("pk_task_day_rollup")),
    )
    op.create_table(
        "rollup_state",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("through", sa.Date(), nullable=True),
        sa.Column("refreshed_at", app.database.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rollup_state")),
    )
    op.create_index("ix_case_updated_at", "dispute_case", ["updated_at"], unique=False)
    open_case, ready_task = sa.text("status <> 'closed'"), sa.text("status = 'ready'")
    op.create_index("ix_case_open_cover", "dispute_case", ["id"], unique=False,
                    postgresql_include=["process_version_id", "org_path"], postgresql_where=open_case,
                    sqlite_where=open_case)
    op.create_index("ix_human_task_ready_cover", "human_task", ["case_id"], unique=False,
                    postgresql_include=["spec_name"], postgresql_where=ready_task, sqlite_where=ready_task)
    op.create_index("ix_case_event_at", "case_event", ["at"], unique=False)


def downgrade():
    op.drop_index("ix_case_event_at", table_name="case_event")
    op.drop_index("ix_human_task_ready_cover", table_name="human_task")
    op.drop_index("ix_case_open_cover", table_name="dispute_case")
    op.drop_index("ix_case_updated_at", table_name="dispute_case")
    op.drop_table("rollup_state")
    op.drop_table("task_day_rollup")
    op.drop_table("case_day_unit_rollup")
    op.drop_table("case_day_rollup")
