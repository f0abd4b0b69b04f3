"""accounts: token requests-per-minute limit, verification codes, session version, quota reminder

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 23:55:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('quota_reminded', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rpm_limit', sa.Integer(), server_default='0', nullable=False))
    op.create_table(
        'verification_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('purpose', sa.String(length=8), nullable=False),
        sa.Column('email', sa.String(length=64), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('verification_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_verification_codes_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_verification_codes_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('verification_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_verification_codes_expires_at'))
        batch_op.drop_index(batch_op.f('ix_verification_codes_email'))
    op.drop_table('verification_codes')
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_column('rpm_limit')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('quota_reminded')
        batch_op.drop_column('session_version')
