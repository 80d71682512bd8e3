#!/bin/bash
# The dgecho end-to-end test under a real systemd: builds dgecho (release),
# boots a throw-away Debian container with systemd as PID 1 (boot.sh), installs
# /usr/bin/dgecho and the units from systemd/ exactly as shipped into
# /usr/lib/systemd/system, and runs tests/systemd/e2e-dgecho.sh inside.
#
#   sudo tests/systemd/run-e2e.sh            # or as root
#
# Environment:
#   DGECHO_BIN=PATH          test this binary instead of building one
#   DGECHO_E2E_REQUIRED=1    a machine that cannot run it fails instead of
#                            skipping (CI sets it)
#   DGECHO_E2E_CACHE=DIR     where the rootfs tarball is cached
#                            (default /var/cache/dgecho-e2e)
#   DGECHO_E2E_KEEP=1        keep the container's scratch tree (and journal)
# Needs root and the packages systemd-container, mmdebstrap and zstd; the
# first run builds the rootfs (about 20-40 s), later runs take about a minute.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${DGECHO_BIN:-}" ]; then
    cargo build --release --quiet
    DGECHO_BIN=${CARGO_TARGET_DIR:-target}/release/dgecho
fi
[ -x "$DGECHO_BIN" ] || { echo "run-e2e.sh: no executable $DGECHO_BIN" >&2; exit 1; }

keep=()
[ "${DGECHO_E2E_KEEP:-0}" = 1 ] && keep=(--keep)
exec tests/systemd/boot.sh "${keep[@]}" --timeout 600 \
    --copy "$DGECHO_BIN:/usr/bin/dgecho" \
    --copy systemd/dgecho.socket:/usr/lib/systemd/system/ \
    --copy systemd/dgecho.service:/usr/lib/systemd/system/ \
    --test tests/systemd/e2e-dgecho.sh
