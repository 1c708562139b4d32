"""A bad setting is one line naming the variable, the value and what is expected, and exit code 2.

Every variable `common.settings` reads gets bad values here: in-process (the accessor raises
BadSetting, `require()` prints the line and exits 2) and through a lesson run as a script.
No server is needed: the settings are checked before any connection is tried.
"""

import os
import re
import subprocess
import sys

import pytest

from common import settings
from common.catalog import lessons
from common.settings import ENGINES, ROOT, UNAVAILABLE, BadSetting

# The function a lesson calls to read each engine's address.
ACCESSORS = {
    "postgres": settings.postgres_url,
    "postgres_replica": settings.postgres_replica_url,
    "postgres_secure": settings.postgres_secure_url,
    "pgbouncer": settings.pgbouncer_url,
    "timescaledb": settings.timescale_url,
    "mysql": settings.mysql_params,
    "mongodb": settings.mongo_url,
    "redis": settings.redis_url,
    "neo4j": settings.neo4j_url,
    "influxdb": settings.influx_url,
    "cassandra": settings.cassandra_contact_points,
    "prometheus": settings.prometheus_url,
    "postgres_exporter": settings.postgres_exporter_url,
    "redis_exporter": settings.redis_exporter_url,
    "alertmanager": settings.alertmanager_url,
    "dynamodb": settings.dynamodb_url,
    "toxiproxy": settings.toxiproxy_url,
    "moto": settings.moto_url,
    "gremlin": settings.gremlin_url,
    "janusgraph": settings.janusgraph_url,
    "couchdb": settings.couchdb_url,
    "hbase": settings.hbase_url,
    "cosmosdb": settings.cosmos_url,
    "arangodb": settings.arangodb_params,
    "sqlserver": settings.sqlserver_params,
    "oracle": settings.oracle_params,
}
EXTRAS = {variable: key for key, engine in ENGINES.items() for variable, _default in engine.extra}


def bad_addresses(key: str) -> list[str]:
    """A port that is not a number, one out of range, an unparseable host, the wrong scheme, nothing."""
    default = ENGINES[key].default
    scheme = default.partition("://")[0] + "://" if "://" in default else ""
    wrong_scheme = "ftp://localhost:21" if scheme else "http://localhost:9042"
    return [
        f"{scheme}x:y@localhost:notaport/db",
        f"{scheme}localhost:99999/0",
        f"{scheme}[bad",
        wrong_scheme,
        "",
    ]


BAD_ADDRESSES = [(key, value) for key in ENGINES for value in bad_addresses(key)]
GOOD_ADDRESSES = [
    ("postgres", "postgres://someone:secret@db.example.com/app?sslmode=require"),
    ("postgres", "postgresql://[::1]:5432/examples"),
    ("mongodb", "mongodb://a.example.com:27017,b.example.com:27018/?replicaSet=rs0"),
    ("mongodb", "mongodb+srv://user:pass@cluster0.example.net/"),
    ("redis", "rediss://:password@cache.example.com:6380/1"),
    ("neo4j", "neo4j+s://graph.example.com"),
    ("cassandra", "10.0.0.1:9042, 10.0.0.2:9042"),
    ("dynamodb", "https://dynamodb.eu-west-1.amazonaws.com"),
]
BAD_EXTRAS = [(variable, "") for variable in EXTRAS] + [
    ("PROMETHEUS_SCRAPE_PORT", value) for value in ("abc", "0", "99999", "-1")
]
BAD_SCALES = ["abc", "-1", "0", "nan", "inf", ""]


@pytest.fixture(autouse=True)
def compose_defaults(monkeypatch):
    """Start each test from the compose defaults, whatever the surrounding environment says."""
    for variable in [engine.variable for engine in ENGINES.values()] + list(EXTRAS):
        monkeypatch.delenv(variable, raising=False)
    for variable in ("EXAMPLES_SCALE", "EXAMPLES_SERVERS", "EXAMPLES_QUIET", "EXAMPLES_NO_INSTALL"):
        monkeypatch.delenv(variable, raising=False)


def assert_one_clear_line(line: str, variable: str, value: str) -> None:
    assert "\n" not in line.strip(), line
    shown = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", value)  # a password is never echoed
    assert line.startswith(f"{variable}={shown!r} "), line
    assert "expected" in line, line


def test_every_engine_has_an_accessor():
    assert set(ACCESSORS) == set(ENGINES)


def test_the_defaults_are_valid():
    settings.check_settings(*ENGINES)
    assert settings.scale() == 1.0
    assert settings.servers_mode() == "auto"


