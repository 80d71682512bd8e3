#!/bin/sh
# Side-by-side benchmark: dgecho serve vs two C baselines (plain.c: one
# recvfrom + sendto per datagram; mmsg.c: recvmmsg/sendmmsg), each held to a
# fixed CPU share by a cgroup quota and pinned to its own CPU, loaded by
# `dgecho bench` pinned to another. Traffic stays on 127.0.0.1 and Unix
# sockets. Needs: cargo, gcc, python3, root (or a writable cpu cgroup) for
# the quota.
#
#   bench/run.sh            full run (~3 minutes), prints a Markdown table
#   bench/run.sh --quick    smoke run (< 1 minute)
#   extra options go to harness.py (--share 0.5, --rounds 5, --raw FILE,
#   --serve-args "--workers 2", ...)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=${DGECHO_BENCH_DIR:-$root/target/bench}
mkdir -p "$out"

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
for b in plain mmsg; do
    gcc -O2 -Wall -Wextra -o "$out/$b" "$here/$b.c"
done
exec python3 "$here/harness.py" \
    --dgecho "$root/target/release/dgecho" --plain "$out/plain" --mmsg "$out/mmsg" "$@"
