#!/usr/bin/env bash
# node-opcua (npm) for the OPC UA interoperability tests in tests/interop/opcua: an independent
# server for the center's driver and an independent client of the simulated city.
set -euo pipefail
cd "$(dirname "$0")/../../tests/interop/opcua"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi
# The lock file pins the whole dependency tree; reinstall only when it changed.
if [ ! -d node_modules/node-opcua ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
