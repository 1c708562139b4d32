"""Throwaway servers: a node of a lesson's own, for what must never be done to the shared one.

A lesson that reconfigures, locks down, stops or breaks a server does it here: `throwaway("redis")`
starts a node on a free port in a temporary folder (the local launcher when it is installed, else a
container of the compose image when Docker answers), yields the environment a client needs
(`{"REDIS_URL": ...}`), and removes the node when the block ends, even when it fails.

    with throwaway("redis") as env:
        client = redis.Redis.from_url(env["REDIS_URL"])

Lessons that stop, crash and restore servers (recovery/) need the node itself: `node()` yields the
local server object, which the block may `stop()`, `kill()` (SIGKILL) and `start_and_wait()`
again; its files are under `node.workdir` (PostgreSQL's data folder is `node.data`). Pass
`start=False` to fill the folder first, say with a restored backup, then start it:

    with node("postgres", start=False) as restored:
        copy_backup_into(restored.data)
        restored.start_and_wait(tied_to_parent=True)
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from common.settings import ENGINES

if TYPE_CHECKING:
    from servers.local.base import LocalServer


class NoThrowaway(RuntimeError):
    """Neither a local server nor a Docker engine can give this engine a node of its own."""


@contextlib.contextmanager
def throwaway(engine: str, **options) -> Iterator[dict[str, str]]:
    """A node of `engine` for the length of the block; yields the environment that reaches it.

    `options` go to the local launcher, for a node configured differently from the shared one:
    `throwaway("postgres", settings={"wal_level": "logical"}, hba=[...])`. A container node
    takes none: with options, only an installed local server will do.
    """
    from servers.local import server_class

    launcher = server_class(engine)
    if launcher is not None and launcher.installed():
        from servers.local.base import free_port

        workdir = Path(tempfile.mkdtemp(prefix=f"throwaway-{engine}-"))
        server = launcher(free_port(), workdir, **options)
        try:
            server.start_and_wait(tied_to_parent=True)
            yield server.environment()
        finally:
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
        return

    from servers import containers

    if containers.docker_available() and not options:
        container = containers.ComposeContainer(engine)
        try:
            yield container.start()
        finally:
            with contextlib.suppress(Exception):  # already stopped when it never became ready
                container.stop()
        return

    raise NoThrowaway(
        f"no throwaway {ENGINES[engine].display}: install its local server (`make local-install`)"
        + ("" if options else " or start Docker")
    )


@contextlib.contextmanager
def node(engine: str, start: bool = True, **options) -> Iterator[LocalServer]:
    """A local node of `engine` that the block may stop, kill and restart; removed at the end.

    Only local servers: a lesson that crashes a server and reads its files needs the process and
    the folder on this machine. `options` go to the launcher, as for `throwaway`.
    """
    from servers.local import server_class
    from servers.local.base import free_port

    launcher = server_class(engine)
    if launcher is None or not launcher.installed():
        raise NoThrowaway(f"no local {ENGINES[engine].display}: install it with `make local-install`")
    workdir = Path(tempfile.mkdtemp(prefix=f"node-{engine}-"))
    server = launcher(free_port(), workdir, **options)
    try:
        if start:
            server.start_and_wait(tied_to_parent=True)
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
