#!/usr/bin/env bash
# Installs what building valex needs on a fresh Debian machine with Rust (cargo) installed:
# libclang-dev for RocksDB's bindings. Sourced by test.sh and testnet.sh; safe to run twice.
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust first (https://rustup.rs)" >&2
    exit 1
fi

if ! dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q "install ok installed"; then
    echo "valex: installing libclang-dev (needed to build RocksDB's bindings)" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q libclang-dev
fi

# One target directory outside the clone: repeated runs on one machine build incrementally
# (RocksDB's C++ takes ~15 minutes on 2 cores the first time), a fresh machine builds everything.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/valex-target}"
