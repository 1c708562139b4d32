"""Local (Docker-less) servers, one module per engine; `server_class("redis")` finds one."""

from __future__ import annotations

import importlib

from servers.local.base import LocalServer

MODULES = {
    "postgres": "PostgresServer",
    "postgres_replica": "PostgresReplicaServer",
    "pgbouncer": "PgBouncerServer",
    "mysql": "MySQLServer",
    "redis": "RedisServer",
    "mongodb": "MongoServer",
    "neo4j": "Neo4jServer",
    "cassandra": "CassandraServer",
    "influxdb": "InfluxServer",
    "prometheus": "PrometheusServer",
    "dynamodb": "DynamoDBServer",
}


def server_class(engine: str) -> type[LocalServer] | None:
    """The launcher of an engine, or None when this checkout has none for it."""
    try:
        module = importlib.import_module(f"servers.local.{engine}")
    except ModuleNotFoundError as missing:
        if missing.name == f"servers.local.{engine}":
            return None
        raise
    return getattr(module, MODULES[engine])
