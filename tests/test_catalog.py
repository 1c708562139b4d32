"""The README and the lessons agree, and every lesson keeps the contract of CONTRIBUTING.md."""

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from common import catalog
from common.settings import ENGINES, ROOT

LESSONS = catalog.lessons()
IDS = [lesson.relative for lesson in LESSONS]

# Top-level folders that hold no lessons: everything else with a .py file in it is a topic.
NOT_TOPICS = {"common", "servers", "tests", "benchmarks"}


def lesson_files_on_disk() -> list[str]:
    """Found without the catalog's help: every public .py file under a folder that is not shared code.

    An Alembic environment kept in a topic (a folder with a script.py.mako, such as
    migration/alembic/) holds env.py and revision scripts, not lessons.
    """
    return sorted(
        path.relative_to(ROOT).as_posix()
        for folder in ROOT.iterdir()
        if folder.is_dir() and not folder.name.startswith((".", "_")) and folder.name not in NOT_TOPICS
        for path in folder.rglob("*.py")
        if not path.name.startswith("_") and not in_alembic_environment(path, folder)
    )


def in_alembic_environment(path: Path, topic: Path) -> bool:
    return any((parent / "script.py.mako").is_file() for parent in path.parents if topic in parent.parents)


def test_the_catalog_lists_every_lesson_file():
    on_disk = lesson_files_on_disk()
    assert on_disk, "there are lessons"
    assert sorted(IDS) == on_disk, "a lesson outside the catalog's TOPICS, or one level too deep"


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
QUERY_KEYWORDS = {"query", "query_", "statement", "sql", "operation"}
WRAPPERS = {"text", "SQL", "SimpleStatement"}  # sqlalchemy.text(), psycopg.sql.SQL(): the query is inside


def _called(call: ast.Call) -> str:
    return call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")


def _literal(node: ast.expr, constants: set[str]) -> bool:
    """Text fixed in the source: a string, a module constant holding one, or a sum of those."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal(node.left, constants) and _literal(node.right, constants)
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)) or (
        isinstance(node, ast.Name) and node.id in constants
    )


def _formatted(node: ast.expr, constants: set[str] = frozenset()) -> bool:
    """An f-string, `%` formatting, `.format()` or `+` with a value: query text built from values."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.FormattedValue) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # psycopg.sql objects may be added
        text_side = any(isinstance(side, (ast.Constant, ast.JoinedStr)) for side in (node.left, node.right))
        return text_side and not _literal(node, constants)
    if isinstance(node, ast.Call) and _called(node) in WRAPPERS and node.args:
        return _formatted(node.args[0], constants)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Constant)
    )


def _assignments(scope: ast.AST):
    """(name, value) of every `name = value`, `name += value` and `name: type = value` in `scope`."""
    for node in ast.walk(scope):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            yield from ((target.id, node.value) for target in targets if isinstance(target, ast.Name))


def formatted_queries(source: str) -> list[str]:
    """Query calls whose text is built by formatting, inline or through a variable.

    Functions whose name says `vulnerable` are exempt: the injection lessons' labelled exception.
    """
    tree = ast.parse(source)
    top_level = [node for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))]
    constants: set[str] = set()
    for name, value in _assignments(ast.Module(body=top_level, type_ignores=[])):
        if _literal(value, constants):
            constants.add(name)
    module_names = {
        name for name, value in _assignments(ast.Module(top_level, [])) if _formatted(value, constants)
    }
    offenders = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef) or "vulnerable" in function.name:
            continue
        names = module_names | {
            name for name, value in _assignments(function) if _formatted(value, constants)
        }
        for call in ast.walk(function):
            if not (isinstance(call, ast.Call) and _called(call) in QUERY_METHODS):
                continue
            query = (
                call.args[0]
                if call.args
                else next((keyword.value for keyword in call.keywords if keyword.arg in QUERY_KEYWORDS), None)
            )
            if isinstance(query, ast.Call) and _called(query) in WRAPPERS and query.args:
                query = query.args[0]
            if query is not None and (
                _formatted(query, constants) or (isinstance(query, ast.Name) and query.id in names)
            ):
                offenders.append(f"line {call.lineno}: {ast.unparse(call)[:80]}")
    return offenders


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_no_query_is_built_by_string_formatting(lesson):
    """Values are bound; identifiers go through psycopg.sql. Only a function named as vulnerable may format."""
    offenders = formatted_queries(lesson.path.read_text())
    assert not offenders, offenders


