"""Constraints: the database refusing bad data, each refusal caught by its exception class and constraint name

Rules kept in application code are skipped by the next script, the next service, the next
manual fix. Rules declared in the schema hold for every writer. This lesson declares them in
PostgreSQL (NOT NULL, CHECK, UNIQUE, FOREIGN KEY with ON DELETE CASCADE, SET NULL and RESTRICT,
an EXCLUDE constraint that stops two bookings of one room from overlapping, and a DEFERRABLE
unique constraint checked at COMMIT instead of at each statement), breaks each one on purpose,
and catches what the driver raises: the psycopg exception class (NotNullViolation,
CheckViolation, UniqueViolation, ForeignKeyViolation, ExclusionViolation), the SQLSTATE and the
constraint name from `error.diag`, which is what code should branch on, never the message text.
The ON DELETE actions are counted: rows removed by CASCADE, references cleared by SET NULL,
and nothing at all deleted when RESTRICT refuses.

Engine: PostgreSQL (POSTGRES_URL), schema `constraints_integrity`, which also holds the btree_gist
extension: installed there, not in `public`, it goes with the schema and touches no one else's.
(An extension exists once per database: where another schema already has it, the lesson uses that.)
Run: `make up SERVICES=postgres` (or `make local-up`), then `python relational/constraints_integrity.py`.
Look for: the table of violations with their classes and constraint names, RESTRICT raising
ForeignKeyViolation (23503) rather than RestrictViolation, and the swap that only a deferred
constraint allows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg import sql
from psycopg.types.range import Range

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require

REQUIRES = ("postgres",)
SCHEMA = "constraints_integrity"
SEED = 5
N_CUSTOMERS, N_ORDERS, N_AGENTS, N_TICKETS = 2_000, 10_000, 40, 6_000
INVOICED_EVERY = 10  # every tenth customer has invoices, which RESTRICT protects
CASCADE_CUSTOMERS = [1, 2, 3, 4, 5]  # none of these has an invoice
RESTRICTED_CUSTOMER = INVOICED_EVERY  # the first customer with invoices
LEFT_AGENT = 7  # the agent who leaves: SET NULL on their tickets
DAY = datetime(2024, 6, 3, tzinfo=timezone.utc)

TABLES = """
CREATE TABLE customers (
    customer_id integer PRIMARY KEY,
    email text NOT NULL CONSTRAINT customers_email_key UNIQUE,
    name text NOT NULL,
    credit_limit_cents integer NOT NULL CONSTRAINT credit_limit_min_zero CHECK (credit_limit_cents >= 0)
);
CREATE TABLE orders (
    order_id integer PRIMARY KEY,
    customer_id integer NOT NULL
        CONSTRAINT orders_customer_fk REFERENCES customers ON DELETE CASCADE,
    total_cents integer NOT NULL CONSTRAINT order_total_positive CHECK (total_cents > 0)
);
CREATE TABLE invoices (
    invoice_id integer PRIMARY KEY,
    customer_id integer NOT NULL
        CONSTRAINT invoices_customer_fk REFERENCES customers ON DELETE RESTRICT,
    amount_cents integer NOT NULL
);
CREATE TABLE agents (agent_id integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE tickets (
    ticket_id integer PRIMARY KEY,
    subject text NOT NULL,
    agent_id integer CONSTRAINT tickets_agent_fk REFERENCES agents ON DELETE SET NULL
);
-- An index on each referencing column: without one, every delete of a parent scans the child.
CREATE INDEX ON orders (customer_id);
CREATE INDEX ON invoices (customer_id);
CREATE INDEX ON tickets (agent_id);

CREATE TABLE room_bookings (
    booking_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id integer NOT NULL,
    during tstzrange NOT NULL,
    -- No two rows may have the same room (=) and overlapping periods (&&). btree_gist lets a
    -- GiST index handle the plain equality on room_id.
    CONSTRAINT no_double_booking EXCLUDE USING gist (room_id WITH =, during WITH &&)
);

CREATE TABLE playlist (
    track_id integer PRIMARY KEY,
    position integer NOT NULL CONSTRAINT playlist_position_key UNIQUE
);
CREATE TABLE playlist_deferred (
    track_id integer PRIMARY KEY,
    position integer NOT NULL
        CONSTRAINT deferred_position_key UNIQUE DEFERRABLE INITIALLY DEFERRED
);
"""
# Room, start, end (exclusive) on one day.
BOOKINGS = [(1, "09:00", "10:00"), (1, "09:30", "10:30"), (1, "10:00", "11:00"), (2, "09:30", "10:30"),
            (1, "08:00", "12:00")]  # fmt: skip
PLAYLIST_INSERTS = [
    "INSERT INTO playlist VALUES (%s, %s)",
    "INSERT INTO playlist_deferred VALUES (%s, %s)",
]
# Tracks 1 and 2 trade positions in two UPDATEs; between the two, both hold position 2.
SWAP_IMMEDIATE = "UPDATE playlist SET position = %s WHERE track_id = %s"
SWAP_DEFERRED = "UPDATE playlist_deferred SET position = %s WHERE track_id = %s"
SWAPS = {
    "playlist": [(SWAP_IMMEDIATE, (2, 1)), (SWAP_IMMEDIATE, (1, 2))],
    "playlist_deferred": [(SWAP_DEFERRED, (2, 1)), (SWAP_DEFERRED, (1, 2))],
}
COUNTED_TABLES = ["customers", "orders", "invoices", "agents", "tickets"]
# Each break: a label, and the statements of one transaction that should be refused.
BREAKS: list[tuple[str, list[tuple[str, tuple]]]] = [
    (
        "NOT NULL: no email",
        [("INSERT INTO customers VALUES (%s, %s, %s, %s)", (90_001, None, "No Mail", 0))],
    ),
    (
        "CHECK: negative limit",
        [("UPDATE customers SET credit_limit_cents = %s WHERE customer_id = %s", (-500, 1))],
    ),
    (
        "UNIQUE: email taken",
        [("INSERT INTO customers VALUES (%s, %s, %s, %s)", (90_002, "customer1@example.com", "Copycat", 0))],
    ),
    (
        "FK: unknown customer",
        [("INSERT INTO orders VALUES (%s, %s, %s)", (90_003, 999_999, 1_000))],
    ),
    (
        "RESTRICT: has invoices",
        [("DELETE FROM customers WHERE customer_id = %s", (RESTRICTED_CUSTOMER,))],
    ),
]


@dataclass(frozen=True)
class Violation:
    error: str  # the psycopg.errors class
    sqlstate: str
    constraint: str | None  # error.diag.constraint_name
    table: str | None
    column: str | None
    raised_at: str  # the statement that raised it (its first word), or COMMIT

    @classmethod
    def of(cls, error: psycopg.Error, raised_at: str) -> Violation:
        diag = error.diag
        return cls(
            type(error).__name__,
            error.sqlstate or "",
            diag.constraint_name,
            diag.table_name,
            diag.column_name,
            raised_at,
        )


@dataclass
class OnDelete:
    cascade_customers_deleted: int
    cascade_their_orders: int  # orders those customers had
    cascade_orders_removed: int  # orders that went with them
    set_null_agents_tickets: int  # tickets of the agent who left
    set_null_tickets_cleared: int  # tickets that became unassigned
    set_null_tickets_left: int  # all tickets, none deleted
    restrict_customers_deleted: int  # nothing: the whole DELETE was refused
    restrict_orders_kept: int  # and the refused DELETE cascaded to none of the orders


@dataclass
class Bookings:
    attempts: list[tuple[int, str, str]]  # room, period, accepted or the violation
    accepted: int
    refused: int


@dataclass
class DeferredSwap:
    immediate_swap: Violation | None  # the plain UNIQUE refuses the first half of the swap
    deferred_swap: Violation | None  # the deferred one lets the swap finish and checks at COMMIT
    positions_after_swap: list[tuple[int, int]]
    deferred_duplicate: Violation | None  # a duplicate left at COMMIT is still refused


@dataclass
class ConstraintsResult:
    rows_loaded: dict[str, int]
    violations: dict[str, Violation]
    rows_after_violations: dict[str, int]  # unchanged: each refused transaction was rolled back
    on_delete: OnDelete
    bookings: Bookings
    deferred: DeferredSwap
    extension_schema: str = field(compare=False)

    @property
    def holds(self) -> bool:
        """Every rule refused its break, nothing changed, and only the deferred constraint allowed the swap."""
        return (
            all(self.violations.values())
            and self.rows_after_violations == self.rows_loaded
            and self.deferred.deferred_swap is None
            and self.on_delete.restrict_customers_deleted == 0
        )


def reset_schema(conn: psycopg.Connection) -> str:
    """The lesson's schema, with btree_gist inside it (DROP SCHEMA ... CASCADE takes it away again)."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    conn.commit()
    try:
        conn.execute(
            sql.SQL("CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA {}").format(sql.Identifier(SCHEMA))
        )
        conn.commit()
    except psycopg.errors.UniqueViolation:  # another session created it at the same moment
        conn.rollback()
    schema = conn.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = %s",
        ("btree_gist",),
    ).fetchone()[0]
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
    conn.execute(TABLES)
    conn.commit()
    return schema


