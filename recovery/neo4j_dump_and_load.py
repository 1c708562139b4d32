"""Neo4j backups: neo4j-admin database dump and load, and the users a dump of `neo4j` leaves behind

On Neo4j Community the backup is `neo4j-admin database dump`: one archive of a database's store
files, made while that database is stopped (Enterprise adds `neo4j-admin database backup`, online).
`neo4j-admin database load` writes the archive into another server's folder before it starts. The
lesson builds a graph on a node of its own (people, companies, KNOWS and WORKS_AT with properties of
several types, two uniqueness constraints, and an application user), asks for a dump while it runs
(refused: the database is in use), stops it, dumps, loads the dump into a new node and starts it.
The restore is compared with the source at backup time: node and relationship counts, the
constraints, and a SHA-256 over every node's labels and properties and every relationship's type,
endpoints and properties, all sorted.

Then the silent failure: every count and checksum is equal, and the application cannot log in.
Users, passwords and roles live in the `system` database, and a dump of `neo4j` does not hold them.
Dumping `system` too and loading it into the restored node (stopped again) brings the user back.

Engine: Neo4j 5 (NEO4J_URL, only read: its edition says whether an online backup exists there); the
drill runs on throwaway nodes of its own (the local Neo4j launcher, whose jars include neo4j-admin's
`org.neo4j.cli.AdminTool`, run with NEO4J_HOME and NEO4J_CONF set to the node's folder): local only,
no container node runs neo4j-admin yet.
Run: `make local-install` (local Neo4j), `make up SERVICES=neo4j` (or `make local-up`), then
`python recovery/neo4j_dump_and_load.py`.
Look for: the dump refused while the database runs; equal counts, constraints and SHA-256 after the
load; the application user missing (login refused) until `system` is loaded too.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from neo4j import GraphDatabase
from neo4j.exceptions import AuthError

from common import console
from common.settings import CONNECT_TIMEOUT_S, neo4j_auth, neo4j_url, require
from common.timing import timer
from servers.throwaway import NoThrowaway, node

REQUIRES = ("neo4j",)
# Why its nodes are local, never containers (node() says it when the local Neo4j is absent):
LOCAL_ONLY = "neo4j-admin runs here from the local Neo4j's own jars on a stopped node's folder"
SEED = 31
PEOPLE, COMPANIES, KNOWS = 1_000, 50, 3_000
APP_USER, APP_PASSWORD = "app_reader", "app-reader-pass"  # on the lesson's own nodes only
ADMIN_MAIN = "org.neo4j.cli.AdminTool"  # what the `neo4j-admin` script runs
SCHEMA = [
    "CREATE CONSTRAINT person_id IF NOT EXISTS FOR (p:Person) REQUIRE p.id IS UNIQUE",
    "CREATE CONSTRAINT company_id IF NOT EXISTS FOR (c:Company) REQUIRE c.id IS UNIQUE",
]
NODES = """
UNWIND $companies AS c CREATE (:Company {id: c.id, name: c.name, founded: c.founded})
WITH count(*) AS done
UNWIND $people AS p
CREATE (person:Person {id: p.id, name: p.name, born: p.born, score: p.score, tags: p.tags})
WITH person, p MATCH (c:Company {id: p.company}) CREATE (person)-[:WORKS_AT {since: p.since}]->(c)
"""
EDGES = """
UNWIND $pairs AS pair MATCH (a:Person {id: pair[0]}), (b:Person {id: pair[1]})
CREATE (a)-[:KNOWS {since: pair[2]}]->(b)
"""
NODE_ROWS = "MATCH (n) RETURN labels(n) AS labels, properties(n) AS props"
EDGE_ROWS = """
MATCH (a)-[r]->(b) RETURN labels(a)[0] + ':' + a.id AS start, type(r) AS type,
    properties(r) AS props, labels(b)[0] + ':' + b.id AS end
