"""Checking, without a server, the SQL of lessons whose engines exist only as images.

Oracle, SQL Server and ArangoDB run here only from their compose images (Docker), so no CI machine
has one. Their tests check what needs no server with these functions: the statements a lesson module
sends, that each parses in its sqlglot dialect (a `Command`, sqlglot keeping text it could not read,
counts as a failure: a misspelt keyword would pass as one), the bind or placeholder names each holds
against the names the lesson's calls pass, and that main() says one line and exits 2 when the server
is not there. The helpers return what they find; the test modules assert on it.
"""

import ast
import os
import re
import subprocess
import sys
from collections.abc import Collection, Iterable
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError

from common.settings import ENGINES, ROOT
from servers.local.base import free_port

PYFORMAT = re.compile(r"%\((\w+)\)s")  # pymssql's named placeholders
SQL_CLAUSE = re.compile(r"\b(FROM|INTO|WHERE|TABLE|VALUES|SET|USING)\b")  # upper case: SQL, not prose


# --- the statements ----------------------------------------------------------------------------------


def statements_sent(
    lesson: ModuleType, verbs: Collection[str], collections: Iterable[str] = ()
) -> dict[str, str]:
    """Every SQL text the lesson module sends, by a name: its upper-case string constants whose first
    word is one of `verbs`, or that hold a clause keyword anywhere (so a misspelt first word is
    parsed, and fails, rather than dropped), and the members of its `collections` (dicts, lists,
    tuples) as NAME[key]."""
    found = {}
    for name, value in vars(lesson).items():
        if not (name.isupper() and isinstance(value, str)):
            continue
        first = re.match(r"\s*(\w+)", value)
        if (first and first[1] in verbs) or SQL_CLAUSE.search(value):
            found[name] = value
    for name in collections:
        members = getattr(lesson, name)
        items = members.items() if isinstance(members, dict) else enumerate(members)
        found.update({f"{name}[{key}]": sql for key, sql in items})
    return found


def parse(sql: str, dialect: str) -> list[exp.Expression]:
    """Each statement of `sql` as sqlglot reads it in `dialect`. ParseError where it cannot, and where
    it falls back to keeping the text as a Command, or finds no statement at all."""
    trees = sqlglot.parse(sql, read=dialect, error_level=ErrorLevel.RAISE)
    kept = [type(tree).__name__ for tree in trees if tree is None or isinstance(tree, exp.Command)]
    if not trees or kept:
        raise ParseError(f"sqlglot did not parse it as {dialect}: {kept or 'no statement'}")
    return trees


def parse_one(sql: str, dialect: str) -> exp.Expression:
    """The one statement `sql` holds, parsed as `parse` does."""
    trees = parse(sql, dialect)
    if len(trees) != 1:
        raise ParseError(f"{len(trees)} statements where one was expected")
    return trees[0]


def bind_names(sql: str, dialect: str) -> set[str]:
    """The names of the bind variables (:name) in a statement, as sqlglot finds them."""
    return {node.name for tree in parse(sql, dialect) for node in tree.find_all(exp.Placeholder)}


def as_pymssql_sends(statement: str) -> str:
    """The text pymssql sends for a statement: its own substitution of a value for each %(name)s."""
    from pymssql import _mssql

    names = PYFORMAT.findall(statement)
    if not names:
        return statement
    return _mssql.substitute_params(statement, dict.fromkeys(names, 7)).decode()


def has_stray_percent(statement: str) -> bool:
    """True when a % is left once the %(name)s placeholders are taken out: positional, or a typo."""
    return "%" in PYFORMAT.sub("", statement)


def databases_named(statements: dict[str, str]) -> dict[str, list[str]]:
    """For each statement that names a DATABASE, the names it gives."""
    return {
        name: re.findall(r"DATABASE (\w+)", sql) for name, sql in statements.items() if "DATABASE " in sql
    }


# --- the lesson's calls ------------------------------------------------------------------------------