def load(conn: psycopg.Connection) -> dict[str, int]:
    rng = random.Random(SEED)
    rows = {
        "customers": [
            (i, f"customer{i}@example.com", f"Customer {i}", rng.randrange(0, 500_000, 100))
            for i in range(1, N_CUSTOMERS + 1)
        ],
        "orders": [
            (i, rng.randint(1, N_CUSTOMERS), rng.randint(100, 90_000)) for i in range(1, N_ORDERS + 1)
        ],
        "invoices": [
            (i, customer, rng.randint(100, 90_000))
            for i, customer in enumerate(range(INVOICED_EVERY, N_CUSTOMERS + 1, INVOICED_EVERY), start=1)
        ],
        "agents": [(i, f"Agent {i}") for i in range(1, N_AGENTS + 1)],
        "tickets": [(i, f"Ticket {i}", rng.randint(1, N_AGENTS)) for i in range(1, N_TICKETS + 1)],
    }
    with conn.cursor() as cur:
        for table, table_rows in rows.items():
            with cur.copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(table))) as copy:
                for row in table_rows:
                    copy.write_row(row)
    conn.commit()
    return count_rows(conn)


def count_rows(conn: psycopg.Connection) -> dict[str, int]:
    counts = {}
    for table in COUNTED_TABLES:
        counts[table] = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()[0]
    conn.rollback()
    return counts


