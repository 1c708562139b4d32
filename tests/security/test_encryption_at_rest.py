import psycopg
import pytest
from psycopg import sql
from pymongo import MongoClient

from security import encryption_at_rest as lesson

ENCRYPTED = (lesson.PGP, lesson.ENVELOPE)


@pytest.fixture(scope="module")
def clients(postgres, mongodb):
    with psycopg.connect(postgres.url, autocommit=True) as pg, MongoClient(mongodb.url) as mongo:
        yield pg, postgres.url, mongo


@pytest.fixture(scope="module")
def result(clients):
    return lesson.run(*clients)


def test_the_marker_is_in_the_plain_tables_data_file_and_in_no_encrypted_ones(result):
    assert result.on_disk[lesson.PLAIN] > 0
    assert [result.on_disk[table] for table in ENCRYPTED] == [0, 0]


def test_the_marker_is_in_the_plain_tables_backup_and_in_no_encrypted_ones(result, clients):
    pg = clients[0]
    assert result.in_backup[lesson.PLAIN] > 0
    assert [result.in_backup[table] for table in ENCRYPTED] == [0, 0]
    _, local = lesson.pg_dump_version()
    expected = "pg_dump" if local >= pg.info.server_version // 10000 else "COPY"
    assert result.backup_tool.startswith(expected)


def test_the_server_holds_the_marker_in_the_plain_table_only(result, clients):
    """Checked apart from the lesson's file reading: a byte search in each column, in the server."""
    pg = clients[0]
    marker = lesson.MARKER.encode()
    plain = pg.execute(
        "SELECT count(*) FROM encryption_at_rest.customers_plain WHERE email = %s", (lesson.MARKER,)
    )
    assert plain.fetchone()[0] == 1
    for table in ENCRYPTED:
        query = sql.SQL("SELECT count(*) FROM {} WHERE position(%s IN email) > 0")
        found = pg.execute(query.format(sql.Identifier(lesson.SCHEMA, table)), (marker,))
        assert found.fetchone()[0] == 0, table


def test_pgp_sym_decrypts_back_and_refuses_a_wrong_passphrase(result):
    assert result.pgp_decrypts
    assert result.pgp_wrong_passphrase == psycopg.errors.ExternalRoutineInvocationException.sqlstate


def test_the_envelope_decrypts_back_and_binds_each_ciphertext_to_its_row(result):
    assert result.envelope_decrypts
    assert result.moved_ciphertext_fails


def test_one_value_encrypted_twice_gives_two_ciphertexts(result):
    assert result.same_value_differs


def test_kek_rotation_changes_no_data_ciphertext_and_every_wrapped_key(result):
    rotation = result.rotation
    assert rotation.rows == lesson.N_ROWS
    assert rotation.ciphertexts_changed == 0
    assert rotation.wrapped_keys_changed == rotation.data_keys == lesson.N_DATA_KEYS


def test_after_rotation_the_data_decrypts_with_the_new_kek_and_not_the_old(result):
    assert result.rotation.decrypt_with_new_kek == lesson.N_ROWS
    assert result.rotation.decrypt_with_old_kek == 0


def test_the_blind_index_finds_the_row_by_equality_through_its_index(result):
    assert result.blind_index_finds == [lesson.MARKER_ID]
    assert result.blind_index_in_plan
    assert "Index" in result.plan and lesson.BLIND_INDEX in result.plan


def test_mongodb_returns_ciphertext_and_the_marker_only_after_decryption(result, clients):
    mongo = result.mongo
    assert mongo.marker_in_raw_find == 0
    assert mongo.marker_in_plain_copy == 1  # the control: the same count finds plaintext
    assert mongo.marker_after_decryption == 1
    assert mongo.found_by_blind_index
    stored = clients[2][lesson.DATABASE].customers.find_one({"_id": lesson.MARKER_ID})
    assert isinstance(stored["email"], bytes) and lesson.MARKER.encode() not in stored["email"]


def test_pg_stat_statements_is_checked_wherever_the_server_has_it(result, clients):
    """The suite's servers preload it and create it in public at setup: there the lesson must read it."""
    pg = clients[0]
    preloaded = "pg_stat_statements" in pg.execute("SHOW shared_preload_libraries").fetchone()[0]
    found = pg.execute(lesson.EXTENSION, ("pg_stat_statements",)).fetchone()
    assert (result.statements is not None) == (preloaded and found is not None)


def test_the_lesson_only_looks_pg_stat_statements_up(result, clients):
    """Where the server's setup made it, never in the lesson's schema (dropped with it at the next run)."""
    found = clients[0].execute(lesson.EXTENSION, ("pg_stat_statements",)).fetchone()
    assert found is None or found[0] != lesson.SCHEMA
    if result.statements is not None:
        assert found == ("public",)


def test_bound_parameters_keep_the_passphrase_out_of_pg_stat_statements(result):
    if result.statements is None:
        pytest.skip("pg_stat_statements is not on this server (checked in the test above)")
    texts, holding, _ = result.statements["bound parameters"]
    assert texts > 0 and holding == 0


def test_a_literal_in_a_do_block_stays_verbatim_in_pg_stat_statements(result):
    if result.statements is None:
        pytest.skip("pg_stat_statements is not on this server (checked in the test above)")
    texts, holding, text = result.statements["literals in a DO block"]
    assert (texts, holding) == (1, 1)
    assert lesson.PROBE_PASSPHRASE in text


def test_a_literal_in_a_select_is_normalised_out_of_pg_stat_statements(result):
    if result.statements is None:
        pytest.skip("pg_stat_statements is not on this server (checked in the test above)")
    texts, holding, text = result.statements["literals in a SELECT"]
    assert texts == 1 and holding == 0
    assert "$1" in text


def test_the_lesson_removes_its_pg_stat_statements_entries_and_keeps_pgcrypto(result, clients):
    pg = clients[0]
    assert pg.execute(lesson.EXTENSION, ("pgcrypto",)).fetchone() == (result.pgcrypto_schema,)
    if result.statements is not None:
        schema = pg.execute(lesson.EXTENSION, ("pg_stat_statements",)).fetchone()[0]
        view = sql.Identifier(schema, "pg_stat_statements")
        left = pg.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE strpos(query, %s) > 0").format(view), (lesson.PROBE,)
        )
        assert left.fetchone()[0] == 0


def test_main_exits_on_these_facts(result):
    assert result.holds


def test_a_second_run_gives_the_same_facts(result, clients):
    assert lesson.run(*clients) == result
