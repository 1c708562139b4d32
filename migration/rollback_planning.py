"""Rollback planning: what a migration can undo, and the snapshot that gives the data back

Every migration needs a way back, and not every way back gives the data back. Renaming `coupon` to
`promo_code` in one step drops the old column; its down-migration re-adds it empty, and every value
the application wrote is lost (counted against what it wrote). The same change as expand/contract
keeps the old column, dual-written, until a separate contract step: rolling back loses nothing. A
migration that commits batch by batch and fails halfway leaves mixed data that no transaction
undoes: a snapshot taken first (pg_dump of the lesson's schema when the local pg_dump is at least as
new as the server, else a copy inside the server) restores equal row counts and checksums. When to
decide to roll back, under live writes, is the next lesson: feature_flag_cutover.py.

Engine: PostgreSQL (POSTGRES_URL), schemas `rollback_planning` and `rollback_planning_snapshot`;
pg_dump and pg_restore when installed and at least as new as the server.
Run: `make up SERVICES=postgres` (or `make local-up`), then `python migration/rollback_planning.py`.
Look for: every non-null value lost by the down-migration against 0 by expand/contract, and the
same row counts and checksums after the restore as before the failed migration.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require

REQUIRES = ("postgres",)
SCHEMA, SNAPSHOT = "rollback_planning", "rollback_planning_snapshot"
SEED, N_ROWS, BATCH = 11, 10_000, 2_500
BIG_ORDER_ID = 6_000  # a bulk contract: its amount in cents overflows integer, in the third batch
N_APP_WRITES = 200  # writes the new version makes before the rollback (half updates, half inserts)
DUMP, COPY = "pg_dump/pg_restore", "in-server copy"
LOCK_ORDER = (
    "AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock",
    "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock",
)  # fmt: skip

SETUP = """
DROP SCHEMA IF EXISTS {s} CASCADE;
DROP SCHEMA IF EXISTS {snap} CASCADE;
CREATE SCHEMA {s};
CREATE TABLE {s}.orders (
    id bigint PRIMARY KEY, customer text NOT NULL, amount integer NOT NULL, currency text NOT NULL,
    coupon text);
"""
ADD_PROMO = "ALTER TABLE {s}.orders ADD COLUMN promo_code text"
BACKFILL = "UPDATE {s}.orders SET promo_code = coupon"
DROP_PROMO = "ALTER TABLE {s}.orders DROP COLUMN promo_code"
# approach -> (migrate, columns the new version writes, roll back)
RENAMES = {
    "one step + down-migration": (
        [("up: ADD COLUMN promo_code", ADD_PROMO), ("up: copy coupon to promo_code", BACKFILL),
         ("up: DROP COLUMN coupon", "ALTER TABLE {s}.orders DROP COLUMN coupon")],
        ("promo_code",),
        [("down: ADD COLUMN coupon", "ALTER TABLE {s}.orders ADD COLUMN coupon text"),
         ("down: DROP COLUMN promo_code", DROP_PROMO)],
    ),
    "expand/contract, rolled back": (
        [("expand: ADD COLUMN promo_code", ADD_PROMO), ("expand: backfill promo_code", BACKFILL)],
        ("promo_code", "coupon"),  # the dual write
        [("rollback: DROP COLUMN promo_code", DROP_PROMO)],
    ),
}  # fmt: skip
LOCKS = "SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND relation = to_regclass(%s)"
CHECKSUM = (
    "SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text COLLATE \"C\"), '')) FROM {} t"
)
TO_CENTS = "UPDATE {s}.orders SET amount = amount * 100 WHERE id BETWEEN %s AND %s"


@dataclass
class Undo:
    approach: str
    non_null: int  # values the application wrote that are not null
    lost: int  # of those, the ones not found after the rollback
    locks: list[tuple[str, str]] = field(compare=False)  # statement -> strongest lock on orders


@dataclass
class Drill:
    method: str
    reason: str = field(compare=False)
    before: dict[str, tuple[int, str]]  # table -> (rows, md5 of its ordered rows)
    after_failure: dict[str, tuple[int, str]]
    after_restore: dict[str, tuple[int, str]]
    batches_committed: int
    failure: str  # SQLSTATE of the batch that failed

    @property
    def restored(self) -> bool:
        return self.after_restore == self.before != self.after_failure


@dataclass
class RollbackResult:
    destructive: Undo
    expand_contract: Undo
    drill: Drill

    @property
    def holds(self) -> bool:
        return (
            self.destructive.lost == self.destructive.non_null > 0
            and self.expand_contract.lost == 0
            and self.drill.restored
        )


def q(text: str, **more: sql.Composable) -> sql.Composed:
    return sql.SQL(text).format(s=sql.Identifier(SCHEMA), snap=sql.Identifier(SNAPSHOT), **more)


def build(conn: psycopg.Connection) -> None:
    """Reset the schemas; orders with a coupon on about a third of them, EUR and USD only."""
    conn.execute(q(SETUP))
    rng = random.Random(SEED)
    columns = "COPY {s}.orders (id, customer, amount, currency, coupon) FROM STDIN"
    with conn.cursor().copy(q(columns)) as copy:
        for i in range(1, N_ROWS + 1):
            coupon = f"SAVE{rng.randint(5, 50)}" if rng.random() < 0.3 else None
            amount = 30_000_000 if i == BIG_ORDER_ID else rng.randint(1, 5_000)
            copy.write_row((i, f"customer {i % 700}", amount, rng.choice(("EUR", "USD")), coupon))
    conn.commit()


def ddl(conn: psycopg.Connection, label: str, statement: str) -> tuple[str, str]:
    """Run one migration statement in its own transaction; the strongest lock it took on orders."""
    conn.execute(q(statement))
    modes = [mode for (mode,) in conn.execute(LOCKS, (f"{SCHEMA}.orders",))]
    conn.commit()
    return label, max(modes, key=LOCK_ORDER.index)


def coupons(conn: psycopg.Connection) -> dict[int, str | None]:
    """Each order's coupon as the application wrote it: the witness a rollback is checked against."""
    found = dict(conn.execute(q("SELECT id, coupon FROM {s}.orders")).fetchall())
    conn.rollback()
    return found


