"""Add messaging_windows: the customer's last inbound message per (org, channel, customer).

Revision ID: 0004_messaging
Revises: 0003_webhooks
Create Date: 2026-11-23 05:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0004_messaging'
down_revision = '0003_webhooks'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('messaging_windows',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('customer', sa.String(length=64), nullable=False),
    sa.Column('last_inbound_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('organization_id', 'channel', 'customer', name='uq_messaging_windows_org_channel_customer')
    )


def downgrade():
    op.drop_table('messaging_windows')