@pytest.mark.parametrize(("key", "value"), GOOD_ADDRESSES)
def test_a_good_address_is_accepted(monkeypatch, key, value):
    monkeypatch.setenv(ENGINES[key].variable, value)
    assert settings.checked_url(key) == value


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_sqlalchemy_gets_the_driver_named_for_either_spelling(monkeypatch, scheme):
    monkeypatch.setenv("POSTGRES_URL", f"{scheme}://u:p@db:5432/app")
    assert settings.sqlalchemy_postgres_url() == "postgresql+psycopg://u:p@db:5432/app"


@pytest.mark.parametrize(
    ("url", "ca", "expected_ca"),
    [
        (None, None, str(ROOT / ".local" / "certs" / "postgres_secure" / "ca.crt")),
        (
            "postgresql://u:p@db:5435/app?sslmode=require&application_name=x",
            "/etc/ssl/our ca.pem",
            "/etc/ssl/our ca.pem",
        ),
    ],
)
def test_postgres_secure_is_reached_with_verify_full_against_its_ca(monkeypatch, url, ca, expected_ca):
    import psycopg.conninfo

    if url:
        monkeypatch.setenv("POSTGRES_SECURE_URL", url)
        monkeypatch.setenv("POSTGRES_SECURE_CA", ca)
    params = psycopg.conninfo.conninfo_to_dict(settings.postgres_secure_url())
    assert params["sslmode"] == "verify-full"  # replaces what the URL said
    assert params["sslrootcert"] == expected_ca == str(settings.postgres_secure_ca())
    assert params.get("application_name", "x") == "x"  # the URL's other parameters stay


@pytest.mark.parametrize(("key", "value"), BAD_ADDRESSES)
def test_a_bad_address_is_refused_where_it_is_read(monkeypatch, capsys, key, value):
    variable = ENGINES[key].variable
    monkeypatch.setenv(variable, value)
    with pytest.raises(BadSetting) as bad:
        ACCESSORS[key]()
    assert_one_clear_line(str(bad.value), variable, value)
    with pytest.raises(SystemExit) as exited:
        settings.require(key)
    assert exited.value.code == UNAVAILABLE
    assert_one_clear_line(capsys.readouterr().err, variable, value)


