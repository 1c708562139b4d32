import re

import pytest
from pymongo import MongoClient

from common.settings import ROOT
from nosql import documentdb_compatibility as lesson

PATTERNS = "nosql/mongodb_aggregation_patterns.py"


@pytest.fixture(scope="module")
def result(mongodb):
    with MongoClient(mongodb.url) as client:
        return lesson.run(client)


def found(result, version):
    return {(use.lesson, use.name) for use in result.uses if use.verdict(version) == "rejected"}


def test_the_aggregation_lesson_uses_stages_documentdb_rejects(result):
    assert PATTERNS in result.lessons_scanned
    assert {"$facet", "$bucket", "$merge"} <= set(result.rejected["5.0"][PATTERNS])
    assert result.rejected["8.0"][PATTERNS] == ["$facet"]  # 8.0 added $bucket and $merge, not $facet


@pytest.mark.parametrize("version", lesson.VERSIONS)
def test_every_rejected_operator_is_a_dict_key_in_the_source_of_its_lesson(result, version):
    """Cross-checked without ast: the key, quoted, followed by a colon, on the line reported."""
    for use in result.uses:
        if use.verdict(version) == "rejected" and use.name.startswith(("$", "stage $")):
            line = (ROOT / use.lesson).read_text().splitlines()[use.line - 1]
            assert re.search(rf'"{re.escape(use.name.removeprefix("stage "))}"\s*:', line), (use, line)


def test_older_versions_reject_at_least_what_newer_ones_do(result):
    for older, newer in zip(lesson.VERSIONS, lesson.VERSIONS[1:], strict=False):
        assert found(result, newer) <= found(result, older), (older, newer)
    assert found(result, "3.6") > found(result, "8.0")


def test_a_pipeline_of_supported_stages_is_not_reported():
    pipeline = [
        {"$match": {"status": {"$in": ["paid"]}}},
        {"$group": {"_id": "$channel", "orders": {"$sum": 1}}},
        {"$sort": {"_id": 1}},
    ]
    uses = lesson.pipeline_uses(pipeline, "test")
    assert {use.name for use in uses} == {"$match", "$in", "$group", "$sum", "$sort"}
    for version in lesson.VERSIONS:
        assert lesson.rejected_names(uses, version) == []


def test_the_checker_reads_source_not_text():
    source = (
        '"""A docstring that mentions $facet and $where."""\n'
        "def f(db, r):\n"
        '    r.watch("key")  # Redis WATCH\n'
        "    db.c.watch([])  # a change stream\n"
        '    db.c.update_one({}, {"$set": {"a": 1}})\n'
        '    db.c.aggregate([{"$set": {"a": 1}}, {"$graphLookup": {}}])\n'
    )
    uses, watch_calls = lesson.scan_source(source, "x.py")
    names = sorted(use.name for use in uses)
    assert names == ["$graphLookup", "$set", "stage $set", "watch"]
    assert watch_calls == 2
    assert lesson.rejected_names(uses, "5.0") == ["$graphLookup", "stage $set"]
    assert lesson.rejected_names(uses, "8.0") == ["$graphLookup"]


def test_only_watch_calls_without_a_key_count_as_change_streams(result):
    assert result.change_streams == sum(use.name == "watch" for use in result.uses) <= result.watch_calls


def test_the_url_options_parse_to_what_documentdb_needs(result):
    options = result.connection["options"]
    assert options["tls"] is True and options["retryWrites"] is False
    assert options["replicaSet"] == "rs0" and options["readPreference"] == "secondaryPreferred"
    assert result.connection["raw"]["tlsCAFile"] == "global-bundle.pem"
    assert "tlscafile" in result.connection["refusal"].lower()  # the driver reads the CA file


def test_a_client_from_the_url_would_not_retry_writes_unlike_the_default(result):
    client, plain = result.connection["client"], result.connection["plain"]
    assert client == {"retry_writes": False, "read_preference": "secondaryPreferred",
                      "replica_set_name": "rs0", "tls": True}  # fmt: skip
    assert plain["retry_writes"] is True and plain["read_preference"] == "primary"
    assert "DocumentDB" in result.connection["warning"]


def test_the_compatible_pipelines_run_as_written(result):
    passing = [p for p in result.pipelines if not p.rejected[lesson.TARGET]]
    assert [p.name for p in passing] == ["revenue by month", "top products"]
    assert all(p.rows > 0 and p.same_result is None for p in passing)


def test_each_rewrite_passes_the_checker_and_returns_what_the_original_returned(result):
    rewritten = [p for p in result.pipelines if p.rejected[lesson.TARGET]]
    assert {p.name for p in rewritten} == {"summaries ($facet)", "monthly report ($merge)"}
    for run in rewritten:
        assert run.rows > 0
        assert run.rewritten_rejected == [], run
        assert run.same_result is True, run
    assert result.holds


def test_the_bucket_rewrite_gives_each_band_its_lower_boundary():
    stages = lesson.bucket_as_group({"groupBy": "$v", "boundaries": [0, 10, 20, 30]})
    band = stages[1]["$group"]["_id"]
    assert band == {"$cond": [{"$lt": ["$v", 10]}, 0, {"$cond": [{"$lt": ["$v", 20]}, 10, 20]}]}
    assert stages[0] == {"$match": {"v": {"$gte": 0, "$lt": 30}}}


def test_a_second_run_gives_the_same_facts(result, mongodb):
    with MongoClient(mongodb.url) as client:
        again = lesson.run(client)
    assert again.rejected == result.rejected
    assert [(p.name, p.rows, p.same_result) for p in again.pipelines] == [
        (p.name, p.rows, p.same_result) for p in result.pipelines
    ]
