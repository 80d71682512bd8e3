#!/bin/bash
# The dgecho end-to-end test under a real systemd: builds dgecho (release),
# boots a throw-away Debian container with systemd as PID 1 (boot.sh), installs
# /usr/bin/dgecho and the units from systemd/ exactly as shipped into
# /usr/lib/systemd/system, the man pages (Documentation= points at them, and
# systemd-analyze verify checks that they exist) and man-db, and runs
# tests/systemd/e2e-dgecho.sh inside. It does so under each release given:
# bookworm (systemd 252) and trixie (systemd 257) by default.
#
#   sudo tests/systemd/run-e2e.sh [--suite bookworm|trixie]...   # or as root
#
# Environment:
#   DGECHO_E2E_SUITES="bookworm trixie"  the releases, without --suite
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
suites=()
while [ $# -gt 0 ]; do
    case $1 in
        --suite) suites+=("$2"); shift 2 ;;
        *) echo "run-e2e.sh: error: unknown argument '$1' (use --suite bookworm|trixie)" >&2; exit 2 ;;
    esac
done
[ "${#suites[@]}" -gt 0 ] || read -r -a suites <<<"${DGECHO_E2E_SUITES:-bookworm trixie}"

if [ -z "${DGECHO_BIN:-}" ]; then
    cargo build --release --quiet
    DGECHO_BIN=${CARGO_TARGET_DIR:-target}/release/dgecho
fi
[ -x "$DGECHO_BIN" ] || { echo "run-e2e.sh: no executable $DGECHO_BIN" >&2; exit 1; }

keep=()
[ "${DGECHO_E2E_KEEP:-0}" = 1 ] && keep=(--keep)
man=()
for page in packaging/man/*.1; do man+=(--copy "$page:/usr/share/man/man1/"); done
failed=()
for suite in "${suites[@]}"; do
    echo "=== end-to-end under $suite's systemd"
    # The same packages as packaging/test-deb.sh's container: one rootfs
    # cache entry per release serves both.
    tests/systemd/boot.sh --suite "$suite" "${keep[@]}" --timeout 600 \
        --packages man-db,bash-completion \
        --copy "$DGECHO_BIN:/usr/bin/dgecho" \
        --copy systemd/dgecho.socket:/usr/lib/systemd/system/ \
        --copy systemd/dgecho.service:/usr/lib/systemd/system/ \
        "${man[@]}" \
        --test tests/systemd/e2e-dgecho.sh || failed+=("$suite")
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "run-e2e.sh: error: the end-to-end test failed under: ${failed[*]} (the container journal is above)" >&2
    exit 1
fi
