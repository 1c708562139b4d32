"""add customers.status with a constant default, and an index on it

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-27 09:00:00

A constant DEFAULT makes ADD COLUMN ... NOT NULL cheap: PostgreSQL 11+ stores the default in the
catalog instead of rewriting the table, and MySQL 8.0 / MariaDB 10.3+ add the column in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "customers",
        sa.Column("status", sa.String(20), nullable=False, server_default="active"),
    )
    op.create_index(op.f("ix_customers_status"), "customers", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_customers_status"), table_name="customers")
    op.drop_column("customers", "status")
