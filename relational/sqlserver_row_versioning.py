"""SQL Server row versioning: a reader blocked by a writer, READ_COMMITTED_SNAPSHOT, SNAPSHOT isolation

Under SQL Server's default READ COMMITTED, with the READ_COMMITTED_SNAPSHOT database option OFF (as
in a new SQL Server database; Azure SQL Database turns it on), a read of a row that another session
has changed and not yet committed waits for that writer's exclusive lock: sys.dm_exec_requests names
the writer as the reader's blocking_session_id, sys.dm_tran_locks shows the shared lock it waits for,
and once SET LOCK_TIMEOUT passes the read ends with error 1222. With READ_COMMITTED_SNAPSHOT ON the
same read does not wait: it returns the last committed version of the row, kept in the version store.
SNAPSHOT isolation (ALLOW_SNAPSHOT_ISOLATION ON, then SET TRANSACTION ISOLATION LEVEL SNAPSHOT) gives
a whole transaction the data as of its first read, and refuses its update of a row another session
changed since: error 3960, and the transaction is rolled back.

Engine: Microsoft SQL Server 2022 (SQLSERVER_URL, a login that may create databases, such as the
compose `sa`; image mcr.microsoft.com/mssql/server:2022-CU25-ubuntu-22.04, Developer edition),
database `sqlserver_row_versioning`, dropped and created at the start (the two options are database
options: only this lesson's database changes). Image only: no local server exists, so it runs where
Docker is. pymssql binds each %(name)s value into the text as a quoted literal before sending it.
Run: `make up SERVICES=sqlserver`, then `python relational/sqlserver_row_versioning.py`.
Look for: error 1222 with the writer as blocking_session_id, then the committed value under
READ_COMMITTED_SNAPSHOT, and error 3960 under SNAPSHOT.
Checked against:
- https://learn.microsoft.com/en-us/sql/linux/install-upgrade/quickstart-install-docker?view=sql-server-ver16
- https://learn.microsoft.com/en-us/troubleshoot/sql/releases/sqlserver-2022/cumulativeupdate25
- https://learn.microsoft.com/en-us/sql/relational-databases/sql-server-transaction-locking-and-row-versioning-guide
- https://learn.microsoft.com/en-us/sql/t-sql/statements/alter-database-transact-sql-set-options
- https://learn.microsoft.com/en-us/sql/t-sql/statements/set-transaction-isolation-level-transact-sql
- https://learn.microsoft.com/en-us/sql/t-sql/statements/set-lock-timeout-transact-sql
- https://learn.microsoft.com/en-us/sql/relational-databases/system-dynamic-management-views/sys-dm-exec-requests-transact-sql
- https://learn.microsoft.com/en-us/sql/relational-databases/system-dynamic-management-views/sys-dm-tran-locks-transact-sql
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

import pymssql

from common import console
from common.settings import require, sqlserver_params, sqlserver_url

REQUIRES = ("sqlserver",)
DATABASE = "sqlserver_row_versioning"
ACCOUNT, COMMITTED, UPDATED, LOCK_TIMEOUT_MS = 1, 100, 200, 3_000
LOCK_TIMEOUT, UPDATE_CONFLICT = 1222, 3960  # the error numbers the lesson expects

FIND_DATABASE = "SELECT DB_ID(%(name)s)"
KICK_OUT = "ALTER DATABASE sqlserver_row_versioning SET SINGLE_USER WITH ROLLBACK IMMEDIATE"
DROP_DATABASE = "DROP DATABASE sqlserver_row_versioning"
CREATE_DATABASE = "CREATE DATABASE sqlserver_row_versioning"
VERSION = """SELECT CAST(SERVERPROPERTY('ProductVersion') AS NVARCHAR(64)),
    CAST(SERVERPROPERTY('ProductUpdateLevel') AS NVARCHAR(64))"""
SESSION_ID = "SELECT @@SPID"
OPEN_TRANSACTIONS = "SELECT @@TRANCOUNT"
BEGIN = "BEGIN TRANSACTION"
COMMIT = "COMMIT TRANSACTION"

CREATE_ACCOUNTS = """CREATE TABLE dbo.accounts (
    id INT NOT NULL CONSTRAINT pk_accounts PRIMARY KEY, balance INT NOT NULL)"""
INSERT_ACCOUNT = "INSERT INTO dbo.accounts (id, balance) VALUES (%(id)s, %(balance)s)"
SET_BALANCE = "UPDATE dbo.accounts SET balance = %(balance)s WHERE id = %(id)s"
ADD_TO_BALANCE = "UPDATE dbo.accounts SET balance = balance + %(amount)s WHERE id = %(id)s"
READ_BALANCE = "SELECT balance FROM dbo.accounts WHERE id = %(id)s"
SET_LOCK_TIMEOUT = "SET LOCK_TIMEOUT %(ms)s"
BLOCKED_REQUEST = """SELECT blocking_session_id, wait_type FROM sys.dm_exec_requests
WHERE session_id = %(session)s"""
WAITING_LOCK = """SELECT resource_type, request_mode FROM sys.dm_tran_locks
WHERE request_session_id = %(session)s AND request_status = 'WAIT'"""
RCSI_ON = "ALTER DATABASE sqlserver_row_versioning SET READ_COMMITTED_SNAPSHOT ON WITH ROLLBACK IMMEDIATE"
SNAPSHOT_ON = "ALTER DATABASE sqlserver_row_versioning SET ALLOW_SNAPSHOT_ISOLATION ON"
ROW_VERSIONING = """SELECT is_read_committed_snapshot_on, snapshot_isolation_state_desc
FROM sys.databases WHERE name = %(name)s"""
ISOLATION_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL SNAPSHOT"
ISOLATION_READ_COMMITTED = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED"


@dataclass
class Blocking:
    """A read of a row a writer holds, under READ COMMITTED with READ_COMMITTED_SNAPSHOT OFF."""

    read_error: int | None  # the read's error number (1222: LOCK_TIMEOUT passed)
    blocked_by_writer: bool  # sys.dm_exec_requests named the writer as its blocking_session_id
    wait_type: str  # e.g. LCK_M_S
    waiting_lock: str  # sys.dm_tran_locks: resource type and requested mode, e.g. "KEY S"


@dataclass
class CommittedSnapshot:
    """The same read with READ_COMMITTED_SNAPSHOT ON."""

    rcsi_on: bool  # sys.databases.is_read_committed_snapshot_on after the ALTER
    read_during_write: int | None  # what the read returned while the writer held the row
    read_error: int | None
    read_after_commit: int | None  # the balance once the writer committed


@dataclass
class SnapshotConflict:
    state: str  # sys.databases.snapshot_isolation_state_desc
    reads: tuple[int, int]  # in one SNAPSHOT transaction, before and after another's commit
    conflict_error: int | None  # that transaction's update of the row (3960)
    open_after_conflict: int  # @@TRANCOUNT after it: the error rolled the transaction back
    final_balance: int


@dataclass
class RowVersioningResult:
    blocking: Blocking
    committed_snapshot: CommittedSnapshot
    snapshot: SnapshotConflict
    version: str = field(default="", compare=False)

    @property
    def holds(self) -> bool:
        """Every fact the lesson shows, as the docs describe it."""
        b, c, s = self.blocking, self.committed_snapshot, self.snapshot
        return (
            (b.read_error, b.blocked_by_writer) == (LOCK_TIMEOUT, True)
            and c.rcsi_on
            and (c.read_during_write, c.read_error, c.read_after_commit) == (COMMITTED, None, UPDATED)
            and (s.state, s.reads, s.final_balance) == ("ON", (UPDATED, UPDATED), UPDATED + 1)
            and (s.conflict_error, s.open_after_conflict) == (UPDATE_CONFLICT, 0)
        )


# --- pure logic: what the server should answer, computed without one ---------------------------


def placeholders(statement: str) -> set[str]:
    """The %(name)s parameters a statement takes (pymssql's pyformat style)."""
    return set(re.findall(r"%\((\w+)\)s", statement))


def error_number(error: Exception) -> int | None:
    """SQL Server's error number in a pymssql exception, whose arguments are (number, message)."""
    first = error.args[0] if error.args else None
    first = first[0] if isinstance(first, tuple) and first else first
    return first if isinstance(first, int) else None


# --- thin functions that talk to the server ----------------------------------------------------


def connect(url: str, database: str | None = None) -> pymssql.Connection:
    """Autocommit: every transaction here is an explicit BEGIN TRANSACTION ... COMMIT."""
    return pymssql.connect(**sqlserver_params(url, database=database), autocommit=True)


def run_sql(cur, statement: str, **params) -> None:
    """Execute with named parameters; refuses values that do not match the statement's placeholders."""
    if placeholders(statement) != set(params):
        raise ValueError(f"placeholders {sorted(placeholders(statement))}, values for {sorted(params)}")
    if params:
        cur.execute(statement, params)
    else:  # no parameters: pymssql sends the text untouched
        cur.execute(statement)


def one(cur, statement: str, **params):
    run_sql(cur, statement, **params)
    return cur.fetchone()[0]


def reset_database(admin) -> str:
    """Drop the lesson's database (sending its other sessions away first), create it; the version."""
    if one(admin, FIND_DATABASE, name=DATABASE) is not None:
        run_sql(admin, KICK_OUT)
        run_sql(admin, DROP_DATABASE)
    run_sql(admin, CREATE_DATABASE)
    run_sql(admin, VERSION)
    version, level = admin.fetchone()
    return f"{version} {level or ''}".strip()


def read_into(cur, outcome: dict) -> None:
    """READ_BALANCE, keeping its value or the number of the error it ended with (runs in a thread)."""
    try:
        outcome["value"] = one(cur, READ_BALANCE, id=ACCOUNT)
    except pymssql.DatabaseError as error:
        outcome["error"] = error_number(error)


def watch(admin, session: int, reader: threading.Thread) -> tuple[int, str, str]:
    """While the reader runs, poll its request: who blocks it, what it waits on, the lock it wants."""
    while reader.is_alive():
        run_sql(admin, BLOCKED_REQUEST, session=session)
        request = admin.fetchone()
        if request and request[0]:
            run_sql(admin, WAITING_LOCK, session=session)
            lock = admin.fetchone()
            return request[0], request[1], " ".join(lock) if lock else ""
        time.sleep(0.02)
    return 0, "", ""


def read_beside_writer(url: str, admin) -> tuple[dict, bool, str, str]:
    """A writer adds to the balance in an open transaction while a reader (LOCK_TIMEOUT set) reads it;
    then the writer commits. The read's outcome, and whether the writer was seen blocking it."""
    with connect(url, DATABASE) as writer, connect(url, DATABASE) as reader:
        wcur, rcur = writer.cursor(), reader.cursor()
        writer_session, reader_session = one(wcur, SESSION_ID), one(rcur, SESSION_ID)
        run_sql(rcur, SET_LOCK_TIMEOUT, ms=LOCK_TIMEOUT_MS)
        run_sql(wcur, BEGIN)
        run_sql(wcur, ADD_TO_BALANCE, amount=UPDATED - COMMITTED, id=ACCOUNT)
        outcome: dict = {}
        thread = threading.Thread(target=read_into, args=(rcur, outcome))
        thread.start()
        blocker, wait_type, lock = watch(admin, reader_session, thread)
        thread.join()
        run_sql(wcur, COMMIT)
    return outcome, blocker == writer_session, wait_type, lock


def snapshot_conflict(url: str) -> tuple[tuple[int, int], int | None, int, int]:
    """One SNAPSHOT transaction reads, another session commits a change, the first then updates."""
    with connect(url, DATABASE) as first, connect(url, DATABASE) as second:
        snap, other = first.cursor(), second.cursor()
        run_sql(snap, ISOLATION_SNAPSHOT)
        run_sql(snap, BEGIN)
        first_read = one(snap, READ_BALANCE, id=ACCOUNT)  # the transaction's snapshot starts here
        run_sql(other, ADD_TO_BALANCE, amount=1, id=ACCOUNT)  # commits at once: nothing blocks it
        second_read = one(snap, READ_BALANCE, id=ACCOUNT)
        conflict = None
        try:
            run_sql(snap, ADD_TO_BALANCE, amount=10, id=ACCOUNT)
        except pymssql.DatabaseError as error:
            conflict = error_number(error)
        still_open = one(snap, OPEN_TRANSACTIONS)
        run_sql(snap, ISOLATION_READ_COMMITTED)
        final = one(other, READ_BALANCE, id=ACCOUNT)
    return (first_read, second_read), conflict, still_open, final


def step_blocking(url: str, admin) -> Blocking:
    console.step("Under READ COMMITTED a reader waits for a writer's lock, until LOCK_TIMEOUT")
    with connect(url, DATABASE) as conn:
        run_sql(conn.cursor(), CREATE_ACCOUNTS)
        run_sql(conn.cursor(), INSERT_ACCOUNT, id=ACCOUNT, balance=COMMITTED)
    outcome, by_writer, wait_type, lock = read_beside_writer(url, admin)
    blocking = Blocking(outcome.get("error"), by_writer, wait_type, lock)
    console.say(
        f"The read waited ({wait_type} on a {lock} lock); blocking_session_id was the writer's: {by_writer};"
        f" after SET LOCK_TIMEOUT {LOCK_TIMEOUT_MS} it ended with error {blocking.read_error}."
    )
    return blocking


def step_committed_snapshot(url: str, admin) -> CommittedSnapshot:
    console.step("READ_COMMITTED_SNAPSHOT ON: the same read returns the last committed version")
    with connect(url, DATABASE) as conn:  # back to the committed value, for the same read once more
        run_sql(conn.cursor(), SET_BALANCE, balance=COMMITTED, id=ACCOUNT)
    run_sql(admin, RCSI_ON)  # from master: no session of this lesson is left in the database
    rcsi_on = bool(one(admin, ROW_VERSIONING, name=DATABASE))
    outcome, _, _, _ = read_beside_writer(url, admin)
    with connect(url, DATABASE) as conn:
        after_commit = one(conn.cursor(), READ_BALANCE, id=ACCOUNT)
    found = CommittedSnapshot(rcsi_on, outcome.get("value"), outcome.get("error"), after_commit)
    console.say(
        f"is_read_committed_snapshot_on: {rcsi_on}. The read beside the same open write returned"
        f" {found.read_during_write} at once (error: {found.read_error}), the last committed value;"
        f" once the writer committed, the balance read {found.read_after_commit}."
    )
    return found


def step_snapshot(url: str, admin) -> SnapshotConflict:
    console.step("SNAPSHOT isolation: one consistent view for a transaction, and an update conflict")
    run_sql(admin, SNAPSHOT_ON)
    run_sql(admin, ROW_VERSIONING, name=DATABASE)
    state = admin.fetchone()[1]
    found = SnapshotConflict(state, *snapshot_conflict(url))
    console.say(
        f"ALLOW_SNAPSHOT_ISOLATION {state}. Reads inside one SNAPSHOT transaction, before and after another"
        f" session committed a change: {found.reads}. Its own update of that row: error {found.conflict_error},"
        f" transactions left open: {found.open_after_conflict}; the balance is {found.final_balance}, the"
        " other session's."
    )
    return found


def run(url: str) -> RowVersioningResult:
    """`url`: a SQL Server login that may create databases (SQLSERVER_URL)."""
    console.title("SQL Server row versioning: blocked readers, READ_COMMITTED_SNAPSHOT, SNAPSHOT isolation")
    with connect(url) as admin_conn:  # in master: the lesson's database is dropped and altered from here
        admin = admin_conn.cursor()
        version = reset_database(admin)
        console.say(f"SQL Server {version}; database {DATABASE} created anew.")
        blocking = step_blocking(url, admin)
        committed_snapshot = step_committed_snapshot(url, admin)
        snapshot = step_snapshot(url, admin)
    return RowVersioningResult(blocking, committed_snapshot, snapshot, version)


def main() -> int:
    require(*REQUIRES)
    result = run(sqlserver_url())
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())
