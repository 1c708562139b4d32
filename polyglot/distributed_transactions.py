"""Distributed transactions: two-phase commit, XA, in-doubt recovery, and a saga with compensations

One order touches two stores, and either both change or neither. Two-phase commit makes that
atomic: each participant prepares (PREPARE TRANSACTION in PostgreSQL, XA PREPARE in MySQL: the work
is durable and its locks held, but nothing is visible), the coordinator logs its decision, then each
commits (COMMIT PREPARED, XA COMMIT). The coordinator is crashed during the prepare phase, after its
decision, and after the first commit: the prepared branches stay in doubt, listed by
pg_prepared_xacts and XA RECOVER, holding their row locks against a concurrent writer (its attempts
fail on the lock timeout) and holding back vacuum, until a recovery step reads the coordinator's log
and finishes them: COMMIT where a decision was logged, ROLLBACK where none was (presumed abort).
First across two PostgreSQL databases (no transaction spans two databases: this needs 2PC), then
across PostgreSQL and MySQL with XA. Last, a saga across PostgreSQL (orders), Redis (stock) and
MongoDB (wallets): order, reserve stock, charge, confirm, each one local atomic step, idempotent by
the order id, with a durable log. A failure is injected before and after each step's effect (after:
the reply was lost); the orchestrator runs the compensations backwards, the failed step's included,
except for confirm, past the pivot (the charge), which is retried. Every run ends consistent: money,
stock and order states add up across the three stores. The lesson's prepared transactions (by gid
prefix) are rolled back at the start and finished or rolled back at the end, even on failure.

Engine: PostgreSQL (POSTGRES_URL; prepared transactions need max_prepared_transactions > 0: the
shared server when it has it, else a throwaway local node), schema `shop_distributed_transactions`,
databases `shop_distributed_transactions_orders` and `_stock`; MySQL 8.4 or MariaDB (MYSQL_URL; XA
RECOVER needs XA_RECOVER_ADMIN on MySQL), database `shop_distributed_transactions`; Redis
(REDIS_URL), keys `shop:distributed_transactions:*`; MongoDB (MONGO_URL), database
`shop_distributed_transactions`. Gids and xids start with `shop_distributed_transactions:`.
Run: `make up SERVICES="postgres mysql redis mongodb"` (or `make local-up`), then
`python polyglot/distributed_transactions.py`.
Look for: the in-doubt transactions in pg_prepared_xacts and XA RECOVER, the writer's failed
attempts while they hold their locks and none after recovery, and "yes" in every invariant column.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pymysql
import redis
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pymongo import MongoClient

from common import console, shop
from common.settings import CONNECT_TIMEOUT_S, mongo_url, mysql_params, postgres_url, redis_url, require
from common.workload import Workload
from servers.throwaway import NoThrowaway, throwaway

REQUIRES = ("postgres", "mysql", "mongodb", "redis")
NS = shop.namespaces("distributed_transactions")
SCHEMA = MYSQL_DATABASE = NS.postgres_schema
DB_ORDERS, DB_STOCK = f"{SCHEMA}_orders", f"{SCHEMA}_stock"
PREFIX = f"{SCHEMA}:"  # every gid / xid of this lesson starts with it
PREPARED_NEEDED = 5  # the most this lesson holds at once
N_PRODUCTS, N_CUSTOMERS = 30, 20
STOCK, WALLET = 1_000, 10_000_000  # units per sku in every store; cents in every customer's wallet
# The concurrent writer waits 100 ms for a lock in PostgreSQL, 1 s in InnoDB (whole seconds only),
# and tries for at least this long, and until one attempt failed, while the transactions are in doubt.
WINDOW_S = {"2pc": 0.5, "xa": 1.3}
PG_WRITER, MYSQL_WRITER = "-c lock_timeout=100ms", "SET SESSION innodb_lock_wait_timeout = 1"
CRASHES = {  # where the coordinator dies, one global transaction each
    "2pc": ("during prepare", "after decision", "after first commit"),
    "xa": ("during prepare", "after decision"),
}
STEPS = ("order", "reserve", "charge", "confirm")
RETRIED = {"confirm"}  # after the pivot (the charge): retried until it succeeds, never compensated
FAILURES = [None] + [(step, when) for step in STEPS for when in ("before", "after")]

COORDINATOR_LOG = "CREATE TABLE {s}.coordinator_log (gid text PRIMARY KEY, decision text NOT NULL)"
SAGA_LOG = """CREATE TABLE {s}.saga_log (order_id bigint NOT NULL, step text NOT NULL, action text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp())"""
IN_DOUBT_PG = """SELECT gid, database FROM pg_prepared_xacts WHERE starts_with(gid, %s) ORDER BY gid"""
INSERT_ORDER = "INSERT INTO {s}.orders (id, customer_id, status, total_cents) VALUES (%s, %s, %s, %s)"
INSERT_LINE = "INSERT INTO {s}.order_lines (order_id, sku, quantity, price_cents) VALUES (%s, %s, %s, %s)"
TAKE_STOCK = "UPDATE {s}.stock SET quantity = quantity - %s WHERE sku = %s"
SOLD = """SELECT sku, sum(quantity)::int FROM {s}.order_lines JOIN {s}.orders ON id = order_id
    WHERE status = 'confirmed' GROUP BY sku"""
SET_STATUS = "UPDATE {s}.orders SET status = %s WHERE id = %s AND status = 'pending'"  # once only
ORDERED = "SELECT sku, quantity FROM {s}.order_lines WHERE order_id = ANY(%s)"
DECIDED = "SELECT gid FROM {s}.coordinator_log WHERE decision = 'commit'"
TOUCH_STOCK = "UPDATE {s}.stock SET version = version + 1 WHERE sku = %s"  # the concurrent writer
MYSQL_STOCK = """CREATE TABLE stock (sku varchar(16) PRIMARY KEY, quantity int NOT NULL,
    version int NOT NULL DEFAULT 1) ENGINE=InnoDB"""
RESERVE = """if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
for i = 2, #KEYS do if tonumber(redis.call('GET', KEYS[i])) < tonumber(ARGV[i - 1]) then return 0 end end
for i = 2, #KEYS do
  redis.call('DECRBY', KEYS[i], ARGV[i - 1])
  redis.call('HSET', KEYS[1], KEYS[i], ARGV[i - 1])
