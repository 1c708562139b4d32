"""DRILL, never part of the head chain: create a table and an index, then fail on the data

Revision ID: d001
Revises: 0004
Create Date: 2025-02-03 09:00:00

This folder is not in the normal version_locations. Only the drill step of
migration/failed_migrations_and_linting.py loads it (a Config whose version_locations adds
drills/) and upgrades to `d001` by name. Its third statement, a UNIQUE constraint on
customers.last_name, fails because many customers share a last name: the kind of migration
that passed on a small staging copy and breaks on production data.
PostgreSQL runs the revision in one transaction and rolls all three statements back; MySQL and
MariaDB commit each DDL statement as it runs, so the table and its index stay behind while the
version table still says 0004.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d001"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_notes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
    )
    op.create_index("ix_customer_notes_customer_id", "customer_notes", ["customer_id"])
    op.create_unique_constraint("uq_customers_last_name", "customers", ["last_name"])  # fails here


def downgrade() -> None:
    op.drop_constraint("uq_customers_last_name", "customers", type_="unique")
    op.drop_table("customer_notes")
