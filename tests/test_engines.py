"""Each engine the session provides: a write, then a read back through its Python driver."""

import time
import uuid

import pytest

from tests.engine_pool import engine

TOKEN = uuid.uuid4().hex  # a value no other run wrote


def postgres_roundtrip(env):
    import psycopg

    with psycopg.connect(env["POSTGRES_URL"]) as conn:
        conn.execute("CREATE TEMP TABLE probe (value text)")
        conn.execute("INSERT INTO probe VALUES (%s)", (TOKEN,))
        return conn.execute("SELECT value FROM probe").fetchone()[0]


def postgres_replica_roundtrip(env):
    """Written on the primary, read back from the replica once it has replayed the WAL."""
    import psycopg

    with psycopg.connect(engine("postgres").url, autocommit=True) as primary:
        primary.execute("CREATE TABLE IF NOT EXISTS replica_probe (value text)")
        primary.execute("INSERT INTO replica_probe VALUES (%s)", (TOKEN,))
    deadline = time.monotonic() + 30
    with psycopg.connect(env["POSTGRES_REPLICA_URL"], autocommit=True) as replica:
        while time.monotonic() < deadline:
            try:
                found = replica.execute(
                    "SELECT value FROM replica_probe WHERE value = %s", (TOKEN,)
                ).fetchone()
            except psycopg.errors.UndefinedTable:  # the CREATE TABLE has not been replayed yet
                found = None
            if found:
                return found[0]
            time.sleep(0.1)
    return None


def pgbouncer_roundtrip(env):
    import psycopg

    with psycopg.connect(env["PGBOUNCER_URL"], prepare_threshold=None) as conn:
        return conn.execute("SELECT %s::text", (TOKEN,)).fetchone()[0]


def mysql_roundtrip(env):
    import pymysql

    from common.settings import mysql_params

    with pymysql.connect(**mysql_params(env["MYSQL_URL"])) as conn, conn.cursor() as cur:
        cur.execute("CREATE TEMPORARY TABLE probe (value varchar(64))")
        cur.execute("INSERT INTO probe VALUES (%s)", (TOKEN,))
        cur.execute("SELECT value FROM probe")
        return cur.fetchone()[0]


def redis_roundtrip(env):
    import redis

    client = redis.Redis.from_url(env["REDIS_URL"], decode_responses=True)
    client.set(f"probe:{TOKEN}", TOKEN, ex=60)
    return client.get(f"probe:{TOKEN}")


def mongodb_roundtrip(env):
    import pymongo

    with pymongo.MongoClient(env["MONGO_URL"], serverSelectionTimeoutMS=5000) as client:
        collection = client["probe"]["values"]
        collection.insert_one({"_id": TOKEN, "value": TOKEN})
        found = collection.find_one({"_id": TOKEN})["value"]
        collection.delete_one({"_id": TOKEN})
        return found


def neo4j_roundtrip(env):
    import neo4j

    auth = (env["NEO4J_USER"], env["NEO4J_PASSWORD"])
    with neo4j.GraphDatabase.driver(env["NEO4J_URL"], auth=auth) as driver:
        driver.execute_query("CREATE (:Probe {value: $value})", value=TOKEN)
        records, _, _ = driver.execute_query(
            "MATCH (p:Probe {value: $value}) RETURN p.value AS v", value=TOKEN
        )
        driver.execute_query("MATCH (p:Probe {value: $value}) DELETE p", value=TOKEN)
        return records[0]["v"]


def cassandra_roundtrip(env):
    from cassandra.cluster import Cluster

    host, _, port = env["CASSANDRA_HOSTS"].split(",")[0].partition(":")
    cluster = Cluster([host], port=int(port or 9042))
    try:
        session = cluster.connect()
        session.execute(
            "CREATE KEYSPACE IF NOT EXISTS probe WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute("CREATE TABLE IF NOT EXISTS probe.values (id text PRIMARY KEY, value text)")
        session.execute(session.prepare("INSERT INTO probe.values (id, value) VALUES (?, ?)"), (TOKEN, TOKEN))
        return (
            session.execute(session.prepare("SELECT value FROM probe.values WHERE id = ?"), (TOKEN,))
            .one()
            .value
        )
    finally:
        cluster.shutdown()


def influxdb_roundtrip(env):
    from influxdb_client import InfluxDBClient, Point
    from influxdb_client.client.write_api import SYNCHRONOUS

    with InfluxDBClient(url=env["INFLUX_URL"], token=env["INFLUX_TOKEN"], org=env["INFLUX_ORG"]) as client:
        point = Point("probe").tag("token", TOKEN).field("value", 1.0)
        client.write_api(write_options=SYNCHRONOUS).write(bucket=env["INFLUX_BUCKET"], record=point)
        # InfluxDB OSS has no query parameters (a Cloud feature): the bucket is configuration,
        # and the token we look for is compared in Python rather than written into the query.
        query = 'from(bucket: "%s") |> range(start: -1h) |> filter(fn: (r) => r._measurement == "probe")'
        tables = client.query_api().query(query % env["INFLUX_BUCKET"].replace('"', ""))
        tokens = {record.values["token"] for table in tables for record in table.records}
        return TOKEN if TOKEN in tokens else None


def prometheus_roundtrip(env):
    import requests

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # its own first scrape lands a few seconds after start
        answer = requests.get(
            env["PROMETHEUS_URL"] + "/api/v1/query", params={"query": 'up{job="prometheus"}'}
        ).json()
        if answer["data"]["result"]:
            return TOKEN if answer["data"]["result"][0]["value"][1] == "1" else None
        time.sleep(0.5)
    return None


def dynamodb_roundtrip(env):
    import boto3

    client = boto3.client(
        "dynamodb",
        endpoint_url=env["DYNAMODB_URL"],
        region_name="us-east-1",
        aws_access_key_id="examples",
        aws_secret_access_key="examples",
    )
    table = f"probe-{TOKEN}"
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=table)
    client.put_item(TableName=table, Item={"id": {"S": TOKEN}})
    found = client.get_item(TableName=table, Key={"id": {"S": TOKEN}})["Item"]["id"]["S"]
    client.delete_table(TableName=table)
    return found


ROUNDTRIPS = {
    name.removesuffix("_roundtrip"): fn for name, fn in dict(globals()).items() if name.endswith("_roundtrip")
}


@pytest.mark.parametrize(
    "key", [pytest.param(key, marks=pytest.mark.engines(key), id=key) for key in sorted(ROUNDTRIPS)]
)
def test_write_then_read_back(key):
    served = engine(key)
    assert ROUNDTRIPS[key](served.env) == TOKEN
