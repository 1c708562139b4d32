"""Every lesson, run the way a user runs it (`python topic/lesson.py`), twice in a row.

The second run proves the lesson resets its own namespace: same exit code, same output
shape. Engines come from the session's sources like any other test.
"""

import pytest

from common.catalog import lessons
from tests.conftest import engine, run_script

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
        served = engine(key)
        if lesson.real_server_only and key == "mongodb" and not served.real:
            pytest.skip(f"needs a real MongoDB ({lesson.real_server_only}); runs with Docker or MONGO_URL")
        env.update(served.env)
    for attempt in ("first", "second"):
        finished = run_script(lesson.relative, env)
        assert finished.returncode == 0, (
            f"{attempt} run failed:\n{finished.stdout[-3000:]}\n{finished.stderr[-3000:]}"
        )
        assert finished.stdout.strip(), "a lesson prints its narrative"
