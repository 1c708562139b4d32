"""`make demo`: run every lesson in the catalog and say, one line each, how it went.

A lesson whose server is not running exits with code 2 and one line saying how to start it;
the demo reports that as "not available" rather than a failure, so on a machine with no
servers at all the embedded (SQLite) lessons still run and the demo exits 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from common.catalog import engines_label, lessons
from common.settings import ROOT, UNAVAILABLE


def run_one(path: str) -> tuple[str, float, str]:
    started = time.monotonic()
    env = {**os.environ, "EXAMPLES_QUIET": "1", "PYTHONPATH": str(ROOT)}
    try:
        finished = subprocess.run(
            [sys.executable, path], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
    except subprocess.TimeoutExpired:
        return "failed", time.monotonic() - started, "timed out after 600 s"
    seconds = time.monotonic() - started
    if finished.returncode == 0:
        return "ok", seconds, ""
    last_line = (finished.stderr.strip().splitlines() or ["(no output)"])[-1]
    status = "not available" if finished.returncode == UNAVAILABLE else "failed"
    return status, seconds, last_line


def main() -> int:
    counts = {"ok": 0, "not available": 0, "failed": 0}
    for lesson in lessons():
        status, seconds, detail = run_one(lesson.relative)
        counts[status] += 1
        line = f"{status:<14} {lesson.relative:<45} {seconds:6.1f} s  [{engines_label(lesson)}]"
        print(line + (f"\n{'':<15}{detail}" if detail else ""), flush=True)
    print(f"\n{counts['ok']} ok, {counts['not available']} not available, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
