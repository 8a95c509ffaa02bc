#!/usr/bin/env bash
# Installs the developer tools the project's checks run: cargo-deny (the dependency policy in
# deny.toml). Built from the crate registry with its own lock file (`--locked`), and only when the
# pinned version is missing: the build costs about 4.5 CPU-minutes (README, "Supply chain"),
# then it stays in ~/.cargo/bin and later runs cost nothing.
set -euo pipefail

CARGO_DENY_VERSION=0.20.2

if [[ "$(cargo deny --version 2>/dev/null || true)" != "cargo-deny $CARGO_DENY_VERSION" ]]; then
    echo "installing cargo-deny $CARGO_DENY_VERSION (a one-time build of several minutes) …" >&2
    nice -n 10 cargo install --locked cargo-deny --version "$CARGO_DENY_VERSION"
fi
