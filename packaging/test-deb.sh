#!/bin/bash
# The .deb install test under a real systemd: boot a
# clean Debian of the package's release with tests/systemd/boot.sh and run
# packaging/test-install.sh inside (install offline, answer, man pages,
# completions, reinstall, upgrade to the second revision with a client
# sending, remove, purge).
#
#   packaging/test-deb.sh [--suite bookworm|trixie] [DEB DEB_UPGRADE]
#
# --suite: the release to boot (default bookworm): bookworm has systemd 252,
# trixie 257. A package installs on the release it was built for (its
# libc6 dependency comes from that release's glibc): test bookworm's build
# (packaging/build.sh deb) under bookworm, trixie's (build.sh deb-trixie)
# under trixie. Without DEBs it builds both revisions for the suite.
# The container's rootfs is boot.sh's cached minbase plus man-db and
# bash-completion (a second cache entry, built once), so that `man` and
# completion can be tried; dgecho's own dependencies must be satisfied by the
# minbase system, since the container has no network.
#
# Needs root and what boot.sh needs (systemd-container mmdebstrap zstd), and
# debhelper for the build. DGECHO_E2E_REQUIRED=1 makes a skip a failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/dgecho-deb-test.XXXXXX")
trap 'rm -rf "$out"' EXIT
usage() { echo "usage: packaging/test-deb.sh [--suite bookworm|trixie] [DEB DEB_UPGRADE]" >&2; exit 2; }

suite=bookworm
if [ "${1:-}" = --suite ]; then
    [ $# -ge 2 ] || usage
    suite=$2
    shift 2
fi
case $suite in
    bookworm) kind=deb ;;
    trixie) kind=deb-trixie ;;
    *) echo "test-deb.sh: error: unknown suite '$suite': use bookworm or trixie" >&2; exit 2 ;;
esac
if [ $# -eq 2 ]; then
    deb=$1 deb2=$2
elif [ $# -eq 0 ]; then
    if [ "$kind" = deb-trixie ]; then
        { read -r deb; read -r deb2; } < <(DGECHO_PKG_REVISIONS="1 2" "$root/packaging/build.sh" deb-trixie "$out/t")
    else
        deb=$(DGECHO_PKG_REVISION=1 "$root/packaging/build.sh" deb "$out/1")
        deb2=$(DGECHO_PKG_REVISION=2 "$root/packaging/build.sh" deb "$out/2")
    fi
else
    usage
fi

"$root/tests/systemd/boot.sh" --suite "$suite" \
    --packages man-db,bash-completion \
    --copy "$deb:/root/debs/" --copy "$deb2:/root/debs/" \
    --timeout 300 \
    --test "$root/packaging/test-install.sh" -- "/root/debs/${deb##*/}" "/root/debs/${deb2##*/}"
