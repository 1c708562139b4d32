"""Throwaway servers: a node of a lesson's own, for what must never be done to the shared one.

A lesson that reconfigures, locks down, stops or breaks a server does it here: `throwaway("redis")`
starts a node on a free port in a temporary folder (the local launcher when it is installed, else a
container of the compose image when Docker answers), yields the environment a client needs
(`{"REDIS_URL": ...}`), and removes the node when the block ends, even when it fails.

    with throwaway("redis") as env:
        client = redis.Redis.from_url(env["REDIS_URL"])

Lessons that stop, crash and restore servers (recovery/) need the node itself: `node()` yields the
local server object, or where only Docker serves a container node with the same surface
(servers/container_node.py), which the block may `stop()`, `kill()` (SIGKILL) and
`start_and_wait()` again; its files are under `node.workdir` (PostgreSQL's data folder is
`node.data`) and `node.tool([...])` runs a tool of the node's version as the owner of its files.
Pass `start=False` to fill the folder first, say with a restored backup, then start it:

    with node("postgres", start=False) as restored:
        restored.tool(["cp", "-a", backup, restored.data], check=True)
        restored.start_and_wait(tied_to_parent=True)
"""

from __future__ import annotations

import contextlib
import os
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
def node(engine: str, start: bool = True, *, local_only: str = "", **options) -> Iterator[LocalServer]:
    """A node of `engine` that the block may stop, kill and restart, on a free port in a temporary
    folder; removed at the end, even on failure.

    The local server when it is installed, else a container of the compose image when Docker answers
    (servers/container_node.py: the same surface, its data folder a host folder). EXAMPLES_SERVERS=docker
    prefers the container, =local never uses one. `options` go to the launcher, as for `throwaway`; a
    container node takes `settings` only, so other options need the local server. A lesson that
    cannot run on a container says why in `local_only`: NoThrowaway carries that line.
    """
    from common.settings import servers_mode
    from servers import container_node, containers
    from servers.local import server_class
    from servers.local.base import chown_for, free_port

    display = ENGINES[engine].display
    launcher = server_class(engine)
    local = launcher is not None and launcher.installed()
    mode = servers_mode()
    kind = container_node.NODES.get(engine)
    fits = mode != "local" and not local_only and kind is not None and set(options) <= kind.options
    if fits and (mode == "docker" or not local) and containers.docker_available():
        workdir = Path(tempfile.mkdtemp(prefix=f"node-{engine}-", dir=container_node.shared_root()))
        server = container_node.make_node(engine, free_port(), workdir, **options)
    elif local:
        workdir = Path(tempfile.mkdtemp(prefix=f"node-{engine}-"))
        if launcher.run_as and os.geteuid() == 0:
            chown_for(launcher.run_as, workdir)  # the server's account fills it before a first start too
        server = launcher(free_port(), workdir, **options)
    else:
        install = f"install the local {display} (`make local-install`)"
        if local_only:
            raise NoThrowaway(f"{local_only}: {install}")
        if fits or mode == "local":
            raise NoThrowaway(
                f"no throwaway {display}: {install}" + ("" if mode == "local" else " or start Docker")
            )
        why = (
            f"a container node takes no {', '.join(sorted(set(options) - kind.options))}" if kind else "none"
        )
        raise NoThrowaway(f"no throwaway {display}: {install} (container nodes: {why})")
    try:
        if start:
            server.start_and_wait(tied_to_parent=True)
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
