"""process authoring: drafts, variants

Revision ID: 0004_authoring
Revises: 0003_supervision
"""
from alembic import op
import sqlalchemy as sa
import app.database  # noqa: F401  (custom column types such as UTCDateTime)

revision = "0004_authoring"
down_revision = "0003_supervision"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("process_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("process_id", sa.String(length=80), nullable=True))

    op.create_table(
        "process_draft",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("base_version_id", sa.Integer(), nullable=True),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", app.database.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["author_id"], ["app_user.id"], name=op.f("fk_process_draft_author_id_app_user")),
        sa.ForeignKeyConstraint(["base_version_id"], ["process_version.id"],
                                name=op.f("fk_process_draft_base_version_id_process_version")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_process_draft")),
        sa.UniqueConstraint("key", "file_name", name=op.f("uq_process_draft_key")),
    )
    with op.batch_alter_table("process_draft", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_process_draft_key"), ["key"], unique=False)

    op.create_table(
        "process_variant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_unit_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", app.database.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["org_unit_id"], ["org_unit.id"], name=op.f("fk_process_variant_org_unit_id_org_unit")),
        sa.ForeignKeyConstraint(["updated_by_id"], ["app_user.id"],
                                name=op.f("fk_process_variant_updated_by_id_app_user")),
        sa.ForeignKeyConstraint(["version_id"], ["process_version.id"],
                                name=op.f("fk_process_variant_version_id_process_version")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_process_variant")),
        sa.UniqueConstraint("org_unit_id", name=op.f("uq_process_variant_org_unit_id")),
    )


def downgrade():
    op.drop_table("process_variant")
    with op.batch_alter_table("process_draft", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_process_draft_key"))
    op.drop_table("process_draft")
    with op.batch_alter_table("process_version", schema=None) as batch_op:
        batch_op.drop_column("process_id")
