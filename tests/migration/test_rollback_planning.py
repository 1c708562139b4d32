import re
import shutil
import subprocess

import psycopg
import pytest

from migration import rollback_planning as lesson


@pytest.fixture(scope="module")
def result(postgres):
    with psycopg.connect(postgres.url) as conn:
        return lesson.run(conn, postgres.url)


def test_the_down_migration_loses_every_non_null_value(result):
    undo = result.destructive
    assert undo.non_null > 0
    assert undo.lost == undo.non_null
    assert dict(undo.locks)["up: DROP COLUMN coupon"] == "AccessExclusiveLock"


def test_rolling_back_expand_contract_loses_nothing(result):
    undo = result.expand_contract
    assert undo.non_null == result.destructive.non_null  # the same writes, the other way
    assert undo.lost == 0


def test_the_failed_migration_changed_the_data_and_the_restore_gives_equal_counts_and_checksums(result):
    drill = result.drill
    assert drill.failure == psycopg.errors.NumericValueOutOfRange.sqlstate
    assert 0 < drill.batches_committed < lesson.N_ROWS // lesson.BATCH
    assert drill.after_failure["orders"][1] != drill.before["orders"][1]
    assert drill.after_restore == drill.before
    assert drill.before["orders"][0] == lesson.N_ROWS
    assert drill.restored


def test_the_headline_holds(result):
    assert result.holds  # what main() exits on


def test_the_snapshot_method_follows_the_local_pg_dump_and_the_server(result, postgres):
    with psycopg.connect(postgres.url) as conn:
        server_major = conn.info.server_version // 10_000
    if shutil.which("pg_dump") and shutil.which("pg_restore"):
        version = subprocess.run(["pg_dump", "--version"], capture_output=True, text=True).stdout
        local_major = int(re.search(r"\) (\d+)", version).group(1))  # "pg_dump (PostgreSQL) 15.18 ..."
        expected = lesson.DUMP if local_major >= server_major else lesson.COPY
    else:
        expected = lesson.COPY
    assert result.drill.method == expected


@pytest.mark.parametrize("method", [lesson.DUMP, lesson.COPY])
def test_each_snapshot_method_restores_equal_counts_and_checksums(postgres, result, method):
    if method == lesson.DUMP and result.drill.method != lesson.DUMP:
        pytest.skip("the local pg_dump is missing or older than this server")
    with psycopg.connect(postgres.url) as conn:
        drill = lesson.drill(conn, postgres.url, method)
        left = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (lesson.SNAPSHOT,))
        assert left.fetchone()[0] == 0
    assert drill.after_failure != drill.before
    assert drill.after_restore == drill.before == result.drill.before


def test_a_second_run_gives_the_same_facts(postgres, result):
    with psycopg.connect(postgres.url) as conn:
        again = lesson.run(conn, postgres.url)
    assert again == result
