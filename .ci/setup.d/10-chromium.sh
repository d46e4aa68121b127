#!/usr/bin/env bash
# Headless Chromium for the HMI browser tests (Playwright drives Debian's build).
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