end
return 1"""
RELEASE = """if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 2, #KEYS do redis.call('INCRBY', KEYS[i], redis.call('HGET', KEYS[1], KEYS[i])) end
return redis.call('DEL', KEYS[1])"""


class Crash(Exception):
    """Injected: the coordinator process dies here."""


class StepFailed(Exception):
    """Injected or real: a saga step reports failure (its effect may or may not have happened)."""


@dataclass
class TwoPhase:
    protocol: str
    in_doubt: dict[str, int]  # where they were listed -> prepared transactions of this lesson found
    writer_failed: int  # a concurrent writer's attempts on a row an in-doubt transaction locked
    writer_blocked: int  # ... that waited past 100 ms (the workload recorder's "blocked")
    recovered: dict[str, int]  # "committed" / "rolled back" -> branches the recovery step finished
    in_doubt_after: int
    writer_failed_after: int  # attempts started after the recovery
    consistent: bool  # the participants agree on which orders exist


@dataclass
class SagaRun:
    failure: str
    outcome: str  # the order's final state: confirmed, cancelled, or absent
    compensated: tuple[str, ...]
    invariants: dict[str, bool]  # checked over every saga so far, across the three stores


@dataclass
class DistributedResult:
    server: str  # where the prepared transactions ran, or why they did not
    mysql_flavour: str
    two_phase: list[TwoPhase] = field(default_factory=list)
    sagas: list[SagaRun] = field(default_factory=list)
    prepared_left: int = -1  # this lesson's prepared transactions after the end, PostgreSQL and XA

    @property
    def holds(self) -> bool:
        recovered = all(
            sum(t.in_doubt.values()) > 0 and t.in_doubt_after == 0 and t.writer_failed > 0 and t.consistent
            for t in self.two_phase
        )
        return recovered and all(all(s.invariants.values()) for s in self.sagas) and self.prepared_left == 0


def q(text: str) -> sql.Composed:
    return sql.SQL(text).format(s=sql.Identifier(SCHEMA))


def xid_of(row: tuple) -> str:
    """An XA RECOVER row (formatID, gtrid_length, bqual_length, data): the gtrid, here the whole data."""
    return row[3].decode() if isinstance(row[3], bytes) else row[3]


class PgBranch:
    """A PostgreSQL database taking part: BEGIN ... PREPARE TRANSACTION 'gid', then COMMIT PREPARED.

    A gid is unique in the whole server, so each database's branch adds its name to the global one."""

    def __init__(self, url: str, database: str, holds: str) -> None:
        self.url, self.database, self.holds, self.conn = url, database, holds, None
        self.label = f"pg_prepared_xacts ({holds} db)"

    def branch(self, gid: str) -> str:
        return f"{gid}@{self.database}"

    def connect(self) -> psycopg.Connection:
        options = "-c lock_timeout=10s"  # a lock this lesson did not expect fails the run, never hangs it
        return psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True, options=options)

    def begin(self, gid: str) -> None:
        self.conn = self.connect()
        self.conn.execute("BEGIN")

    def execute(self, statement: str, params: tuple) -> None:
        self.conn.execute(q(statement), params)

    def prepare(self, gid: str) -> None:
        self.conn.execute(sql.SQL("PREPARE TRANSACTION {}").format(sql.Literal(self.branch(gid))))

    def commit(self, gid: str) -> None:
        self.conn.execute(sql.SQL("COMMIT PREPARED {}").format(sql.Literal(self.branch(gid))))

    def finish(self, gid: str, commit: bool) -> None:
        """From a new session, as a recovery step does: any session of the same database may."""
        verb = "COMMIT PREPARED {}" if commit else "ROLLBACK PREPARED {}"
        with self.connect() as conn:
            conn.execute(sql.SQL(verb).format(sql.Literal(self.branch(gid))))

    def in_doubt(self) -> list[str]:
        with self.connect() as conn:
            rows = conn.execute(IN_DOUBT_PG, (PREFIX,)).fetchall()
        return [g.removesuffix("@" + self.database) for g, database in rows if database == self.database]

    def rows(self, statement: str, params: tuple = ()) -> list[tuple]:
        with self.connect() as conn:
            return conn.execute(q(statement), params).fetchall()

    def die(self) -> None:
        self.conn.close()  # the prepared transaction outlives its session


