"""The local CouchDB stand-in: pouchdb-server 4.2 (npm), the CouchDB HTTP API served by PouchDB.

`servers/install/couchdb.sh` installs it under the cache folder. It speaks CouchDB's API where the
lessons need it: revisions and 409 conflicts, `_bulk_docs`, `_changes`, Mango `_find` with
indexes and `_explain`, map/reduce views with the built-in reduces, and `_replicate`. It lacks
`/_up`, `/_scheduler` and CouchDB 3's `/_node/_local/_config` (it serves CouchDB 1.x's `/_config`),
and it only runs as an "admin party": no users or passwords that work.

Credentials are the catch. Compose's CouchDB 3 has an admin and every lesson URL carries it, but
pouchdb-server checks HTTP basic credentials against its own `_users` database: unknown ones get
401, and known ones crash the whole server on database creation (pouchdb-server issue #374, open
since 2019). So the server is started with express-pouchdb's authentication, authorization and
session routes left out (`PRELOAD`, a few lines of JavaScript loaded before it): credentials are
accepted and ignored, and a lesson runs the same with or without them in its URL.
"""

from __future__ import annotations

import json
import shutil

from servers.local.base import CACHE, LocalServer

HOME = CACHE / "couchdb"
SERVER = HOME / "node_modules" / "pouchdb-server" / "bin" / "pouchdb-server"

# Loaded with `node --require` before pouchdb-server: it wraps express-pouchdb's factory so that the
# app is built without the parts that check credentials (servers/lookalike/couchdb uses it too).
PRELOAD = """\
// Built by servers/local/couchdb.py: express-pouchdb without the routes that check HTTP credentials.
"use strict";
const Module = require("module");
const load = Module._load;
const exclude = ["routes/authentication", "routes/authorization", "routes/session"];
Module._load = function (request, parent, isMain) {
  const loaded = load.call(this, request, parent, isMain);
  if (request !== "express-pouchdb") return loaded;
  return function (pouchDB, options) {
    if (pouchDB && !pouchDB.defaults) [pouchDB, options] = [undefined, pouchDB];
    return loaded(pouchDB, { ...options, overrideMode: { exclude } });
  };
};
"""


def node() -> str | None:
    return shutil.which("node")


class CouchDBServer(LocalServer):
    engine = "couchdb"
    display = "CouchDB (local stand-in: pouchdb-server)"
    compose_port = 5984
    start_timeout = 30.0

    @classmethod
    def installed(cls) -> bool:
        """The install script writes its stamp last, so its presence means complete."""
        return node() is not None and SERVER.is_file() and (HOME / "stamp").is_file()

    def prepare(self) -> None:
        """Its data folder, the preload script, and a config whose port is the real one: a lesson reads
        `/_config/httpd/port` to give the replicator the server's own address."""
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        (self.workdir / "ignore-credentials.js").write_text(PRELOAD)
        config_path = self.workdir / "config.json"
        # The server writes its uuid back into the file: a restart keeps it, with this start's port.
        config = json.loads(config_path.read_text()) if config_path.exists() else {}
        config["httpd"] = {**config.get("httpd", {}), "port": str(self.port), "bind_address": "127.0.0.1"}
        config["log"] = {**config.get("log", {}), "file": str(self.workdir.resolve() / "pouchdb.log")}
        config_path.write_text(json.dumps(config, indent=2))

    def command(self) -> list[str]:
        # The process runs inside the workdir: pass absolute paths, whatever the caller gave.
        workdir = self.workdir.resolve()
        return [
            node(),
            "--require", str(workdir / "ignore-credentials.js"),
            str(SERVER),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(workdir / "data"),
            "--config", str(workdir / "config.json"),
            "--no-stdout-logs",
        ]  # fmt: skip

    def url(self) -> str:
        """The address without credentials: it has no users (the compose ones are accepted too)."""
        return f"http://127.0.0.1:{self.port}"
