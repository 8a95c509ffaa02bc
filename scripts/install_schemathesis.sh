#!/usr/bin/env bash
# Installs Schemathesis (pinned) into a virtual environment of its own,
# target/schemathesis-venv, from the Python registry. Idempotent: a venv that already holds
# the pinned version is kept. scripts/schemathesis.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
# Pinned so a new release cannot change what CI generates or checks without a commit here.
SCHEMATHESIS_VERSION=4.32.5
VENV=target/schemathesis-venv
# `st --version` too: a venv moved or copied from elsewhere keeps scripts whose first line
# names the old path, and only running one shows it.
if [ -x "$VENV/bin/st" ] && "$VENV/bin/st" --version >/dev/null 2>&1 \
    && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '$SCHEMATHESIS_VERSION')" 2>/dev/null; then
    echo "schemathesis $SCHEMATHESIS_VERSION ready in $VENV"
    exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-venv >/dev/null
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
echo "schemathesis $SCHEMATHESIS_VERSION installed in $VENV: $("$VENV/bin/st" --version)"
