"""The README and the lessons agree, and every lesson keeps the contract of CONTRIBUTING.md."""

import ast
import importlib
import subprocess
import sys

import pytest

from common import catalog
from common.settings import ENGINES, ROOT

LESSONS = catalog.lessons()
IDS = [lesson.relative for lesson in LESSONS]


def test_there_are_lessons():
    assert len(LESSONS) >= 3


def test_readme_catalog_is_generated_from_the_lessons():
    readme = (ROOT / "README.md").read_text()
    assert catalog.readme_with_table(readme) == readme, "run `python -m common.catalog --write`"


def test_every_readme_link_points_at_a_file():
    readme = (ROOT / "README.md").read_text()
    table = readme.partition(catalog.START)[2].partition(catalog.END)[0]
    linked = [cell.split("](")[1].split(")")[0] for cell in table.split("|") if "](" in cell]
    assert linked, "the catalog table links its lessons"
    for target in linked:
        assert (ROOT / target).is_file(), target


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_lesson_keeps_the_contract(lesson):
    tree = ast.parse(lesson.path.read_text())
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert lesson.title and not lesson.title.endswith("."), "docstring starts with a title line"
    assert lesson.summary, "the docstring says what the lesson teaches"
    assert {"run", "main"} <= functions
    assert set(lesson.requires) <= set(ENGINES), lesson.requires
    last = tree.body[-1]
    assert isinstance(last, ast.If) and "__main__" in ast.unparse(last.test), "ends with the __main__ guard"
    # Nothing but definitions, imports and constants at module level: importing does no work.
    for node in tree.body[1:-1]:
        assert isinstance(
            node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
        ), f"line {node.lineno}: work at import time"


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_lesson_imports_without_a_server(lesson):
    module = importlib.import_module(lesson.relative.removesuffix(".py").replace("/", "."))
    assert callable(module.run) and callable(module.main)


@pytest.mark.parametrize(
    "lesson", [lesson for lesson in LESSONS if lesson.requires], ids=lambda lesson: lesson.relative
)
def test_lesson_without_its_server_prints_one_line(lesson, unreachable_env):
    finished = subprocess.run(
        [sys.executable, lesson.relative],
        cwd=ROOT,
        env=unreachable_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert finished.returncode == 2
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in finished.stderr, finished.stderr
    assert "make up" in lines[0]
    assert ("make local-up" in lines[0]) == all(ENGINES[key].local for key in lesson.requires)


@pytest.fixture(scope="module")
def unreachable_env():
    """Every engine pointed at a port where nothing listens."""
    import os

    from servers.local.base import free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for spec in ENGINES.values():
        scheme = spec.default.split("://")[0] + "://" if "://" in spec.default else ""
        env[spec.variable] = f"{scheme}127.0.0.1:{port}"
    return env


QUERY_METHODS = {"execute", "executemany", "copy", "query", "execute_query", "run", "command", "prepare"}


def _formatted(node: ast.expr) -> bool:
    """An f-string, `%` formatting or `.format()` call: query text built from values."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.FormattedValue) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # psycopg.sql objects may be added
        return any(isinstance(side, (ast.Constant, ast.JoinedStr)) for side in (node.left, node.right))
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and (isinstance(node.func.value, ast.Constant))
    )


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_no_query_is_built_by_string_formatting(lesson):
    """Values are bound; identifiers go through psycopg.sql. Only a function named as vulnerable may format."""
    tree = ast.parse(lesson.path.read_text())
    offenders = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef) or "vulnerable" in function.name:
            continue
        for call in ast.walk(function):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr in QUERY_METHODS
                and call.args
                and _formatted(call.args[0])
            ):
                offenders.append(f"line {call.lineno}: {ast.unparse(call)[:80]}")
    assert not offenders, offenders
