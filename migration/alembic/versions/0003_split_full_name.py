"""split customers.full_name into first_name and last_name: schema and data

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-20 09:00:00

A data migration in three moves: add the new columns nullable, fill them with one UPDATE, then
make them NOT NULL and drop the old column. The rule is the UPDATE's: the first name is the text
before the first space, the last name everything after it ('' for a one-word name). The downgrade
joins them back with one space, so a round trip gives back the same full_name.
The SQL is portable: POSITION, SUBSTRING ... FROM ... FOR and CONCAT mean the same on PostgreSQL
and MySQL/MariaDB (`||` would not: it is OR on MySQL).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SPLIT = """
UPDATE customers SET
    first_name = CASE WHEN POSITION(' ' IN full_name) = 0 THEN full_name
                      ELSE SUBSTRING(full_name FROM 1 FOR POSITION(' ' IN full_name) - 1) END,
    last_name = CASE WHEN POSITION(' ' IN full_name) = 0 THEN ''
                     ELSE SUBSTRING(full_name FROM POSITION(' ' IN full_name) + 1) END
"""
JOIN = """
UPDATE customers SET
    full_name = CASE WHEN last_name = '' THEN first_name ELSE CONCAT(first_name, ' ', last_name) END
"""


def upgrade() -> None:
    op.add_column("customers", sa.Column("first_name", sa.String(60), nullable=True))
    op.add_column("customers", sa.Column("last_name", sa.String(60), nullable=True))
    op.execute(SPLIT)
    for column in ("first_name", "last_name"):
        op.alter_column("customers", column, existing_type=sa.String(60), nullable=False)
    op.drop_column("customers", "full_name")


def downgrade() -> None:
    op.add_column("customers", sa.Column("full_name", sa.String(120), nullable=True))
    op.execute(JOIN)
    op.alter_column("customers", "full_name", existing_type=sa.String(120), nullable=False)
    op.drop_column("customers", "last_name")
    op.drop_column("customers", "first_name")
