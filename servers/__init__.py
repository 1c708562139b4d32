"""Where the servers come from when they are not a running compose stack.

`servers.local` starts installed server binaries (no Docker needed), `servers.containers`
starts the compose images with testcontainers, and `servers.engines` names every engine
once: its environment variable, compose service, default address and how to get it.
"""
