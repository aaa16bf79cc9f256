"""inbox: the ready-task index covers the holder and the due time on PostgreSQL

Revision ID: 0010_inbox_cover
Revises: 0009_month_rollup

The inbox counts a role's ready tasks and picks its page from ix_human_task_lane_path alone
(INCLUDE assignee_id, due_at): a county centre with 4,000 ready tasks at 1M cases no longer
reads a heap page per task. SQLite has no INCLUDE; its index stays as it was.
"""
from alembic import op

revision = "0010_inbox_cover"
down_revision = "0009_month_rollup"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_human_task_lane_path", table_name="human_task")
    op.create_index("ix_human_task_lane_path", "human_task", ["status", "lane", "org_path"], unique=False,
                    postgresql_include=["assignee_id", "due_at"])


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_human_task_lane_path", table_name="human_task")
    op.create_index("ix_human_task_lane_path", "human_task", ["status", "lane", "org_path"], unique=False)
