"""Oracle concurrency: bind variables share one cursor, SKIP LOCKED shares a job queue

What decides how Oracle behaves when many sessions run the same code, measured. Values pasted into
SQL text make one cursor per value in the shared pool (V$SQL), each parsed from scratch; a bind
variable makes one cursor that every execution shares. And SELECT ... FOR UPDATE SKIP LOCKED lets two
sessions take jobs from one queue table with no job taken twice and nobody waiting, where NOWAIT
fails at once and WAIT 1 fails after a second, and where ROWNUM counts the locked rows before SKIP
LOCKED skips them. Identity sequences, MERGE, ROWNUM and '' as NULL are the lesson before this one,
oracle_specifics.py.

Engine: Oracle Database Free 23.26.0 (Oracle AI Database 26ai Free), the compose image
gvenzl/oracle-free:23.26.0-slim. ORACLE_URL is the app user in FREEPDB1, whose DB_DEVELOPER_ROLE
reads V$PARAMETER but not V$SQL; ORACLE_PASSWORD is SYSTEM's, used only to read V$SQL (without it the
cursor counts are skipped, and the lesson says so). Tables `oracle_concurrency_*` in the app user's
schema. There is no local server: without Docker the suite skips it.
Run: `make up SERVICES=oracle`, then `python relational/oracle_concurrency.py`.
Look for: 50 cursors against 1, ORA-00054 and ORA-30006 where SKIP LOCKED hands out other jobs, and
"taken twice: 0".
Checked against: https://github.com/gvenzl/oci-oracle-free (README, createAppUser, healthcheck.sh);
https://oracle-base.com/articles/23c/db_developer_role-23c and
https://qiita.com/kenwatan/items/9fd691b6dd0a48f9c2fe (DB_DEVELOPER_ROLE's grants: READ on V$PARAMETER, none on V$SQL);
https://docs.oracle.com/cd/F82042_01/sqlrf/img_text/for_update_clause.html (NOWAIT, WAIT, SKIP LOCKED);
https://github.com/oracle/python-oracledb/issues/218 (thin mode: the first round trip fetches prefetchrows).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import oracledb

from common import console
from common.settings import oracle_params, require, setting
from common.timing import timer
from common.workload import Workload

REQUIRES = ("oracle",)
SEED = 21
N_ITEMS, N_LOOKUPS = 1000, 50
N_JOBS, JOB_BATCH = 60, 5

FIND_TABLES = "SELECT table_name FROM user_tables WHERE table_name LIKE 'ORACLE_CONCURRENCY%'"
DROPS = {  # only the lesson's own tables, dropped when the catalog lists them (PURGE: no recycle bin)
    "ORACLE_CONCURRENCY_ITEMS": "DROP TABLE oracle_concurrency_items PURGE",
    "ORACLE_CONCURRENCY_JOBS": "DROP TABLE oracle_concurrency_jobs PURGE",
}
CREATES = (
    "CREATE TABLE oracle_concurrency_items (id NUMBER PRIMARY KEY, label VARCHAR2(20) NOT NULL)",
    "CREATE TABLE oracle_concurrency_jobs (id NUMBER PRIMARY KEY, status VARCHAR2(10) DEFAULT 'ready' NOT NULL,"
    " taken_by VARCHAR2(10))",
)
INSERT_ITEM = "INSERT INTO oracle_concurrency_items (id, label) VALUES (:id, :label)"
# The anti-pattern, formatted only by literal_lookups_vulnerable(), against a bind variable.
LITERAL_LOOKUP = (
    "SELECT /* oracle_concurrency literals */ label FROM oracle_concurrency_items WHERE id = {item_id:d}"
)
BOUND_LOOKUP = "SELECT /* oracle_concurrency binds */ label FROM oracle_concurrency_items WHERE id = :id"
PATTERNS = {
    "literals": "SELECT /* oracle_concurrency literals */%",
    "binds": "SELECT /* oracle_concurrency binds */%",
}
CURSOR_COUNTS = """
SELECT COUNT(DISTINCT sql_id), COUNT(*), NVL(SUM(executions), 0) FROM v$sql
WHERE sql_text LIKE :pattern AND parsing_schema_name = :schema
"""
CAN_READ_VSQL = "SELECT COUNT(*) FROM v$sql WHERE ROWNUM <= 1"
CURSOR_SHARING = "SELECT value FROM v$parameter WHERE name = 'cursor_sharing'"
INSERT_JOB = "INSERT INTO oracle_concurrency_jobs (id) VALUES (:id)"
CLAIM = "SELECT id FROM oracle_concurrency_jobs WHERE status = 'ready' FOR UPDATE SKIP LOCKED"
CLAIM_NOWAIT = "SELECT id FROM oracle_concurrency_jobs WHERE status = 'ready' FOR UPDATE NOWAIT"
CLAIM_WAIT = "SELECT id FROM oracle_concurrency_jobs WHERE status = 'ready' FOR UPDATE WAIT 1"
CLAIM_ROWNUM = (
    "SELECT id FROM oracle_concurrency_jobs WHERE status = 'ready' AND ROWNUM <= :n FOR UPDATE SKIP LOCKED"
)
TAKE_JOB = "UPDATE oracle_concurrency_jobs SET status = 'taken', taken_by = :worker WHERE id = :id AND status = 'ready'"
COUNT_JOBS = "SELECT COUNT(*) FROM oracle_concurrency_jobs WHERE status = :status"


@dataclass
class Cursors:
    lookups: int  # the same lookups, run once with literals and once with a bind variable
    cursor_sharing: str  # read by the app user: DB_DEVELOPER_ROLE reads V$PARAMETER
    reader: str | None  # who read V$SQL; None: nobody could, and the counts are None
    texts: dict[str, int | None]  # "literals"/"binds" -> distinct SQL texts (parent cursors) in V$SQL
    children: dict[str, int | None] = field(compare=False)  # child cursors, old ones included
    seconds: dict[str, float] = field(compare=False)


@dataclass
class Queue:
    jobs: int
    batch: int
    first: int  # jobs session A claimed and held
    second: int  # jobs B claimed with SKIP LOCKED meanwhile
    overlap: int
    nowait_error: str
    wait_error: str
    rownum_skip_locked: int  # ROWNUM counted A's locked rows before SKIP LOCKED skipped them
    taken: int  # jobs 'taken' once two workers drained the queue
    taken_twice: int
    failed: int
    blocked: int = field(compare=False)  # attempts over 100 ms (common.workload): timing, so not compared
    by_worker: dict[str, int] = field(default_factory=dict, compare=False)
    wait_s: float = field(default=0.0, compare=False)


@dataclass
class ConcurrencyResult:
    version: str = field(compare=False)
    cursors: Cursors
    queue: Queue

    @property
    def holds(self) -> bool:
        """One shared cursor for the bound lookups (where V$SQL could be read), no job taken twice."""
        cursors, jobs = self.cursors, self.queue
        return (
            (cursors.reader is None or cursors.texts == {"literals": cursors.lookups, "binds": 1})
            and jobs.overlap == jobs.taken_twice == 0
            and jobs.taken == jobs.jobs
        )


# --- pure: the data ------------------------------------------------------------------------------


def generate_items() -> list[dict]:
    return [{"id": i, "label": f"item {i}"} for i in range(1, N_ITEMS + 1)]


def lookup_ids(seed: int = SEED) -> list[int]:
    return random.Random(seed + 3).sample(range(1, N_ITEMS + 1), N_LOOKUPS)


def error_code(error: oracledb.Error) -> str:
    return error.args[0].full_code  # ORA-nnnnn


# --- thin functions that talk to the server -----------------------------------------------------


def reset(conn: oracledb.Connection) -> None:
    """Drop the lesson's tables that exist, create them."""
    with conn.cursor() as cur:
        for (name,) in cur.execute(FIND_TABLES).fetchall():
            if name in DROPS:
                cur.execute(DROPS[name])
        for statement in CREATES:
            cur.execute(statement)


