"""Connection settings: one environment variable per engine, defaulting to the compose stack.

Lessons read addresses only from here. Each default matches docker-compose.yml, and
`make local-up` starts the local servers on the same ports with the same credentials, so a
lesson runs unchanged against either. Override a variable to point a lesson elsewhere.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent

# A server that is not running refuses at once; this bounds a slow answer (an unroutable
# address, or a busy server: 3 s was too short with four lessons at once on two cores).
CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class Engine:
    key: str  # used in REQUIRES, fixtures and `make up SERVICES=...`
    display: str
    variable: str  # the environment variable that holds its address
    default: str  # the compose address
    extra: tuple[tuple[str, str], ...] = ()  # credential variables a URL cannot carry
    upstream: str | None = None  # the engine it serves or copies (a pooler, a replica)
    # Its local server: the class in servers/local/<key>.py; None when only the image has it.
    launcher: str | None = None
    # The folder in servers/lookalike/ whose image stands in for the compose image where no
    # registry can be reached (CI's Docker phase); None when no lookalike can be built.
    lookalike: str | None = None

    @property
    def local(self) -> bool:
        """A local server can be installed for it (else it runs only from its image)."""
        return self.launcher is not None

    @property
    def service(self) -> str:
        """Its service in docker-compose.yml (tests/test_registry.py checks that it exists)."""
        return self.key

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


# The Cosmos DB emulators' well-known account key (Microsoft's docs publish it; not a secret).
COSMOS_EMULATOR_KEY = (
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
)

ENGINES: dict[str, Engine] = {
    engine.key: engine
    for engine in [
        Engine(
            "postgres",
            "PostgreSQL",
            "POSTGRES_URL",
            "postgresql://examples:examples@localhost:5432/examples",
            launcher="PostgresServer",
            lookalike="postgres",
        ),
        Engine(
            "postgres_replica",
            "PostgreSQL replica",
            "POSTGRES_REPLICA_URL",
            "postgresql://examples:examples@localhost:5433/examples",
            upstream="postgres",
            launcher="PostgresReplicaServer",
            lookalike="postgres",
        ),
        Engine(
            "postgres_secure",
            "PostgreSQL (TLS, pgAudit)",
            "POSTGRES_SECURE_URL",
            "postgresql://examples:examples@localhost:5435/examples",
            # The CA certificate that signed the server's: made when the server is first set up
            # (never committed); a relative path is under the repository (postgres_secure_ca()).
            (("POSTGRES_SECURE_CA", ".local/certs/postgres_secure/ca.crt"),),
            launcher="PostgresSecureServer",
            # Its image is built FROM postgres:17.6, whose lookalike stands in where no registry answers.
            lookalike="postgres",
        ),
        Engine(
            "pgbouncer",
            "PgBouncer",
            "PGBOUNCER_URL",
            "postgresql://examples:examples@localhost:6432/examples",
            upstream="postgres",
            launcher="PgBouncerServer",
            lookalike="pgbouncer",
        ),
        Engine(
            "timescaledb",
            "TimescaleDB",
            "TIMESCALE_URL",
            "postgresql://examples:examples@localhost:5434/examples",
        ),
        Engine(
            "mysql",
            "MySQL",
            "MYSQL_URL",
            "mysql://examples:examples@localhost:3306/examples",
            launcher="MySQLServer",
            lookalike="mysql",
        ),
        Engine(
            "mongodb",
            "MongoDB",
            "MONGO_URL",
            "mongodb://localhost:27017/?directConnection=true",
            launcher="MongoServer",
            lookalike="mongodb",
        ),
        Engine(
            "redis",
            "Redis",
            "REDIS_URL",
            "redis://localhost:6379/0",
            launcher="RedisServer",
            lookalike="redis",
        ),
        Engine(
            "neo4j",
            "Neo4j",
            "NEO4J_URL",
            "bolt://localhost:7687",
            (("NEO4J_USER", "neo4j"), ("NEO4J_PASSWORD", "examples-pass")),
            launcher="Neo4jServer",
            lookalike="neo4j",
        ),
        Engine(
            "influxdb",
            "InfluxDB",
            "INFLUX_URL",
            "http://localhost:8086",
            (("INFLUX_TOKEN", "examples-token"), ("INFLUX_ORG", "examples"), ("INFLUX_BUCKET", "examples")),
            launcher="InfluxServer",
            lookalike="influxdb",
        ),
        Engine(
            "cassandra",
            "Cassandra",
            "CASSANDRA_HOSTS",
            "localhost:9042",
            launcher="CassandraServer",
            lookalike="cassandra",
        ),
        Engine(
            "prometheus",
            "Prometheus",
            "PROMETHEUS_URL",
            "http://localhost:9090",
            (("PROMETHEUS_SCRAPE_PORT", "9464"),),  # where lessons serve metrics for it to scrape
            launcher="PrometheusServer",
            lookalike="prometheus",
        ),
        Engine(
            "postgres_exporter",
            "postgres_exporter",
            "POSTGRES_EXPORTER_URL",
            "http://localhost:9187",
            upstream="postgres",  # the server whose statistics it exports
            launcher="PostgresExporterServer",
            lookalike="postgres_exporter",
        ),
        Engine(
            "redis_exporter",
            "redis_exporter",
            "REDIS_EXPORTER_URL",
            "http://localhost:9121",
            upstream="redis",
            launcher="RedisExporterServer",
            lookalike="redis_exporter",
        ),
        Engine(
            "alertmanager",
            "Alertmanager",
            "ALERTMANAGER_URL",
            "http://localhost:9093",
            launcher="AlertmanagerServer",
            lookalike="alertmanager",
        ),
        Engine(
            "toxiproxy",
            "Toxiproxy",
            "TOXIPROXY_URL",
            "http://localhost:8474",
            launcher="ToxiproxyServer",
            lookalike="toxiproxy",
        ),
        Engine(
            "dynamodb",
            "DynamoDB",
            "DYNAMODB_URL",
            "http://localhost:8000",
            launcher="DynamoDBServer",
            lookalike="dynamodb",
        ),
        Engine(
            # AWS APIs with no local server of their own (Timestream, SimpleDB), served by moto:
            # compose's DynamoDB Local serves DynamoDB only.
            "moto",
            "moto (AWS APIs)",
            "MOTO_URL",
            "http://localhost:5050",
            launcher="MotoServer",
            lookalike="moto",
        ),
        Engine(
            "gremlin",
            "Gremlin Server (Neptune API)",
            "GREMLIN_URL",
            "ws://localhost:8182/gremlin",
            launcher="GremlinServer",
            lookalike="gremlin",
        ),
        Engine(
            "janusgraph",
            "JanusGraph",
            "JANUSGRAPH_URL",
            "ws://localhost:8183/gremlin",
            launcher="JanusGraphServer",
            lookalike="janusgraph",
        ),
        Engine(
            "couchdb",
            "CouchDB",
            "COUCHDB_URL",
            # CouchDB 3 has no "admin party": the URL carries the admin the compose service creates.
            "http://examples:examples@localhost:5984",
            launcher="CouchDBServer",
            lookalike="couchdb",
        ),
        Engine(
            # happybase's address: the Thrift server in front of a standalone HBase (compose's and
            # the local one alike run the master, its region server and ZooKeeper behind it).
            "hbase",
            "HBase",
            "HBASE_THRIFT_URL",
            "thrift://localhost:9095",  # 9090, the Thrift default, is Prometheus's in compose
            launcher="HBaseServer",
            lookalike="hbase",
        ),
        Engine(
            # Cosmos DB's NoSQL API over HTTPS; the emulators' key is the public, documented one.
            "cosmosdb",
            "Azure Cosmos DB",
            "COSMOS_URL",
            "https://localhost:8081",
            (("COSMOS_KEY", COSMOS_EMULATOR_KEY),),
            launcher="CosmosDBServer",
            lookalike="cosmosdb",
        ),
        Engine(
            # ArangoDB (documents, key-value and graphs in one server): image only, no local server
            # and no lookalike. The URL carries the root password the compose service sets.
            "arangodb",
            "ArangoDB",
            "ARANGO_URL",
            "http://root:examples@localhost:8529",
        ),
        Engine(
            # Microsoft SQL Server 2022 (Developer edition): image only, no local server and no
            # lookalike. The URL carries the sa password the compose service sets (the image refuses
            # one that fails SQL Server's complexity policy); a lesson creates its own database.
            "sqlserver",
            "SQL Server",
            "SQLSERVER_URL",
            "mssql://sa:Examples-Pass1@localhost:1433/master",
        ),
        Engine(
            # Oracle Database Free (gvenzl/oracle-free): image only, no local server and no lookalike.
            # The URL is the app user the image creates in the FREEPDB1 service; ORACLE_PASSWORD is
            # SYSTEM's (the compose service's ORACLE_PASSWORD), for what the app user may not read.
            "oracle",
            "Oracle Database",
            "ORACLE_URL",
            "oracle://examples:examples@localhost:1521/FREEPDB1",
            (("ORACLE_PASSWORD", "examples-admin"),),
        ),
    ]
}


# --- validation: a bad setting is one line naming the variable, the value and what is expected ----


class BadSetting(ValueError):
    """A setting that cannot be used. Its message is the one line a lesson prints."""

    def __init__(self, variable: str, value: str, problem: str, expected: str) -> None:
        super().__init__(f"{variable}={value!r} is not valid: {problem}; expected {expected}.")


# The URL schemes each engine's drivers accept, by the scheme of its compose default.
SCHEMES = {
    "postgresql": ("postgresql", "postgres"),
    "mysql": ("mysql",),
    "mongodb": ("mongodb", "mongodb+srv"),
    "redis": ("redis", "rediss"),
    "bolt": ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc"),
    "http": ("http", "https"),
    "https": ("https", "http"),  # Cosmos DB: its emulators and the service serve HTTPS
    "ws": ("ws", "wss"),  # Gremlin Server (WebSocket), as Neptune and JanusGraph serve it
    "thrift": ("thrift",),  # HBase's Thrift server (happybase), a plain TCP address
    "mssql": ("mssql",),  # SQL Server (SQLAlchemy's dialect name); sqlserver_params() splits it for pymssql
    "oracle": ("oracle",),  # Oracle (SQLAlchemy's name); oracle_params() splits it for oracledb
}


def _address_problem(value: str, default: str) -> str | None:
    """What is wrong with an address setting (a URL, or CASSANDRA_HOSTS' host:port list), if anything."""
    hosts = value
    if "://" in default:
        allowed = SCHEMES[default.partition("://")[0]]
        scheme, separator, _ = value.partition("://")
        if not separator or scheme not in allowed:
            return f"the scheme must be {'/'.join(allowed)}"
        try:
            hosts = urlsplit(value).netloc.rpartition("@")[2]
        except ValueError as error:  # urllib's own words, e.g. "Invalid IPv6 URL"
            return f"it cannot be parsed ({error})"
    for host in hosts.split(","):
        try:
            parts = urlsplit("//" + host.strip())
            port = parts.port
        except ValueError:
            return f"the port in {host.strip()!r} must be a number from 1 to 65535"
        if not parts.hostname or parts.path or parts.query:
            return f"{host.strip()!r} is not a host or host:port"
        if port == 0:
            return "the port must be a number from 1 to 65535"
    return None


def checked_url(key: str) -> str:
    """An engine's address setting (its variable, else the compose default), or BadSetting."""
    engine = ENGINES[key]
    value = engine.url
    problem = _address_problem(value, engine.default)
    if problem:
        # The value is echoed back, less any password it carries (the line may land in a CI log).
        shown = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", value)
        raise BadSetting(engine.variable, shown, problem, f"an address like {engine.default}")
    return value


def _port_problem(value: str) -> str | None:
    return None if value.isdigit() and 1 <= int(value) <= 65535 else "not a port number"


def _empty_problem(value: str) -> str | None:
    return None if value else "it is empty"


# Credential and option variables: what each must hold. Any other must not be empty.
EXTRA_CHECKS = {"PROMETHEUS_SCRAPE_PORT": (_port_problem, "a port number from 1 to 65535")}


def setting(name: str) -> str:
    """A credential or option variable, with its compose default, or BadSetting."""
    for engine in ENGINES.values():
        for variable, default in engine.extra:
            if variable == name:
                value = os.environ.get(name, default)
                check, expected = EXTRA_CHECKS.get(name, (_empty_problem, "a value that is not empty"))
                problem = check(value)
                if problem:
                    raise BadSetting(name, value, problem, expected)
                return value
    raise KeyError(name)


def postgres_url() -> str:
    return checked_url("postgres")


def postgres_replica_url() -> str:
    return checked_url("postgres_replica")


def postgres_secure_ca() -> Path:
    """POSTGRES_SECURE_CA: the CA certificate a client of postgres_secure trusts (relative: under ROOT)."""
    return ROOT / setting("POSTGRES_SECURE_CA")  # an absolute path stays as it is


def verify_full(url: str, ca: str | Path) -> str:
    """`url` with sslmode=verify-full and sslrootcert=`ca`: TLS, a certificate signed by that CA, and
    the host name checked against it. A relative `ca` is under ROOT. Replaces either if already set."""
    base, _, query = url.partition("?")
    params = [
        (k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in ("sslmode", "sslrootcert")
    ]
    params += [("sslmode", "verify-full"), ("sslrootcert", str(ROOT / ca))]
    return base + "?" + urlencode(params, safe="/", quote_via=quote)


def postgres_secure_url() -> str:
    """POSTGRES_SECURE_URL as a lesson connects with it: verify-full against POSTGRES_SECURE_CA."""
    return verify_full(checked_url("postgres_secure"), setting("POSTGRES_SECURE_CA"))


def pgbouncer_url() -> str:
    return checked_url("pgbouncer")


def timescale_url() -> str:
    return checked_url("timescaledb")


def mysql_url() -> str:
    return checked_url("mysql")


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
    """POSTGRES_URL in SQLAlchemy's form, naming the psycopg driver (either scheme spelling)."""
    return "postgresql+psycopg://" + postgres_url().partition("://")[2]


def mongo_url() -> str:
    return checked_url("mongodb")


def redis_url() -> str:
    return checked_url("redis")


def neo4j_url() -> str:
    return checked_url("neo4j")


def neo4j_auth() -> tuple[str, str]:
    return setting("NEO4J_USER"), setting("NEO4J_PASSWORD")


def influx_url() -> str:
    return checked_url("influxdb")


def cassandra_contact_points() -> tuple[list[str], int]:
    """CASSANDRA_HOSTS ("host:port,host:port") as cassandra-driver's contact points and port."""
    hosts, port = [], 9042
    for item in checked_url("cassandra").split(","):
        host, _, maybe_port = item.strip().partition(":")
        hosts.append(host)
        port = int(maybe_port or port)
    return hosts, port


def prometheus_url() -> str:
    return checked_url("prometheus")


def postgres_exporter_url() -> str:
    return checked_url("postgres_exporter")


def redis_exporter_url() -> str:
    return checked_url("redis_exporter")


def alertmanager_url() -> str:
    return checked_url("alertmanager")


def dynamodb_url() -> str:
    return checked_url("dynamodb")


def toxiproxy_url() -> str:
    """TOXIPROXY_URL: Toxiproxy's HTTP API, where proxies and their toxics are made."""
    return checked_url("toxiproxy")


def moto_url() -> str:
    """MOTO_URL: moto's server, for the AWS APIs that have no local server (Timestream, SimpleDB)."""
    return checked_url("moto")


def gremlin_url() -> str:
    """GREMLIN_URL: a Gremlin Server's WebSocket endpoint (`ws://host:8182/gremlin`), Neptune's API."""
    return checked_url("gremlin")


def janusgraph_url() -> str:
    """JANUSGRAPH_URL: JanusGraph Server's WebSocket endpoint (`ws://host:8183/gremlin` in compose)."""
    return checked_url("janusgraph")


def couchdb_url() -> str:
    """COUCHDB_URL: the server's root, credentials in it (`http://user:password@host:5984`)."""
    return checked_url("couchdb")


def hbase_url() -> str:
    """HBASE_THRIFT_URL: HBase's Thrift server (`thrift://host:9095` in compose); hbase_address() splits it."""
    return checked_url("hbase")


def hbase_address(url: str | None = None) -> tuple[str, int]:
    """HBASE_THRIFT_URL (or `url`) as happybase.Connection's host and port."""
    return ENGINES["hbase"].address(url or hbase_url())


def cosmos_url() -> str:
    """COSMOS_URL: a Cosmos DB account's endpoint (`https://host:8081/` for an emulator)."""
    return checked_url("cosmosdb")


def cosmos_client_options(url: str | None = None, key: str | None = None) -> dict:
    """Keyword arguments for azure.cosmos.CosmosClient. An emulator on this machine (a loopback host)
    serves a self-signed certificate and advertises its own address, which a mapped port changes:
    there the certificate is not verified and the client keeps to the given URL (no endpoint discovery)."""
    url = url or cosmos_url()
    local = urlsplit(url).hostname in ("localhost", "127.0.0.1", "::1")
    return {
        "url": url,
        "credential": key or setting("COSMOS_KEY"),
        "connection_verify": not local,
        "enable_endpoint_discovery": not local,
    }


def cosmos_mongo_url() -> str | None:
    """COSMOS_MONGO_URL: a Cosmos DB for MongoDB endpoint (optional; no emulator here serves one)."""
    value = os.environ.get("COSMOS_MONGO_URL", "")
    if value and _address_problem(value, "mongodb://localhost:10255"):
        raise BadSetting("COSMOS_MONGO_URL", value, "not a MongoDB address", "mongodb://... or unset")
    return value or None


def arangodb_url() -> str:
    """ARANGO_URL: an ArangoDB server, its user and password in it (`http://root:password@host:8529`)."""
    return checked_url("arangodb")


def arangodb_params(url: str | None = None) -> dict:
    """ARANGO_URL (or `url`) split for python-arango: `hosts` for ArangoClient (no credentials in it),
    `username` and `password` for ArangoClient.db()."""
    parts = urlsplit(url or arangodb_url())
    return {
        "hosts": f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}",
        "username": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
    }


def sqlserver_url() -> str:
    """SQLSERVER_URL: a SQL Server, its login and password in it (`mssql://sa:password@host:1433/master`)."""
    return checked_url("sqlserver")


def sqlserver_params(url: str | None = None, database: str | None = None) -> dict:
    """SQLSERVER_URL (or `url`) as keyword arguments for pymssql.connect(); `database` replaces the
    URL's. TDS 7.4, SQL Server 2012's protocol and later, brings nvarchar(max) (a SHOWPLAN_XML plan)
    whole rather than as legacy ntext."""
    parts = urlsplit(url or sqlserver_url())
    return {
        "server": parts.hostname or "localhost",
        "port": str(parts.port or 1433),
        "user": unquote(parts.username or "sa"),
        "password": unquote(parts.password or ""),
        "database": database or parts.path.lstrip("/") or "master",
        "login_timeout": CONNECT_TIMEOUT_S,
        "tds_version": "7.4",
    }


def oracle_url() -> str:
    """ORACLE_URL: an Oracle user and service (`oracle://user:password@host:1521/FREEPDB1`)."""
    return checked_url("oracle")


def oracle_params(url: str | None = None) -> dict:
    """ORACLE_URL (or `url`) as keyword arguments for oracledb.connect() (thin mode, no Oracle Client)."""
    parts = urlsplit(url or oracle_url())
    return {
        "user": unquote(parts.username or "examples"),
        "password": unquote(parts.password or ""),
        "host": parts.hostname or "localhost",
        "port": parts.port or 1521,
        "service_name": parts.path.lstrip("/") or "FREEPDB1",
        "tcp_connect_timeout": CONNECT_TIMEOUT_S,
    }


def scale() -> float:
    """EXAMPLES_SCALE: the data size of the performance lessons, 1.0 being full size.

    `make bench` and a plain run use full size; the smoke test runs the scripts at 0.1.
    """
    value = os.environ.get("EXAMPLES_SCALE", "1.0")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0 < number < float("inf"):
        raise BadSetting(
            "EXAMPLES_SCALE", value, "not a positive number", "a number above 0, 1.0 being full size"
        )
    return number


def flag(name: str) -> bool:
    """An on/off variable such as EXAMPLES_QUIET or EXAMPLES_NO_INSTALL: unset, 0 or 1."""
    value = os.environ.get(name, "0")
    if value not in ("0", "1", ""):
        raise BadSetting(name, value, "not 0 or 1", "1 (on) or 0 (off)")
    return value == "1"


SERVERS_MODES = ("auto", "env", "docker", "local")


def servers_mode() -> str:
    """EXAMPLES_SERVERS: where the test suite and `make demo` get servers from."""
    value = os.environ.get("EXAMPLES_SERVERS", "auto")
    if value not in SERVERS_MODES:
        raise BadSetting(
            "EXAMPLES_SERVERS", value, "not a source of servers", "one of " + ", ".join(SERVERS_MODES)
        )
    return value


def check_settings(*keys: str) -> None:
    """Read every setting a lesson on these engines can read; BadSetting names the first bad one."""
    scale()
    flag("EXAMPLES_QUIET")
    for key in keys:
        checked_url(key)
        for variable, _default in ENGINES[key].extra:
            setting(variable)


def scratch_dir(name: str) -> Path:
    """A git-ignored folder of a lesson's own, for files such as a SQLite database."""
    path = Path(os.environ.get("EXAMPLES_SCRATCH", ROOT / ".local" / "scratch")) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


# Exit code of a lesson whose server is not running or whose settings are bad (`make demo`
# reports it as "not available").
UNAVAILABLE = 2
# How a test or lesson says the MongoDB it got is the local stand-in and the fact needs the real
# server: skips with it are counted in the run's summary, and the lesson runner counts it as skipped.
NEEDS_REAL_MONGODB = "needs a real MongoDB"


def _locally_installed(key: str) -> bool:
    from servers.local import server_class  # servers/ imports this module: import when needed

    launcher = server_class(key)
    return launcher is not None and launcher.installed()


def how_to_start(key: str) -> str:
    """The commands that start an engine: Docker, or the local server (installing it first if needed)."""
    if not ENGINES[key].local:
        return f"Start it with `make up SERVICES={key}` (Docker); there is no local server for it."
    local = "`make local-up`" if _locally_installed(key) else "`make local-install` then `make local-up`"
    return f"Start it with `make up SERVICES={key}` (Docker) or {local} (local servers)."


def unreachable(key: str) -> str | None:
    """None when the engine's first address accepts a connection, else the line to print."""
    import socket

    engine = ENGINES[key]
    host, port = engine.address(checked_url(key))
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return None
    except OSError:
        return f"{engine.display} is not reachable at {host}:{port} ({engine.variable}). {how_to_start(key)}"


def require(*keys: str) -> None:
    """Exit with one line, and no traceback, when a setting is bad or a server is not running."""
    import sys

    try:
        check_settings(*keys)
        problems = (unreachable(key) for key in keys)
        problem = next((line for line in problems if line), None)
    except BadSetting as bad:
        problem = str(bad)
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(UNAVAILABLE)
