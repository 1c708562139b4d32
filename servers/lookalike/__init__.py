"""Lookalike images: the compose images' names on images built here from Debian packages and
the local servers' cached artifacts, for a Docker engine that can reach no image registry.

Each folder beside this file imitates one official image; its Dockerfile says what it
imitates and what it does not. `python -m servers.lookalike build` builds them (or loads them
from the cache, keyed by the content of each build context) and tags each with exactly the
image names in docker-compose.yml, so `make up` and the test suite start them unchanged.
"""