class MySqlBranch:
    """A MySQL database taking part: XA START / END / PREPARE, then XA COMMIT. Its database is the
    namespace, so statements drop PostgreSQL's `{s}.` qualifier."""

    def __init__(self, params: dict, holds: str = "stock") -> None:
        self.params = {**params, "database": MYSQL_DATABASE, "autocommit": True}
        self.params["init_command"] = "SET SESSION innodb_lock_wait_timeout = 10"  # never hang the run
        self.holds, self.label, self.conn = holds, "XA RECOVER", None

    def begin(self, gid: str) -> None:
        self.conn = pymysql.connect(**self.params)
        self.conn.cursor().execute("XA START %s", (gid,))

    def execute(self, statement: str, params: tuple) -> None:
        self.conn.cursor().execute(statement.replace("{s}.", ""), params)

    def prepare(self, gid: str) -> None:
        self.conn.cursor().execute("XA END %s", (gid,))
        self.conn.cursor().execute("XA PREPARE %s", (gid,))

    def commit(self, gid: str) -> None:
        self.conn.cursor().execute("XA COMMIT %s", (gid,))

    def finish(self, gid: str, commit: bool) -> None:
        with pymysql.connect(**self.params) as conn, conn.cursor() as cur:
            cur.execute("XA COMMIT %s" if commit else "XA ROLLBACK %s", (gid,))

    def in_doubt(self) -> list[str]:
        with pymysql.connect(**self.params) as conn, conn.cursor() as cur:
            cur.execute("XA RECOVER")  # formatID, gtrid_length, bqual_length, data (gtrid + bqual)
            return [xid for xid in map(xid_of, cur.fetchall()) if xid.startswith(PREFIX)]

    def rows(self, statement: str, params: tuple = ()) -> list[tuple]:
        with pymysql.connect(**self.params) as conn, conn.cursor() as cur:
            cur.execute(statement.replace("{s}.", ""), params)
            return list(cur.fetchall())

    def die(self) -> None:
        self.conn.close()


