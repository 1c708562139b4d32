import pytest
from cassandra.cluster import Cluster

from common.settings import ENGINES
from nosql import cassandra_query_first_modeling as lesson


@pytest.fixture(scope="module")
def session(cassandra):
    host, port = ENGINES["cassandra"].address(cassandra.env["CASSANDRA_HOSTS"])
    cluster = Cluster([host], port=port)
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def result(session):
    return lesson.run(session)


@pytest.fixture(scope="module")
def data():
    return lesson.generate()


def test_each_query_is_answered_from_one_partition_in_its_order(result):
    queries = result.queries
    assert queries.q1_newest_first
    assert queries.q2_by_last_activity
    assert queries.q3_rows == lesson.READINGS_PER_DAY
    # Counted by the server: every message once, each conversation once in each participant's inbox.
    assert queries.messages == lesson.N_MESSAGES
    assert queries.inbox_rows == 2 * lesson.N_CONVERSATIONS
    assert queries.readings_per_table == lesson.N_SENSORS * lesson.N_DAYS * lesson.READINGS_PER_DAY


def test_the_logged_batch_moves_the_conversation_to_the_top_of_both_inboxes(result):
    batch = result.batch
    # Read off the statements sent: the message, and a delete and an insert in each participant's inbox.
    assert (batch.batch_type, batch.statements, batch.tables, batch.partitions) == ("LOGGED", 5, 2, 3)
    assert batch.position_before > 0
    assert batch.position_after_user == batch.position_after_other == 0
    assert batch.inbox_rows_after == batch.inbox_rows_before  # moved, not duplicated
    assert batch.newest_message_is_the_new_one


def test_a_day_bucket_bounds_the_partition_and_one_per_sensor_does_not(result):
    sizes = result.partitions
    assert sizes.rows_per_day_partition == [lesson.READINGS_PER_DAY] * (lesson.N_SENSORS * lesson.N_DAYS)
    assert sizes.rows_per_sensor_partition == [lesson.READINGS_PER_DAY * lesson.N_DAYS] * lesson.N_SENSORS
    assert sizes.payload_bytes_per_row == 24  # timestamp, two doubles
    assert sizes.days_to_row_limit == -(-lesson.MAX_PARTITION_ROWS // lesson.READINGS_PER_DAY)
    assert sizes.days_to_row_limit < sizes.days_to_byte_limit


def test_a_query_without_its_partition_key_is_refused(result):
    assert result.filtering.refused_without_filtering
    assert "data filtering" in result.filtering.refusal


def test_allow_filtering_reads_every_row_to_return_a_few(result, data):
    found = result.filtering
    hot = [reading for reading in data.readings if reading[3] > lesson.HOT_C]
    assert found.scan_rows_read == found.table_rows == len(data.readings)
    assert found.scan_rows_returned == len(hot)
    assert found.scan_rows_returned * 100 < found.scan_rows_read
    assert found.partition_rows_read == lesson.READINGS_PER_DAY
    in_partition = [r for r in hot if (r[0], r[1]) == (1, lesson.FIRST_DAY)]
    assert found.partition_rows_returned == len(in_partition)


def test_a_row_written_with_a_ttl_disappears(result):
    assert result.ttl.present_right_after
    assert lesson.TTL_S - 1 <= result.ttl.ttl_right_after <= lesson.TTL_S  # whole seconds left
    assert result.ttl.gone


def test_a_prepared_statement_is_not_parsed_again(result):
    assert result.prepared.parse_events_simple >= 1
    assert result.prepared.parse_events_prepared == 0


def test_two_replicas_are_unavailable_on_one_node(result):
    levels = result.consistency
    assert levels.replicas_needed == {"ONE": (1, 1), "TWO": (2, 2), "QUORUM": (1, 2), "ALL": (1, 3)}
    assert {name: levels.outcomes[name] for name in ("ONE", "QUORUM", "ALL")} == dict.fromkeys(
        ("ONE", "QUORUM", "ALL"), "ok"
    )
    assert levels.outcomes["TWO"].startswith("Unavailable")
    assert (levels.two_required, levels.two_alive) == (2, 1)


def test_if_not_exists_applies_once(result):
    lwt = result.lwt
    assert lwt.first_insert_applied and not lwt.second_insert_applied
    assert lwt.second_insert_saw_balance == lesson.OPENING_BALANCE


def test_plain_read_then_write_loses_updates_and_the_lwt_does_not(result):
    lwt = result.lwt
    assert lwt.plain_lost_updates == lesson.ROUNDS
    assert lwt.plain_final < lwt.expected_balance
    assert lwt.lwt_lost_updates == 0
    assert lwt.lwt_final == lwt.expected_balance
    assert lwt.lwt_retries == lesson.ROUNDS


def test_a_second_run_gives_the_same_facts(session, result):
    assert lesson.run(session) == result