def attempt(conn: psycopg.Connection, statements: list[tuple[str, tuple]]) -> Violation | None:
    """Run the statements as one transaction; return the violation that stopped it, if any."""
    raised_at = ""
    try:
        for query, params in statements:
            raised_at = query.split()[0]
            conn.execute(query, params)
        raised_at = "COMMIT"  # deferred constraints are checked here
        conn.commit()
        return None
    except psycopg.errors.IntegrityError as error:
        conn.rollback()
        return Violation.of(error, raised_at)


def scalar(conn: psycopg.Connection, query: str, params: tuple = ()) -> int:
    return conn.execute(query, params).fetchone()[0]


def on_delete_actions(conn: psycopg.Connection) -> OnDelete:
    """Each referential action at work, counted inside a transaction that is then rolled back."""
    their_orders = scalar(
        conn, "SELECT count(*) FROM orders WHERE customer_id = ANY(%s)", (CASCADE_CUSTOMERS,)
    )
    orders_before = scalar(conn, "SELECT count(*) FROM orders")
    deleted = conn.execute("DELETE FROM customers WHERE customer_id = ANY(%s)", (CASCADE_CUSTOMERS,)).rowcount
    orders_removed = orders_before - scalar(conn, "SELECT count(*) FROM orders")
    conn.rollback()

    agents_tickets = scalar(conn, "SELECT count(*) FROM tickets WHERE agent_id = %s", (LEFT_AGENT,))
    unassigned_before = scalar(conn, "SELECT count(*) FROM tickets WHERE agent_id IS NULL")
    conn.execute("DELETE FROM agents WHERE agent_id = %s", (LEFT_AGENT,))
    cleared = scalar(conn, "SELECT count(*) FROM tickets WHERE agent_id IS NULL") - unassigned_before
    tickets_left = scalar(conn, "SELECT count(*) FROM tickets")
    conn.rollback()

    attempt(conn, [("DELETE FROM customers WHERE customer_id = %s", (RESTRICTED_CUSTOMER,))])
    still_there = scalar(
        conn, "SELECT count(*) FROM customers WHERE customer_id = %s", (RESTRICTED_CUSTOMER,)
    )
    orders_kept = scalar(conn, "SELECT count(*) FROM orders WHERE customer_id = %s", (RESTRICTED_CUSTOMER,))
    conn.rollback()
    return OnDelete(
        cascade_customers_deleted=deleted,
        cascade_their_orders=their_orders,
        cascade_orders_removed=orders_removed,
        set_null_agents_tickets=agents_tickets,
        set_null_tickets_cleared=cleared,
        set_null_tickets_left=tickets_left,
        restrict_customers_deleted=1 - still_there,
        restrict_orders_kept=orders_kept,
    )


