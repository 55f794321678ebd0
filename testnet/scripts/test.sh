#!/usr/bin/env bash
# The whole valex test suite: unit, doc, test-vector, scenario, model-checking (with the planted
# bugs it must catch), storage, end-to-end and hostile-peer tests. One build profile (dev, with
# optimised dependencies) serves all of it.
#
#   testnet/scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source testnet/scripts/setup.sh

cargo test --workspace --all-features --locked
# The exhaustive model check once more, for its figures (states explored, time).
cargo run -q -p valex-testnet --all-features --locked -- model-check
