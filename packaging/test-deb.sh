#!/bin/bash
# The .deb install test under a real systemd (issue 4, section 6): build the
# package twice (revision 1, and revision 2 for the upgrade), lint it, boot a
# clean Debian bookworm with tests/systemd/boot.sh and run
# packaging/test-install.sh inside.
#
#   packaging/test-deb.sh [DEB DEB_UPGRADE]
#
# Without arguments it builds both with packaging/build.sh into a scratch
# directory. The container's rootfs is boot.sh's cached minbase plus man-db
# and bash-completion (a second cache entry, built once), so that `man` and
# completion can be tried; dgecho's own dependencies must be satisfied by the
# minbase system, since the container has no network.
#
# Needs root and what boot.sh needs (systemd-container mmdebstrap zstd), and
# debhelper for the build. DGECHO_E2E_REQUIRED=1 makes a skip a failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/dgecho-deb-test.XXXXXX")
trap 'rm -rf "$out"' EXIT

if [ $# -eq 2 ]; then
    deb=$1 deb2=$2
elif [ $# -eq 0 ]; then
    deb=$(DGECHO_PKG_REVISION=1 "$root/packaging/build.sh" deb "$out/1")
    deb2=$(DGECHO_PKG_REVISION=2 "$root/packaging/build.sh" deb "$out/2")
else
    echo "usage: packaging/test-deb.sh [DEB DEB_UPGRADE]" >&2
    exit 2
fi

"$root/tests/systemd/boot.sh" \
    --packages man-db,bash-completion \
    --copy "$deb:/root/debs/" --copy "$deb2:/root/debs/" \
    --timeout 300 \
    --test "$root/packaging/test-install.sh" -- "/root/debs/${deb##*/}" "/root/debs/${deb2##*/}"
