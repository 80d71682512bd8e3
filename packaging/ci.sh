#!/bin/bash
# Everything CI checks about the packages, in one command: the license
# metadata is current; build the .deb for bookworm (two revisions, from the
# source package, offline) and for trixie (in a trixie container, offline,
# trixie's rustc/cargo 1.85, tests on, trixie's lintian), the .rpm and the
# Arch package; lint them; compare their file sets and the RPM's scriptlets;
# and run the .deb install test under bookworm's systemd 252 and trixie's
# systemd 257.
#
#   packaging/ci.sh [OUTDIR]     (as root; OUTDIR defaults to a scratch dir)
#
# Needs (Debian): debhelper lintian rpm rpmlint makepkg pacman-package-manager
# fakeroot libarchive-tools python3, plus systemd-container mmdebstrap zstd
# for the containers (their rootfs tarballs are cached, see
# tests/systemd/boot.sh). (The man pages' and completions' currency is
# checked by `cargo test`.) Set DGECHO_E2E_REQUIRED=1 so that nothing that
# needs a container can skip.
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

step "license metadata is that of the dependency closure"
python3 "$root/packaging/licenses.py" --check

step "build deb for bookworm (revisions 1 and 2), rpm, arch"
# The source package's tarballs once (cargo vendor), for every deb build.
"$root/packaging/build.sh" source "$out/src" >/dev/null
export DGECHO_PKG_ORIG_DIR=$out/src
deb=$(DGECHO_PKG_REVISION=1 "$root/packaging/build.sh" deb "$out/r1")
deb2=$(DGECHO_PKG_REVISION=2 "$root/packaging/build.sh" deb "$out/r2")
rpm=$("$root/packaging/build.sh" rpm "$out/rpm")
arch=$("$root/packaging/build.sh" arch "$out/arch")

step "build deb for trixie: offline, trixie's toolchain, tests on, trixie's lintian"
{ read -r tdeb; read -r tdeb2; } < <(DGECHO_PKG_REVISIONS="1 2" "$root/packaging/build.sh" deb-trixie "$out/trixie")
[ -n "${tdeb2:-}" ] || { echo "ci.sh: error: the trixie build did not report two packages" >&2; exit 1; }
cat "$out/trixie/environment.txt" 2>/dev/null || true

step "lintian (bookworm's) on the bookworm build and the source package"
# lintian warns that it runs as root; it only reads the package.
lintian --fail-on error,warning --info "$deb" "$deb2" "$out"/r1/*.dsc

step "rpmlint"
# --strict: warnings fail too, as with lintian.
rpmlint --strict -c "$root/packaging/rpm/rpmlint.toml" "$rpm" "$root/packaging/rpm/dgecho.spec"

step "Arch PKGBUILD parses"
bash -n "$root/packaging/arch/PKGBUILD"
(cd "$root/packaging/arch" && if [ "$(id -u)" = 0 ]; then
    unshare --map-user=1000 --map-group=1000 makepkg --printsrcinfo
else makepkg --printsrcinfo; fi) >/dev/null

step "file sets and RPM scriptlets (bookworm and trixie debs against rpm and arch)"
"$root/packaging/check-packages.sh" "$deb" "$rpm" "$arch"
"$root/packaging/check-packages.sh" "$tdeb" "$rpm" "$arch" >/dev/null
echo "ok: the trixie deb ships the same file set"

step ".deb install test under bookworm's systemd 252"
"$root/packaging/test-deb.sh" --suite bookworm "$deb" "$deb2"

step ".deb install test under trixie's systemd 257"
"$root/packaging/test-deb.sh" --suite trixie "$tdeb" "$tdeb2"

step "done: $(basename "$deb") $(basename "$tdeb") (trixie) $(basename "$rpm") $(basename "$arch")"
