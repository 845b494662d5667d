#!/usr/bin/env bash
# Build the web chat (web/) into src/lmstream/web/dist, only when something changed.
#   scripts/build-web.sh           build if the sources changed since the last build
#   scripts/build-web.sh --force   build anyway
# `npm ci` runs only when web/node_modules is missing or package-lock.json changed.
# Without Node.js >= 20.19 it warns and leaves the server to show a "not built" page.
set -euo pipefail
cd "$(dirname "$0")/.."
WEB="web"
DIST="src/lmstream/web/dist"
STAMP="$DIST/.source-hash"
LOCK_STAMP="$WEB/node_modules/.lockfile-hash"
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

log() { printf '\033[1m[build-web]\033[0m %s\n' "$*" >&2; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "Node.js and npm are not installed: skipping the web chat (the API works without it)"
  exit 0
fi
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  log "Node.js $(node -v) is too old for Vite (needs 20.19+): skipping the web chat"
  exit 0
fi

# One build at a time (several shells may bootstrap the same checkout).
exec 9>"$WEB/.build.lock"
flock 9

source_hash() {
  {
    sha256sum scripts/build-web.sh
    find "$WEB" -path "$WEB/node_modules" -prune -o -type f \
      ! -name '*.test.ts' ! -name '.build.lock' -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -d' ' -f1
}

want=$(source_hash)
if [ "$FORCE" = 0 ] && [ -f "$DIST/index.html" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
  exit 0  # up to date
fi

lock_hash=$(sha256sum "$WEB/package-lock.json" | cut -d' ' -f1)
if [ ! -d "$WEB/node_modules" ] || [ "$(cat "$LOCK_STAMP" 2>/dev/null)" != "$lock_hash" ]; then
  log "npm ci"
  (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$lock_hash" > "$LOCK_STAMP"
fi

log "building the web chat"
tmp="$DIST.tmp"
rm -rf "$tmp"
(cd "$WEB" && npx --no-install tsc --noEmit >&2 && npx --no-install vite build --logLevel warn --outDir "../$tmp" --emptyOutDir >&2)
echo "$want" > "$tmp/.source-hash"
# Swap in one step, so a running server never sees a half-written bundle for long.
rm -rf "$DIST.old"
[ -d "$DIST" ] && mv "$DIST" "$DIST.old"
mv "$tmp" "$DIST"
rm -rf "$DIST.old"
log "built $(du -sh "$DIST" | cut -f1) into $DIST"
