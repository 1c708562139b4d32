"""Redis ACLs: a user per service, limited by key pattern, command category and channel

Since Redis 6 a server can hold many users, each with its own password and its own rules: which
keys (`~pattern`), which commands (`+@read`, `-@dangerous`, `+publish`) and which pub/sub channels
(`&pattern`). This lesson creates three service users (a cache that reads and writes only
`cache:*` keys, a reporter that only reads, an event publisher that only publishes on
`events:*`), connects as each and tries the same actions, as a matrix of user by action where every
denied cell is a NOPERM error the lesson caught; reads the denials back from `ACL LOG`; shows that
the server stores only a SHA-256 of each password; and, on a throwaway Redis of its own (never the
shared one), locks down the `default` user: a password, and the dangerous commands removed.

Engine: Redis 6+ (REDIS_URL), keys under `redis_acl:`, ACL users `redis_acl_<service>_<run>`, all
deleted at the end even when the lesson fails. The shared `default` user is only read. The
lockdown runs on a throwaway Redis (the local redis-server, else a container of the compose image);
without either, the lesson says so in one line and skips that step.
Run: `make up SERVICES=redis` (or `make local-up`), then `python security/redis_acl.py`.
Look for: the matrix (NoPermissionError in every cell the rules forbid), one ACL LOG entry per
denial with its reason (command, key or channel), and the anonymous FLUSHALL that works before the
lockdown and fails after it.
"""

from __future__ import annotations

import hashlib
import inspect
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from redis.exceptions import AuthenticationError, NoPermissionError, RedisError

from common import console
from common.settings import CONNECT_TIMEOUT_S, redis_url, require
from servers.throwaway import NoThrowaway, throwaway

REQUIRES = ("redis",)
PREFIX = "redis_acl:"
USER_PREFIX = "redis_acl_"
SCAN_COUNT = 500
CACHE_KEY = PREFIX + "cache:page:1"
SESSION_KEY = PREFIX + "session:1"
EVENTS_CHANNEL = PREFIX + "events:orders"
AUDIT_CHANNEL = PREFIX + "audit"
# Rules are applied left to right: `-@dangerous` after `+@read` takes KEYS back out of @read.
SERVICES = {
    "cache": ["~" + PREFIX + "cache:*", "resetchannels", "-@all", "+@read", "+@write", "-@dangerous"],
    "reporter": ["~" + PREFIX + "*", "resetchannels", "-@all", "+@read", "-@dangerous"],
    "events": ["resetkeys", "&" + PREFIX + "events:*", "-@all", "+@pubsub"],
}
ACTIONS: dict[str, Callable[[redis.Redis], object]] = {
    "GET cache:page:1": lambda c: c.get(CACHE_KEY),
    "SET cache:page:1": lambda c: c.set(CACHE_KEY, "<html>"),
    "GET session:1": lambda c: c.get(SESSION_KEY),
    "KEYS redis_acl:*": lambda c: c.keys(PREFIX + "*"),
    "CONFIG GET maxmemory": lambda c: c.config_get("maxmemory"),
    "PUBLISH events:orders": lambda c: c.publish(EVENTS_CHANNEL, "order 1 paid"),
    "PUBLISH audit": lambda c: c.publish(AUDIT_CHANNEL, "who did what"),
}


@dataclass
class Lockdown:
    """On the throwaway Redis: who could do what before and after the default user was locked down."""

    before: dict[str, type[Exception] | None]  # "who: action" -> None (allowed) or the error class
    keys_flushed: tuple[int, int]  # keys before and after the anonymous FLUSHALL
    after: dict[str, type[Exception] | None]


@dataclass
class AclResult:
    matrix: dict[str, dict[str, type[Exception] | None]]  # service -> action -> None or error class
    logged: dict[str, dict[tuple[str, str], int]]  # service -> (reason, object) -> count, from ACL LOG
    bad_password: type[Exception] | None
    bad_password_logged: bool
    stored_as_sha256: bool
    default_user_unchanged: bool
    users_left: list[str]
    lockdown: Lockdown | None
    no_throwaway: str = field(default="", compare=False)

    def denied(self, service: str) -> int:
        return sum(outcome is not None for outcome in self.matrix[service].values())


def reset(client: redis.Redis) -> int:
    """Delete this lesson's keys and any user an interrupted run left behind."""
    names = list(client.scan_iter(match=PREFIX + "*", count=SCAN_COUNT))
    deleted = client.unlink(*names) if names else 0
    delete_users(client)
    return deleted


def our_users(client: redis.Redis) -> list[str]:
    return sorted(name for name in client.acl_users() if name.startswith(USER_PREFIX))


