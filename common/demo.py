"""`make demo` and `make run-parallel`: run every lesson in the catalog and say, one line each, how it went.

    python -m common.demo                       every lesson, one at a time (`make demo`)
    python -m common.demo --jobs 4 --strict     four at once against one stack (`make run-parallel`)
    python -m common.demo --install-missing     first run: install the missing local servers
    python -m common.demo --skip recovery       every lesson but one topic's

A lesson whose server is not running exits with code 2 and one line saying how to start it.
`make demo` reports that as "not available" rather than a failure, so on a machine with no
servers at all the embedded (SQLite) lessons still run and the demo exits 0. With --strict
(the parallel run in CI) it is a failure, unless the lesson needs an engine that has no local
server (an image-only engine such as TimescaleDB): that lesson is skipped.

`--install-missing [engine ...]` (run by `make demo`, `make test` and `make local-up`) installs
the local servers that are not installed yet, when no Docker engine answers and this user can
install packages (root, or sudo on Debian/Ubuntu), through `servers/install-local.sh`, showing
its progress. `EXAMPLES_NO_INSTALL=1` opts out.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from common.catalog import TOPICS, Lesson, engines_label, lessons
from common.settings import ENGINES, NEEDS_REAL_MONGODB, ROOT, UNAVAILABLE, BadSetting, flag, servers_mode

TIMEOUT_S = 600


def run_one(lesson: Lesson, strict: bool = False) -> tuple[str, float, str]:
    """Run a lesson as a script: its status, how long it took, and what to show when it did not pass."""
    started = time.monotonic()
    env = {**os.environ, "EXAMPLES_QUIET": "0", "PYTHONPATH": str(ROOT)}
    try:
        finished = subprocess.run(
            [sys.executable, lesson.relative],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return "failed", time.monotonic() - started, f"timed out after {TIMEOUT_S} s"
    seconds = time.monotonic() - started
    if finished.returncode == 0:
        return "ok", seconds, ""
    if finished.returncode == UNAVAILABLE:
        last_line = (finished.stderr.strip().splitlines() or ["(no output)"])[-1]
        if not strict:
            return "not available", seconds, last_line
        if not all(ENGINES[key].local for key in lesson.requires):
            return "skipped", seconds, f"image-only engine not running: {last_line}"
        if NEEDS_REAL_MONGODB in last_line:  # a replica set: no local stand-in has one
            return "skipped", seconds, last_line
    # The end of the narrative, then where in our code it stopped and why (not the drivers' frames).
    errors = finished.stderr.strip().splitlines()
    ours = [line for line in errors if str(ROOT) in line and "site-packages" not in line]
    shown = finished.stdout.strip().splitlines()[-8:] + ours[-3:] + errors[-1:]
    return "failed", seconds, "\n".join([f"exit code {finished.returncode}:", *shown])


def run_all(jobs: int = 1, strict: bool = False, skip: tuple[str, ...] = ()) -> int:
    """Every lesson (but the `skip` topics'), `jobs` at a time; one line each as it finishes. 1 when any failed.

    With jobs > 1, a lesson that fails beside others runs again alone: passing then, it is
    "flaky" (not a failure, but listed with what it showed the first time: a lesson that needs
    the machine to itself, or that another lesson disturbs); failing again, it failed.
    """
    counts = {"ok": 0, "flaky": 0, "not available": 0, "skipped": 0, "failed": 0}
    shown: dict[str, tuple[str, str]] = {}  # lesson -> (status, what it showed), repeated at the end
    chosen = [lesson for lesson in lessons() if lesson.topic not in skip]
    # Run in parallel, the long performance lessons (last in the catalog) start first, so the
    # others run beside them while they load data and flood connections.
    ordered = chosen[::-1] if jobs > 1 else chosen
    rerun = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running = {pool.submit(run_one, lesson, strict): lesson for lesson in ordered}
        for future in as_completed(running):
            lesson = running[future]
            status, seconds, detail = future.result()
            if status == "failed" and jobs > 1:
                rerun.append((lesson, detail))
                status, detail = "failed, rerun", detail.splitlines()[0]
            else:
                counts[status] += 1
            report_line(lesson, status, seconds, detail)
            if status == "failed":
                shown[lesson.relative] = (status, detail)
    for lesson, first_detail in rerun:  # alone, after the others
        status, seconds, detail = run_one(lesson, strict)
        status = "flaky" if status == "ok" else status
        counts[status] += 1
        report_line(lesson, status, seconds, detail)
        if status in ("flaky", "failed"):
            shown[lesson.relative] = (status, first_detail if status == "flaky" else detail)
    print(
        "\n" + ", ".join(f"{count} {status}" for status, count in counts.items() if count or status == "ok")
    )
    for relative, (status, detail) in shown.items():  # again at the end, where a CI log's tail shows it
        when = "beside the others; it passed alone" if status == "flaky" else ""
        print(f"\n{status.upper()}: {relative} {when}\n{detail}")
    return 1 if counts["failed"] else 0


def report_line(lesson: Lesson, status: str, seconds: float, detail: str) -> None:
    line = f"{status:<14} {lesson.relative:<45} {seconds:6.1f} s  [{engines_label(lesson)}]"
    indented = "\n".join(f"{'':<15}{text}" for text in detail.splitlines())
    print(line + (f"\n{indented}" if detail else ""), flush=True)


# --- the first run: install the local servers that are missing -----------------------------------


def missing_local_servers(keys: list[str] | None = None) -> list[str]:
    """Engines with a local server that is not installed (an engine given by its variable needs none)."""
    from servers.local import server_class

    missing = []
    for key in keys or ENGINES:
        engine = ENGINES[key]
        launcher = server_class(key) if engine.local else None
        if launcher is not None and engine.variable not in os.environ and not launcher.installed():
            missing.append(key)
    return missing


def why_not_install() -> str | None:
    """None when this user can run servers/install-local.sh, else why not."""
    if not (Path("/etc/debian_version").exists() and shutil.which("apt-get")):
        return "the installer needs Debian or Ubuntu"
    if os.geteuid() == 0:
        return None
    if shutil.which("sudo") and (
        sys.stdin.isatty() or subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0
    ):
        return None  # sudo may ask for a password on the terminal
    return "installing packages needs root or sudo"


def install(engines: list[str]) -> int:
    """Run the installer, each line of its output stamped with the time so far, and a line every 30 s."""
    started = time.monotonic()

    def stamp(text: str) -> None:
        elapsed = int(time.monotonic() - started)
        print(f"   [{elapsed // 60}:{elapsed % 60:02d}] {text}", flush=True)

    process = subprocess.Popen(
        ["bash", "servers/install-local.sh", *engines],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=lambda: [*map(lines.put, process.stdout), lines.put(None)], daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            stamp("still installing ...")
            continue
        if line is None:
            return process.wait()
        stamp(line.rstrip())


def install_missing(keys: list[str] | None = None) -> int:
    """`make demo`, `make test`, `make local-up` without Docker: install what is missing, once."""
    if flag("EXAMPLES_NO_INSTALL") or servers_mode() in ("env", "docker"):
        return 0
    from servers.containers import docker_available

    if servers_mode() == "auto" and docker_available():
        return 0
    missing = missing_local_servers(keys)
    if not missing:
        return 0
    why_not = why_not_install()
    if why_not:
        print(
            f"Local servers not installed: {', '.join(missing)}. No Docker engine answers and {why_not}: "
            "install them with `make local-install` (root or sudo on Debian/Ubuntu), or start Docker."
        )
        return 0
    print(
        f"First run: installing the local servers {', '.join(missing)}: up to about 15 minutes on a fresh "
        "machine (packages, Maven jars, a Go build), seconds when the downloads are cached. "
        "EXAMPLES_NO_INSTALL=1 skips this; `make local-install` does it by hand.",
        flush=True,
    )
    if install(missing) != 0:
        print("Some local servers could not be installed (above); the lessons that need them will say so.")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1, help="lessons run at once (default 1)")
    parser.add_argument("--strict", action="store_true", help="a lesson whose local server is down fails")
    parser.add_argument(
        "--install-missing", action="store_true", help="install missing local servers, then exit"
    )
    parser.add_argument(
        "--skip", action="append", default=[], choices=TOPICS, metavar="TOPIC", help="leave a topic out"
    )
    parser.add_argument("engines", nargs="*", help="with --install-missing: only these engines")
    args = parser.parse_args(argv)
    unknown = set(args.engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engines {sorted(unknown)}: use {', '.join(ENGINES)}")
    try:
        if args.install_missing:
            return install_missing(args.engines)
        return run_all(max(args.jobs, 1), args.strict, tuple(args.skip))
    except BadSetting as bad:
        print(bad, file=sys.stderr)
        return UNAVAILABLE


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