"""


@dataclass(frozen=True)
class State:
    nodes: int
    relationships: int
    constraints: tuple[str, ...]
    sha256: str  # over the sorted nodes (labels, properties) and relationships (type, ends, properties)


@dataclass
class DumpResult:
    refused_while_running: str = ""  # neo4j-admin's words when the database was still running
    at_backup: State | None = None
    restored: State | None = None
    users_source: tuple[str, ...] = ()
    users_restored: tuple[str, ...] = ()  # after loading `neo4j` only
    app_login_restored: str = ""  # "ok" or the end of the error code, after loading `neo4j` only
    users_with_system: tuple[str, ...] = ()  # after loading `system` too
    app_login_with_system: str = ""
    restored_with_system: State | None = None
    figures: dict[str, str] = field(default_factory=dict, compare=False)  # sizes and times
    server: str = field(default="", compare=False)

    @property
    def holds(self) -> bool:
        return (
            "in use" in self.refused_while_running
            and self.restored == self.at_backup == self.restored_with_system
            and self.at_backup is not None
            and APP_USER in self.users_source
            and APP_USER not in self.users_restored
            and self.app_login_restored != "ok"
            and self.users_with_system == self.users_source
            and self.app_login_with_system == "ok"
        )


def driver(server, user: str = "neo4j", password: str | None = None):
    auth = (user, password or server.password)
    return GraphDatabase.driver(server.url(), auth=auth, connection_timeout=CONNECT_TIMEOUT_S)


def admin(server, *args: str) -> subprocess.CompletedProcess:
    """neo4j-admin against the node's folder: the launcher's own JVM and classpath, AdminTool's main."""
    argv = server.command()
    argv = [*argv[: argv.index("Neo4jLauncher")], ADMIN_MAIN, *args]
    home = server.workdir.resolve()
    env = {**os.environ, "NEO4J_HOME": str(home), "NEO4J_CONF": str(server.config_dir.resolve())}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def checked(finished: subprocess.CompletedProcess) -> None:
    if finished.returncode != 0:
        raise RuntimeError(f"neo4j-admin failed: {last_error(finished)}")


def last_error(finished: subprocess.CompletedProcess) -> str:
    lines = [line for line in (finished.stdout + finished.stderr).splitlines() if "ERROR" in line]
    return lines[0].split("] ", 1)[-1] if lines else (finished.stdout + finished.stderr).strip()[-200:]


def build_graph(server) -> None:
    rng = random.Random(SEED)
    companies = [{"id": f"c{i}", "name": f"Company {i}", "founded": 1950 + i % 70} for i in range(COMPANIES)]
    people = [
        {"id": f"p{i}", "name": f"Person {i}", "born": date(1960, 1, 1) + timedelta(days=rng.randrange(15_000)),
         "score": round(rng.random() * 100, 3), "tags": rng.sample(["ops", "dev", "data", "sales", "hr"], 2),
         "company": f"c{rng.randrange(COMPANIES)}", "since": 2000 + rng.randrange(24)}
        for i in range(PEOPLE)
    ]  # fmt: skip
    pairs = set()
    while len(pairs) < KNOWS:
        a, b = rng.sample(range(PEOPLE), 2)
        pairs.add((f"p{a}", f"p{b}"))
    with driver(server) as graph:
        for statement in SCHEMA:
            graph.execute_query(statement)
        graph.execute_query(NODES, companies=companies, people=people)
        graph.execute_query(EDGES, pairs=[[a, b, 2000 + rng.randrange(24)] for a, b in sorted(pairs)])
        graph.execute_query("CREATE USER $user SET PASSWORD $pw CHANGE NOT REQUIRED",
                            user=APP_USER, pw=APP_PASSWORD, database_="system")  # fmt: skip


def state(server) -> State:
    with driver(server) as graph:
        nodes = graph.execute_query(NODE_ROWS).records
        edges = graph.execute_query(EDGE_ROWS).records
        constraints = graph.execute_query(
            "SHOW CONSTRAINTS YIELD name, labelsOrTypes, properties, type"
        ).records
    lines = sorted(json.dumps([r["labels"], r["props"]], sort_keys=True, default=str) for r in nodes)
    lines += sorted(json.dumps([r["start"], r["type"], r["props"], r["end"]], sort_keys=True) for r in edges)
    shown = (f"{r['name']} {r['type']} {r['labelsOrTypes']} {r['properties']}" for r in constraints)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return State(len(nodes), len(edges), tuple(sorted(shown)), digest)


def users(server) -> tuple[str, ...]:
    with driver(server) as graph:
        records = graph.execute_query("SHOW USERS YIELD user", database_="system").records
    return tuple(sorted(record["user"] for record in records))


def app_login(server) -> str:
    """The application's own login: one query as APP_USER, or the server's error code."""
    try:
        with driver(server, APP_USER, APP_PASSWORD) as app:
            app.execute_query("MATCH (p:Person) RETURN count(p) AS n")
        return "ok"
    except AuthError as refused:
        return (refused.code or type(refused).__name__).rsplit(".", 1)[-1]  # Unauthorized


def file_size(path: Path) -> str:
    return console.size(path.stat().st_size)


def dump(server, database: str, folder: Path, result: DumpResult) -> None:
    with timer() as took:
        checked(admin(server, "database", "dump", database, f"--to-path={folder}", "--overwrite-destination"))
    result.figures[f"dump {database}"] = (
        f"{file_size(folder / f'{database}.dump')} in {console.seconds(took.seconds)}"
    )


def load(server, database: str, folder: Path, result: DumpResult) -> None:
    with timer() as took:
        checked(
            admin(server, "database", "load", database, f"--from-path={folder}", "--overwrite-destination")
        )
    result.figures[f"load {database}"] = console.seconds(took.seconds)