def literal_lookups_vulnerable(cur: oracledb.Cursor, ids: list[int]) -> None:
    """UNSAFE, DO NOT COPY: each id pasted into the text is a statement the server has not seen.
    With a string value it is also SQL injection; `:d` refuses anything but an integer here."""
    for item_id in ids:
        cur.execute(LITERAL_LOOKUP.format(item_id=item_id)).fetchall()


def vsql_reader(conn: oracledb.Connection, admin: dict | None) -> tuple[oracledb.Connection | None, str]:
    """The app user if it may read V$SQL, else SYSTEM (ORACLE_PASSWORD), else nobody; and why."""
    try:
        with conn.cursor() as cur:
            cur.execute(CAN_READ_VSQL).fetchone()
        return conn, "the app user reads V$SQL"
    except oracledb.DatabaseError as error:
        why = f"the app user cannot read V$SQL ({error_code(error)}: DB_DEVELOPER_ROLE has no grant on it)"
    if admin is None:
        return None, why + "; no SYSTEM password given, so the cursors are not counted"
    try:
        return oracledb.connect(**admin), why + "; SYSTEM reads it"
    except oracledb.Error as error:
        return None, why + f"; SYSTEM cannot connect ({str(error).splitlines()[0]}): cursors not counted"


def shared_cursors(conn: oracledb.Connection, admin: dict | None) -> Cursors:
    console.step("Bind variables: one shared cursor instead of one per value")
    ids = lookup_ids()
    with conn.cursor() as cur:
        cur.executemany(INSERT_ITEM, generate_items())
        conn.commit()
        (sharing,) = cur.execute(CURSOR_SHARING).fetchone()
        with timer() as literal:
            literal_lookups_vulnerable(cur, ids)
        with timer() as bound:
            for item_id in ids:
                cur.execute(BOUND_LOOKUP, id=item_id).fetchall()
    seconds = {"literals": literal.seconds, "binds": bound.seconds}
    reader, why = vsql_reader(conn, admin)
    counts = {form: (None, None) for form in PATTERNS}
    if reader is not None:
        with reader.cursor() as cur:
            for form, pattern in PATTERNS.items():
                counts[form] = cur.execute(
                    CURSOR_COUNTS, pattern=pattern, schema=conn.username.upper()
                ).fetchone()[:2]
        if reader is not conn:
            reader.close()
    who = None if reader is None else "app user" if reader is conn else "SYSTEM"
    texts, children = ({form: c[i] for form, c in counts.items()} for i in (0, 1))
    console.say(f"{why}. cursor_sharing = {sharing} (V$PARAMETER, which the app user may read).")
    console.table(
        [f"{len(ids)} lookups with", "SQL texts in V$SQL", "child cursors", "time"],
        [[form, texts[form], children[form], console.seconds(seconds[form])] for form in PATTERNS],
    )
    return Cursors(len(ids), sharing, who, texts, children, seconds)