@pytest.mark.parametrize(
    "source",
    [
        'def f(cur, v):\n    cur.execute(f"SELECT * FROM t WHERE id = {v}")',
        'def f(cur, v):\n    q = f"SELECT * FROM t WHERE id = {v}"\n    cur.execute(q, ())',
        'def f(cur, v):\n    q = "SELECT * FROM t WHERE id = %s" % v\n    cur.executemany(q, [])',
        'def f(cur, v):\n    q = "SELECT 1"\n    q += " AND id = {}".format(v)\n    cur.execute(q)',
        'def f(s, v):\n    q = "MATCH (n {id: " + v + "}) RETURN n"\n    s.run(q)',
        'def f(db, v):\n    db.query(query=f"SELECT {v}")',
        'def f(conn, v):\n    q = text(f"SELECT {v}")\n    conn.execute(q)',
        'def f(conn, v):\n    conn.execute(text(f"SELECT {v}"))',
        'Q = "SELECT * FROM t WHERE id = %s" % ID\ndef f(cur):\n    cur.execute(Q)',
        'def f(cur, v):\n    q = "SELECT * FROM t WHERE " + v\n    cur.execute(q)',
    ],
)
def test_the_formatting_check_finds_formatted_query_text(source):
    assert formatted_queries(source), source


@pytest.mark.parametrize(
    "source",
    [
        'def f(cur, v):\n    cur.execute("SELECT * FROM t WHERE id = %s", (v,))',
        'def f(cur, v):\n    q = "SELECT * FROM t WHERE id = %s"\n    cur.execute(q, (v,))',
        'def f(cur, name):\n    q = sql.SQL("DROP SCHEMA {}").format(sql.Identifier(name))\n    cur.execute(q)',
        'def f(cur, v):\n    label = f"row {v}"\n    cur.execute("SELECT %s", (label,))',
        'A = "SELECT * FROM t"\nB = A + " WHERE id = %s"\ndef f(cur, v):\n    cur.execute(B + " LIMIT 1", (v,))',
        "def vulnerable_login(cur, v):\n    cur.execute(f\"SELECT * FROM users WHERE name = '{v}'\")",
    ],
)
def test_the_formatting_check_lets_bound_queries_pass(source):
    assert not formatted_queries(source), source


def test_ruff_flags_query_text_built_by_formatting_in_a_lesson_folder():
    """S608 is on for lessons (and only tests are exempt): ruff reads the project's pyproject.toml."""
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed in this environment (make install)")
    source = 'def f(cur, v):\n    q = f"SELECT * FROM t WHERE id = {v}"\n    cur.execute(q)\n'
    finished = subprocess.run(
        [str(ruff), "check", "--no-cache", "--stdin-filename", "relational/_s608_probe.py", "-"],
        cwd=ROOT,
        input=source,
        capture_output=True,
        text=True,
    )
    assert "S608" in finished.stdout, finished.stdout + finished.stderr


def test_every_declared_marker_is_used():
    """A marker declared in pyproject.toml that no test carries is dead: remove it or use it."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    declared = re.findall(r'^\s+"(\w+)[(:]', pyproject.partition("markers = [")[2].partition("]")[0], re.M)
    assert declared
    this_file = Path(__file__).resolve()
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py") if p.resolve() != this_file)
    unused = [name for name in declared if f"mark.{name}" not in tests]
    assert not unused, f"declared in pyproject.toml, carried by no test: {unused}"
