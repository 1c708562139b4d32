"""Each topic folder's README lists its lessons in reading order: all of them, once, and no others."""

import pytest

from common.catalog import TOPICS, lessons, reading_order

TOPICS_WITH_LESSONS = sorted({lesson.topic for lesson in lessons()})


@pytest.mark.parametrize("topic", TOPICS_WITH_LESSONS)
def test_topic_readme_lists_every_lesson_once(topic):
    assert topic in TOPICS
    listed = reading_order(topic)
    in_folder = sorted(lesson.path.name for lesson in lessons() if lesson.topic == topic)
    assert sorted(listed) == in_folder, "the reading order lists every lesson of the folder exactly once"
