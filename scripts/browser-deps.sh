#!/usr/bin/env bash
# Installs what the browser test (tests/browser/inbox.mjs) needs, when it is missing:
#  - Chromium from Debian's packages (playwright-core drives the system browser: it never
#    downloads one of its own), with a colour emoji font for legible screenshots;
#  - Node.js and npm, when there are none;
#  - tests/browser/node_modules from the lockfile (npm ci).
# Idempotent: a second run changes nothing and says so.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
browser_dir="$root/tests/browser"

say() { echo "browser-deps: $*" >&2; }

# apt-get as root, or through sudo when there is one.
apt_install() {
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      say "not root and no sudo: install $* yourself"
      exit 1
    fi
  fi
  say "apt-get install $*"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@"
}

if [ -x /usr/bin/chromium ]; then
  say "chromium is there: $(/usr/bin/chromium --version 2>/dev/null | head -n 1 || echo /usr/bin/chromium)"
else
  apt_install chromium chromium-driver fonts-noto-color-emoji
fi

if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  say "node $(node --version) and npm $(npm --version) are there"
else
  apt_install nodejs npm
fi

cd "$browser_dir"
# npm writes node_modules/.package-lock.json on every install: when it is newer than the
# lockfile and playwright-core is in place, the modules are the lockfile's.
if [ -f node_modules/.package-lock.json ] && [ -f node_modules/playwright-core/package.json ] \
  && [ ! package-lock.json -nt node_modules/.package-lock.json ]; then
  say "tests/browser/node_modules is up to date"
else
  say "npm ci in tests/browser"
  npm ci --no-audit --no-fund
fi
say "ready"
