"""LINT ONLY, never applied: orders changes written the naive way, for squawk to review

Revision ID: n001
Revises: 0004
Create Date: 2025-02-10 09:00:00

This folder is not in the normal version_locations. The lint step of
migration/failed_migrations_and_linting.py loads it, renders `0004:n001` offline (`sql=True`)
for PostgreSQL and hands the SQL to squawk. Each operation works, and each takes a lock a busy
table cannot afford:
- ADD COLUMN ... NOT NULL DEFAULT gen_random_uuid(): a volatile default rewrites the whole
  table under ACCESS EXCLUSIVE (a constant default would not);
- CREATE INDEX without CONCURRENTLY: blocks every write for as long as the build takes;
- a backfill UPDATE then SET NOT NULL in the same transaction: row locks on every row, then a
  full scan under ACCESS EXCLUSIVE;
- a CHECK constraint without NOT VALID: scans the table under ACCESS EXCLUSIVE;
- a FOREIGN KEY without NOT VALID: scans the table and locks both tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "n001"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "orders",
        sa.Column(
            "public_id", postgresql.UUID(), nullable=False, server_default=sa.text("gen_random_uuid()")
        ),
    )
    op.create_index("ix_orders_total", "orders", ["total"])
    op.add_column("orders", sa.Column("currency", sa.String(3), nullable=True))
    op.execute("UPDATE orders SET currency = 'EUR'")
    op.alter_column("orders", "currency", existing_type=sa.String(3), nullable=False)
    op.create_check_constraint("ck_orders_total_positive", "orders", "total >= 0")
    op.add_column("orders", sa.Column("referrer_id", sa.Integer(), nullable=True))
    op.create_foreign_key("fk_orders_referrer_id_customers", "orders", "customers", ["referrer_id"], ["id"])


def downgrade() -> None:
    op.drop_constraint("fk_orders_referrer_id_customers", "orders", type_="foreignkey")
    op.drop_column("orders", "referrer_id")
    op.drop_constraint("ck_orders_total_positive", "orders", type_="check")
    op.drop_column("orders", "currency")
    op.drop_index("ix_orders_total", table_name="orders")
    op.drop_column("orders", "public_id")
