"""Build or load the lookalike images: `python -m servers.lookalike build [folder ...]`.

Needs a Docker engine (DOCKER_HOST) and, for the Java and Go engines, the local servers'
artifacts (`servers/install-local.sh`). Every image is keyed by a hash of its build context
(Dockerfile, scripts, copied artifacts) and its parent's key, and saved under
$EXAMPLES_CACHE/lookalike/, so a second run loads instead of building.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common.settings import ENGINES
from servers.containers import compose_services
from servers.local.base import CACHE

HERE = Path(__file__).resolve().parent
STORE = CACHE / "lookalike"
ROOTFS = "examples-lookalike/rootfs:bookworm"
# Images that are only parents of others, with their tags; the rest are tagged from compose.
PARENTS = {"base": "examples-lookalike/base:bookworm", "jvm": "examples-lookalike/jvm:17"}
JVM_BASED = ("neo4j", "cassandra", "mongodb", "gremlin", "janusgraph", "hbase")


def docker(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}  # the classic builder: no buildx plugin here
    return subprocess.run(["docker", *args], check=True, env=env, **kwargs)


def tags_of(folder: str) -> list[str]:
    """The compose image names this folder stands in for."""
    if folder in PARENTS:
        return [PARENTS[folder]]
    services = compose_services()
    # A service whose image compose builds on every `up` (postgres_secure) is built on top of a
    # lookalike, not one; one built only where missing (hbase: its base images are not compose's)
    # has a lookalike of its own, tagged as its image.
    return sorted(
        {
            services[e.service]["image"]
            for e in ENGINES.values()
            if e.lookalike == folder and services[e.service].get("pull_policy", "missing") == "missing"
        }
    )


def mirror() -> str:
    """The Debian mirror the host's apt uses, so the images' apt reaches the same one."""
    for source in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        for line in source.read_text().splitlines() if source.is_file() else []:
            words = line.split()
            if words[:1] == ["URIs:"] or words[:1] == ["deb"]:
                uri = words[1] if words[0] == "URIs:" else words[-3]
                if "debian" in uri and "security" not in uri:
                    return uri
    return "http://deb.debian.org/debian"


def ensure_rootfs() -> None:
    """A minimal Debian 12 root file system, made once by debootstrap and kept as a tarball."""
    tarball = STORE / "rootfs-bookworm.tar"
    if not tarball.exists():
        if not shutil.which("debootstrap"):
            subprocess.run(["apt-get", "install", "-y", "-qq", "debootstrap"], check=True)
        with tempfile.TemporaryDirectory(dir=STORE) as root:
            print(f"lookalike: debootstrap bookworm from {mirror()} (about 30 s)", flush=True)
            subprocess.run(
                ["debootstrap", "--variant=minbase", "bookworm", root, mirror()],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            subprocess.run(["tar", "-C", root, "-cf", f"{tarball}.partial", "."], check=True)
        Path(f"{tarball}.partial").rename(tarball)
    with tarball.open("rb") as stream:
        docker("import", "-", ROOTFS, stdin=stream, stdout=subprocess.DEVNULL)


# --- what each build context holds beyond its folder ---------------------------------------


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, copy_function=os.link)
    else:
        shutil.copy2(source, target)


def _neo4j(context: Path) -> dict[str, str]:
    from servers.local.neo4j import HOME, JVM_FLAGS, SETTINGS

    _copy(HOME / "lib", context / "lib")
    _copy(HOME / "launcher.jar", context / "launcher.jar")
    (context / "jvm.args").write_text("\n".join(JVM_FLAGS) + "\n")
    (context / "neo4j.conf").write_text("".join(f"{key}={value}\n" for key, value in SETTINGS.items()))
    return {}


def _cassandra(context: Path) -> dict[str, str]:
    from servers.local.cassandra import CONFIG, HOME, JVM, PROPERTIES, module_flags

    _copy(HOME / "lib", context / "lib")
    for name in ("cassandra.yaml", "logback.xml"):
        _copy(CONFIG / name, context / name)
    jamm = f"/opt/cassandra/lib/{(HOME / 'jamm.jar').resolve().name}"
    flags = [*JVM, f"-javaagent:{jamm}", *module_flags(), *(f"-D{k}={v}" for k, v in PROPERTIES.items())]
    (context / "jvm.args").write_text("\n".join(flags) + "\n")
    return {}


def _mongodb(context: Path) -> dict[str, str]:
    from servers.local.mongodb import HOME, MongoServer

    _copy(HOME / "lib", context / "lib")
    _copy(HOME / "classes", context / "classes")
    command = MongoServer(0, Path("/data")).command()
    (context / "jvm.args").write_text("\n".join(command[1 : command.index("-cp")]) + "\n")
    return {}


def _influxdb(context: Path) -> dict[str, str]:
    from servers.local.influxdb import BINARY

    _copy(BINARY, context / "influxd")
    return {}


def _toxiproxy(context: Path) -> dict[str, str]:
    from servers.local.toxiproxy import BINARY

    _copy(BINARY, context / "toxiproxy")
    return {}


def _gremlin(context: Path) -> dict[str, str]:
    """The Gremlin Server distribution the local server runs (bin/, conf/, lib/, ext/, scripts/)."""
    from servers.local.gremlin import HOME

    _copy((HOME / "home").resolve(), context / "gremlin-server")
    return {}


def _janusgraph(context: Path) -> dict[str, str]:
    from servers.local.janusgraph import CONFIG, HOME

    _copy(HOME / "lib", context / "lib")
    for name in ("janusgraph-server.yaml", "janusgraph.properties", "init.groovy", "log4j2.xml"):
        _copy(CONFIG / name, context / name)
    return {}


def _hbase(context: Path) -> dict[str, str]:
    from servers.local.hbase import CONFIG, HOME

    _copy(HOME / "lib", context / "lib")
    for name in ("log4j.properties", "jvm.args"):
        _copy(CONFIG / name, context / name)
    for name in ("entrypoint.sh", "healthcheck.sh"):
        _copy(CONFIG.parents[1] / "compose" / "hbase" / name, context / name)
    return {}


def _cosmosdb(context: Path) -> dict[str, str]:
    from servers.local.cosmosdb import BINARY

    _copy(BINARY, context / "cosmium")
    return {}


def _couchdb(context: Path) -> dict[str, str]:
    """The local server's installed npm tree (leveldown's prebuilds included) and its preload, run on
    Debian's Node.js: no npm in the image, no registry reached from the build."""
    from servers.local.couchdb import HOME, PRELOAD

    _copy(HOME / "node_modules", context / "node_modules")
    (context / "ignore-credentials.js").write_text(PRELOAD)
    return {}


