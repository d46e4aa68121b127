#!/usr/bin/env bash
# @bacnet-js/client (npm, a TypeScript BACnet/IP stack) for the BACnet interoperability tests in
# tests/interop/bacnet: an independent client of the simulated city's BACnet devices.
set -euo pipefail
cd "$(dirname "$0")/../../tests/interop/bacnet"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi
# The lock file pins the whole dependency tree; reinstall only when it changed.
if [ ! -d node_modules/@bacnet-js/client ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