def backup(source, folder: Path, result: DumpResult) -> None:
    console.step("Build a graph with constraints and an application user on a node of the lesson's own")
    build_graph(source)
    result.at_backup, result.users_source = state(source), users(source)
    console.say(f"{result.at_backup.nodes:,} nodes, {result.at_backup.relationships:,} relationships, "
                f"{len(result.at_backup.constraints)} constraints; users {', '.join(result.users_source)}")  # fmt: skip

    console.step("Dump the database: refused while it runs, taken once it is stopped")
    running = admin(source, "database", "dump", "neo4j", f"--to-path={folder}")
    result.refused_while_running = last_error(running) if running.returncode else ""
    console.say(f"while running: exit {running.returncode}, {result.refused_while_running or 'no refusal'}")
    with timer() as stopped:
        source.stop()
    result.figures["stop"] = console.seconds(stopped.seconds)
    dump(source, "neo4j", folder, result)
    console.say(f"stopped in {result.figures['stop']}; dump neo4j: {result.figures['dump neo4j']}")


def restore(folder: Path, restored, result: DumpResult) -> None:
    console.step("Load the dump into a new node before it starts, start it, compare")
    restored.workdir.mkdir(parents=True, exist_ok=True)
    restored.prepare()  # neo4j.conf: neo4j-admin reads where the databases live from it
    load(restored, "neo4j", folder, result)
    result.figures["start restored"] = console.seconds(restored.start_and_wait(tied_to_parent=True))
    result.restored = state(restored)
    result.users_restored, result.app_login_restored = users(restored), app_login(restored)
    rows = [("source at backup", result.at_backup), ("restored", result.restored)]
    console.table(
        ["graph", "nodes", "relationships", "constraints", "SHA-256"],
        [(name, s.nodes, s.relationships, len(s.constraints), s.sha256[:16]) for name, s in rows],
    )
    console.say(f"load {result.figures['load neo4j']}, start {result.figures['start restored']}: "
                f"equal to the source at backup time: {result.restored == result.at_backup}")  # fmt: skip


def users_left_behind(source, restored, folder: Path, result: DumpResult) -> None:
    console.step("How it fails silently: the data is back, the application's login is not")
    console.say(f"users on the source: {', '.join(result.users_source)}; on the restore: "
                f"{', '.join(result.users_restored)}; {APP_USER} logs in: {result.app_login_restored}")  # fmt: skip
    console.say("Users, passwords and roles live in the `system` database; the dump of `neo4j` has none.")
    dump(source, "system", folder, result)
    restored.stop()
    load(restored, "system", folder, result)
    restored.start_and_wait(tied_to_parent=True)
    result.users_with_system, result.app_login_with_system = users(restored), app_login(restored)
    result.restored_with_system = state(restored)
    console.table(
        ["restore", "users", f"{APP_USER} logs in", "data equal"],
        [("neo4j only", ", ".join(result.users_restored), result.app_login_restored,
          result.restored == result.at_backup),
         ("neo4j + system", ", ".join(result.users_with_system), result.app_login_with_system,
          result.restored_with_system == result.at_backup)],
    )  # fmt: skip
    console.say(f"dump system: {result.figures['dump system']}, load system: {result.figures['load system']}. "
                "Back up `system` with every database, and test a restore with the application's login.")  # fmt: skip


def server_note(url: str, auth: tuple[str, str]) -> str:
    with GraphDatabase.driver(url, auth=auth, connection_timeout=CONNECT_TIMEOUT_S) as graph:
        record = graph.execute_query("CALL dbms.components() YIELD versions, edition").records[0]
    edition = record["edition"]
    how = (
        "online backups with `neo4j-admin database backup`"
        if edition == "enterprise"
        else "no online backup: a dump needs the database stopped"
    )
    return f"Neo4j {record['versions'][0]} {edition} at NEO4J_URL: {how}"


def run(shared_note: str = "") -> DumpResult:
    """The drill on nodes of its own; `shared_note` describes the server at NEO4J_URL (only read)."""
    console.title("Neo4j backups: neo4j-admin dump and load, and what a dump of `neo4j` leaves behind")
    result = DumpResult(server=shared_note)
    if shared_note:
        console.say(shared_note)
    with (
        tempfile.TemporaryDirectory(prefix="neo4j-dumps-") as dumps,
        node("neo4j", local_only=LOCAL_ONLY) as source,
        node("neo4j", start=False, local_only=LOCAL_ONLY) as restored,
    ):
        backup(source, Path(dumps), result)
        restore(Path(dumps), restored, result)
        users_left_behind(source, restored, Path(dumps), result)
    return result


def main() -> int:
    require(*REQUIRES)
    try:
        result = run(server_note(neo4j_url(), neo4j_auth()))
    except NoThrowaway as absent:
        console.error(str(absent))
        return 2
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())
