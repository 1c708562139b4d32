"""Is it ready? One real query per engine, given the environment a lesson would get.

Used for containers (a published port answers long before the server inside does) and by
the connectivity tests. A probe returns True or raises: the caller polls.
"""

from __future__ import annotations

import requests


def _postgres(env: dict) -> bool:
    import psycopg

    with psycopg.connect(env["POSTGRES_URL"], connect_timeout=2) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def _postgres_replica(env: dict) -> bool:
    """Ready once it answers as a standby: a copy that is still the primary does not count."""
    import psycopg

    with psycopg.connect(env["POSTGRES_REPLICA_URL"], connect_timeout=2) as conn:
        return conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)


def _postgres_secure(env: dict) -> bool:
    """Ready once a query answers over TLS verified against its CA (verify-full), as lessons connect."""
    import psycopg

    from common.settings import ENGINES, verify_full

    ca = env.get("POSTGRES_SECURE_CA", dict(ENGINES["postgres_secure"].extra)["POSTGRES_SECURE_CA"])
    with psycopg.connect(verify_full(env["POSTGRES_SECURE_URL"], ca), connect_timeout=2) as conn:
        return conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)


def _pgbouncer(env: dict) -> bool:
    """A query through the pooler reaches the database behind it (no prepared statements)."""
    import psycopg

    with psycopg.connect(env["PGBOUNCER_URL"], connect_timeout=2, prepare_threshold=None) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def _timescaledb(env: dict) -> bool:
    import psycopg

    with psycopg.connect(env["TIMESCALE_URL"], connect_timeout=2) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def _mysql(env: dict) -> bool:
    import pymysql

    from common.settings import mysql_params

    conn = pymysql.connect(**{**mysql_params(env["MYSQL_URL"]), "connect_timeout": 2})
    with conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        return cur.fetchone() == (1,)


def _mongodb(env: dict) -> bool:
    import pymongo
    from pymongo.errors import OperationFailure

    client = pymongo.MongoClient(env["MONGO_URL"], serverSelectionTimeoutMS=2000)
    with client:
        client.admin.command("ping")
        try:
            client.admin.command("replSetGetStatus")
        except OperationFailure as error:
            if error.code == 94:  # NotYetInitialized: a fresh compose image, initiate it
                client.admin.command(
                    "replSetInitiate", {"_id": "rs0", "members": [{"_id": 0, "host": "localhost:27017"}]}
                )
            elif error.code != 76:  # NoReplicationEnabled: a standalone server is fine too
                raise
        # replSetInitiate returns before the election: until this node is the writable
        # primary, a write fails with NotWritablePrimary. (isMaster, not hello: the local
        # stand-in knows only the older name; both answer the same question.)
        return bool(client.admin.command("isMaster").get("ismaster"))


def _redis(env: dict) -> bool:
    import redis

    return bool(redis.Redis.from_url(env["REDIS_URL"], socket_connect_timeout=2).ping())


def _neo4j(env: dict) -> bool:
    import neo4j

    auth = (env.get("NEO4J_USER", "neo4j"), env.get("NEO4J_PASSWORD", "examples-pass"))
    with neo4j.GraphDatabase.driver(env["NEO4J_URL"], auth=auth, connection_timeout=2) as driver:
        records, _, _ = driver.execute_query("RETURN 1 AS one")
        return records[0]["one"] == 1


def _influxdb(env: dict) -> bool:
    return requests.get(env["INFLUX_URL"] + "/health", timeout=2).json().get("status") == "pass"


def _cassandra(env: dict) -> bool:
    from cassandra.cluster import Cluster

    host, _, port = env["CASSANDRA_HOSTS"].split(",")[0].partition(":")
    cluster = Cluster([host], port=int(port or 9042), connect_timeout=2)
    try:
        return cluster.connect().execute("SELECT release_version FROM system.local").one() is not None
    finally:
        cluster.shutdown()


def _prometheus(env: dict) -> bool:
    return requests.get(env["PROMETHEUS_URL"] + "/-/ready", timeout=2).status_code == 200


def _metric_is_one(url: str, name: str) -> bool:
    """An exporter answers and reaches its server: its `name` metric (pg_up, redis_up) reads 1."""
    lines = requests.get(url + "/metrics", timeout=2).text.splitlines()
    return any(line.split(" ")[0] == name and float(line.split(" ")[-1]) == 1 for line in lines)


def _postgres_exporter(env: dict) -> bool:
    return _metric_is_one(env["POSTGRES_EXPORTER_URL"], "pg_up")


def _redis_exporter(env: dict) -> bool:
    return _metric_is_one(env["REDIS_EXPORTER_URL"], "redis_up")


def _alertmanager(env: dict) -> bool:
    return requests.get(env["ALERTMANAGER_URL"] + "/-/ready", timeout=2).status_code == 200


def _toxiproxy(env: dict) -> bool:
    return requests.get(env["TOXIPROXY_URL"] + "/version", timeout=2).status_code == 200


def _dynamodb(env: dict) -> bool:
    import boto3

    client = boto3.client(
        "dynamodb",
        endpoint_url=env["DYNAMODB_URL"],
        region_name="us-east-1",
        aws_access_key_id="examples",
        aws_secret_access_key="examples",
    )
    client.list_tables()
    return True


