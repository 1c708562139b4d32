"""What a lesson prints: a title, numbered steps, a sentence of why, then the evidence.

Built on rich. When output is not a terminal (CI logs, a pipe) rich drops colour and
animation, so the same narrative reads as plain text. Tests call `quiet()` to silence it;
`EXAMPLES_QUIET=1` does the same for a script.

A step prints as `N. what it does` at the start of a line, and nothing else does (narrative
and evidence are indented), so `steps(output)` reads a run's outline back: the smoke test
checks that a second run takes the same steps as the first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

_console = Console(highlight=False, soft_wrap=True)
STEP_LINE = re.compile(r"^(\d+\. \S.*)$", re.MULTILINE)
_state = {"quiet": os.environ.get("EXAMPLES_QUIET") == "1", "step": 0}


def quiet(on: bool = True) -> None:
    _state["quiet"] = on


def _print(*things, **options) -> None:
    if not _state["quiet"]:
        _console.print(*things, **options)


def title(text: str) -> None:
    _state["step"] = 0
    _print(f"\n[bold]{escape(text)}[/bold]")


def step(text: str) -> None:
    _state["step"] += 1
    _print(f"\n[bold cyan]{_state['step']}.[/bold cyan] [bold]{escape(text)}[/bold]")


def steps(output: str) -> list[str]:
    """The step lines (`1. Load the rows`) of a lesson's printed output, in order."""
    return [line.rstrip() for line in STEP_LINE.findall(output)]


def say(text: str) -> None:
    """A line of narrative. Printed as is: data in [brackets] is not taken for rich markup."""
    _print(f"   {text}", markup=False)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], caption: str | None = None) -> None:
    grid = Table(box=box.SIMPLE_HEAD, caption=caption, padding=(0, 1), show_edge=False)
    for header in headers:
        grid.add_column(header)
    for row in rows:
        grid.add_row(*(escape(_cell(value)) for value in row))
    _print(grid)


def plan(text: str, max_lines: int = 12) -> None:
    """An execution plan, trimmed to its first lines."""
    lines = text.splitlines()
    shown = lines[:max_lines] + (
        [f"... ({len(lines) - max_lines} more lines)"] if len(lines) > max_lines else []
    )
    _print("\n".join("      " + line for line in shown), markup=False)


def compare(slow_label: str, slow_s: float, fast_label: str, fast_s: float) -> float:
    """Print `fast 0.41 s vs slow 9.8 s: 24x` and return the ratio slow/fast."""
    ratio = slow_s / fast_s if fast_s > 0 else float("inf")
    line = f"{fast_label} {seconds(fast_s)} vs {slow_label} {seconds(slow_s)}: "
    _print(f"   {escape(line)}[bold]{ratio:.1f}x[/bold]")
    return ratio


def seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def size(n_bytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n_bytes) < 1024 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} GB"


@contextmanager
def progress(description: str, total: int) -> Iterator:
    """A progress bar on a terminal; nothing elsewhere. Yields `advance(n)`."""
    if _state["quiet"] or not _console.is_terminal:
        yield lambda n=1: None
        return
    columns = (TextColumn("   {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=_console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def error(text: str) -> None:
    """One line to stderr, shown even when quiet."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(text, markup=False)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
