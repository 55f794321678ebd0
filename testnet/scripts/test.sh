#!/usr/bin/env bash
# The whole valex test suite: unit, doc, test-vector, scenario, model-checking (with the planted
# bugs it must catch), storage, CLI, end-to-end and hostile-peer tests; short fuzz runs; then a
# small chaos testnet with its audit. The model checker's figures are asserted exactly by its
# test (`valex-testnet model-check` prints them). One build profile (dev, with optimised
# dependencies) serves all of it.
#
#   testnet/scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source testnet/scripts/setup.sh

# The build that ships: default features (the planted-bug model checks live in the test harness,
# so they run here too).
cargo test --workspace --locked
# The sans-IO core alone, as an embedder without RocksDB or the networking runtime builds it.
cargo check -p valex-node --no-default-features --locked
# A short coverage-guided run of every fuzz target from the corpus in the repo (20 s each; its
# own instrumented build in a target dir of its own); fails on any crash.
testnet/scripts/fuzz.sh
# cargo test built every binary (valex, valex-arbiter, valex-testnet) for the integration tests.
bin="$CARGO_TARGET_DIR/debug"

# A small chaos testnet: real processes, SIGKILLs, restarts, and the audit of every value.
out="$CARGO_TARGET_DIR/ci-testnet"
"$bin/valex-testnet" run --chaos --quiet --nodes 4 --arbiters 2 --exchanges 60 --rate 4 \
    --dir "$out" --report "$out/report.json"
