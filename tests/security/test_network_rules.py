import pytest

from common.settings import UNAVAILABLE, servers_mode
from security import network_rules as lesson
from servers.throwaway import NoThrowaway

APP, ANALYST = lesson.APP, lesson.ANALYST
EXPECTED = {
    ("127.0.0.10", APP, "examples"): "allowed",
    ("127.0.0.10", APP, "postgres"): "no entry",  # the app's line names one database
    ("127.0.0.10", ANALYST, "examples"): "no entry",  # ... and one user
    ("127.0.0.21", ANALYST, "examples"): "allowed",  # the analysts' /28
    ("127.0.0.20", ANALYST, "examples"): "rejected",  # the reject line comes before the /28
    ("127.0.0.30", APP, "examples"): "no entry",  # no line for that address
}


@pytest.fixture(scope="module")
def facts(postgres, redis):
    """The lesson starts throwaway nodes; the session's servers are named so the suite provides them."""
    try:
        return lesson.run()
    except NoThrowaway as missing:
        if servers_mode() == "local":
            raise
        pytest.skip(f"needs the local servers for its throwaway nodes: {missing}")


def test_connections_are_allowed_and_refused_per_source_address_as_the_rules_say(facts):
    assert facts.hba == EXPECTED
    assert lesson.per_source(facts.hba) == {
        "127.0.0.10": (1, 2),
        "127.0.0.21": (1, 0),
        "127.0.0.20": (0, 1),
        "127.0.0.30": (0, 1),
    }


def test_the_server_saw_the_source_address_the_relay_chose(facts):
    assert facts.seen_as == {"127.0.0.10": "127.0.0.10", "127.0.0.21": "127.0.0.21"}


def test_no_entry_and_reject_have_their_own_words(facts):
    assert (
        'no pg_hba.conf entry for host "127.0.0.10", user "app", database "postgres"'
        in facts.words["no entry"]
    )
    assert 'pg_hba.conf rejects connection for host "127.0.0.20"' in facts.words["rejected"]


def test_pg_hba_file_rules_shows_the_parsed_lines_in_order(facts):
    assert [(line, str(address), method, error) for line, _, _, _, address, method, error in facts.rules] == [
        (2, "127.0.0.1/32", "scram-sha-256", None),
        (3, "127.0.0.10/32", "scram-sha-256", None),
        (4, "127.0.0.20/32", "reject", None),
        (5, "127.0.0.16/28", "scram-sha-256", None),
    ]


def test_swapping_two_lines_flips_the_banned_connection_and_nothing_else(facts):
    assert facts.swapped == {**EXPECTED, lesson.BANNED: "allowed"}


def test_the_address_the_server_does_not_listen_on_is_refused_at_tcp_level(facts):
    assert facts.listen == {"127.0.0.1": "accepted", "127.0.0.2": "ConnectionRefusedError"}


def test_redis_bind_decides_which_addresses_accept_a_connection(facts):
    assert facts.redis_bind == {
        "bind 127.0.0.1": "ConnectionRefusedError",
        "bind 127.0.0.1 127.0.0.5": "accepted",
    }


def test_protected_mode_refuses_a_client_that_is_not_127_0_0_1_until_a_password_is_set(facts):
    assert facts.protected == {
        "127.0.0.1, no password": "ok",
        "127.0.0.5, no password": "DENIED",
        "127.0.0.5, protected-mode no": "ok",
        "127.0.0.5, default has a password, no AUTH": "AuthenticationError",
        "127.0.0.5, AUTH as default": "ok",
    }


def test_the_runtime_acl_refuses_dangerous_commands_and_start_time_options_stay_fixed(facts):
    commands = facts.commands
    assert commands[f"{APP}: SET {lesson.PREFIX}:greeting hello"] == "ok"
    for command in ("KEYS *", "FLUSHALL", "CONFIG SET maxmemory 1mb"):
        assert commands[f"{APP}: {command}"] == "NoPermissionError", command
    assert (
        commands[f"{APP}: DEBUG SLEEP 0"] == commands["admin: DEBUG SLEEP 0"] == "DEBUG command not allowed"
    )
    assert commands["admin: CONFIG SET enable-debug-command local"] == "can't set immutable config"
    assert commands["admin: CONFIG SET dir /tmp"] == "can't set protected config"
    assert commands["admin: CONFIG SET rename-command FLUSHALL x"].startswith("Unknown option")


def test_the_headline_holds(facts):
    assert facts.holds  # what main() exits on


def test_without_local_servers_main_prints_one_line_and_exits_2(monkeypatch, capsys):
    def missing(*_, **__):
        raise NoThrowaway("no throwaway PostgreSQL: install its local server (`make local-install`)")

    monkeypatch.setattr(lesson, "require", lambda *_: None)
    monkeypatch.setattr(lesson, "throwaway", missing)
    assert lesson.main() == UNAVAILABLE
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "make local-install" in lines[0]


def test_a_second_run_gives_the_same_facts(facts):
    assert lesson.run() == facts