def app_writes(conn: psycopg.Connection, written: dict[int, str | None], columns: tuple[str, ...]) -> None:
    """The new version at work: it updates codes and inserts orders, writing `columns`."""
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    marks = sql.SQL(", ").join(sql.Placeholder() * len(columns))
    update = q("UPDATE {s}.orders SET ({c}) = ROW({m}) WHERE id = %s", c=cols, m=marks)
    insert = q("INSERT INTO {s}.orders (id, customer, amount, currency, {c}) VALUES (%s, 'new', 1, 'EUR', {m})", c=cols, m=marks)  # fmt: skip
    for i in range(N_APP_WRITES // 2):
        order_id, new_id, code = 1 + i * 37, N_ROWS + 1 + i, f"SPRING{i}"
        conn.execute(update, (*[code] * len(columns), order_id))
        conn.execute(insert, (new_id, *[code] * len(columns)))
        written[order_id] = written[new_id] = code
    conn.commit()


def tally(conn: psycopg.Connection, written: dict[int, str | None]) -> tuple[int, int]:
    """Non-null values the application wrote, and how many of them `coupon` no longer holds."""
    now = dict(conn.execute(q("SELECT id, coupon FROM {s}.orders")).fetchall())
    conn.rollback()
    kept = [value for value in written.values() if value is not None]
    lost = sum(1 for key, value in written.items() if value is not None and now.get(key) != value)
    return len(kept), lost


def rename(conn: psycopg.Connection, approach: str) -> Undo:
    """Migrate, let the new version write, roll back; count the values `coupon` no longer holds."""
    up, columns, down = RENAMES[approach]
    build(conn)
    written = coupons(conn)
    locks = [ddl(conn, label, statement) for label, statement in up]
    app_writes(conn, written, columns)
    locks += [ddl(conn, label, statement) for label, statement in down]
    return Undo(approach, *tally(conn, written), locks)


def fingerprint(conn: psycopg.Connection) -> dict[str, tuple[int, str]]:
    """Each table's row count and the md5 of its rows as text, in one canonical order."""
    names = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (SCHEMA,))
    found = {}
    for (name,) in names.fetchall():
        rows, checksum = conn.execute(sql.SQL(CHECKSUM).format(sql.Identifier(SCHEMA, name))).fetchone()
        found[name] = (rows, checksum)
    conn.rollback()
    return found


def choose_method(conn: psycopg.Connection) -> tuple[str, str]:
    """pg_dump refuses a server newer than itself: compare its major version with the server's."""
    server = conn.execute("SELECT current_setting('server_version_num')::integer").fetchone()[0] // 10_000
    conn.rollback()
    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        return COPY, "pg_dump/pg_restore are not installed"
    version = subprocess.run(["pg_dump", "--version"], capture_output=True, text=True, check=True).stdout
    local = int(re.search(r"\d+", version).group())
    if local < server:
        return COPY, f"the local pg_dump is {local}, the server {server}: pg_dump would refuse it"
    return DUMP, f"the local pg_dump is {local}, the server {server}"


def libpq_tool(url: str, *argv: str) -> None:
    """Run pg_dump or pg_restore: the password in its environment, not on its command line."""
    params = conninfo_to_dict(url)
    env = {**os.environ, "PGPASSWORD": str(params.pop("password", None) or "")}
    command = [*argv, "--dbname", make_conninfo(**params)]
    subprocess.run(command, check=True, capture_output=True, env=env, timeout=120)


