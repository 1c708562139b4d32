import os
import shutil
import subprocess

import pytest

from common.settings import UNAVAILABLE, servers_mode
from security import tunnel_and_firewall as lesson
from servers.local.base import free_port
from servers.throwaway import NoThrowaway

SSH_INSTALLED = all(
    shutil.which(tool, path="/usr/sbin:" + os.environ["PATH"])
    for tool in ("sshd", "ssh", "ssh-keygen", "setpriv")
)
FIREWALL_POSSIBLE = os.geteuid() == 0 and all(
    shutil.which(tool) for tool in ("ip", "iptables", "redis-server", "setpriv")
)


@pytest.fixture(scope="module")
def facts(postgres, redis):
    """The lesson starts throwaway nodes; the session's servers are named so the suite provides them."""
    try:
        return lesson.run()
    except NoThrowaway as missing:
        if servers_mode() == "local":
            raise
        pytest.skip(f"needs the local servers for its throwaway nodes: {missing}")


def test_the_database_listens_on_loopback_only(facts):
    assert facts.listening == "127.0.0.1"


def test_through_the_tunnel_the_query_succeeds_and_without_it_the_connection_is_refused(facts):
    if facts.tunnel is None:
        assert not SSH_INSTALLED, facts.skipped
        assert "OpenSSH" in facts.skipped["tunnel"]
        pytest.skip(facts.skipped["tunnel"])
    assert facts.tunnel == {
        "through the tunnel": ["allowed as 127.0.0.1"] * lesson.TRIES,
        "direct to 127.0.0.2": ["ConnectionRefusedError"] * lesson.TRIES,
        "forward to Redis": ["ConnectionError"] * lesson.TRIES,  # permitopen allows the database only
    }
    assert facts.forwards_denied == lesson.TRIES


def test_a_drop_rule_times_out_and_a_reject_rule_refuses(facts):
    if facts.firewall is None:
        assert facts.skipped["firewall"]
        if FIREWALL_POSSIBLE:  # root with the tools: only a refused `ip netns add` may stop it
            assert "failed" in facts.skipped["firewall"]
        pytest.skip(facts.skipped["firewall"])
    assert facts.firewall == {
        "no rule": ["ok"] * lesson.TRIES,
        "DROP": ["TimeoutError"] * lesson.TRIES,
        "REJECT": ["ConnectionRefusedError"] * lesson.TRIES,
    }
    assert facts.packets["DROP"] >= lesson.TRIES and facts.packets["REJECT"] >= lesson.TRIES


def test_the_headline_holds(facts):
    assert facts.holds  # what main() exits on


def test_ssh_and_sshd_end_even_when_the_lesson_fails(monkeypatch):
    started, start = [], lesson._start
    monkeypatch.setattr(lesson, "_start", lambda *a: started.append(start(*a)) or started[-1])
    try:
        with pytest.raises(RuntimeError), lesson.ssh_tunnel(free_port(), free_port()):
            raise RuntimeError("a lesson step failed")
    except lesson.Unavailable as why:
        assert not SSH_INSTALLED, why
        pytest.skip(str(why))
    assert len(started) == 2
    assert all(process.poll() is not None for process in started)


def test_the_network_namespace_and_its_redis_are_removed_even_when_the_lesson_fails(monkeypatch):
    started, start = [], lesson._start
    monkeypatch.setattr(lesson, "_start", lambda *a: started.append(start(*a)) or started[-1])
    try:
        with pytest.raises(RuntimeError), lesson.namespace() as (name, _, _):
            raise RuntimeError("a lesson step failed")
    except lesson.Unavailable as why:
        assert not FIREWALL_POSSIBLE or "failed" in str(why), why
        pytest.skip(str(why))
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert name not in listed.split()
    assert subprocess.run(["ip", "link", "show", f"tf{os.getpid()}h"], capture_output=True).returncode != 0
    assert len(started) == 1 and started[0].poll() is not None


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
