"""mediator workspace: case comments and attachments, public intake log, high-value flags

Revision ID: 0002_workspace
Revises: 0002_scheduling
Create Date: 2026-11-22 06:00:00

The brief named d1b63eeb7673 as the parent; 0002_scheduling (written at the same time) already
hangs off it, so this revision follows it to keep one head (``flask db upgrade`` needs one).
"""
from alembic import op
import sqlalchemy as sa
import app.database  # noqa: F401  (custom column types such as UTCDateTime)


# revision identifiers, used by Alembic.
revision = '0002_workspace'
down_revision = '0002_scheduling'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('dispute_case', sa.Column('high_value_reported', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column('dispute_case', sa.Column('high_value_confirmed', sa.Boolean(), server_default=sa.false(), nullable=False))
    fk_name = 'fk_dispute_case_high_value_confirmed_by_id_app_user'
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite cannot add a constraint to a table, but it accepts a named inline REFERENCES on a
        # new nullable column; a batch copy instead would drop dispute_case, which the foreign
        # keys of every case table point at.
        op.execute(f'ALTER TABLE dispute_case ADD COLUMN high_value_confirmed_by_id INTEGER '
                   f'CONSTRAINT {fk_name} REFERENCES app_user (id)')
    else:
        op.add_column('dispute_case', sa.Column('high_value_confirmed_by_id', sa.Integer(), nullable=True))
        op.create_foreign_key(fk_name, 'dispute_case', 'app_user', ['high_value_confirmed_by_id'], ['id'])

    op.create_table('case_comment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['app_user.id'], name=op.f('fk_case_comment_author_id_app_user')),
    sa.ForeignKeyConstraint(['case_id'], ['dispute_case.id'], name=op.f('fk_case_comment_case_id_dispute_case')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_comment'))
    )
    with op.batch_alter_table('case_comment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_comment_case_id'), ['case_id'], unique=False)

    op.create_table('case_attachment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('original_name', sa.String(length=255), nullable=False),
    sa.Column('stored_name', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['dispute_case.id'], name=op.f('fk_case_attachment_case_id_dispute_case')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['app_user.id'], name=op.f('fk_case_attachment_uploaded_by_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_attachment'))
    )
    with op.batch_alter_table('case_attachment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_attachment_case_id'), ['case_id'], unique=False)

    op.create_table('public_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_key', sa.String(length=64), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['dispute_case.id'], name=op.f('fk_public_report_case_id_dispute_case')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_public_report'))
    )
    with op.batch_alter_table('public_report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_public_report_case_id'), ['case_id'], unique=False)
        batch_op.create_index('ix_public_report_client_at', ['client_key', 'created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('public_report', schema=None) as batch_op:
        batch_op.drop_index('ix_public_report_client_at')
        batch_op.drop_index(batch_op.f('ix_public_report_case_id'))
    op.drop_table('public_report')
    with op.batch_alter_table('case_attachment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_attachment_case_id'))
    op.drop_table('case_attachment')
    with op.batch_alter_table('case_comment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_comment_case_id'))
    op.drop_table('case_comment')
    fk_name = 'fk_dispute_case_high_value_confirmed_by_id_app_user'
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        # SQLite drops a column with a REFERENCES only by copying the table, and dropping the old
        # dispute_case would trip the foreign keys of every case table: check them after instead.
        dbapi = bind.connection.dbapi_connection
        if dbapi.in_transaction:
            dbapi.commit()  # PRAGMA foreign_keys is ignored inside a transaction
        bind.exec_driver_sql('PRAGMA foreign_keys=OFF')
        try:
            with op.batch_alter_table('dispute_case', schema=None) as batch_op:
                batch_op.drop_column('high_value_confirmed_by_id')
                batch_op.drop_column('high_value_confirmed')
                batch_op.drop_column('high_value_reported')
            problems = bind.exec_driver_sql('PRAGMA foreign_key_check').fetchall()
            if problems:
                raise RuntimeError(f'foreign keys broken by the table copy: {problems[:5]}')
        finally:
            if dbapi.in_transaction:
                dbapi.commit()
            bind.exec_driver_sql('PRAGMA foreign_keys=ON')
    else:
        op.drop_constraint(fk_name, 'dispute_case', type_='foreignkey')
        op.drop_column('dispute_case', 'high_value_confirmed_by_id')
        op.drop_column('dispute_case', 'high_value_confirmed')
        op.drop_column('dispute_case', 'high_value_reported')
