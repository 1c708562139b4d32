"""Every lesson, run the way a user runs it (`python topic/lesson.py`): exit code 0, in steps.

A lesson runs twice in a row here when nothing else runs it twice: the second run proves it
resets its own namespace, with the same exit code and the same outline (the numbered step
lines `common.console.step` prints). Engines come from the session's sources like any other
test. Two kinds run once:
- a lesson whose own test module has a `test_a_second_run_...` test, which runs it again on
  the same server and compares its facts, a stricter check than the outline; the script run
  here is then one more run on that server, before or after those two;
- recovery/ lessons: each run builds its nodes from nothing in new folders and removes them,
  so a second run has no namespace of theirs to find, and they are the slowest lessons.
"""

import pytest

from common import console
from common.catalog import lessons
from common.settings import ENGINES, NEEDS_REAL_MONGODB, ROOT, UNAVAILABLE
from tests.engine_pool import engine, run_script

LESSONS = lessons()
OWN_NODES_ONLY = {"recovery"}  # topics whose lessons touch no shared server, only nodes of their own


def runs_twice_elsewhere(lesson) -> bool:
    """The lesson's own test module runs it a second time and compares the facts."""
    module = ROOT / "tests" / lesson.topic / f"test_{lesson.path.name}"
    return module.is_file() and "def test_a_second_run_" in module.read_text()


@pytest.mark.parametrize(
    "lesson",
    [
        pytest.param(lesson, marks=pytest.mark.engines(*lesson.requires), id=lesson.relative)
        for lesson in LESSONS
    ],
)
def test_lesson_runs_twice_as_a_script(lesson):
    env = {}
    for key in lesson.requires:
        env.update(engine(key).env)
    outlines = []
    once = lesson.topic in OWN_NODES_ONLY or runs_twice_elsewhere(lesson)
    attempts = ("first",) if once else ("first", "second")
    for attempt in attempts:
        finished = run_script(lesson.relative, env)
        # A lesson whose whole subject the local stand-in lacks (a replica set) says so and exits 2.
        if finished.returncode == UNAVAILABLE and NEEDS_REAL_MONGODB in finished.stderr:
            pytest.skip(finished.stderr.strip().splitlines()[-1])
        assert finished.returncode == 0, (
            f"{attempt} run failed:\n{finished.stdout[-3000:]}\n{finished.stderr[-3000:]}"
        )
        outlines.append(console.steps(finished.stdout))
    first, *second = outlines
    assert first, "a lesson narrates in numbered steps (common.console.step)"
    assert second in ([], [first]), "the second run takes the same steps as the first"


@pytest.mark.parametrize(
    ("path", "strict", "status"),
    [
        ("relational/normalization.py", False, "not available"),  # `make demo` on a machine without servers
        ("relational/normalization.py", True, "failed"),  # `make run-parallel`: the stack must have it
        ("timeseries/timescaledb_hypertables.py", True, "skipped"),  # image only: no local stack has it
    ],
)
def test_the_lesson_runner_counts_a_server_that_is_down(monkeypatch, path, strict, status):
    from common.demo import run_one
    from servers.local.base import free_port

    for key in ("postgres", "timescaledb"):
        monkeypatch.setenv(ENGINES[key].variable, f"postgresql://examples:examples@127.0.0.1:{free_port()}/x")
    lesson = next(lesson for lesson in LESSONS if lesson.relative == path)
    assert run_one(lesson, strict)[0] == status


@pytest.mark.parametrize(("alone", "status", "exit_code"), [("ok", "flaky", 0), ("failed", "failed", 1)])
def test_a_lesson_that_fails_beside_others_runs_again_alone(monkeypatch, capsys, alone, status, exit_code):
    from common import demo

    first, *_ = LESSONS
    monkeypatch.setattr(demo, "lessons", lambda: [first])
    outcomes = iter([("failed", 1.0, "exit code 1:\nthe fact"), (alone, 1.0, "")])
    monkeypatch.setattr(demo, "run_one", lambda lesson, strict: next(outcomes))
    assert demo.run_all(jobs=4, strict=True) == exit_code
    printed = capsys.readouterr().out
    assert f"1 {status}" in printed
    assert f"{status.upper()}: {first.relative}" in printed  # repeated under the summary