def lesson_functions(lesson: ModuleType) -> dict[str, ast.FunctionDef]:
    """The module's top-level functions, by name, as syntax trees."""
    tree = ast.parse(Path(lesson.__file__).read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def called_name(call: ast.Call) -> str:
    """f for f(...) and for x.f(...)."""
    return getattr(call.func, "id", getattr(call.func, "attr", ""))


def calls_to(functions: dict[str, ast.FunctionDef], names: Collection[str]) -> list[tuple[str, ast.Call]]:
    """(calling function, call) for every call, in those functions, of a function or method named in `names`."""
    return [
        (owner, node)
        for owner, function in functions.items()
        for node in ast.walk(function)
        if isinstance(node, ast.Call) and called_name(node) in names
    ]


def keywords_passed(call: ast.Call) -> set[str]:
    """The keyword names a call passes; ValueError for a **mapping, whose names cannot be read here."""
    names = {keyword.arg for keyword in call.keywords}
    if None in names:
        raise ValueError(f"**kwargs hide the names passed: {ast.unparse(call)}")
    return names


def names_used(functions: dict[str, ast.FunctionDef]) -> set[str]:
    """Every bare name the functions read or write: a statement constant not among them is never sent."""
    return {
        node.id
        for function in functions.values()
        for node in ast.walk(function)
        if isinstance(node, ast.Name)
    }


def binds_passed_by_keyword(
    lesson: ModuleType,
    statements: Collection[str],
    calls: dict[str, tuple[int, int]],
    ignore: Collection[str] = (),
) -> dict[str, set[str]]:
    """For each statement constant the lesson passes with keyword binds, the keywords it passes.
    `calls`: called name -> (position of the statement, number of positional arguments), so that
    execute(CONST, name=...) is {"execute": (0, 1)}; `ignore`: keywords that are options, not binds."""
    passed: dict[str, set[str]] = {}
    for _, call in calls_to(lesson_functions(lesson), calls):
        position, n_args = calls[called_name(call)]
        if len(call.args) != n_args or not isinstance(call.args[position], ast.Name):
            continue
        if (name := call.args[position].id) in statements:
            passed.setdefault(name, set()).update(k.arg for k in call.keywords if k.arg not in ignore)
    return passed


def binds_that_differ(
    statements: dict[str, str], passed: dict[str, set[str]], dialect: str, unparsed: Collection[str] = ()
) -> dict[str, tuple[set[str], set[str]]]:
    """Statement name -> (bind names in the SQL, names passed) wherever the two differ. The `unparsed`
    statements are taken to hold no binds."""
    found = {}
    for name, sql in statements.items():
        wanted = set() if name in unparsed else bind_names(sql, dialect)
        if wanted != passed.get(name, set()):
            found[name] = (wanted, passed.get(name, set()))
    return found


class RecordingCursor:
    """A DB-API cursor that records what it is asked to run, for a lesson's pass-through helpers."""

    def __init__(self):
        self.calls = []

    def execute(self, *args):
        self.calls.append(args)

    def executemany(self, statement, rows, batch_size):
        self.calls.append((statement, len(rows), batch_size))


# --- the lesson as a user runs it, with no server -----------------------------------------------------


class Exit(NamedTuple):
    code: int
    lines: list[str]  # what it wrote to stderr, line by line
    stdout: str

    @property
    def one_line(self) -> str:
        """The line it wrote to stderr, if it wrote exactly one and no traceback; else ''."""
        return self.lines[0] if len(self.lines) == 1 and "Traceback" not in self.lines[0] else ""


def main_on_a_closed_port(lesson: ModuleType, engine: str, url: str, unset: Iterable[str] = ()) -> Exit:
    """Run the lesson as a user does (python topic/lesson.py, which calls main()) with the engine's
    address variable set to `url`, whose {port} becomes a free port: nothing listens there.
    `unset`: environment variables removed first."""
    env = {key: value for key, value in os.environ.items() if key not in set(unset)}
    env |= {"PYTHONPATH": str(ROOT), ENGINES[engine].variable: url.format(port=free_port())}
    script = Path(lesson.__file__).relative_to(ROOT)
    finished = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    return Exit(finished.returncode, finished.stderr.strip().splitlines(), finished.stdout)


def says_start_the_image(line: str, engine: str) -> bool:
    """The line names the engine that is not reachable and the variable holding its address, says to
    start its compose service (make up SERVICES=...), and offers no local server (image only)."""
    known = ENGINES[engine]
    wanted = (f"{known.display} is not reachable", f"({known.variable})", f"make up SERVICES={known.service}")
    return all(text in line for text in wanted) and "make local-up" not in line


def docstring_lacks(lesson: ModuleType, engine: str) -> list[str]:
    """What an image-only lesson's docstring is missing of: the compose image it was checked against,
    the Engine/Run/Look for/Checked against lines, and the command that starts the image."""
    from servers import containers

    service = ENGINES[engine].service
    wanted = [containers.compose_services()[service]["image"], f"make up SERVICES={service}"]
    wanted += [f"\n{line}" for line in ("Engine:", "Run:", "Look for:", "Checked against:")]
    return [text for text in wanted if text not in lesson.__doc__]
