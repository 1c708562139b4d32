"""Counts and the server's answers: which ALTER ways each flavour accepts, metadata-lock queues, pt-osc."""

import shutil

import pymysql
import pytest

from common.settings import mysql_params
from migration import mysql_online_ddl as lesson

# The first of the four ways each server accepts, as documented: MySQL 8.4's "Online DDL Operations"
# tables and MariaDB's "InnoDB Online DDL Operations with the INSTANT / INPLACE Alter Algorithm" pages.
# MySQL 8.4 and MariaDB 10.11 agree on these four; MariaDB 11.2 and later also copies with LOCK=NONE.
DOCUMENTED = {
    "add column": "INSTANT",
    "rename column": "INSTANT",
    "add index": "INPLACE, LOCK=NONE",
    "change type": "COPY, LOCK=SHARED",
}
REFUSED = {1845, 1846}  # ER_ALTER_OPERATION_NOT_SUPPORTED and its _REASON form


@pytest.fixture(scope="module")
def params(mysql):
    return mysql_params(mysql.url)


@pytest.fixture(scope="module")
def result(params):
    with pymysql.connect(**params, autocommit=True) as admin:
        return lesson.run(admin, params)


def documented(result) -> dict[str, str]:
    expected = dict(DOCUMENTED)
    if result.is_mariadb and result.version >= (11, 2):
        expected["change type"] = "COPY, LOCK=NONE"
    return expected


def test_it_says_which_server_it_ran_on(result):
    assert result.is_mariadb == ("mariadb" in result.server.lower())


@pytest.mark.parametrize("change", list(DOCUMENTED))
def test_each_change_is_accepted_the_documented_way_and_refused_the_ways_before(result, change):
    outcome = result.changes[change]
    assert outcome.accepted == documented(result)[change]
    ways = [lesson.way(statement) for statement in lesson.ATTEMPTS[change]]
    assert list(outcome.outcomes) == ways[: ways.index(outcome.accepted) + 1]
    for refusal in list(outcome.outcomes.values())[:-1]:
        assert int(refusal.split()[1].rstrip(":")) in REFUSED, refusal


def test_online_ways_let_the_application_work(result):
    for change in ("add column", "rename column", "add index"):
        assert result.changes[change].seen.failed == 0


def test_an_alter_waiting_for_a_metadata_lock_queues_everyone_behind_it(result):
    assert result.mdl_unbounded.mdl_waiting > 0  # sessions seen "Waiting for table metadata lock"
    assert result.mdl_unbounded.mdl_blocked > 0
    assert result.mdl_unbounded.failed == 0


def test_lock_wait_timeout_makes_the_alter_give_up_and_retry(result):
    assert result.lock_wait_timeout == (0 if result.is_mariadb else 1)
    assert result.gave_up > 0
    assert result.mdl_bounded.failed == 0


def test_pt_online_schema_change_when_installed(result):
    if shutil.which(lesson.PT_OSC) is None:
        assert result.pt_osc == "not installed"
        return
    assert result.pt_osc == "done"
    assert result.amount_type_after == "decimal"
    assert result.pt_osc_seen.operations > 0


def test_no_acknowledged_write_is_lost(result):
    assert sum(len(s.acknowledged) for s in [c.seen for c in result.changes.values()]) > 0
    assert result.lost == 0


def test_the_headline_holds(result):
    assert result.holds


def test_a_second_run_shows_the_same_facts(params, result):
    with pymysql.connect(**params, autocommit=True) as admin:
        again = lesson.run(admin, params)

    def shape(r):
        return {n: c.accepted for n, c in r.changes.items()}, r.gave_up > 0, r.pt_osc, r.lost

    assert shape(again) == shape(result)