def _dynamodb(context: Path) -> dict[str, str]:
    """The same moto as the local server, as wheels fetched by the host's pip (its settings
    reach PyPI; a build container's pip would not have them)."""
    from importlib.metadata import version

    wheels = STORE / "wheels" / f"moto-{version('moto')}"
    if not wheels.is_dir():
        partial = Path(f"{wheels}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        requirement = f"moto[server]=={version('moto')}"
        download = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(partial)]
        subprocess.run([*download, requirement], check=True)
        partial.rename(wheels)
    _copy(wheels, context / "wheels")
    return {"MOTO_VERSION": version("moto")}


EXTRAS = {
    "neo4j": _neo4j,
    "cassandra": _cassandra,
    "mongodb": _mongodb,
    "influxdb": _influxdb,
    "toxiproxy": _toxiproxy,
    "couchdb": _couchdb,
    "cosmosdb": _cosmosdb,
    "hbase": _hbase,
    "gremlin": _gremlin,
    "janusgraph": _janusgraph,
    "dynamodb": _dynamodb,
    "moto": _dynamodb,  # the same moto wheels, serving every AWS API it has
}


def context_key(context: Path, parent_key: str, build_args: dict[str, str]) -> str:
    digest = hashlib.sha256(parent_key.encode())
    for name, value in sorted(build_args.items()):
        digest.update(f"{name}={value}".encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(context)} {path.stat().st_mode & 0o111:o}".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build(folder: str, parent_key: str) -> str:
    """Load the image from the cache, or build and save it; return its key."""
    tags = tags_of(folder)
    with tempfile.TemporaryDirectory(dir=STORE) as tmp:
        context = Path(tmp) / folder
        shutil.copytree(HERE / folder, context)
        build_args = EXTRAS[folder](context) if folder in EXTRAS else {}
        key = context_key(context, parent_key, build_args)
        saved = STORE / f"{folder}-{key}.tar"
        started = time.monotonic()
        if saved.exists():
            docker("load", "-q", "-i", str(saved), stdout=subprocess.DEVNULL)
            print(
                f"lookalike: {folder}: loaded {', '.join(tags)} ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
            return key
        arguments = [f"--build-arg={name}={value}" for name, value in build_args.items()]
        tag_options = [option for tag in tags for option in ("-t", tag)]
        log = Path(tmp) / "build.log"
        with log.open("w") as output:
            try:
                docker(
                    "build",
                    "--network",
                    "host",
                    *arguments,
                    *tag_options,
                    str(context),
                    stdout=output,
                    stderr=output,
                )
            except subprocess.CalledProcessError:
                print(log.read_text()[-4000:], file=sys.stderr)
                raise
        for old in STORE.glob(f"{folder}-*.tar"):
            old.unlink()
        docker("save", "-o", f"{saved}.partial", *tags)
        Path(f"{saved}.partial").rename(saved)
        print(
            f"lookalike: {folder}: built {', '.join(tags)} ({time.monotonic() - started:.0f} s)", flush=True
        )
        return key


def build_all(folders: list[str]) -> None:
    STORE.mkdir(parents=True, exist_ok=True)
    ensure_rootfs()
    base_key = build("base", "bookworm")
    # Two at a time: apt downloads overlap with another image's unpacking on two cores.
    with ThreadPoolExecutor(max_workers=3) as pool:
        jvm = pool.submit(build, "jvm", base_key) if any(f in JVM_BASED for f in folders) else None
        plain = [pool.submit(build, f, base_key) for f in folders if f not in JVM_BASED]
        jvm_key = jvm.result() if jvm else ""
        on_jvm = [pool.submit(build, f, jvm_key) for f in folders if f in JVM_BASED]
        for future in [*plain, *on_jvm]:
            future.result()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m servers.lookalike", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["build", "list"])
    parser.add_argument("folders", nargs="*", help="lookalikes to build (default: every one)")
    options = parser.parse_args()
    every = sorted({e.lookalike for e in ENGINES.values() if e.lookalike})
    if options.action == "list":
        for folder in every:
            print(folder, " ".join(tags_of(folder)))
        return 0
    started = time.monotonic()
    build_all(options.folders or every)
    print(f"lookalike images ready in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
