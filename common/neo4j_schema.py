"""Wait for a graph lesson's own indexes to come online, without waiting on anyone else's.

`CALL db.awaitIndexes()` waits for every index in the database inside one transaction, and
that transaction's schema lock keeps another lesson's CREATE CONSTRAINT waiting until it times
out: two lessons run side by side then stall each other for the whole timeout. Polling
`SHOW INDEXES` for the lesson's own label takes no lock that outlives one short read.
"""

from __future__ import annotations

import time

SHOW_INDEXES = (
    "SHOW INDEXES YIELD name, labelsOrTypes, state WHERE $label IN labelsOrTypes RETURN name, state"
)


def wait_until_online(driver, label: str, database: str, timeout_s: float = 120.0) -> list[str]:
    """Poll until every index on `label` is ONLINE; return their names. Raises on FAILED or timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = driver.execute_query(SHOW_INDEXES, label=label, database_=database).records
        states = {record["name"]: record["state"] for record in records}
        if "FAILED" in states.values():
            raise RuntimeError(f"an index on :{label} failed to build: {states}")
        if all(state == "ONLINE" for state in states.values()):
            return sorted(states)
        if time.monotonic() > deadline:
            raise TimeoutError(f"indexes on :{label} not online after {timeout_s:.0f} s: {states}")
        time.sleep(0.2)