@pytest.mark.parametrize(("variable", "value"), BAD_EXTRAS)
def test_a_bad_credential_or_option_is_refused(monkeypatch, capsys, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(BadSetting) as bad:
        settings.setting(variable)
    assert_one_clear_line(str(bad.value), variable, value)
    with pytest.raises(SystemExit) as exited:
        settings.require(EXTRAS[variable])
    assert exited.value.code == UNAVAILABLE
    assert_one_clear_line(capsys.readouterr().err, variable, value)


@pytest.mark.parametrize("value", BAD_SCALES)
def test_a_bad_scale_is_refused(monkeypatch, capsys, value):
    monkeypatch.setenv("EXAMPLES_SCALE", value)
    with pytest.raises(BadSetting) as bad:
        settings.scale()
    assert_one_clear_line(str(bad.value), "EXAMPLES_SCALE", value)
    with pytest.raises(SystemExit) as exited:
        settings.require()  # every lesson calls it, even one that needs no server
    assert exited.value.code == UNAVAILABLE
    assert_one_clear_line(capsys.readouterr().err, "EXAMPLES_SCALE", value)


@pytest.mark.parametrize("value", ["0.1", "2", "1e-3"])
def test_a_good_scale_is_read(monkeypatch, value):
    monkeypatch.setenv("EXAMPLES_SCALE", value)
    assert settings.scale() == float(value)


@pytest.mark.parametrize(
    ("variable", "value", "read"),
    [
        ("EXAMPLES_SERVERS", "containers", settings.servers_mode),
        ("EXAMPLES_QUIET", "yes", lambda: settings.flag("EXAMPLES_QUIET")),
        ("EXAMPLES_NO_INSTALL", "true", lambda: settings.flag("EXAMPLES_NO_INSTALL")),
    ],
)
def test_a_bad_option_is_refused(monkeypatch, variable, value, read):
    monkeypatch.setenv(variable, value)
    with pytest.raises(BadSetting) as bad:
        read()
    assert_one_clear_line(str(bad.value), variable, value)


# --- the same, the way a user meets it: a lesson run as a script ------------------------------


def first_lesson_needing(key: str | None) -> str | None:
    return next((lesson.relative for lesson in lessons() if key is None or key in lesson.requires), None)


# Every engine a lesson reads from settings (Toxiproxy is a node of the lesson's own, never a setting).
SCRIPT_CASES = [
    (first_lesson_needing(key), ENGINES[key].variable, bad_addresses(key)[0])
    for key in ENGINES
    if first_lesson_needing(key)
] + [
    ("relational/normalization.py", "POSTGRES_URL", "postgresql://x:y@localhost:notaport/db"),
    (first_lesson_needing("redis"), "REDIS_URL", "redis://localhost:99999/0"),
    (first_lesson_needing("mongodb"), "MONGO_URL", "mongodb://[bad"),
    (first_lesson_needing("prometheus"), "PROMETHEUS_SCRAPE_PORT", "notaport"),
    (first_lesson_needing("neo4j"), "NEO4J_PASSWORD", ""),
    (first_lesson_needing("influxdb"), "INFLUX_TOKEN", ""),
    ("relational/sqlite_embedded.py", "EXAMPLES_SCALE", "abc"),
    ("relational/sqlite_embedded.py", "EXAMPLES_SCALE", "-1"),
    ("relational/normalization.py", "EXAMPLES_SCALE", "-1"),
]


@pytest.mark.parametrize(
    ("path", "variable", "value"),
    SCRIPT_CASES,
    ids=[f"{variable}={value}-{path}" for path, variable, value in SCRIPT_CASES],
)
def test_a_lesson_with_a_bad_setting_prints_one_line_and_exits_2(path, variable, value):
    env = {**os.environ, "PYTHONPATH": str(ROOT), variable: value}
    finished = subprocess.run(
        [sys.executable, path], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert finished.returncode == UNAVAILABLE, finished.stderr[-2000:]
    assert "Traceback" not in finished.stderr, finished.stderr
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    assert_one_clear_line(lines[0], variable, value)


# --- the first run: what is missing gets installed, or the message says how -------------------


@pytest.fixture
def first_run(monkeypatch):
    """No Docker, Redis missing, this user can install; `installs` records what the installer got."""
    from common import demo
    from servers import containers

    installs = []
    monkeypatch.setattr(containers, "docker_available", lambda: False)
    monkeypatch.setattr(demo, "missing_local_servers", lambda keys=None: ["redis"])
    monkeypatch.setattr(demo, "why_not_install", lambda: None)
    monkeypatch.setattr(demo, "install", lambda engines: installs.append(engines) or 0)
    return installs


def test_the_first_run_installs_what_is_missing(first_run, capsys):
    from common import demo

    assert demo.install_missing() == 0
    assert first_run == [["redis"]]
    assert "EXAMPLES_NO_INSTALL=1" in capsys.readouterr().out, "the user learns how to opt out"


@pytest.mark.parametrize(("variable", "value"), [("EXAMPLES_NO_INSTALL", "1"), ("EXAMPLES_SERVERS", "env")])
def test_the_first_run_installs_nothing_when_told_not_to(first_run, monkeypatch, variable, value):
    from common import demo

    monkeypatch.setenv(variable, value)
    assert demo.install_missing() == 0
    assert first_run == []


def test_the_first_run_installs_nothing_when_docker_answers(first_run, monkeypatch):
    from common import demo
    from servers import containers

    monkeypatch.setattr(containers, "docker_available", lambda: True)
    assert demo.install_missing() == 0
    assert first_run == []


def test_a_user_who_cannot_install_is_told_the_command_that_installs(first_run, monkeypatch, capsys):
    from common import demo

    monkeypatch.setattr(demo, "why_not_install", lambda: "installing packages needs root or sudo")
    assert demo.install_missing() == 0
    assert first_run == []
    assert "make local-install" in capsys.readouterr().out


@pytest.mark.parametrize("installed", [True, False])
def test_the_not_reachable_line_names_the_install_command_when_it_is_needed(monkeypatch, installed):
    from servers.local.base import free_port

    monkeypatch.setattr(settings, "_locally_installed", lambda key: installed)
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    line = settings.unreachable("redis")
    assert "make up SERVICES=redis" in line and "make local-up" in line
    assert ("make local-install" in line) is not installed


def test_sqlserver_parameters_come_from_the_url_with_its_escapes_undone():
    url = "mssql://sa:Pa%40ss-1@db.example.com:1500/master"  # an @ in the password, escaped
    wanted = {
        "server": "db.example.com",
        "port": "1500",
        "user": "sa",
        "password": "Pa@ss-1",
        "tds_version": "7.4",
    }
    assert settings.sqlserver_params(url).items() >= {**wanted, "database": "master"}.items()
    assert settings.sqlserver_params(url, database="shop")["database"] == "shop"
    assert settings.sqlserver_params("mssql://sa:x@localhost")["database"] == "master"
