import psycopg
import pytest

from relational import constraints_integrity as lesson


@pytest.fixture(scope="module")
def result(postgres):
    with psycopg.connect(postgres.url) as conn:
        return lesson.run(conn)


def test_each_violation_raises_its_class_and_names_its_constraint(result):
    caught = {
        label: (v.error, v.sqlstate, v.constraint)
        for label, v in result.violations.items()
        if not label.startswith("NOT NULL")
    }
    assert caught == {
        "CHECK: negative limit": ("CheckViolation", "23514", "credit_limit_min_zero"),
        "UNIQUE: email taken": ("UniqueViolation", "23505", "customers_email_key"),
        "FK: unknown customer": ("ForeignKeyViolation", "23503", "orders_customer_fk"),
        "RESTRICT: has invoices": ("ForeignKeyViolation", "23503", "invoices_customer_fk"),
        "EXCLUDE: room overlap": ("ExclusionViolation", "23P01", "no_double_booking"),
        "UNIQUE: swap": ("UniqueViolation", "23505", "playlist_position_key"),
        "DEFERRED: duplicate": ("UniqueViolation", "23505", "deferred_position_key"),
    }


def test_not_null_names_the_column(result):
    # NOT NULL is not a named constraint before PostgreSQL 18: diag gives the table and column.
    v = result.violations["NOT NULL: no email"]
    assert (v.error, v.sqlstate, v.table, v.column) == ("NotNullViolation", "23502", "customers", "email")


def test_the_exception_classes_are_the_ones_psycopg_exports(result):
    for v in result.violations.values():
        assert issubclass(getattr(psycopg.errors, v.error), psycopg.errors.IntegrityError)


def test_refused_statements_change_nothing(result):
    assert result.rows_after_violations == result.rows_loaded
    assert result.rows_loaded["customers"] == lesson.N_CUSTOMERS  # counted on the server after the load


def test_btree_gist_lives_in_the_lessons_schema(result):
    assert result.extension_schema == lesson.SCHEMA
    assert result.holds


def test_nothing_is_installed_in_public(postgres, result):
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        public = conn.execute(
            "SELECT count(*) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = 'btree_gist' AND n.nspname = 'public'"
        ).fetchone()[0]
    assert public == 0


def test_on_delete_cascade_set_null_and_restrict(result):
    actions = result.on_delete
    assert actions.cascade_customers_deleted == len(lesson.CASCADE_CUSTOMERS)
    assert actions.cascade_orders_removed == actions.cascade_their_orders > 0
    assert actions.set_null_tickets_cleared == actions.set_null_agents_tickets > 0
    assert actions.set_null_tickets_left == lesson.N_TICKETS
    assert actions.restrict_customers_deleted == 0
    assert actions.restrict_orders_kept > 0


def test_the_exclusion_constraint_stops_double_booking_only(result):
    outcomes = [outcome for _, _, outcome in result.bookings.attempts]
    refused = "ExclusionViolation (no_double_booking)"
    assert outcomes == ["accepted", refused, "accepted", "accepted", refused]
    assert (result.bookings.accepted, result.bookings.refused) == (3, 2)


def test_a_deferred_unique_allows_the_swap_and_still_checks_at_commit(result):
    deferred = result.deferred
    assert deferred.immediate_swap.raised_at == "UPDATE"
    assert deferred.deferred_swap is None
    assert deferred.positions_after_swap == [(1, 2), (2, 1), (3, 3)]
    assert deferred.deferred_duplicate.raised_at == "COMMIT"


def test_a_second_run_gives_the_same_facts(postgres, result):
    with psycopg.connect(postgres.url) as conn:
        again = lesson.run(conn)
    assert again == result
