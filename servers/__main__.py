"""`make local-up` / `make local-down`: the local servers on the compose ports.

    python -m servers up [engine ...]     start (in parallel) what is installed and not running
    python -m servers down                stop everything started here
    python -m servers status              what is running where

State lives in .local/servers/<engine>/ (git-ignored); the servers keep running after this
command exits, with the compose credentials, so lessons run unchanged.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor

from common.settings import ENGINES, ROOT
from servers.local import server_class
from servers.local.base import ServerStartError, port_open

STATE = ROOT / ".local" / "servers"


def launcher_for(engine: str):
    cls = server_class(engine)
    return cls(cls.compose_port, STATE / engine) if cls else None


def start(engine: str) -> str:
    server = launcher_for(engine)
    if server is None:
        return f"{engine}: no local server can be had; with Docker: make up SERVICES={engine}"
    if not server.installed():
        return f"{engine}: not installed (make local-install)"
    if port_open(server.port):
        return f"{engine}: already answering on port {server.port}"
    try:
        seconds = server.start_and_wait()
    except ServerStartError as failure:
        return f"{engine}: FAILED\n{failure}"
    return f"{engine}: ready on port {server.port} in {seconds:.1f} s ({server.display})"


def stop(engine: str) -> str | None:
    server = launcher_for(engine)
    if server is None or not (server.workdir / "server.pid").exists():
        return None
    server.stop()
    return f"{engine}: stopped"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m servers", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("engines", nargs="*", default=list(ENGINES))
    args = parser.parse_args(argv)
    engines = [e for e in args.engines if e in ENGINES]
    if args.action == "status":
        for engine in engines:
            cls = server_class(engine)
            port = cls.compose_port if cls else None
            state = "answering" if port and port_open(port) else "not running"
            print(f"{engine}: {state} (port {port})")
        return 0
    action = start if args.action == "up" else stop
    # Servers first, then what serves or copies them (a pooler, a replica); stop in reverse.
    waves = [[e for e in engines if not ENGINES[e].upstream], [e for e in engines if ENGINES[e].upstream]]
    if args.action == "down":
        waves.reverse()
    outcomes = []
    for wave in waves:
        with ThreadPoolExecutor(max_workers=len(wave) or 1) as pool:
            outcomes += [line for line in pool.map(action, wave) if line]
    for line in outcomes:
        print(line)
    return 1 if any("FAILED" in line for line in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
