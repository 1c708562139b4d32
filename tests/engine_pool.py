"""The engine pool: each engine once per session, from the first source that has it.

A pytest plugin (registered in tests/conftest.py). Sources are tried in the order of
servers/sources.py (environment variable, Docker, local binary). The engines that the
selected tests need are started in parallel as soon as collection ends; a test that needs
one waits for it. With EXAMPLES_SERVERS set, a missing engine fails the test instead of
skipping it. Each xdist worker starts its own servers on free ports, so parallel runs do
not share state. Tests import `engine` and `run_script` from here; fixtures live in conftest.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from common.settings import ENGINES, NEEDS_REAL_MONGODB, ROOT
from servers import containers
from servers.local import server_class
from servers.sources import NoImage, Provided, Unavailable, how_to_get, mode, provide

ENGINE_FIXTURES = set(ENGINES)


class EnginePool:
    """Starts engines on demand (or ahead, in parallel) and stops them at the end."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="examples-servers-"))
        self.executor = ThreadPoolExecutor(max_workers=len(ENGINES))
        self.futures: dict[str, Future] = {}
        self.lock = threading.Lock()

    def prestart(self, engines: set[str]) -> None:
        with self.lock:
            for engine in sorted(engines):
                if engine not in self.futures:
                    self.futures[engine] = self.executor.submit(self._provide, engine)

    def _provide(self, engine: str) -> Provided:
        upstream = ENGINES[engine].upstream
        upstream_env = self.get(upstream).env if upstream else None  # a replica needs its primary
        return provide(engine, self.workdir, upstream_env)

    def get(self, engine: str) -> Provided:
        self.prestart({engine})
        return self.futures[engine].result()

    def report(self) -> list[str]:
        lines = []
        for engine, future in sorted(self.futures.items()):
            name = ENGINES[engine].display
            if not future.done():
                lines.append(f"{name}: still starting")
            elif future.exception() is not None:
                lines.append(f"{name}: not available ({str(future.exception()).splitlines()[0]})")
            else:
                served = future.result()
                timing = f", ready in {served.seconds_to_ready:.1f} s" if served.source != "env" else ""
                lines.append(f"{name}: {served.source} ({served.detail}{timing})")
        return lines

    def close(self) -> None:
        # Dependents first: a replica or pooler stops before the server it serves.
        ordered = sorted(self.futures.items(), key=lambda item: ENGINES[item[0]].upstream is None)
        for _engine, future in ordered:
            with contextlib.suppress(BaseException):  # one that never started has nothing to stop
                future.result().stop()
        self.executor.shutdown(wait=False, cancel_futures=True)
        containers.remove_session_network()
        shutil.rmtree(self.workdir, ignore_errors=True)


POOL = EnginePool()


def engines_of(item: pytest.Item) -> set[str]:
    wanted = set(item.fixturenames) & ENGINE_FIXTURES
    for marker in item.iter_markers("engines"):
        wanted |= set(marker.args)
    return wanted


def pytest_collection_finish(session):
    """Start every engine the selected tests need, in parallel, before the first test runs."""
    if not session.config.option.collectonly and session.items:
        POOL.prestart(set().union(*(engines_of(item) for item in session.items)))


def pytest_sessionfinish(session):
    POOL.close()


def pytest_terminal_summary(terminalreporter):
    lines = POOL.report()
    if lines:
        terminalreporter.section(f"engines (EXAMPLES_SERVERS={mode()})")
        for line in lines:
            terminalreporter.write_line(line)
    skipped = [str(report.longrepr) for report in terminalreporter.stats.get("skipped", [])]
    for what, label, where in (
        (NEEDS_REAL_MONGODB, "need a real MongoDB", "with the mongo image or MONGO_URL"),
        ("has no local server", "need an image-only engine", "where Docker is"),
        (
            "is image only and its image cannot be had here",
            "need an image no registry here serves",
            "with that image",
        ),
    ):
        count = sum(what in reason for reason in skipped)
        if count:
            per_engine = Counter(
                spec.display
                for reason in skipped
                if what in reason
                for spec in ENGINES.values()
                if f"{spec.display} {what}" in reason
            )
            named = ", ".join(f"{display} {n}" for display, n in sorted(per_engine.items()))
            terminalreporter.write_line(
                f"{count} test(s) {label}{f' ({named})' if named else ''}: "
                f"not verified in this run; they run {where}"
            )


def engine(key: str) -> Provided:
    """The session's server for `key`, or a skip (a failure when a source is forced)."""
    spec = ENGINES[key]
    try:
        return POOL.get(key)
    except NoImage as missing:
        if spec.lookalike is None:
            # Docker answers but no registry does, and no lookalike of this image can be built.
            pytest.skip(f"{spec.display} is image only and its image cannot be had here: {missing}")
        pytest.fail(f"{spec.display} not available with EXAMPLES_SERVERS={mode()}: {missing}")
    except Unavailable as missing:
        if server_class(key) is None and mode() != "env":
            # No local server can be had for it (an image-only engine): it runs where Docker is.
            pytest.skip(f"{spec.display} has no local server; runs with Docker or {spec.variable}")
        if mode() == "auto":
            pytest.skip(f"{spec.display} not available: {how_to_get(key)}")
        pytest.fail(f"{spec.display} not available with EXAMPLES_SERVERS={mode()}: {missing}")
    except Exception as broken:  # it was there but did not start: a container or a server that failed
        pytest.fail(f"{spec.display} did not start ({mode()}): {broken}")


def run_script(path: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a lesson the way a user does: `python path/to/lesson.py`."""
    # Performance lessons at a tenth of their size: `make bench` is where full size runs.
    full_env = {"EXAMPLES_SCALE": "0.1", **os.environ, **env, "EXAMPLES_QUIET": "0", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, path], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
    )