def claim(conn: oracledb.Connection, statement: str, fetch: int, **binds) -> list[int]:
    """A claiming SELECT that fetches `fetch` rows in its first round trip (SKIP LOCKED locks rows as fetched)."""
    with conn.cursor() as cur:
        cur.prefetchrows = cur.arraysize = fetch
        return [row[0] for row in cur.execute(statement, binds).fetchmany(fetch)]


def take(conn: oracledb.Connection, ids: list[int], worker: str) -> int:
    """Mark claimed jobs taken and commit: the rows the server updated (a job someone took counts 0)."""
    taken = 0
    if ids:
        with conn.cursor() as cur:
            cur.executemany(TAKE_JOB, [{"worker": worker, "id": job} for job in ids], arraydmlrowcounts=True)
            taken = sum(cur.getarraydmlrowcounts())
    conn.commit()
    return taken


def refused(conn: oracledb.Connection, statement: str) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        claim(conn, statement, 1)
        code = "no error"
    except oracledb.DatabaseError as error:
        code = error_code(error)
    conn.rollback()
    return code, time.perf_counter() - started


def take_one(worker: str):
    """A worker's operation: claim one job and take it; None when none is free, -id if it was taken already."""

    def operation(conn: oracledb.Connection, n: int) -> int | None:
        ids = claim(conn, CLAIM, 1)
        if not ids:
            conn.rollback()
            return None
        return ids[0] if take(conn, ids, worker) == 1 else -ids[0]

    return operation


