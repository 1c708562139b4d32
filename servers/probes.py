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
    "dynamodb": _dynamodb,
}


def probe(engine: str, env: dict) -> bool:
    return PROBES[engine](env)