def at(hh_mm: str) -> datetime:
    hours, minutes = map(int, hh_mm.split(":"))
    return DAY + timedelta(hours=hours, minutes=minutes)


def book_rooms(conn: psycopg.Connection) -> tuple[Bookings, Violation | None]:
    """Half-open periods [start, end): a booking that starts when another ends does not overlap."""
    attempts, first_refusal = [], None
    for room, start, end in BOOKINGS:
        period = Range(at(start), at(end), "[)")
        refusal = attempt(
            conn, [("INSERT INTO room_bookings (room_id, during) VALUES (%s, %s)", (room, period))]
        )
        outcome = "accepted" if refusal is None else f"{refusal.error} ({refusal.constraint})"
        attempts.append((room, f"[{start}, {end})", outcome))
        first_refusal = first_refusal or refusal
    accepted = sum(1 for *_, outcome in attempts if outcome == "accepted")
    return Bookings(attempts, accepted, len(attempts) - accepted), first_refusal


def deferred_constraints(conn: psycopg.Connection) -> DeferredSwap:
    with conn.cursor() as cur:
        for insert in PLAYLIST_INSERTS:
            cur.executemany(insert, [(track, track) for track in (1, 2, 3)])
    conn.commit()
    immediate = attempt(conn, SWAPS["playlist"])
    deferred = attempt(conn, SWAPS["playlist_deferred"])
    positions = conn.execute("SELECT track_id, position FROM playlist_deferred ORDER BY track_id").fetchall()
    conn.rollback()
    # Deferred is not switched off: a duplicate still there at COMMIT is refused, by the COMMIT.
    duplicate = attempt(conn, [(SWAP_DEFERRED, (1, 3))])
    return DeferredSwap(immediate, deferred, positions, duplicate)


