#!/usr/bin/env bash
# The main job: build valex and run the default local testnet — 6 nodes and 2 arbiters on
# 127.0.0.1, 200 exchanges between random pairs, processes SIGKILLed and restarted throughout —
# then audit every value. Extra arguments go to `valex-testnet run` (see --help), e.g.
#
#   testnet/scripts/testnet.sh --nodes 20 --arbiters 3 --exchanges 5000 --rate 25 --concurrency 32
set -euo pipefail
cd "$(dirname "$0")/../.."
source testnet/scripts/setup.sh

cargo build --workspace --bins --locked
exec "$CARGO_TARGET_DIR/debug/valex-testnet" run --chaos "$@"