def copy_tables(conn: psycopg.Connection, names: list[str], source: str, target: str) -> None:
    where = {"fr": sql.Identifier(source), "to": sql.Identifier(target)}
    for name in names:
        conn.execute(
            q("CREATE TABLE {to}.{t} (LIKE {fr}.{t} INCLUDING ALL)", t=sql.Identifier(name), **where)
        )
        conn.execute(q("INSERT INTO {to}.{t} SELECT * FROM {fr}.{t}", t=sql.Identifier(name), **where))


def snapshot(conn: psycopg.Connection, url: str, method: str, path: Path, names: list[str]) -> None:
    if method == DUMP:
        return libpq_tool(url, "pg_dump", "--format=custom", "--schema", SCHEMA, "--file", str(path))
    conn.execute(q("DROP SCHEMA IF EXISTS {snap} CASCADE; CREATE SCHEMA {snap}"))
    copy_tables(conn, names, SCHEMA, SNAPSHOT)
    conn.commit()


def restore(conn: psycopg.Connection, url: str, method: str, path: Path, names: list[str]) -> None:
    """The lesson's schema replaced by the snapshot (with the application stopped)."""
    conn.execute(q("DROP SCHEMA {s} CASCADE"))
    if method == DUMP:
        conn.commit()
        return libpq_tool(url, "pg_restore", "--single-transaction", "--exit-on-error", str(path))
    conn.execute(q("CREATE SCHEMA {s}"))
    copy_tables(conn, names, SNAPSHOT, SCHEMA)
    conn.execute(q("DROP SCHEMA {snap} CASCADE"))
    conn.commit()  # one transaction: the schema is replaced, or left as it was


def failing_migration(conn: psycopg.Connection) -> tuple[int, str]:
    """Amounts to cents, committing batch by batch as a long backfill does, until a batch overflows."""
    committed = 0
    for low in range(1, N_ROWS + 1, BATCH):
        try:
            conn.execute(q(TO_CENTS), (low, low + BATCH - 1))
        except psycopg.errors.NumericValueOutOfRange as error:
            conn.rollback()
            return committed, error.sqlstate or ""
        conn.commit()
        committed += 1
    return committed, ""


def drill(conn: psycopg.Connection, url: str, method: str, reason: str = "") -> Drill:
    """Snapshot, a migration that fails halfway, restore: the fingerprints before and after."""
    build(conn)
    before = fingerprint(conn)
    with tempfile.TemporaryDirectory(prefix="rollback_planning-") as folder:
        path = Path(folder) / f"{SCHEMA}.dump"
        snapshot(conn, url, method, path, list(before))
        committed, failure = failing_migration(conn)
        after_failure = fingerprint(conn)
        restore(conn, url, method, path, list(before))
    return Drill(method, reason, before, after_failure, fingerprint(conn), committed, failure)


def run(conn: psycopg.Connection, url: str) -> RollbackResult:
    """`conn` owns the lesson's schemas; `url` is the server's address for pg_dump and pg_restore."""
    console.title("Rollback planning: what a migration can undo, and the snapshot that gives the data back")
    undone = {}
    for approach, title in (
        ("one step + down-migration", "Rename coupon to promo_code in one step, then run its down-migration"),
        ("expand/contract, rolled back", "The same rename as expand/contract, rolled back before contract"),
    ):
        console.step(title)
        undone[approach] = rename(conn, approach)
        console.table(["statement", "strongest lock on orders"], undone[approach].locks)
    console.table(
        ["approach", "non-null codes written", "lost by the rollback"],
        [(u.approach, u.non_null, u.lost) for u in undone.values()],
    )
    console.say("The down re-adds coupon empty; expand/contract kept coupon, dual-written, until contract.")
    console.say("Contract (DROP COLUMN coupon) once the rollback window has closed: the point of no return.")

    console.step("Snapshot the schema, run a batched migration that fails halfway, restore")
    method, reason = choose_method(conn)
    console.say(f"Snapshot by {method}: {reason}.")
    rehearsal = drill(conn, url, method, reason)
    phases = (rehearsal.before, rehearsal.after_failure, rehearsal.after_restore)
    console.table(
        ["table", "rows before / restored", "md5 before", "after failure", "after restore"],
        [(t, f"{rehearsal.before[t][0]:,} / {rehearsal.after_restore[t][0]:,}", *(p[t][1][:10] for p in phases))
         for t in rehearsal.before],
    )  # fmt: skip
    console.say(
        f"{rehearsal.batches_committed} batches committed before SQLSTATE {rehearsal.failure}. In one "
        "transaction PostgreSQL would have undone it all, DDL included; committed batches need the snapshot."
    )
    if method == COPY:
        console.say(
            "LIKE ... INCLUDING ALL copies columns, defaults, checks and indexes; not foreign keys, triggers."
        )
    return RollbackResult(*undone.values(), rehearsal)


def main() -> int:
    require(*REQUIRES)
    url = postgres_url()
    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        result = run(conn, url)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())
