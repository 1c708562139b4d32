"""Every lesson, run the way a user runs it (`python topic/lesson.py`), twice in a row.

The second run proves the lesson resets its own namespace: the same exit code (0) and the
same outline, the numbered step lines `common.console.step` prints. Engines come from the
session's sources like any other test.
"""

import pytest

from common import console
from common.catalog import lessons
from common.settings import ENGINES
from tests.engine_pool import engine, run_script

LESSONS = lessons()


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
    for attempt in ("first", "second"):
        finished = run_script(lesson.relative, env)
        assert finished.returncode == 0, (
            f"{attempt} run failed:\n{finished.stdout[-3000:]}\n{finished.stderr[-3000:]}"
        )
        outlines.append(console.steps(finished.stdout))
    first, second = outlines
    assert first, "a lesson narrates in numbered steps (common.console.step)"
    assert second == first, "the second run takes the same steps as the first"


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
