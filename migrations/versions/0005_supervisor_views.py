"""supervisor console: saved filters and reporting indexes

Revision ID: 0005_supervisor_views
Revises: 0004_authoring

The indexes serve the dashboard, the reports and the heat map (see app/supervision/models.py and
bench/dashboard.py for the figures that justified them).
"""
from alembic import op
import sqlalchemy as sa
import app.database  # noqa: F401  (custom column types such as UTCDateTime)

revision = "0005_supervisor_views"
down_revision = "0004_authoring"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "saved_filter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("query", sa.JSON(), nullable=False),
        sa.Column("created_at", app.database.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_saved_filter_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_filter")),
        sa.UniqueConstraint("user_id", "name", name=op.f("uq_saved_filter_user_id")),
    )
    op.create_index(op.f("ix_saved_filter_user_id"), "saved_filter", ["user_id"], unique=False)
    op.create_index("ix_case_opened_cover", "dispute_case", ["opened_at"], unique=False,
                    postgresql_include=["org_path", "org_unit_id", "category", "channel"])
    op.create_index("ix_case_closed_cover", "dispute_case", ["closed_at"], unique=False,
                    postgresql_include=["id", "org_path", "status", "category", "channel", "outcome",
                                        "resolved_tier", "satisfaction"])
    op.create_index("ix_case_due_cover", "dispute_case", ["due_at"], unique=False,
                    postgresql_include=["org_path", "status", "category", "channel"])
    op.create_index("ix_case_event_kind_case", "case_event", ["kind", "case_id"], unique=False)
    op.create_index("ix_human_task_completed_cover", "human_task", ["completed_at"], unique=False,
                    postgresql_include=["case_id", "spec_name", "status", "created_at"])
    flagged = sa.text("status <> 'closed' AND (people_involved >= 10 OR risk_level = 'high')")
    op.create_index("ix_case_flagged_open", "dispute_case", ["opened_at"], unique=False,
                    postgresql_where=flagged, sqlite_where=flagged)


def downgrade():
    op.drop_index("ix_case_flagged_open", table_name="dispute_case")
    op.drop_index("ix_human_task_completed_cover", table_name="human_task")
    op.drop_index("ix_case_event_kind_case", table_name="case_event")
    op.drop_index("ix_case_due_cover", table_name="dispute_case")
    op.drop_index("ix_case_closed_cover", table_name="dispute_case")
    op.drop_index("ix_case_opened_cover", table_name="dispute_case")
    op.drop_index(op.f("ix_saved_filter_user_id"), table_name="saved_filter")
    op.drop_table("saved_filter")