def global_transaction(
    coordinator: psycopg.Connection, branches: list, work: list, gid: str, crash: str
) -> None:
    """Phase one on every branch, the decision in the coordinator's log, phase two; dies at `crash`."""
    try:
        for branch, statements in zip(branches, work, strict=True):
            branch.begin(gid)
            for statement, params in statements:
                branch.execute(statement, params)
        for n, branch in enumerate(branches):
            branch.prepare(gid)
            if n == 0 and crash == "during prepare":  # the next branch's work dies with its session
                raise Crash(crash)
        coordinator.execute(q("INSERT INTO {s}.coordinator_log VALUES (%s, 'commit')"), (gid,))
        if crash == "after decision":
            raise Crash(crash)
        for n, branch in enumerate(branches):
            branch.commit(gid)
            if n == 0 and crash == "after first commit":
                raise Crash(crash)
    except Crash:
        for branch in branches:
            branch.die()


def recover(coordinator: psycopg.Connection, branches: list) -> Counter:
    """Finish every in-doubt branch of this lesson: commit where the log holds the decision, else roll back."""
    decided = {gid for (gid,) in coordinator.execute(q(DECIDED))}
    done = Counter()
    for branch in branches:
        for gid in branch.in_doubt():
            commit = gid in decided  # presumed abort: no decision logged, no commit
            branch.finish(gid, commit)
            done["committed" if commit else "rolled back"] += 1
    return done


def writer_during(connect, statement, params: tuple, window_s: float, recovery) -> tuple:
    """A writer on a row an in-doubt branch locked: reports while in doubt and after `recovery()`."""

    def write(conn, n: int) -> int:
        conn.cursor().execute(statement, params)
        return n

    with Workload() as load:
        load.spawn("write", write, connect=connect)
        time.sleep(window_s)
        # At least one attempt timed out on the lock before recovery releases it. On a busy machine
        # the first connect may take longer than the window, and InnoDB checks lock waits only
        # about once a second, so a 1 s wait may end after up to 2 s.
        load.wait_for_failures(1)
        outcome = recovery()
        recovered_at = load.now_s()
        load.wait_for(3)
    everything, after = load.report(), load.report(since_s=recovered_at)
    return everything.failed - after.failed, everything.blocked - after.blocked, after.failed, outcome


def work_of(order: shop.Order, prices: dict) -> dict[str, list]:
    """The statements of each role: the order and its lines, or the stock they take."""
    total = shop.order_total(order, prices)
    rows = [(INSERT_ORDER, (order.id, order.customer_id, "confirmed", total))]
    rows += [(INSERT_LINE, (order.id, sku, n, prices[sku].price_cents)) for sku, n in order.lines]
    return {"orders": rows, "stock": [(TAKE_STOCK, (n, sku)) for sku, n in order.lines]}


