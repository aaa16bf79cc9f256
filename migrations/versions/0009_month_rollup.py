"""rollups: cases per month and breakdown, so a year-long dashboard sums months, not days

Revision ID: 0009_month_rollup
Revises: 0008_compressed_state

case_month_category_rollup and case_month_channel_rollup are case_day_rollup summed per calendar
month and (org path, category) or (org path, channel); the readers take the whole months of a
period from them and the partial months at its edges from the daily rows. Filled here from the
daily rows already built.
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
    month = ("date(day, 'start of month')" if op.get_bind().dialect.name == "sqlite"
             else "CAST(date_trunc('month', day) AS date)")
    counts = ", ".join(CASE_COUNTS)
    sums = ", ".join(f"SUM({name})" for name in CASE_COUNTS)
    for dimension in ("category", "channel"):
        table = f"case_month_{dimension}_rollup"
        op.create_table(
            table,
            sa.Column("month", sa.Date(), nullable=False),
            sa.Column("org_path", sa.String(length=255), nullable=False),
            sa.Column(dimension, sa.String(length=40), nullable=False),
            *[sa.Column(name, sa.Integer(), nullable=False) for name in CASE_COUNTS],
            sa.PrimaryKeyConstraint("month", "org_path", dimension, name=op.f(f"pk_{table}")),
        )
        op.execute(f"INSERT INTO {table} (month, org_path, {dimension}, {counts}) "
                   f"SELECT {month}, org_path, {dimension}, {sums} FROM case_day_rollup "
                   f"GROUP BY {month}, org_path, {dimension}")


def downgrade():
    op.drop_table("case_month_channel_rollup")
    op.drop_table("case_month_category_rollup")