def queue(params: dict) -> Queue:
    console.step("A job queue with SKIP LOCKED: two sessions, no job twice, nobody waits")
    with oracledb.connect(**params) as a, oracledb.connect(**params) as b, a.cursor() as cur:
        cur.executemany(INSERT_JOB, [{"id": i} for i in range(1, N_JOBS + 1)])
        a.commit()
        b.call_timeout = 10_000  # ms: a claim that waits on a lock fails here instead of hanging
        first = claim(a, CLAIM, JOB_BATCH)  # A holds these until it commits
        nowait, _ = refused(b, CLAIM_NOWAIT)
        wait, wait_s = refused(b, CLAIM_WAIT)
        rownum = claim(b, CLAIM_ROWNUM, JOB_BATCH, n=JOB_BATCH)
        b.rollback()
        second = claim(b, CLAIM, JOB_BATCH)
        missed = len(first) - take(a, first, "a") + len(second) - take(b, second, "b")
        with Workload() as load:
            for worker in ("a", "b"):
                load.spawn(worker, take_one(worker), connect=lambda: oracledb.connect(**params))
            deadline = time.monotonic() + 60
            while cur.execute(COUNT_JOBS, status="ready").fetchone()[0] and time.monotonic() < deadline:
                time.sleep(0.05)
        (taken,) = cur.execute(COUNT_JOBS, status="taken").fetchone()
    keys = [key for key in load.acknowledged(None) if key is not None]  # None: the queue looked empty
    positive, report = [key for key in keys if key > 0] + first + second, load.report()
    jobs = Queue(
        jobs=N_JOBS,
        batch=JOB_BATCH,
        first=len(first),
        second=len(second),
        overlap=len(set(first) & set(second)),
        nowait_error=nowait,
        wait_error=wait,
        rownum_skip_locked=len(rownum),
        taken=taken,
        taken_twice=missed + sum(key < 0 for key in keys) + len(positive) - len(set(positive)),
        failed=report.failed,
        blocked=report.blocked,
        by_worker={w: sum(1 for done in load.succeeded(w) if done.key and done.key > 0) for w in "ab"},
        wait_s=wait_s,
    )
    console.say(f"A claimed {jobs.first} jobs and holds them. Meanwhile B, on the same queue:")
    console.table(
        ["B's claim", "result"],
        [
            ["FOR UPDATE NOWAIT", nowait],
            ["FOR UPDATE WAIT 1", f"{wait} after {console.seconds(wait_s)}"],
            [f"AND ROWNUM <= {JOB_BATCH} FOR UPDATE SKIP LOCKED", f"{jobs.rownum_skip_locked} rows"],
            ["FOR UPDATE SKIP LOCKED", f"{jobs.second} other jobs (overlap {jobs.overlap})"],
        ],
    )
    console.say(
        f"Then two workers drained the queue: {taken} of {N_JOBS} taken, taken twice: {jobs.taken_twice},"
        f" failed: {jobs.failed}, over 100 ms: {jobs.blocked}; jobs per worker {jobs.by_worker}."
    )
    return jobs


def run(params: dict, admin: dict | None = None) -> ConcurrencyResult:
    """`params`: oracledb.connect() arguments of the app user; `admin`: SYSTEM's, to read V$SQL (optional)."""
    console.title("Oracle concurrency")
    with oracledb.connect(**params) as conn:
        reset(conn)
        console.say(
            f"Oracle Database {conn.version}, schema {conn.username.upper()}: tables oracle_concurrency_*."
        )
        return ConcurrencyResult(conn.version, shared_cursors(conn, admin), queue(params))


def admin_params(url: str | None = None, password: str | None = None) -> dict:
    """SYSTEM on the app user's service (ORACLE_PASSWORD): only to read V$SQL."""
    return {**oracle_params(url), "user": "system", "password": password or setting("ORACLE_PASSWORD")}


def main() -> int:
    require(*REQUIRES)
    return 0 if run(oracle_params(), admin_params()).holds else 1


if __name__ == "__main__":
    raise SystemExit(main())
