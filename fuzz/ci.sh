#!/bin/bash
# Short fuzzing run for CI: installs cargo-fuzz if missing, then runs each
# target for SECONDS (default 30). Fails on any crash, leak, timeout or
# failed check; the failing input is left under fuzz/artifacts/TARGET/.
#
# cargo-fuzz needs a nightly compiler for -Zsanitizer=address; on the stable
# toolchain RUSTC_BOOTSTRAP=1 enables those flags (only for this build).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/ci.sh: installing cargo-fuzz (about a minute)"
    cargo install cargo-fuzz --locked --version 0.13.2
fi

export RUSTC_BOOTSTRAP=1
# The datagram target binds its Unix sockets in a directory under TMPDIR
# and, ended by libFuzzer, cannot remove it: give it one that goes here.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cargo fuzz build
for target in addr datagram; do
    echo "fuzz/ci.sh: $target for ${seconds}s"
    log="$(mktemp)"
    status=0
    TMPDIR="$scratch" cargo fuzz run "$target" -- -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        tail -n 80 "$log"
        rm -f "$log"
        echo "fuzz/ci.sh: $target FAILED (status $status)"
        exit 1
    fi
    grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units' "$log" || true
    rm -f "$log"
done
echo "fuzz/ci.sh: 2 passed, 0 failed"
