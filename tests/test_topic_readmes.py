"""Each topic folder's README lists its lessons in reading order: all of them, once, and no others."""

import re

import pytest

from common.catalog import TOPICS, lessons
from common.settings import ROOT

TOPICS_WITH_LESSONS = sorted({lesson.topic for lesson in lessons()})


@pytest.mark.parametrize("topic", TOPICS_WITH_LESSONS)
def test_topic_readme_lists_every_lesson_once(topic):
    assert topic in TOPICS
    readme = (ROOT / topic / "README.md").read_text()
    listed = re.findall(r"^\d+\. \[`?([\w.]+\.py)`?\]", readme, flags=re.MULTILINE)
    in_folder = sorted(lesson.path.name for lesson in lessons() if lesson.topic == topic)
    assert sorted(listed) == in_folder, "the reading order lists every lesson of the folder exactly once"