def _moto(env: dict) -> bool:
    """A real call to an API only moto serves here (DynamoDB Local answers no Timestream request)."""
    import boto3

    client = boto3.client(
        "timestream-write",
        endpoint_url=env["MOTO_URL"],
        region_name="us-east-1",
        aws_access_key_id="examples",
        aws_secret_access_key="examples",
    )
    client.list_databases()
    return True


def _gremlin_count(url: str, serializer=None) -> bool:
    """A traversal over the driver's WebSocket: g.inject(1).count() answers 1 once `g` is bound."""
    import socket
    from urllib.parse import urlsplit

    from gremlin_python.driver.client import Client

    # A refused connection first, cheaply: a driver that fails to connect leaves an event loop behind.
    parts = urlsplit(url)
    socket.create_connection((parts.hostname, parts.port or 8182), timeout=2).close()
    options = {"message_serializer": serializer} if serializer is not None else {}
    client = Client(url, "g", pool_size=1, **options)
    try:
        return client.submit("g.inject(1).count()").all().result(timeout=5) == [1]
    finally:
        client.close()


def _gremlin(env: dict) -> bool:
    return _gremlin_count(env["GREMLIN_URL"])


def _janusgraph(env: dict) -> bool:
    """As lessons connect: GraphBinary with JanusGraph's types (its edge ids are not plain Gremlin's)."""
    from janusgraph_python.driver.serializer import JanusGraphBinarySerializersV1

    return _gremlin_count(env["JANUSGRAPH_URL"], JanusGraphBinarySerializersV1())


def _couchdb(env: dict) -> bool:
    """`_all_dbs` with the URL's credentials: the HTTP layer, authentication and the database list.
    (Not `/_up`: the local stand-in has none.)"""
    answer = requests.get(env["COUCHDB_URL"].rstrip("/") + "/_all_dbs", timeout=2)
    return answer.status_code == 200 and isinstance(answer.json(), list)


def _hbase(env: dict) -> bool:
    """The table list, and a row of hbase:namespace: the master writes it at the end of its start
    (the table list answers, empty, a few seconds before a table can be created)."""
    import happybase

    from common.settings import ENGINES

    host, port = ENGINES["hbase"].address(env["HBASE_THRIFT_URL"])
    connection = happybase.Connection(host, port, timeout=5000, autoconnect=False)
    connection.open()
    try:
        tables = connection.tables()
        return isinstance(tables, list) and bool(list(connection.table("hbase:namespace").scan(limit=1)))
    finally:
        connection.close()


def _cosmosdb(env: dict) -> bool:
    """Lists the databases with the account key, as lessons connect (a signed request answered)."""
    import warnings

    from azure.cosmos import CosmosClient

    from common.settings import ENGINES, cosmos_client_options

    key = env.get("COSMOS_KEY", dict(ENGINES["cosmosdb"].extra)["COSMOS_KEY"])
    options = cosmos_client_options(env["COSMOS_URL"], key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # urllib3's warning on an emulator's self-signed certificate
        client = CosmosClient(**options, connection_timeout=2, retry_total=0)
        return isinstance(list(client.list_databases()), list)


def _arangodb(env: dict) -> bool:
    """An AQL query in _system with the URL's user and password (the image's ARANGO_ROOT_PASSWORD)."""
    from arango import ArangoClient
    from arango.http import DefaultHTTPClient

    from common.settings import arangodb_params

    params = arangodb_params(env["ARANGO_URL"])
    http = DefaultHTTPClient(request_timeout=2, retry_attempts=0)
    client = ArangoClient(hosts=params["hosts"], http_client=http, resolver_max_tries=1)
    try:
        db = client.db("_system", username=params["username"], password=params["password"])
        return list(db.aql.execute("RETURN 1")) == [1]
    finally:
        client.close()


def _sqlserver(env: dict) -> bool:
    """A query as the URL's login (the image's sa) through pymssql, as the lesson connects."""
    import pymssql

    from common.settings import sqlserver_params

    conn = pymssql.connect(**{**sqlserver_params(env["SQLSERVER_URL"]), "login_timeout": 2})
    with conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        return cur.fetchone() == (1,)


def _oracle(env: dict) -> bool:
    """A query as the URL's user in its service (the image creates APP_USER in FREEPDB1 last)."""
    import oracledb

    from common.settings import oracle_params

    params = {**oracle_params(env["ORACLE_URL"]), "tcp_connect_timeout": 2}
    with oracledb.connect(**params) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM dual")
        return cur.fetchone() == (1,)


PROBES = {
    "postgres": _postgres,
    "postgres_replica": _postgres_replica,
    "postgres_secure": _postgres_secure,
    "pgbouncer": _pgbouncer,
    "timescaledb": _timescaledb,
    "mysql": _mysql,
    "mongodb": _mongodb,
    "redis": _redis,
    "neo4j": _neo4j,
    "influxdb": _influxdb,
    "cassandra": _cassandra,
    "prometheus": _prometheus,
    "postgres_exporter": _postgres_exporter,
    "redis_exporter": _redis_exporter,
    "alertmanager": _alertmanager,
    "toxiproxy": _toxiproxy,
    "dynamodb": _dynamodb,
    "moto": _moto,
    "gremlin": _gremlin,
    "janusgraph": _janusgraph,
    "couchdb": _couchdb,
    "hbase": _hbase,
    "cosmosdb": _cosmosdb,
    "arangodb": _arangodb,
    "sqlserver": _sqlserver,
    "oracle": _oracle,
}


def probe(engine: str, env: dict) -> bool:
    return PROBES[engine](env)