def agree(branches: list, orders: list[shop.Order]) -> bool:
    """The stock taken in one participant is the lines of the orders that exist in the other."""
    holding = {branch.holds: branch for branch in branches}
    taken = Counter()
    for sku, quantity in holding["orders"].rows(ORDERED, ([order.id for order in orders],)):
        taken[sku] += quantity
    stock = dict(holding["stock"].rows("SELECT sku, quantity FROM {s}.stock"))
    return all(STOCK - quantity == taken[sku] for sku, quantity in stock.items())


def two_phase(protocol: str, coordinator, branches: list, orders: list, prices: dict, writer) -> TwoPhase:
    """Crash the coordinator once per point of CRASHES, list the in-doubt branches, run a writer
    against their locks, recover from the log, and check that the participants agree."""
    for n, (order, crash) in enumerate(zip(orders, CRASHES[protocol], strict=True), start=1):
        work = work_of(order, prices)
        global_transaction(
            coordinator, branches, [work[b.holds] for b in branches], f"{PREFIX}{protocol}:{n}", crash
        )
    listed = [(gid, branch.label) for branch in branches for gid in branch.in_doubt()]
    console.table(["in doubt after the crashes", "listed by"], listed)
    locked = (orders[1].lines[0][0],)  # a row of the transaction whose decision was logged
    recovery = functools.partial(recover, coordinator, branches)  # the module's, looked up now
    failed, blocked, failed_after, done = writer_during(*writer, locked, WINDOW_S[protocol], recovery)
    in_doubt = dict(Counter(label for _gid, label in listed))
    after = sum(len(branch.in_doubt()) for branch in branches)
    return TwoPhase(
        protocol, in_doubt, failed, blocked, dict(done), after, failed_after, agree(branches, orders)
    )