def run(conn: psycopg.Connection) -> ConstraintsResult:
    console.title("Constraints: the database refuses bad data, and says which rule")

    console.step("Declare the rules in the schema")
    extension_schema = reset_schema(conn)
    console.say(
        f"NOT NULL, CHECK, UNIQUE, three FOREIGN KEYs, one EXCLUDE (btree_gist, in schema {extension_schema}),"
    )
    console.say("and one UNIQUE that is DEFERRABLE INITIALLY DEFERRED.")

    console.step("Load valid data")
    loaded = load(conn)
    console.table(["table", "rows"], loaded.items())

    console.step("Break each rule; catch the exception class and read the constraint from error.diag")
    violations = {label: attempt(conn, statements) for label, statements in BREAKS}
    after = count_rows(conn)
    _show_violations(violations)
    console.say(f"rows changed by the refused statements: {sum(after.values()) - sum(loaded.values())}")
    restrict = violations["RESTRICT: has invoices"]
    console.say(
        f"RESTRICT raised {restrict.error} ({restrict.sqlstate}), as NO ACTION does, not RestrictViolation (23001);"
        " the two differ in timing: NO ACTION can be deferred to COMMIT, RESTRICT cannot."
    )

    console.step("ON DELETE: what CASCADE, SET NULL and RESTRICT do to the rows that refer")
    actions = on_delete_actions(conn)
    console.table(
        ["action", "deleted", "effect on the rows that refer"],
        [
            ("CASCADE (orders)", f"{actions.cascade_customers_deleted} customers",
             f"{actions.cascade_orders_removed} of their {actions.cascade_their_orders} orders deleted"),
            ("SET NULL (tickets)", f"agent {LEFT_AGENT}",
             f"{actions.set_null_tickets_cleared} of their {actions.set_null_agents_tickets} tickets unassigned"),
            ("RESTRICT (invoices)", f"{actions.restrict_customers_deleted} customers",
             f"refused: their {actions.restrict_orders_kept} orders kept"),
        ],
    )  # fmt: skip
    console.say(
        f"tickets still there after SET NULL: {actions.set_null_tickets_left:,} of {loaded['tickets']:,}"
    )

    console.step("EXCLUDE: no two bookings of one room may overlap")
    bookings, overlap = book_rooms(conn)
    console.table(["room", "period", "outcome"], bookings.attempts)
    console.say(
        f"accepted {bookings.accepted}, refused {bookings.refused}; [09:00, 10:00) and [10:00, 11:00) touch, not overlap"
    )
    violations["EXCLUDE: room overlap"] = overlap

    console.step("DEFERRABLE: swap two positions under a UNIQUE constraint, in one transaction")
    deferred = deferred_constraints(conn)
    violations["UNIQUE: swap"] = deferred.immediate_swap
    violations["DEFERRED: duplicate"] = deferred.deferred_duplicate
    console.table(
        ["UNIQUE constraint", "swap of tracks 1 and 2"],
        [
            ("immediate (the default)", _outcome(deferred.immediate_swap)),
            ("DEFERRABLE, deferred", _outcome(deferred.deferred_swap)),
            ("deferred, duplicate left", _outcome(deferred.deferred_duplicate)),
        ],
    )
    console.say(f"positions after the deferred swap (track, position): {deferred.positions_after_swap}")

    return ConstraintsResult(
        rows_loaded=loaded,
        violations=violations,
        rows_after_violations=after,
        on_delete=actions,
        bookings=bookings,
        deferred=deferred,
        extension_schema=extension_schema,
    )


def _outcome(violation: Violation | None) -> str:
    if violation is None:
        return "committed"
    return f"{violation.error} ({violation.constraint}) at {violation.raised_at}"


def _show_violations(violations: dict[str, Violation | None]) -> None:
    console.table(
        ["rule broken", "exception (SQLSTATE)", "diag.constraint_name"],
        [
            (label, f"{v.error} ({v.sqlstate})", v.constraint or f"(column {v.column})")
            if v
            else (label, "nothing raised", "")
            for label, v in violations.items()
        ],
    )


def main() -> int:
    require(*REQUIRES)
    with psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S) as conn:
        result = run(conn)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())
