#!/bin/bash
# CI entry point for the end-to-end test under a real systemd:
# installs what a fresh Debian machine lacks, then runs
# tests/systemd/run-e2e.sh under bookworm's systemd 252 and trixie's 257
# which must run here: a machine that cannot run it fails the
# build instead of skipping (DGECHO_E2E_REQUIRED=1).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v zstd >/dev/null || missing+=(zstd)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "systemd-e2e: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export DGECHO_E2E_REQUIRED=${DGECHO_E2E_REQUIRED:-1}
exec tests/systemd/run-e2e.sh
