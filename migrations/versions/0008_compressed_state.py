"""compressed workflow state: zlib-compressed JSON instead of text

Revision ID: 0008_compressed_state
Revises: 0007_rollups

A closed case's state is 19-52 KB of JSON; compressed it is 3-7 KB, which brings the stored bytes
per case under 25 KB on SQLite (docs/benchmarks.md). Existing rows are converted in batches.
"""
import zlib

import sqlalchemy as sa
from alembic import op

revision = "0008_compressed_state"
down_revision = "0007_rollups"
branch_labels = None
depends_on = None

BATCH = 2000
LEVEL = 1  # keep in step with app.database.CompressedText.LEVEL


def _convert(source: str, target: str, encode) -> None:
    """Copy every row's ``source`` column into ``target`` through ``encode``, in batches."""
    conn = op.get_bind()
    table = sa.table("workflow_state", sa.column("case_id", sa.Integer), sa.column(source), sa.column(target))
    last = 0
    while True:
        rows = conn.execute(sa.select(table.c.case_id, table.c[source]).where(table.c.case_id > last)
                            .order_by(table.c.case_id).limit(BATCH)).all()
        if not rows:
            return
        conn.execute(table.update().where(table.c.case_id == sa.bindparam("id")).values({target: sa.bindparam("value")}),
                     [{"id": case_id, "value": encode(value)} for case_id, value in rows])
        last = rows[-1][0]


def upgrade():
    with op.batch_alter_table("workflow_state") as batch_op:
        batch_op.add_column(sa.Column("state_z", sa.LargeBinary(), nullable=True))
    _convert("state", "state_z", lambda text: zlib.compress(text.encode("utf-8"), LEVEL))
    with op.batch_alter_table("workflow_state") as batch_op:
        batch_op.drop_column("state")
        batch_op.alter_column("state_z", new_column_name="state", existing_type=sa.LargeBinary(), nullable=False)


def downgrade():
    with op.batch_alter_table("workflow_state") as batch_op:
        batch_op.add_column(sa.Column("state_text", sa.Text(), nullable=True))
    _convert("state", "state_text", lambda blob: zlib.decompress(blob).decode("utf-8"))
    with op.batch_alter_table("workflow_state") as batch_op:
        batch_op.drop_column("state")
        batch_op.alter_column("state_text", new_column_name="state", existing_type=sa.Text(), nullable=False)
