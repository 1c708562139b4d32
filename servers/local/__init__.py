"""Local (Docker-less) servers, one module per engine; `server_class("redis")` finds one.

Which class serves an engine is said once, in the registry (`common.settings.ENGINES`).
"""

from __future__ import annotations

import importlib

from common.settings import ENGINES
from servers.local.base import LocalServer


def server_class(engine: str) -> type[LocalServer] | None:
    """The launcher of an engine, or None when only its image has it."""
    launcher = ENGINES[engine].launcher
    if launcher is None:
        return None
    return getattr(importlib.import_module(f"servers.local.{engine}"), launcher)
