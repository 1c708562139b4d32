#!/usr/bin/env bash
# The local CouchDB stand-in: pouchdb-server (npm), the CouchDB HTTP API served by PouchDB on
# LevelDB, into $CACHE/couchdb. npm's tarball cache lives in $CACHE/couchdb/npm-cache, so a
# reinstall (or the lookalike image) needs no registry; a second run of this script only checks
# the installed version and the stamp of this script.
#
# Install scripts are skipped (--ignore-scripts): leveldown ships prebuilt binaries and its
# script only looks for them, and the optional sqlite3 would try to download or compile one we
# never use. The check at the end loads leveldown, so a platform without a prebuild fails here.
set -euo pipefail

VERSION=4.2.0 # the last release (2019); pinned, and the lookalike copies the same tree
CACHE="${EXAMPLES_CACHE:-$HOME/.cache/database-examples}"
DEST="$CACHE/couchdb"
SERVER="$DEST/node_modules/pouchdb-server/bin/pouchdb-server"

stamp() {
    { cat "${BASH_SOURCE[0]}"; echo "$VERSION"; } | sha256sum | cut -c1-16
}

installed_version() {
    node -p "require('$DEST/node_modules/pouchdb-server/package.json').version" 2>/dev/null
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "couchdb: installing Node.js and npm (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

if [[ -f "$SERVER" && "$(installed_version)" == "$VERSION" && "$(cat "$DEST/stamp" 2>/dev/null)" == "$(stamp)" ]]; then
    echo "couchdb: pouchdb-server $VERSION already installed in $DEST"
    exit 0
fi

mkdir -p "$DEST"
rm -f "$DEST/stamp" # marks the install incomplete until the end
echo "couchdb: installing pouchdb-server $VERSION with npm $(npm --version), Node.js $(node --version) (first time: a few minutes)"
cd "$DEST"
[[ -f package.json ]] || echo '{"private": true}' >package.json
if ! npm install --no-audit --no-fund --omit=dev --ignore-scripts --prefer-offline \
    --cache "$DEST/npm-cache" --loglevel=error --save-exact "pouchdb-server@$VERSION" >"$DEST/npm.log" 2>&1; then
    cat "$DEST/npm.log" >&2
    exit 1
fi
node -e "require('$DEST/node_modules/leveldown')" # its prebuilt binary loads on this platform
[[ "$(installed_version)" == "$VERSION" ]]
stamp >"$DEST/stamp"
echo "couchdb: installed pouchdb-server $(installed_version) in $DEST"
