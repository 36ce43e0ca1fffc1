#!/bin/sh
# Idempotent set-up shared by `npm start`, `npm test` and `npm run bench`: checks Node.js, installs
# npm dependencies when they are missing or stale, installs ffmpeg when missing, builds when the
# sources changed. Each step is skipped when there is nothing to do, so it costs ~1 s when warm.
# `setup.sh --browser` (what `npm test` runs) also installs Debian's chromium when missing: the
# browser tests drive it with playwright-core (never `npx playwright install`, which downloads a
# browser of its own). A server that only runs assetpipe does not need a browser.
set -eu
cd "$(dirname "$0")/.."

say() { printf 'assetpipe setup: %s\n' "$*" >&2; }

node -e '
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major < 20 || (major === 20 && minor < 19)) {
    console.error("assetpipe needs Node.js >= 20.19; this is " + process.version + ". Install a newer Node.js (https://nodejs.org or your distribution).");
    process.exit(1);
  }
'

if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (first run builds better-sqlite3: about a minute)"
  npm ci --no-audit --no-fund --loglevel=error
fi

if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ffmpeg with apt-get"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
  else
    say "ffmpeg and ffprobe are needed for video and audio. Install them, then run this again:"
    say "  Debian/Ubuntu: sudo apt-get install -y ffmpeg    macOS: brew install ffmpeg"
    exit 1
  fi
fi

if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    say "installing chromium with apt-get (for the browser tests; about a minute)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    say "Chromium is needed for the browser tests (hls.js playback). Install it, then run this again:"
    say "  Debian/Ubuntu: sudo apt-get install -y chromium    elsewhere: put a Chromium named chromium on PATH"
    exit 1
  fi
fi

if [ ! -f dist/main.js ] || [ -n "$(find src package.json tsconfig.json tsconfig.build.json -newer dist/main.js -print 2>/dev/null | head -n 1)" ]; then
  say "building"
  rm -rf dist
  npx tsc -p tsconfig.build.json
  chmod +x dist/main.js
fi
