"""Measure the local servers: install time (cold and warm), time to ready, memory when idle.

    python -m servers.measure [engine ...] [--cold] [--write]

Warm install re-runs `servers/install-local.sh ENGINE` with everything cached. `--cold` also
installs the engines built from the language registries into an empty cache first (downloads
and builds from nothing; OS packages are taken as installed). Each engine is then started on a
free port, timed until it answers a real query, and its memory read from /proc: the proportional
set size (PSS) of its processes (LocalServer.resident_bytes), so a page they share counts once.
`--write` puts the table into README.md between the engines markers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from common.catalog import replace_section
from common.settings import ENGINES, ROOT
from servers.local import server_class
from servers.local.base import free_port

START, END = "<!-- engines:start -->", "<!-- engines:end -->"
BUILT_FROM_REGISTRIES = {
    "neo4j",
    "cassandra",
    "mongodb",
    "influxdb",
    "toxiproxy",
    "couchdb",
    "gremlin",
    "janusgraph",
    "cosmosdb",
    "hbase",
}


def timed_install(engine: str, cache: Path | None = None) -> float:
    env = {**os.environ, **({"EXAMPLES_CACHE": str(cache)} if cache else {})}
    started = time.monotonic()
    subprocess.run(
        ["bash", str(ROOT / "servers" / "install-local.sh"), engine], env=env, check=True, capture_output=True
    )
    return time.monotonic() - started


def measure(engine: str, cold: bool) -> dict:
    row = {"engine": engine, "cold_s": None, "warm_s": None, "ready_s": None, "memory_mb": None, "server": ""}
    launcher = server_class(engine)
    if launcher is None:  # image only: nothing to install or start here
        row["server"] = "none: runs where Docker is"
        return row
    if cold and engine in BUILT_FROM_REGISTRIES:
        with tempfile.TemporaryDirectory(prefix="cold-cache-") as empty:
            row["cold_s"] = timed_install(engine, Path(empty))
    row["warm_s"] = timed_install(engine)
    if not launcher.installed():
        row["server"] = "not installed"
        return row
    with tempfile.TemporaryDirectory(prefix=f"measure-{engine}-") as workdir:
        upstream = start_upstream(engine, Path(workdir))
        server = launcher(free_port(), Path(workdir) / engine)
        if upstream:
            server.upstream_env = upstream.environment()
        try:
            row["ready_s"] = server.start_and_wait(tied_to_parent=True)
            time.sleep(2)  # let start-up work settle before reading memory
            row["memory_mb"] = server.resident_bytes() / 2**20
            row["server"] = server.display
        finally:
            server.stop()
            if upstream:
                upstream.stop()
    return row


def start_upstream(engine: str, workdir: Path):
    """The server a pooler or replica serves, started first (not measured)."""
    upstream = ENGINES[engine].upstream
    if upstream is None:
        return None
    server = server_class(upstream)(free_port(), workdir / upstream)
    server.start_and_wait(tied_to_parent=True)
    return server


def table(rows: list[dict]) -> str:
    lines = [
        "| engine | local server | install, cold | install, warm | ready in | memory (PSS) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:

        def fmt(value, unit):
            return "—" if value is None else f"{value:.1f} {unit}"

        if server_class(row["engine"]) is None:
            cold = "image only"
        elif row["engine"] in BUILT_FROM_REGISTRIES:
            cold = fmt(row["cold_s"], "s")
        else:
            cold = "OS/PyPI package"
        lines.append(
            f"| {ENGINES[row['engine']].display} | {row['server']} | {cold} | {fmt(row['warm_s'], 's')} "
            f"| {fmt(row['ready_s'], 's')} | {fmt(row['memory_mb'], 'MB')} |"
        )
    return "\n".join(lines)


def write_readme(text: str) -> None:
    readme_path = ROOT / "README.md"
    readme_path.write_text(replace_section(readme_path.read_text(), START, END, text))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engines", nargs="*", default=list(ENGINES))
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rows = [measure(engine, args.cold) for engine in args.engines]
    text = (
        table(rows)
        + f"\n\nMeasured by `python -m servers.measure{' --cold' if args.cold else ''}` on a {os.cpu_count()}-core machine."
    )
    print(text)
    if args.write:
        write_readme(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