def drop_leftovers(url: str, mysql: dict) -> int:
    """Roll back this lesson's prepared transactions, by gid prefix, wherever they are; return those left."""
    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        found = conn.execute(IN_DOUBT_PG, (PREFIX,)).fetchall()
    for gid, database in found:
        with psycopg.connect(make_conninfo(url, dbname=database), autocommit=True) as conn:
            conn.execute(sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(gid)))
    with pymysql.connect(**mysql, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("XA RECOVER")
        for gid in [xid for xid in map(xid_of, cur.fetchall()) if xid.startswith(PREFIX)]:
            cur.execute("XA ROLLBACK %s", (gid,))
        cur.execute("XA RECOVER")
        left = sum(xid.startswith(PREFIX) for xid in map(xid_of, cur.fetchall()))
    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        return left + len(conn.execute(IN_DOUBT_PG, (PREFIX,)).fetchall())


def build_two_phase(url: str, mysql: dict, products: list[shop.Product]) -> dict[str, str]:
    """The coordinator's log; two PostgreSQL databases with the order tables and stock; MySQL's stock."""
    urls = {db: make_conninfo(url, dbname=db) for db in (DB_ORDERS, DB_STOCK)}
    stock = [(p.sku, STOCK) for p in products]
    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
        admin.execute(q("DROP TABLE IF EXISTS {s}.coordinator_log"))
        admin.execute(q(COORDINATOR_LOG))
        for db, db_url in urls.items():
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
            with psycopg.connect(db_url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
                shop.create_order_tables(conn, SCHEMA)
                conn.cursor().executemany(q("INSERT INTO {s}.stock (sku, quantity) VALUES (%s, %s)"), stock)
    with pymysql.connect(**mysql, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS shop_distributed_transactions")  # MYSQL_DATABASE
        cur.execute("CREATE DATABASE shop_distributed_transactions")
        conn.select_db(MYSQL_DATABASE)
        cur.execute(MYSQL_STOCK)
        cur.executemany("INSERT INTO stock (sku, quantity) VALUES (%s, %s)", stock)
    return urls


class Saga:
    """Each step is one local atomic write, idempotent by the order id, and so is its compensation."""

    def __init__(self, conn: psycopg.Connection, cache: redis.Redis, wallets, prices: dict) -> None:
        self.conn, self.cache, self.wallets, self.prices = conn, cache, wallets, prices
        self.reserve_script = cache.register_script(RESERVE)
        self.release_script = cache.register_script(RELEASE)

    def keys(self, order: shop.Order) -> list[str]:
        stock = [NS.redis_key("stock", sku) for sku, _quantity in order.lines]
        return [NS.redis_key("reservation", order.id), *stock]

    def order(self, order: shop.Order) -> None:  # PostgreSQL: the order, pending
        with self.conn.transaction():
            total = shop.order_total(order, self.prices)
            self.conn.execute(q(INSERT_ORDER), (order.id, order.customer_id, "pending", total))
            for sku, quantity in order.lines:
                self.conn.execute(q(INSERT_LINE), (order.id, sku, quantity, self.prices[sku].price_cents))

    def cancel(self, order: shop.Order) -> None:
        self.conn.execute(q(SET_STATUS), ("cancelled", order.id))

    def reserve(self, order: shop.Order) -> None:  # Redis: all the lines or none, in one script
        if not self.reserve_script(keys=self.keys(order), args=[quantity for _, quantity in order.lines]):
            raise StepFailed("out of stock")

    def release(self, order: shop.Order) -> None:
        self.release_script(keys=self.keys(order))

    def charge(self, order: shop.Order) -> None:  # MongoDB: the guard and the debit in one document
        amount = shop.order_total(order, self.prices)
        guard = {"_id": order.customer_id, "balance": {"$gte": amount}, "charges": {"$ne": order.id}}
        debit = {"$inc": {"balance": -amount}, "$push": {"charges": order.id}}
        charged = self.wallets.update_one(guard, debit).modified_count
        if not charged and not self.wallets.count_documents({"_id": order.customer_id, "charges": order.id}):
            raise StepFailed("insufficient funds")

    def refund(self, order: shop.Order) -> None:
        amount = shop.order_total(order, self.prices)
        self.wallets.update_one(
            {"_id": order.customer_id, "charges": order.id},
            {"$inc": {"balance": amount}, "$pull": {"charges": order.id}},
        )

    def confirm(self, order: shop.Order) -> None:  # PostgreSQL again
        self.conn.execute(q(SET_STATUS), ("confirmed", order.id))

    def log(self, order: shop.Order, step: str, action: str) -> None:
        self.conn.execute(q("INSERT INTO {s}.saga_log VALUES (%s, %s, %s)"), (order.id, step, action))


COMPENSATIONS = {"order": "cancel", "reserve": "release", "charge": "refund"}


def orchestrate(saga: Saga, order: shop.Order, failure: tuple[str, str] | None) -> tuple[str, ...]:
    """Run the steps in order; on a failure compensate backwards, the failed step included (its effect
    may have happened: a lost reply), or retry a step after the pivot. Returns the compensations run."""
    done: list[str] = []
    for step in STEPS:
        try:
            if failure == (step, "before"):
                raise StepFailed(f"injected before {step}")
            getattr(saga, step)(order)
            if failure == (step, "after"):
                raise StepFailed(f"injected after {step}")
        except StepFailed:
            saga.log(order, step, "failed")
            if step in RETRIED:
                getattr(saga, step)(order)  # idempotent: the retry does it once, whatever happened before
                saga.log(order, step, "retried")
            else:
                undone = tuple(COMPENSATIONS[s] for s in reversed([*done, step]) if s in COMPENSATIONS)
                for compensation in undone:
                    getattr(saga, compensation)(order)
                    saga.log(order, compensation, "compensation")
                return undone
        saga.log(order, step, "done")
        done.append(step)
    return ()


def invariants(saga: Saga, skus: list[str]) -> dict[str, bool]:
    """Across the three stores: no order left pending; money and stock moved for the confirmed ones only."""
    orders = saga.conn.execute(q("SELECT id, status, total_cents FROM {s}.orders")).fetchall()
    confirmed = {order for order, status, _total in orders if status == "confirmed"}
    totals = sum(total for _order, status, total in orders if status == "confirmed")
    sold = Counter(dict(saga.conn.execute(q(SOLD)).fetchall()))
    wallets = list(saga.wallets.find())
    charged = {order for wallet in wallets for order in wallet["charges"]}
    spent = sum(WALLET - wallet["balance"] for wallet in wallets)
    stock = {sku: int(saga.cache.get(NS.redis_key("stock", sku))) for sku in skus}
    keys = saga.cache.scan_iter(match=NS.redis_key("reservation", "*"))
    reserved = {int(key.rsplit(b":", 1)[1]) for key in keys}
    return {
        "orders": {status for _order, status, _total in orders} <= {"confirmed", "cancelled"},
        "money": spent == totals and charged == confirmed,
        "stock": all(STOCK - stock[sku] == sold[sku] for sku in skus) and reserved == confirmed,
    }


def build_saga(
    conn: psycopg.Connection, cache: redis.Redis, wallets, products: list, customers: list
) -> None:
    shop.create_order_tables(conn, SCHEMA)
    conn.execute(q(SAGA_LOG))
    for key in cache.scan_iter(match=NS.redis_prefix + "*"):
        cache.delete(key)
    cache.mset({NS.redis_key("stock", p.sku): STOCK for p in products})
    wallets.drop()
    wallets.insert_many([{"_id": c.id, "balance": WALLET, "charges": []} for c in customers])


def sagas(conn, cache, mongo: MongoClient, orders: list, products: list, customers: list) -> list[SagaRun]:
    saga = Saga(conn, cache, mongo[NS.mongo_database]["wallets"], {p.sku: p for p in products})
    build_saga(conn, cache, saga.wallets, products, customers)
    runs = []
    for order, failure in zip(orders, FAILURES, strict=True):
        compensated = orchestrate(saga, order, failure)
        state = conn.execute(q("SELECT status FROM {s}.orders WHERE id = %s"), (order.id,)).fetchone()
        checked = invariants(saga, [p.sku for p in products])
        outcome = state[0] if state else "absent"
        runs.append(SagaRun(" ".join(failure or ("none",)), outcome, compensated, checked))
    return runs


def no_shared_skus(orders: list[shop.Order], n: int) -> list[shop.Order]:
    """Orders for 2PC with no product in common: an in-doubt branch would block the next one's update."""
    chosen, used = [], set()
    for order in orders:
        skus = {sku for sku, _quantity in order.lines}
        if not skus & used and len(chosen) < n:
            chosen.append(order)
            used |= skus
    return chosen


@contextlib.contextmanager
def prepared_transactions(url: str) -> Iterator[tuple[str | None, str]]:
    """The shared server when it allows enough prepared transactions, else a throwaway local node, else None."""
    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        allowed = int(conn.execute("SHOW max_prepared_transactions").fetchone()[0])
    if allowed >= PREPARED_NEEDED:
        yield url, f"the shared server (max_prepared_transactions={allowed})"
        return
    here = f"max_prepared_transactions={allowed} on the shared server"
    try:
        with throwaway("postgres", settings={"max_prepared_transactions": "20"}) as env:
            yield env["POSTGRES_URL"], f"a throwaway local node ({here})"
    except NoThrowaway:
        yield None, f"skipped: {here} and no local PostgreSQL for a throwaway node"


def show_two_phase(t: TwoPhase) -> None:
    rows = [
        (
            "a writer on a row they lock",
            f"{t.writer_failed} attempts failed, {t.writer_blocked} blocked > 100 ms",
        ),
        ("recovery from the coordinator's log", ", ".join(f"{n} {verb}" for verb, n in t.recovered.items())),
        ("in doubt after the recovery", t.in_doubt_after),
        ("the writer after the recovery", f"{t.writer_failed_after} attempts failed"),
        ("the participants agree on every order", "yes" if t.consistent else "NO"),
    ]
    console.table(["", "measured"], rows)


def distributed(
    url: str, mysql: dict, orders: list, prices: dict, products: list, result: DistributedResult
) -> None:
    """2PC between two PostgreSQL databases, then XA between PostgreSQL and MySQL, on `url`'s server."""
    try:
        drop_leftovers(url, mysql)
        urls = build_two_phase(url, mysql, products)
        in_orders = PgBranch(urls[DB_ORDERS], DB_ORDERS, holds="orders")
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as coordinator:
            console.step("Two-phase commit across two PostgreSQL databases; the coordinator dies mid-way")
            branches = [in_orders, PgBranch(urls[DB_STOCK], DB_STOCK, holds="stock")]
            connect = functools.partial(psycopg.connect, urls[DB_STOCK], autocommit=True, options=PG_WRITER)
            writer = (connect, q(TOUCH_STOCK))
            result.two_phase.append(two_phase("2pc", coordinator, branches, orders[:3], prices, writer))
            show_two_phase(result.two_phase[-1])

            console.step("XA across PostgreSQL and MySQL; the coordinator dies mid-way")
            params = {**mysql, "database": MYSQL_DATABASE, "autocommit": True, "init_command": MYSQL_WRITER}
            writer = (functools.partial(pymysql.connect, **params), TOUCH_STOCK.replace("{s}.", ""))
            branches = [MySqlBranch(mysql), in_orders]  # MySQL prepares first this time
            result.two_phase.append(two_phase("xa", coordinator, branches, orders[3:5], prices, writer))
            show_two_phase(result.two_phase[-1])
    finally:
        result.prepared_left = drop_leftovers(url, mysql)
    console.say(f"Prepared transactions of this lesson left on the servers: {result.prepared_left}.")


def run(url: str, mysql: dict, mongo: MongoClient, cache: redis.Redis) -> DistributedResult:
    """`url` is PostgreSQL's address (2PC opens sessions in databases of its own); `mysql` pymysql's arguments."""
    console.title("Distributed transactions: two-phase commit, XA, in-doubt recovery, and a saga")
    products, customers = shop.products(N_PRODUCTS), shop.customers(N_CUSTOMERS)
    orders = shop.orders(customers, products, n=40)
    two_phase_orders = no_shared_skus(orders, 5)
    orders = two_phase_orders + [o for o in orders if o not in two_phase_orders][: len(FAILURES)]
    prices = {p.sku: p for p in products}
    with pymysql.connect(**mysql) as conn, conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        version = cur.fetchone()[0]
    flavour = "MariaDB" if "MariaDB" in version else "MySQL"
    result = DistributedResult("", f"{flavour} {version.split('-')[0]}")

    console.step("Where prepared transactions can run")
    with prepared_transactions(url) as (two_phase_url, where):
        result.server = where
        console.say(f"PostgreSQL: {where}; MySQL: {result.mysql_flavour}.")
        console.say("An in-doubt transaction keeps its locks, and vacuum's horizon, until it is finished.")
        if two_phase_url:
            distributed(two_phase_url, mysql, orders, prices, products, result)

    console.step("A saga across PostgreSQL, Redis and MongoDB: a failure before and after each step")
    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
        result.sagas = sagas(conn, cache, mongo, orders[5:], products, customers)
    names = list(result.sagas[0].invariants)
    console.table(
        ["failure injected", "order ends", "compensations run", *names],
        [(s.failure, s.outcome, ", ".join(s.compensated) or "-", *("yes" if s.invariants[n] else "NO" for n in names))
         for s in result.sagas],
    )  # fmt: skip
    console.say("confirm comes after the pivot (the charge): it is retried, never compensated.")
    return result


def main() -> int:
    require(*REQUIRES)
    with (
        MongoClient(mongo_url(), serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000) as mongo,
        redis.Redis.from_url(redis_url(), socket_connect_timeout=CONNECT_TIMEOUT_S) as cache,
    ):
        result = run(postgres_url(), mysql_params(), mongo, cache)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())
