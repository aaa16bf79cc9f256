"""rollups: case figures filed under every unit above the case, so a dashboard reads one scope's rows

Revision ID: 0011_scope_rollup
Revises: 0010_inbox_cover

case_day_scope_rollup / case_month_scope_rollup hold, per unit (scope) and day or month, the case
figures summed by category, by channel and by child unit; org_path_scope is the path expansion
they are filed through. They replace case_month_category_rollup, case_month_channel_rollup and
case_day_unit_rollup, which a county dashboard had to sum over every unit of its subtree. The new
tables start empty and the rollup state is cleared: until the scheduler's next refresh rebuilds
them (or `flask rollups rebuild`), the console reads everything live, with the same figures.
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_scope_rollup"
down_revision = "0010_inbox_cover"
branch_labels = None
depends_on = None

CASE_COUNTS = ("opened", "closed", "decided", "resolved", "litigated", "at_village", "at_town", "at_county",
               "rated", "satisfied", "late")


def _counts():
    return [sa.Column(name, sa.Integer(), nullable=False) for name in CASE_COUNTS]


def upgrade():
    op.create_table(
        "org_path_scope",
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("scope_path", sa.String(length=255), nullable=False),
        sa.Column("child_path", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("path", "scope_path", name=op.f("pk_org_path_scope")),
    )
    for table, period in (("case_day_scope_rollup", "day"), ("case_month_scope_rollup", "month")):
        op.create_table(
            table,
            sa.Column("scope_path", sa.String(length=255), nullable=False),
            sa.Column(period, sa.Date(), nullable=False),
            sa.Column("margin", sa.String(length=16), nullable=False),
            sa.Column("key", sa.String(length=255), nullable=False),
            *_counts(),
            sa.PrimaryKeyConstraint("scope_path", period, "margin", "key", name=op.f(f"pk_{table}")),
        )
    op.drop_table("case_month_category_rollup")
    op.drop_table("case_month_channel_rollup")
    op.drop_table("case_day_unit_rollup")
    op.execute("DELETE FROM rollup_state WHERE name = 'supervision'")


def downgrade():
    op.create_table(
        "case_day_unit_rollup",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("org_path", sa.String(length=255), nullable=False),
        sa.Column("opened", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "org_path", name=op.f("pk_case_day_unit_rollup")),
    )
    for dimension in ("category", "channel"):
        table = f"case_month_{dimension}_rollup"
        op.create_table(
            table,
            sa.Column("month", sa.Date(), nullable=False),
            sa.Column("org_path", sa.String(length=255), nullable=False),
            sa.Column(dimension, sa.String(length=40), nullable=False),
            *_counts(),
            sa.PrimaryKeyConstraint("month", "org_path", dimension, name=op.f(f"pk_{table}")),
        )
    op.drop_table("case_month_scope_rollup")
    op.drop_table("case_day_scope_rollup")
    op.drop_table("org_path_scope")
    op.execute("DELETE FROM rollup_state WHERE name = 'supervision'")
