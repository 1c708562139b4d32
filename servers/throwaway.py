"""Throwaway servers: a node of a lesson's own, for what must never be done to the shared one.

A lesson that reconfigures, locks down, stops or breaks a server does it here: `throwaway("redis")`
starts a node on a free port in a temporary folder (the local launcher when it is installed, else a
container of the compose image when Docker answers), yields the environment a client needs
(`{"REDIS_URL": ...}`), and removes the node when the block ends, even when it fails.

    with throwaway("redis") as env:
        client = redis.Redis.from_url(env["REDIS_URL"])
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from common.settings import ENGINES


class NoThrowaway(RuntimeError):
    """Neither a local server nor a Docker engine can give this engine a node of its own."""


@contextlib.contextmanager
def throwaway(engine: str) -> Iterator[dict[str, str]]:
    """A node of `engine` for the length of the block; yields the environment that reaches it."""
    from servers.local import server_class

    launcher = server_class(engine)
    if launcher is not None and launcher.installed():
        from servers.local.base import free_port

        workdir = Path(tempfile.mkdtemp(prefix=f"throwaway-{engine}-"))
        server = launcher(free_port(), workdir)
        try:
            server.start_and_wait(tied_to_parent=True)
            yield server.environment()
        finally:
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
        return

    from servers import containers

    if containers.docker_available():
        container = containers.ComposeContainer(engine)
        try:
            yield container.start()
        finally:
            with contextlib.suppress(Exception):  # already stopped when it never became ready
                container.stop()
        return

    raise NoThrowaway(
        f"no throwaway {ENGINES[engine].display}: install its local server "
        f"(`make local-install`) or start Docker"
    )
