#!/bin/bash
# Everything issue 4 asks CI to check about the packages, in one command:
# build the .deb (two revisions), the .rpm and the Arch package, lint them,
# compare their file sets and the RPM's scriptlets, and run the .deb install
# test under a real systemd.
#
#   packaging/ci.sh [OUTDIR]     (as root; OUTDIR defaults to a scratch dir)
#
# Needs (Debian): debhelper lintian rpm rpmlint makepkg pacman-package-manager
# fakeroot libarchive-tools, plus systemd-container mmdebstrap zstd for the
# install test. (The man pages' and completions' currency is checked by
# `cargo test`.) Set DGECHO_E2E_REQUIRED=1 so that the install test cannot
# skip.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -ge 1 ]; then
    out=$1
    mkdir -p "$out"
else
    out=$(mktemp -d "${TMPDIR:-/tmp}/dgecho-packages.XXXXXX")
    trap 'rm -rf "$out"' EXIT
fi
step() { printf '\n=== packaging: %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

step "build deb (revisions 1 and 2), rpm, arch"
deb=$(DGECHO_PKG_REVISION=1 "$root/packaging/build.sh" deb "$out/r1")
deb2=$(DGECHO_PKG_REVISION=2 "$root/packaging/build.sh" deb "$out/r2")
rpm=$("$root/packaging/build.sh" rpm "$out/rpm")
arch=$("$root/packaging/build.sh" arch "$out/arch")

step "lintian"
# lintian warns that it runs as root; it only reads the package.
lintian --fail-on error,warning --info "$deb" "$deb2"

step "rpmlint"
rpmlint -c "$root/packaging/rpm/rpmlint.toml" "$rpm" "$root/packaging/rpm/dgecho.spec"

step "Arch PKGBUILD parses"
bash -n "$root/packaging/arch/PKGBUILD"
(cd "$root/packaging/arch" && if [ "$(id -u)" = 0 ]; then
    unshare --map-user=1000 --map-group=1000 makepkg --printsrcinfo
else makepkg --printsrcinfo; fi) >/dev/null

step "file sets and RPM scriptlets"
"$root/packaging/check-packages.sh" "$deb" "$rpm" "$arch"

step ".deb install test under systemd"
"$root/packaging/test-deb.sh" "$deb" "$deb2"

step "done: $(basename "$deb") $(basename "$rpm") $(basename "$arch")"