def delete_users(client: redis.Redis) -> None:
    names = our_users(client)
    if names:
        client.acl_deluser(*names)


def connect_as(client: redis.Redis, username: str | None, password: str | None) -> redis.Redis:
    """A new connection to the same server as `client`, authenticated as `username`."""
    kwargs = client.connection_pool.connection_kwargs
    # No CLIENT SETINFO on connect (Redis 7.2+): a user without @connection would be refused it, and
    # ACL LOG would record that refusal beside the ones the lesson makes on purpose.
    if "driver_info" in inspect.signature(redis.Redis).parameters:  # redis-py 8
        no_client_setinfo = {"driver_info": None}
    else:
        no_client_setinfo = {"lib_name": None, "lib_version": None}
    return redis.Redis(
        host=kwargs.get("host", "localhost"),
        port=kwargs.get("port", 6379),
        db=kwargs.get("db", 0),
        username=username,
        password=password,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        **no_client_setinfo,
    )


def attempt(action: Callable[[], object]) -> type[Exception] | None:
    """None when the server ran the command, else the class of the error it answered with."""
    try:
        action()
    except RedisError as refused:
        return type(refused)
    return None


def create_users(client: redis.Redis, run_id: str) -> dict[str, tuple[str, str]]:
    """service -> (username, password). `reset` first: a user starts with no rights at all."""
    users = {}
    for service, rules in SERVICES.items():
        username, password = f"{USER_PREFIX}{service}_{run_id}", secrets.token_urlsafe(24)
        client.execute_command("ACL", "SETUSER", username, "reset", "on", ">" + password, *rules)
        users[service] = (username, password)
    return users


def try_everything(client: redis.Redis, users: dict[str, tuple[str, str]]) -> dict[str, dict]:
    matrix = {}
    for service, (username, password) in users.items():
        with connect_as(client, username, password) as user:
            matrix[service] = {label: attempt(lambda a=action: a(user)) for label, action in ACTIONS.items()}
    return matrix


def read_acl_log(client: redis.Redis, users: dict[str, tuple[str, str]]) -> dict[str, dict]:
    """ACL LOG entries of our users; the server folds repeats of one (reason, object) into a count."""
    service_of = {username: service for service, (username, _) in users.items()}
    logged: dict[str, dict[tuple[str, str], int]] = {service: {} for service in users}
    for entry in client.acl_log(count=128):
        service = service_of.get(entry["username"])
        if service is not None:
            denial = (entry["reason"], entry["object"])
            logged[service][denial] = logged[service].get(denial, 0) + int(entry["count"])
    return logged


def lock_down_default(env: dict[str, str]) -> Lockdown:
    """On a throwaway server: an admin user first, then a password on `default` and no @dangerous."""
    with redis.Redis.from_url(env["REDIS_URL"], decode_responses=True) as anonymous:
        anonymous.mset({f"{PREFIX}doc:{n}": n for n in range(3)})
        before = {
            "anonymous: PING": attempt(anonymous.ping),
            "anonymous: CONFIG GET maxmemory": attempt(lambda: anonymous.config_get("maxmemory")),
        }
        keys_before = anonymous.dbsize()
        before["anonymous: FLUSHALL"] = attempt(anonymous.flushall)
        keys_after = anonymous.dbsize()
        admin_name, admin_password = USER_PREFIX + "admin", secrets.token_urlsafe(24)
        default_password = secrets.token_urlsafe(24)
        anonymous.execute_command(
            "ACL", "SETUSER", admin_name, "reset", "on", ">" + admin_password, "~*", "&*", "+@all"
        )
    with redis.Redis.from_url(
        env["REDIS_URL"], username=admin_name, password=admin_password, decode_responses=True
    ) as admin:
        admin.execute_command("ACL", "SETUSER", "default", "resetpass", ">" + default_password, "-@dangerous")
        after = {"admin: CONFIG GET maxmemory": attempt(lambda: admin.config_get("maxmemory"))}
        with connect_as(admin, None, None) as anonymous:
            after["anonymous: PING"] = attempt(anonymous.ping)
        with connect_as(admin, "default", default_password) as default:
            after["default with its password: PING"] = attempt(default.ping)
            after["default with its password: CONFIG GET maxmemory"] = attempt(
                lambda: default.config_get("maxmemory")
            )
            after["default with its password: FLUSHALL"] = attempt(default.flushall)
    return Lockdown(before, (keys_before, keys_after), after)


def _cell(outcome: type[Exception] | None) -> str:
    return "allowed" if outcome is None else outcome.__name__


