#!/usr/bin/env bash
# The dependency policy (deny.toml, README "Supply chain"): licences, banned and duplicate
# crates, and sources, checked without a network (`--offline`) against the committed
# Cargo.lock (`--locked`). Exits non-zero on any violation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_tools.sh
cargo deny --offline --locked check bans licenses sources
