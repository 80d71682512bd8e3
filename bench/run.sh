#!/bin/sh
# Side-by-side benchmark: dgecho serve vs two C baselines (plain.c: one
# recvfrom + sendto per datagram; mmsg.c: recvmmsg/sendmmsg), each pinned to
# its own CPU and, for the throughput cells (window 256), held to a fixed CPU
# share by a cgroup quota, loaded by `dgecho bench` pinned to another.
# Traffic stays on 127.0.0.1 and Unix sockets. Needs: cargo, gcc, python3,
# root (or a writable cpu cgroup) for the quota.
#
#   bench/run.sh            full run (~7 minutes), prints a Markdown table
#   bench/run.sh --quick    smoke run (< 1 minute)
#   extra options go to harness.py (--share 0.5, --rounds 9, --raw FILE,
#   --serve-args "--workers 2", ...)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=${DGECHO_BENCH_DIR:-$root/target/bench}
mkdir -p "$out"

# The Unix cells need the socket queue systemd distributions configure
# (net.unix.max_dgram_qlen=512, systemd's sysctl.d default). At the
# kernel's default of 10 a socket queues at most 11 datagrams, so at window
# 256 a cell measures how the scheduler wakes the blocked sender, not what
# a server spends per datagram, and the plain and batched C loops trade
# places from run to run. The setting belongs to the network namespace, so
# the run moves into a private one (loopback only) rather than change the
# host's; without the rights for that (or with DGECHO_BENCH_NETNS=1 set) it
# runs in the host's, and the header line says which queue length applied.
netns_setup='ip link set lo up && sysctl -qw net.unix.max_dgram_qlen=512'
if [ -z "${DGECHO_BENCH_NETNS:-}" ] && unshare -n sh -c "$netns_setup" 2>/dev/null; then
    exec env DGECHO_BENCH_NETNS=1 unshare -n sh -c "$netns_setup"' && exec sh "$@"' \
        sh "$0" "$@"
fi

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
for b in plain mmsg; do
    gcc -O2 -Wall -Wextra -o "$out/$b" "$here/$b.c"
done
exec python3 "$here/harness.py" \
    --dgecho "$root/target/release/dgecho" --plain "$out/plain" --mmsg "$out/mmsg" "$@"
