"""rollups: cases per month, so a year-long dashboard sums months instead of days

Revision ID: 0009_month_rollup
Revises: 0008_compressed_state

case_month_rollup is case_day_rollup summed per calendar month; the readers take the whole months
of a period from it and the partial months at its edges from the daily rows. Filled here from
the daily rows already built.
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_month_rollup"
down_revision = "0008_compressed_state"
branch_labels = None
depends_on = None

CASE_COUNTS = ("opened", "closed", "decided", "resolved", "litigated", "at_village", "at_town", "at_county",
               "rated", "satisfied", "late")


def upgrade():
    op.create_table(
        "case_month_rollup",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("org_path", sa.String(length=255), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in CASE_COUNTS],
        sa.PrimaryKeyConstraint("month", "org_path", "category", "channel", name=op.f("pk_case_month_rollup")),
    )
    month = ("date(day, 'start of month')" if op.get_bind().dialect.name == "sqlite"
             else "CAST(date_trunc('month', day) AS date)")
    counts = ", ".join(CASE_COUNTS)
    sums = ", ".join(f"SUM({name})" for name in CASE_COUNTS)
    op.execute(f"INSERT INTO case_month_rollup (month, org_path, category, channel, {counts}) "
               f"SELECT {month}, org_path, category, channel, {sums} FROM case_day_rollup "
               f"GROUP BY {month}, org_path, category, channel")


def downgrade():
    op.drop_table("case_month_rollup")
