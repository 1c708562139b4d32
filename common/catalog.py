"""The catalog of lessons, read from the files themselves (nothing is imported).

A lesson is a .py file in a topic folder whose name does not start with "_". Its module
docstring's first line is its title; `REQUIRES = ("postgres", ...)` names the engines it
needs. The README's catalog table is generated from this (`python -m common.catalog --write`)
and a test fails when the two disagree.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from common.settings import ENGINES, ROOT

TOPICS = {
    "relational": "Relational design",
    "nosql": "Document, key-value and wide-column",
    "graph": "Graph",
    "timeseries": "Time series",
    "performance": "Performance",
    "migration": "Migration",
    "monitoring": "Monitoring",
    "security": "Security",
    "recovery": "Backup and recovery",
    "polyglot": "Polyglot",
}
START, END = "<!-- catalog:start -->", "<!-- catalog:end -->"


@dataclass(frozen=True)
class Lesson:
    path: Path
    title: str
    summary: str
    requires: tuple[str, ...]

    @property
    def relative(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    @property
    def topic(self) -> str:
        return self.path.parent.name


def read_lesson(path: Path) -> Lesson:
    tree = ast.parse(path.read_text(), filename=str(path))
    docstring = ast.get_docstring(tree) or ""
    paragraphs = docstring.split("\n\n")
    constants = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    requires = ast.literal_eval(constants["REQUIRES"]) if "REQUIRES" in constants else ()
    summary = " ".join(paragraphs[1].split()) if len(paragraphs) > 1 else ""
    return Lesson(path, paragraphs[0].strip(), summary, tuple(requires))


def reading_order(topic: str) -> list[str]:
    """The file names a topic's README lists as `1. [name.py](name.py): ...`, in that order."""
    readme = ROOT / topic / "README.md"
    if not readme.exists():
        return []
    return re.findall(r"^\d+\. \[`?([\w.]+\.py)`?\]", readme.read_text(), flags=re.MULTILINE)


def lessons() -> list[Lesson]:
    """Every lesson, topic by topic, each topic in its README's reading order."""
    found = []
    for topic in TOPICS:
        order = reading_order(topic)
        paths = [path for path in (ROOT / topic).glob("*.py") if not path.name.startswith("_")]
        paths.sort(key=lambda path: (order.index(path.name) if path.name in order else len(order), path.name))
        found.extend(read_lesson(path) for path in paths)
    return found


def engines_label(lesson: Lesson) -> str:
    return ", ".join(ENGINES[key].display for key in lesson.requires) or "SQLite (embedded)"


def table() -> str:
    rows = ["| Topic | Lesson | Engines | What it shows |", "|---|---|---|---|"]
    for lesson in lessons():
        rows.append(
            f"| {TOPICS[lesson.topic]} | [`{lesson.relative}`]({lesson.relative}) "
            f"| {engines_label(lesson)} | {lesson.title} |"
        )
    return "\n".join(rows)


def replace_section(text: str, start: str, end: str, body: str) -> str:
    """`text` with what stands between the `start` and `end` markers replaced by `body`."""
    before, _, rest = text.partition(start)
    _, _, after = rest.partition(end)
    return f"{before}{start}\n{body}\n{end}{after}"


def readme_with_table(readme: str) -> str:
    return replace_section(readme, START, END, table())


def main() -> int:
    readme_path = ROOT / "README.md"
    current = readme_path.read_text()
    wanted = readme_with_table(current)
    if "--write" in sys.argv:
        readme_path.write_text(wanted)
        print(f"README.md catalog: {len(lessons())} lessons")
        return 0
    print(table())
    return 0 if current == wanted else 1


if __name__ == "__main__":
    raise SystemExit(main())
