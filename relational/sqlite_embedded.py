"""SQLite embedded: one file, WAL readers beside a writer, JSON functions, FTS5 search, rollback

An embedded database is a library, not a server: the whole database is one file the program
opens. This lesson creates that file, then shows what SQLite does well inside it. With the
default rollback journal a reader in a transaction stops a writer from committing; in WAL mode
the writer commits while the reader keeps reading the snapshot it started with, until it ends
its transaction. JSON stored as text is queried with json_extract and json_each (and indexed
on an expression). An FTS5 index ranks matching articles with bm25 and marks the hits with
snippet and highlight. A transaction that fails half-way is rolled back and leaves no row.

Engine: SQLite (the `sqlite3` module of Python's standard library), file `.local/scratch/sqlite_embedded/`.
Run: `python relational/sqlite_embedded.py` (no server to start).
Look for: "writer committed while the reader read: yes", the reader's count staying put until its
COMMIT, and the planted article ranked first with its hits between *stars*.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from common import console
from common.settings import require, scratch_dir
from common.timing import best_of

REQUIRES = ()
LESSON = "sqlite_embedded"
SEED = 11
N_ACCOUNTS = 1_000
N_ARTICLES = 20_000
NEW_ACCOUNTS = 100  # rows the writer adds while the reader holds its snapshot
SEARCH_TERM = "checkpoint"  # appears only in the planted articles below
COMMON_TERMS = ("vacuum", "latency")  # whole words of WORDS that are inside no other word, so LIKE agrees
WORDS = [
    "table",
    "index",
    "query",
    "page",
    "cache",
    "lock",
    "reader",
    "writer",
    "commit",
    "journal",
    "file",
    "schema",
    "row",
    "column",
    "value",
    "key",
    "join",
    "plan",
    "scan",
    "cursor",
    "backup",
    "vacuum",
    "trigger",
    "view",
    "record",
    "batch",
    "server",
    "client",
    "memory",
    "disk",
    "latency",
    "offset",
    "range",
    "order",
    "group",
    "filter",
    "update",
    "insert",
    "delete",
    "select",
    "merge",
    "tuple",
    "field",
    "store",
    "engine",
    "buffer",
    "stream",
]
TEAMS = ("storage", "query", "tools", "docs", "platform")
TAGS = ("howto", "internals", "performance", "release", "tutorial", "design", "testing", "mobile")
AUTHORS = [
    f"{first} {last}"
    for first in ("Ana", "Bo", "Chen", "Dara", "Eli")
    for last in ("Kim", "Lopez", "Ndiaye", "Ola")
]

# Three articles that mention the search term: in the title, three times in a short body, and
# once in a long body. bm25 with the title weighted 10x should rank them in that order.
PLANTED = [
    (
        "Checkpoint tuning for busy writers",
        "How the log is folded back into the main file during a checkpoint.",
    ),
    (
        "Log housekeeping",
        "A checkpoint copies pages back. Each checkpoint resets the log. The next checkpoint waits.",
    ),
    (
        "Notes from the storage team",
        " ".join(["The page cache keeps hot pages in memory."] * 8 + ["Once a checkpoint ran."]),
    ),
]

SCHEMA = [
    "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL)",
    "CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL,"
    " meta TEXT NOT NULL CHECK (json_valid(meta)))",
    # An external-content FTS5 table: the index only, the text stays in `articles`.
    "CREATE VIRTUAL TABLE articles_fts USING fts5(title, body, content='articles', content_rowid='id')",
    "CREATE INDEX articles_author ON articles (json_extract(meta, '$.author.name'))",
]
BALANCE_QUERY = "SELECT count(*), sum(balance) FROM accounts"
TEAM_COUNTS = (
    "SELECT json_extract(meta, '$.author.team') AS team, count(*) FROM articles GROUP BY team ORDER BY team"
)
TAG_COUNTS = (
    "SELECT tag.value, count(*) AS n FROM articles, json_each(articles.meta, '$.tags') AS tag"
    " GROUP BY tag.value ORDER BY n DESC, tag.value LIMIT 5"
)
BY_AUTHOR_PLAN = (
    "EXPLAIN QUERY PLAN SELECT count(*) FROM articles WHERE json_extract(meta, '$.author.name') = ?"
)
RANKED_SEARCH = (
    "SELECT rowid, highlight(articles_fts, 0, '*', '*'), snippet(articles_fts, 1, '*', '*', '...', 6),"
    " round(bm25(articles_fts, 10.0, 1.0), 3) FROM articles_fts WHERE articles_fts MATCH ?"
    " ORDER BY bm25(articles_fts, 10.0, 1.0)"
)
FTS_COUNT = "SELECT count(*) FROM articles_fts WHERE articles_fts MATCH ?"
LIKE_COUNT = (
    "SELECT count(*) FROM articles WHERE (title LIKE ? OR body LIKE ?) AND (title LIKE ? OR body LIKE ?)"
)


@dataclass
class Snapshot:
    rows: int
    balance: int


@dataclass
class Hit:
    article_id: int
    title: str  # with the matched words between *stars*
    snippet: str
    bm25: float  # lower ranks higher


@dataclass
class SqliteEmbeddedResult:
    database_file: str
    files_while_open: list[str]
    files_after_close: list[str]
    rollback_journal_writer_blocked: bool  # a reader's open transaction stopped the commit
    journal_mode: str
    reader_before: Snapshot
    reader_during: Snapshot  # same transaction, after the writer committed
    writer_sees: Snapshot
    reader_after: Snapshot  # a new transaction
    wal_writer_blocked: bool
    teams: dict[str, int]
    teams_expected: dict[str, int]
    top_tags: list[tuple[str, int]]
    top_tags_expected: list[tuple[str, int]]
    author_lookup_plan: str
    hits: list[Hit]
    planted_ids: list[int]
    fts_matches: int
    like_matches: int
    rows_inside_failed_transaction: int
    rows_after_rollback: int
    rollback_error: str
    seconds: dict[str, float] = field(default_factory=dict, compare=False)


def generate_articles(seed: int = SEED) -> list[tuple[int, str, str, str]]:
    """Deterministic articles: random words from WORDS, an author, a team and tags in JSON."""
    rng = random.Random(seed)
    articles = []
    for article_id in range(1, N_ARTICLES + 1):
        title = " ".join(rng.choices(WORDS, k=rng.randint(3, 6))).capitalize()
        body = " ".join(rng.choices(WORDS, k=rng.randint(30, 60))) + "."
        meta = {
            "author": {"name": rng.choice(AUTHORS), "team": rng.choice(TEAMS)},
            "tags": rng.sample(TAGS, rng.randint(1, 3)),
            "draft": rng.random() < 0.1,
        }
        articles.append((article_id, title, body, json.dumps(meta)))
    for offset, (title, body) in enumerate(PLANTED, start=1):
        meta = {"author": {"name": AUTHORS[0], "team": "storage"}, "tags": ["internals"], "draft": False}
        articles.append((N_ARTICLES + offset, title, body, json.dumps(meta)))
    return articles


def connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: the module issues no BEGIN of its own, so the transactions in this
    # lesson are exactly the BEGIN/COMMIT written below. timeout=0: a lock is reported at once
    # instead of being waited for, which is how the lesson sees who blocks whom.
    return sqlite3.connect(path, isolation_level=None, timeout=0)


def create_file(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    with closing(connect(path)) as conn:
        for statement in SCHEMA:
            conn.execute(statement)


def load(conn: sqlite3.Connection, articles: list[tuple[int, str, str, str]]) -> tuple[int, int]:
    """Accounts and articles in one transaction; returns the rows of each, counted in the file."""
    rng = random.Random(SEED)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO accounts (id, owner, balance) VALUES (?, ?, ?)",
        [(i, f"owner-{i:04d}", rng.randint(0, 10_000)) for i in range(1, N_ACCOUNTS + 1)],
    )
    conn.executemany("INSERT INTO articles (id, title, body, meta) VALUES (?, ?, ?, ?)", articles)
    conn.execute("INSERT INTO articles_fts (articles_fts) VALUES ('rebuild')")
    conn.execute("COMMIT")
    accounts = conn.execute("SELECT count(*) FROM accounts").fetchone()[0]
    return accounts, conn.execute("SELECT count(*) FROM articles").fetchone()[0]


def snapshot(conn: sqlite3.Connection) -> Snapshot:
    rows, balance = conn.execute(BALANCE_QUERY).fetchone()
    return Snapshot(rows, balance)


def write_new_accounts(writer: sqlite3.Connection) -> None:
    writer.execute("BEGIN IMMEDIATE")
    writer.executemany(
        "INSERT INTO accounts (id, owner, balance) VALUES (?, ?, ?)",
        [(N_ACCOUNTS + i, f"new-{i:03d}", 100) for i in range(1, NEW_ACCOUNTS + 1)],
    )
    writer.execute("UPDATE accounts SET balance = balance + 1")
    writer.execute("COMMIT")


def reader_blocks_writer_in_rollback_journal(path: Path) -> bool:
    """journal_mode=DELETE (the default): try to commit while another connection reads."""
    with closing(connect(path)) as reader, closing(connect(path)) as writer:
        reader.execute("BEGIN")
        snapshot(reader)  # the first read takes a SHARED lock, held until COMMIT
        try:
            write_new_accounts(writer)
            blocked = False
        except sqlite3.OperationalError as busy:  # "database is locked"
            blocked = "locked" in str(busy)
            writer.execute("ROLLBACK")
        reader.execute("COMMIT")
    return blocked


def wal_reader_beside_writer(path: Path) -> tuple[Snapshot, Snapshot, Snapshot, Snapshot, bool, list[str]]:
    with closing(connect(path)) as reader, closing(connect(path)) as writer:
        reader.execute("BEGIN")
        before = snapshot(reader)  # the snapshot starts at this first read
        try:
            write_new_accounts(writer)
            blocked = False
        except sqlite3.OperationalError:
            blocked = True
            writer.execute("ROLLBACK")
        during = snapshot(reader)
        writer_sees = snapshot(writer)
        reader.execute("COMMIT")
        after = snapshot(reader)
        files_open = sorted(p.name for p in path.parent.glob(path.name + "*"))
    return before, during, writer_sees, after, blocked, files_open


def query_json(conn: sqlite3.Connection) -> tuple[dict[str, int], list[tuple[str, int]], str]:
    teams = dict(conn.execute(TEAM_COUNTS).fetchall())
    tags = [tuple(row) for row in conn.execute(TAG_COUNTS).fetchall()]
    plan = " ".join(row[-1] for row in conn.execute(BY_AUTHOR_PLAN, (AUTHORS[0],)))
    return teams, tags, plan


def expected_json(articles: list[tuple[int, str, str, str]]) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """The same counts computed in Python from the generated data."""
    metas = [json.loads(meta) for *_, meta in articles]
    teams = dict(sorted(Counter(m["author"]["team"] for m in metas).items()))
    tags = Counter(tag for m in metas for tag in m["tags"])
    return teams, sorted(tags.items(), key=lambda item: (-item[1], item[0]))[:5]


def search(conn: sqlite3.Connection) -> list[Hit]:
    return [Hit(*row) for row in conn.execute(RANKED_SEARCH, (SEARCH_TERM,))]


def count_matches(conn: sqlite3.Connection) -> tuple[int, int, float, float]:
    """Articles holding both COMMON_TERMS: through the FTS5 index, and by scanning with LIKE."""
    match = " AND ".join(COMMON_TERMS)
    patterns = [f"%{term}%" for term in COMMON_TERMS for _column in ("title", "body")]
    fts = conn.execute(FTS_COUNT, (match,)).fetchone()[0]
    like = conn.execute(LIKE_COUNT, patterns).fetchone()[0]
    fts_s = best_of(lambda: conn.execute(FTS_COUNT, (match,)).fetchone(), repeat=5)
    like_s = best_of(lambda: conn.execute(LIKE_COUNT, patterns).fetchone(), repeat=3)
    return fts, like, fts_s, like_s


def failed_transaction(conn: sqlite3.Connection) -> tuple[int, int, str]:
    """Insert a batch of 500 articles whose last row breaks the JSON CHECK; roll back."""
    first_new = N_ARTICLES + len(PLANTED) + 1
    batch = [(first_new + i, f"Batch {i}", "body", '{"batch": true}') for i in range(499)]
    inside = 0
    conn.execute("BEGIN")
    try:
        conn.executemany("INSERT INTO articles (id, title, body, meta) VALUES (?, ?, ?, ?)", batch)
        inside = conn.execute("SELECT count(*) FROM articles WHERE id >= ?", (first_new,)).fetchone()[0]
        conn.execute(
            "INSERT INTO articles (id, title, body, meta) VALUES (?, ?, ?, ?)",
            (first_new + 499, "Broken", "body", "{not json"),
        )
        conn.execute("COMMIT")
        error = ""
    except sqlite3.IntegrityError as failed:
        error = str(failed)
        conn.execute("ROLLBACK")
    after = conn.execute("SELECT count(*) FROM articles WHERE id >= ?", (first_new,)).fetchone()[0]
    return inside, after, error


def run(path: Path) -> SqliteEmbeddedResult:
    console.title("SQLite embedded: one file, WAL, JSON, FTS5, rollback")
    seconds: dict[str, float] = {}

    console.step("One file: delete it, create it, load it")
    articles = generate_articles()
    create_file(path)
    with closing(connect(path)) as conn:
        accounts, stored_articles = load(conn, articles)
    console.say(f"{path}: {path.stat().st_size / 1024 / 1024:.1f} MB holding {accounts:,} accounts,")
    console.say(
        f"{stored_articles:,} articles and their full-text index. No server: the program opens the file."
    )

    console.step("Rollback journal (the default): a reader's open transaction stops a writer's COMMIT")
    rollback_blocked = reader_blocks_writer_in_rollback_journal(path)
    console.say(
        f"writer's COMMIT while the reader read: {'database is locked' if rollback_blocked else 'went through'}"
    )

    console.step("WAL mode: the writer commits while the reader keeps its snapshot")
    with closing(connect(path)) as conn:
        journal_mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]  # stored in the file
    before, during, writer_sees, after, wal_blocked, files_open = wal_reader_beside_writer(path)
    console.say(
        f"journal_mode = {journal_mode}; writer committed while the reader read: {'no' if wal_blocked else 'yes'}"
    )
    console.table(
        ["who", "when", "accounts", "total balance"],
        [
            ("reader", "BEGIN, first read", before.rows, before.balance),
            (
                "writer",
                f"after COMMIT of +{NEW_ACCOUNTS} rows, +1 each",
                writer_sees.rows,
                writer_sees.balance,
            ),
            ("reader", "same transaction, after the writer", during.rows, during.balance),
            ("reader", "after its own COMMIT", after.rows, after.balance),
        ],
    )
    console.say(f"files while connections are open: {', '.join(files_open)}")

    console.step("JSON in a text column: json_extract, json_each, and an index on an expression")
    teams_expected, tags_expected = expected_json(articles)
    with closing(connect(path)) as conn:
        teams, tags, plan = query_json(conn)
    console.table(["json_extract(meta, '$.author.team')", "articles"], teams.items())
    console.table(["json_each(meta, '$.tags')", "articles"], tags)
    console.say(
        f"same counts as computed in Python from the data: {teams == teams_expected and tags == tags_expected}"
    )
    console.say(f"lookup by author: {plan}")

    console.step(f"FTS5: rank the articles that mention '{SEARCH_TERM}' with bm25 (title weighted 10x)")
    with closing(connect(path)) as conn:
        hits = search(conn)
        fts, like, seconds["fts"], seconds["like"] = count_matches(conn)
    console.table(
        ["id", "highlight(title)", "snippet(body)", "bm25"],
        [(h.article_id, h.title, h.snippet, h.bm25) for h in hits],
    )
    console.say(
        f"articles with both '{COMMON_TERMS[0]}' and '{COMMON_TERMS[1]}': FTS5 {fts:,}, LIKE scan {like:,}"
    )
    console.compare("LIKE '%...%' scan", seconds["like"], "FTS5 MATCH", seconds["fts"])

    console.step("A transaction that fails half-way is rolled back: its rows are not there after")
    with closing(connect(path)) as conn:
        inside, after_rollback, error = failed_transaction(conn)
    console.say(f"rows inside the transaction: {inside}; the 500th row failed: {error}")
    console.say(f"rows after ROLLBACK: {after_rollback}")

    files_closed = sorted(p.name for p in path.parent.glob(path.name + "*"))
    console.step("Close every connection: the log is folded back, one file remains")
    console.say(f"files now: {', '.join(files_closed)} ({path.stat().st_size / 1024 / 1024:.1f} MB)")

    return SqliteEmbeddedResult(
        database_file=path.name,
        files_while_open=files_open,
        files_after_close=files_closed,
        rollback_journal_writer_blocked=rollback_blocked,
        journal_mode=journal_mode,
        reader_before=before,
        reader_during=during,
        writer_sees=writer_sees,
        reader_after=after,
        wal_writer_blocked=wal_blocked,
        teams=teams,
        teams_expected=teams_expected,
        top_tags=tags,
        top_tags_expected=tags_expected,
        author_lookup_plan=plan,
        hits=hits,
        planted_ids=[N_ARTICLES + i for i in range(1, len(PLANTED) + 1)],
        fts_matches=fts,
        like_matches=like,
        rows_inside_failed_transaction=inside,
        rows_after_rollback=after_rollback,
        rollback_error=error,
        seconds=seconds,
    )


def holds(result: SqliteEmbeddedResult) -> bool:
    """The reader blocked the writer only in the rollback journal, kept its snapshot in WAL, and the
    failed transaction left nothing."""
    return (
        result.rollback_journal_writer_blocked
        and not result.wal_writer_blocked
        and result.reader_during == result.reader_before != result.writer_sees
        and result.rows_after_rollback == 0
        and result.fts_matches == result.like_matches
    )


def main() -> int:
    require(*REQUIRES)  # nothing: SQLite is part of Python
    result = run(scratch_dir(LESSON) / f"{LESSON}.db")
    return 0 if holds(result) else 1


if __name__ == "__main__":
    raise SystemExit(main())
