#!/usr/bin/env bash
# Installs what the browser test needs when it is missing: Debian's chromium and the
# Python DevTools client (websocket-client). Idempotent; needs root for apt.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
fi
if ! python3 -c 'import websocket' >/dev/null 2>&1; then
    python3 -m pip install -q --break-system-packages websocket-client 2>/dev/null || python3 -m pip install -q websocket-client
fi
chromium --headless=new --no-sandbox --disable-gpu --dump-dom about:blank >/dev/null 2>&1
echo "browser test dependencies ready: $(chromium --version 2>/dev/null || echo chromium)"