def run(client: redis.Redis) -> AclResult:
    """`client` is an administrator of the shared server (the compose default user)."""
    console.title("Redis ACLs: one user per service, and the default user locked down")

    console.step(f"Reset `{PREFIX}*` and any `{USER_PREFIX}*` user left by an interrupted run")
    console.say(f"{reset(client)} keys from an earlier run removed")
    default_before = client.acl_getuser("default")
    client.set(CACHE_KEY, "<html>")
    client.set(SESSION_KEY, "user 1")

    run_id = secrets.token_hex(3)
    users = create_users(client, run_id)
    try:
        console.step("Create one user per service: key patterns, command categories, channels")
        console.table(
            ["service", "user", "rules after `reset on >password`"],
            [(service, users[service][0], " ".join(rules)) for service, rules in SERVICES.items()],
        )
        stored = client.acl_getuser(users["cache"][0])["passwords"]
        sha256 = hashlib.sha256(users["cache"][1].encode()).hexdigest()
        console.say(f"ACL GETUSER shows the password as its SHA-256 only: {stored[0][:16]}...")

        console.step("Connect as each user and try the same actions")
        matrix = try_everything(client, users)
        console.table(
            ["action", *SERVICES],
            [(label, *(_cell(matrix[s][label]) for s in SERVICES)) for label in ACTIONS],
        )
        for service in SERVICES:
            console.say(f"{service}: {sum(o is not None for o in matrix[service].values())} actions refused")

        console.step("A wrong password, then the denials read back from ACL LOG")
        with connect_as(client, users["cache"][0], "not-" + users["cache"][1]) as wrong:
            bad_password = attempt(wrong.ping)
        console.say(f"{users['cache'][0]} with a wrong password: {_cell(bad_password)}")
        logged = read_acl_log(client, users)
        bad_password_logged = any(reason == "auth" for reason, _ in logged["cache"])  # AUTH or HELLO
        logged = {s: {d: n for d, n in entries.items() if d[0] != "auth"} for s, entries in logged.items()}
        console.table(
            ["service", "reason", "object", "count"],
            [(s, reason, obj, n) for s in SERVICES for (reason, obj), n in sorted(logged[s].items())],
        )
        console.say(f"the failed login is logged too (reason auth): {bad_password_logged}")
    finally:
        delete_users(client)
        client.unlink(CACHE_KEY, SESSION_KEY)
    users_left = our_users(client)
    default_unchanged = client.acl_getuser("default") == default_before
    console.say(f"users left under `{USER_PREFIX}`: {len(users_left)}; shared default user unchanged: "
                f"{default_unchanged}")  # fmt: skip

    console.step("On a throwaway Redis of our own: lock down the default user")
    lockdown, missing = None, ""
    try:
        with throwaway("redis") as env:
            lockdown = lock_down_default(env)
    except NoThrowaway as unavailable:
        missing = str(unavailable)
        console.say(f"skipped: {missing}")
    if lockdown is not None:
        rows = [("before", who, _cell(o)) for who, o in lockdown.before.items()]
        rows += [("after", who, _cell(o)) for who, o in lockdown.after.items()]
        console.table(["lockdown", "who: action", "outcome"], rows)
        console.say(f"the anonymous FLUSHALL before the lockdown took the keys from "
                    f"{lockdown.keys_flushed[0]} to {lockdown.keys_flushed[1]}")  # fmt: skip

    return AclResult(
        matrix=matrix,
        logged=logged,
        bad_password=bad_password,
        bad_password_logged=bad_password_logged,
        stored_as_sha256=stored == [sha256],
        default_user_unchanged=default_unchanged,
        users_left=users_left,
        lockdown=lockdown,
        no_throwaway=missing,
    )


def main() -> int:
    require(*REQUIRES)
    with redis.Redis.from_url(
        redis_url(), decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT_S
    ) as client:
        result = run(client)
    denied = {s: {a for a, o in result.matrix[s].items() if o is NoPermissionError} for s in SERVICES}
    allowed = {s: {a for a, o in result.matrix[s].items() if o is None} for s in SERVICES}
    holds = (
        allowed["cache"] == {"GET cache:page:1", "SET cache:page:1"}
        and "GET session:1" in denied["cache"]
        and "SET cache:page:1" in denied["reporter"]
        and allowed["events"] == {"PUBLISH events:orders"}
        and result.bad_password is AuthenticationError
        and result.default_user_unchanged
        and not result.users_left
        and (result.lockdown is None or result.lockdown.after["anonymous: PING"] is AuthenticationError)
    )
    return 0 if holds else 1


if __name__ == "__main__":
    raise SystemExit(main())
