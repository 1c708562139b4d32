"""Connection settings: one environment variable per engine, defaulting to the compose stack.

Lessons read addresses only from here. Each default matches docker-compose.yml, and
`make local-up` starts the local servers on the same ports with the same credentials, so a
lesson runs unchanged against either. Override a variable to point a lesson elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent

# Short enough that a server which is not running fails a lesson in seconds, not minutes.
CONNECT_TIMEOUT_S = 3


@dataclass(frozen=True)
class Engine:
    key: str  # used in REQUIRES, fixtures and `make up SERVICES=...`
    display: str
    variable: str  # the environment variable that holds its address
    default: str  # the compose address
    extra: tuple[tuple[str, str], ...] = ()  # credential variables a URL cannot carry
    upstream: str | None = None  # the engine it serves or copies (a pooler, a replica)
    local: bool = True  # False: no local server can be installed, only the compose image

    @property
    def url(self) -> str:
        return os.environ.get(self.variable, self.default)

    def address(self, url: str | None = None) -> tuple[str, int]:
        """Host and port of the first address (of `url`, else the current setting)."""
        first = (url or self.url).split(",")[0]
        if "://" not in first:
            first = "tcp://" + first
        parts = urlsplit(first)
        return parts.hostname or "localhost", parts.port or int(self.default.rsplit(":", 1)[-1].split("/")[0])


ENGINES: dict[str, Engine] = {
    engine.key: engine
    for engine in [
        Engine(
            "postgres", "PostgreSQL", "POSTGRES_URL", "postgresql://examples:examples@localhost:5432/examples"
        ),
        Engine(
            "postgres_replica",
            "PostgreSQL replica",
            "POSTGRES_REPLICA_URL",
            "postgresql://examples:examples@localhost:5433/examples",
            upstream="postgres",
        ),
        Engine(
            "pgbouncer",
            "PgBouncer",
            "PGBOUNCER_URL",
            "postgresql://examples:examples@localhost:6432/examples",
            upstream="postgres",
        ),
        Engine(
            "timescaledb",
            "TimescaleDB",
            "TIMESCALE_URL",
            "postgresql://examples:examples@localhost:5434/examples",
            local=False,
        ),
        Engine("mysql", "MySQL", "MYSQL_URL", "mysql://examples:examples@localhost:3306/examples"),
        Engine("mongodb", "MongoDB", "MONGO_URL", "mongodb://localhost:27017/?directConnection=true"),
        Engine("redis", "Redis", "REDIS_URL", "redis://localhost:6379/0"),
        Engine(
            "neo4j",
            "Neo4j",
            "NEO4J_URL",
            "bolt://localhost:7687",
            (("NEO4J_USER", "neo4j"), ("NEO4J_PASSWORD", "examples-pass")),
        ),
        Engine(
            "influxdb",
            "InfluxDB",
            "INFLUX_URL",
            "http://localhost:8086",
            (("INFLUX_TOKEN", "examples-token"), ("INFLUX_ORG", "examples"), ("INFLUX_BUCKET", "examples")),
        ),
        Engine("cassandra", "Cassandra", "CASSANDRA_HOSTS", "localhost:9042"),
        Engine(
            "prometheus",
            "Prometheus",
            "PROMETHEUS_URL",
            "http://localhost:9090",
            (("PROMETHEUS_SCRAPE_PORT", "9464"),),  # where lessons serve metrics for it to scrape
        ),
        Engine("dynamodb", "DynamoDB", "DYNAMODB_URL", "http://localhost:8000"),
    ]
}


def setting(name: str) -> str:
    """A credential or option variable, with its compose default."""
    for engine in ENGINES.values():
        for variable, default in engine.extra:
            if variable == name:
                return os.environ.get(name, default)
    raise KeyError(name)


def postgres_url() -> str:
    return ENGINES["postgres"].url


def postgres_replica_url() -> str:
    return ENGINES["postgres_replica"].url


def pgbouncer_url() -> str:
    return ENGINES["pgbouncer"].url


def timescale_url() -> str:
    return ENGINES["timescaledb"].url


def mysql_url() -> str:
    return ENGINES["mysql"].url


def mysql_params(url: str | None = None) -> dict:
    """MYSQL_URL (or `url`) as keyword arguments for pymysql.connect()."""
    parts = urlsplit(url or mysql_url())
    return {
        "host": parts.hostname or "localhost",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": parts.path.lstrip("/") or None,
        "connect_timeout": CONNECT_TIMEOUT_S,
    }


def sqlalchemy_mysql_url() -> str:
    """MYSQL_URL in SQLAlchemy's form, naming the PyMySQL driver."""
    return mysql_url().replace("mysql://", "mysql+pymysql://", 1)


def sqlalchemy_postgres_url() -> str:
    return postgres_url().replace("postgresql://", "postgresql+psycopg://", 1)


def mongo_url() -> str:
    return ENGINES["mongodb"].url


def redis_url() -> str:
    return ENGINES["redis"].url


def neo4j_url() -> str:
    return ENGINES["neo4j"].url


def neo4j_auth() -> tuple[str, str]:
    return setting("NEO4J_USER"), setting("NEO4J_PASSWORD")


def influx_url() -> str:
    return ENGINES["influxdb"].url


def cassandra_contact_points() -> tuple[list[str], int]:
    """CASSANDRA_HOSTS ("host:port,host:port") as cassandra-driver's contact points and port."""
    hosts, port = [], 9042
    for item in ENGINES["cassandra"].url.split(","):
        host, _, maybe_port = item.strip().partition(":")
        hosts.append(host)
        port = int(maybe_port or port)
    return hosts, port


def prometheus_url() -> str:
    return ENGINES["prometheus"].url


def dynamodb_url() -> str:
    return ENGINES["dynamodb"].url


def scale() -> float:
    """EXAMPLES_SCALE: the data size of the performance lessons, 1.0 being full size.

    `make bench` and a plain run use full size; the smoke test runs the scripts at 0.1.
    """
    return float(os.environ.get("EXAMPLES_SCALE", "1.0"))


def scratch_dir(name: str) -> Path:
    """A git-ignored folder of a lesson's own, for files such as a SQLite database."""
    path = Path(os.environ.get("EXAMPLES_SCRATCH", ROOT / ".local" / "scratch")) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


# Exit code of a lesson whose server is not running (`make demo` reports it as "not available").
UNAVAILABLE = 2


def unreachable(key: str) -> str | None:
    """None when the engine's first address accepts a connection, else the line to print."""
    import socket

    engine = ENGINES[key]
    host, port = engine.address()
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return None
    except OSError:
        local = " or `make local-up` (local servers)" if engine.local else "; there is no local server for it"
        return (
            f"{engine.display} is not reachable at {host}:{port} ({engine.variable}). "
            f"Start it with `make up SERVICES={key}` (Docker){local}."
        )


def require(*keys: str) -> None:
    """Exit with one line, and no traceback, when a server the lesson needs is not running."""
    import sys

    for key in keys:
        problem = unreachable(key)
        if problem:
            print(problem, file=sys.stderr)
            raise SystemExit(UNAVAILABLE)
