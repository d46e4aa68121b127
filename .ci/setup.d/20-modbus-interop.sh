#!/usr/bin/env bash
# Independent Modbus stacks for the interoperability tests (tests/interop/modbus): Debian's
# mbpoll (a client) and libmodbus with gcc (the tests compile a small libmodbus server).
set -euo pipefail
missing=()
command -v mbpoll >/dev/null 2>&1 || missing+=(mbpoll)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
dpkg-query -W -f='${Status}' libmodbus-dev 2>/dev/null | grep -q "ok installed" \
  || missing+=(libmodbus-dev)
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
