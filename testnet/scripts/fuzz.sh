#!/usr/bin/env bash
# A short libFuzzer run of every fuzz target, starting from its corpus kept in the repo; fails if
# any target crashes (a panic, an assertion, a timeout or running out of memory). CI runs it from
# test.sh; by hand it also runs longer and folds what it found back into the corpus.
#
#   testnet/scripts/fuzz.sh                                  # every target, 20 s each (CI)
#   testnet/scripts/fuzz.sh --seconds 600 exchange_handlers  # one target, longer
#   testnet/scripts/fuzz.sh --seconds 600 --update-corpus    # ... and keep its new inputs
#
# Targets and corpora (one file per input, named by its SHA-1, as libFuzzer writes them):
#   decode_messages    proto/fuzz   every wire decoder; what decodes re-encodes to itself
#   codec_frames       node/fuzz    length-prefixed frames through the libp2p codecs
#   exchange_handlers  node/fuzz    hostile messages into two exchange cores mid-exchange
# each in <fuzz crate>/corpus/<target>/. A run reads the checked-in corpus and writes new inputs
# to a scratch directory only; --update-corpus merges both, minimised (libFuzzer -merge=1
# -use_counters=0: a small set of inputs that reaches every code edge either reached), back
# into the repo.
#
# Built with plain cargo and the flags cargo-fuzz passes for `-s none` (stable Rust, no
# sanitizer; libfuzzer-sys links libFuzzer), in a target directory of its own
# ($VALEX_FUZZ_TARGET_DIR, default ~/.cache/valex-fuzz-target): different flags from the main
# build, so they must not share one. The profile is the fuzz crates' `dev` profile (see their
# Cargo.toml): debug assertions and overflow checks on, only the signature and hash crates
# optimised, which compiles in a third of the time of an optimised build.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=20
update=0
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --update-corpus) update=1; shift ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

# target → the fuzz crate that holds it.
declare -A crate=(
    [decode_messages]=proto/fuzz
    [codec_frames]=node/fuzz
    [exchange_handlers]=node/fuzz
)
[ ${#targets[@]} -gt 0 ] || targets=(decode_messages codec_frames exchange_handlers)
for t in "${targets[@]}"; do
    [ -n "${crate[$t]:-}" ] || { echo "fuzz.sh: no fuzz target $t (have: ${!crate[*]})" >&2; exit 2; }
done

target_dir="${VALEX_FUZZ_TARGET_DIR:-$HOME/.cache/valex-fuzz-target}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
# cargo-fuzz's instrumentation (`cargo fuzz build -s none`): coverage counters, comparison
# tracing, `cfg(fuzzing)`. `--target` keeps these flags off build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions"
for c in proto/fuzz node/fuzz; do
    bins=()
    for t in "${targets[@]}"; do
        [ "${crate[$t]}" != "$c" ] || bins+=(--bin "$t")
    done
    [ ${#bins[@]} -gt 0 ] || continue
    echo "fuzz: building ${bins[*]} ($c)" >&2
    cargo build --locked --quiet --manifest-path "$c/Cargo.toml" --target "$triple" --target-dir "$target_dir" "${bins[@]}"
done
bin="$target_dir/$triple/debug"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
artifacts="$target_dir/artifacts"
mkdir -p "$artifacts"
failed=()
for t in "${targets[@]}"; do
    corpus="${crate[$t]}/corpus/$t"
    mkdir -p "$corpus" "$scratch/$t"
    log="$artifacts/$t.log"
    rm -f "$artifacts/$t"-*
    # -seed fixes the mutation sequence; the checked-in corpus is read (and replayed) first,
    # new inputs go to the scratch directory.
    if "$bin/$t" -seed=1 -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/$t-" "$scratch/$t" "$corpus" >"$log" 2>&1; then
        runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
        echo "fuzz: $t ok: $runs runs in ${seconds}s from $(ls "$corpus" | wc -l) corpus inputs, $(ls "$scratch/$t" | wc -l) new" >&2
    else
        echo "fuzz: $t FAILED (full log: $log):" >&2
        grep -m1 -A1 "panicked at" "$log" >&2 || true
        grep -E "^(==[0-9]+== ERROR|SUMMARY|MS: |artifact_prefix)" "$log" >&2 || tail -n 20 "$log" >&2
        for unit in "$artifacts/$t"-*; do
            [ -f "$unit" ] || continue
            echo "fuzz: input $unit (hex):" >&2
            od -An -tx1 -v "$unit" | head -n 16 >&2
            echo "fuzz: reproduce with: $bin/$t $unit" >&2
        done
        failed+=("$t")
        continue
    fi
    if [ "$update" = 1 ]; then
        merged="$scratch/$t.merged"
        mkdir -p "$merged"
        "$bin/$t" -merge=1 -use_counters=0 "$merged" "$corpus" "$scratch/$t" >>"$log" 2>&1
        rm -rf "$corpus"
        mv "$merged" "$corpus"
        echo "fuzz: $corpus now $(ls "$corpus" | wc -l) inputs, $(du -sk --apparent-size "$corpus" | cut -f1) KiB" >&2
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashed: ${failed[*]}" >&2
    exit 1
fi
