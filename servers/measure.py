"""Measure the local servers: install time (cold and warm), time to ready, memory when idle.

    python -m servers.measure [engine ...] [--cold] [--write]

Warm install re-runs `servers/install-local.sh ENGINE` with everything cached. `--cold` also
installs the engines built from the language registries into an empty cache first (downloads
and builds from nothing; OS packages are taken as installed). Each engine is then started on a
free port, timed until it answers a real query, and its resident memory (all processes of its
group) read from /proc. `--write` puts the table into README.md between the engines markers.
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


def group_rss_bytes(pgid: int) -> int:
    total = 0
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                rss_kb = next(
                    int(line.split()[1])
                    for line in (status.parent / "status").read_text().splitlines()
                    if line.startswith("VmRSS:")
                )
                total += rss_kb * 1024
        except (OSError, StopIteration, ValueError, IndexError):
            continue
    return total


def measure(engine: str, cold: bool) -> dict:
    row = {"engine": engine, "cold_s": None, "warm_s": None, "ready_s": None, "rss_mb": None, "server": ""}
    if cold and engine in BUILT_FROM_REGISTRIES:
        with tempfile.TemporaryDirectory(prefix="cold-cache-") as empty:
            row["cold_s"] = timed_install(engine, Path(empty))
    row["warm_s"] = timed_install(engine)
    launcher = server_class(engine)
    if launcher is None:
        row["server"] = "none: runs where Docker is"
        return row
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
            row["rss_mb"] = group_rss_bytes(server.process.pid) / 2**20
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
        "| engine | local server | install, cold | install, warm | ready in | memory (RSS) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:

        def fmt(value, unit):
            return "—" if value is None else f"{value:.1f} {unit}"

        cold = fmt(row["cold_s"], "s") if row["engine"] in BUILT_FROM_REGISTRIES else "OS/PyPI package"
        lines.append(
            f"| {ENGINES[row['engine']].display} | {row['server']} | {cold} | {fmt(row['warm_s'], 's')} "
            f"| {fmt(row['ready_s'], 's')} | {fmt(row['rss_mb'], 'MB')} |"
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
