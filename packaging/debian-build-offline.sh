#!/bin/bash
# Build dgecho's Debian source packages as a build daemon would, and lint the
# result: run INSIDE a container of the target release with no network but
# lo (packaging/build.sh deb-trixie runs it with tests/systemd/boot.sh
# --no-boot), the source packages in /root/src.
#
#   debian-build-offline.sh CHECK DSC...
#
# CHECK=1 runs the package's tests (cargo test) in the first build. Every
# .dsc is unpacked with dpkg-source -x into the same directory and built with
# dpkg-buildpackage -b; the builds share one cargo target directory, so a
# second revision only relinks dgecho. Then lintian checks the source
# packages and every .deb (errors and warnings fail). Results go to /root/out:
# the .deb files (with dbgsym), .changes, .buildinfo and lintian.txt.
set -euo pipefail
check=$1
shift
src=/root/src out=/root/out build=/root/build
mkdir -p "$out"
fail() { echo "debian-build-offline.sh: error: $*" >&2; exit 1; }

# The premise: no network but lo.
ifaces=$(awk -F: 'NR > 2 { gsub(/[[:space:]]/, "", $1); print $1 }' /proc/net/dev | paste -sd' ')
[ "$ifaces" = lo ] || fail "network interfaces '$ifaces': the build must have only lo"
echo "build environment: $(. /etc/os-release && echo "$PRETTY_NAME"), $(rustc --version), $(cargo --version)," \
    "debhelper $(dpkg-query -W -f '${Version}' debhelper), network: $ifaces" | tee "$out/environment.txt"

export CARGO_TARGET_DIR=/root/target DEB_BUILD_OPTIONS="parallel=$(nproc)"
first=1
for dsc in "$@"; do
    rm -rf "$build"
    mkdir -p "$build"
    (cd "$src" && dpkg-source -x "$dsc" "$build/dgecho")
    opts=
    if [ "$check" != 1 ] || [ "$first" != 1 ]; then opts=nocheck; fi
    echo "=== dpkg-buildpackage -b for $dsc (DEB_BUILD_OPTIONS: parallel=$(nproc) $opts)"
    (cd "$build/dgecho" && DEB_BUILD_OPTIONS="$DEB_BUILD_OPTIONS $opts" dpkg-buildpackage -b -us -uc)
    cp "$build"/*.deb "$build"/*.changes "$build"/*.buildinfo "$out/"
    first=0
done

echo "=== lintian $(dpkg-query -W -f '${Version}' lintian)"
rc=0
(cd "$src" && lintian --fail-on error,warning --info --display-info --no-tag-display-limit \
    "$src"/*.dsc "$out"/*.deb) >"$out/lintian.txt" 2>&1 || rc=$?
# lintian's own notice that it runs as root is not about the package.
grep -v 'running with root privileges' "$out/lintian.txt" || true
[ "$rc" = 0 ] || fail "lintian found errors or warnings (above)"
echo "lintian: no errors, no warnings"
