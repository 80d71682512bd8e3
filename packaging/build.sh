#!/bin/bash
# Build a dgecho package from this checkout.
#
#   packaging/build.sh source|deb|deb-trixie|rpm|arch OUTDIR
#
#   source  the Debian source package a build daemon takes: the upstream
#         tarball dgecho_VERSION.orig.tar.xz, the vendored crates as the
#         component tarball dgecho_VERSION.orig-vendor.tar.xz (cargo vendor;
#         unpacked as ./vendor), packaging/debian as debian.tar.xz, and the
#         .dsc -> OUTDIR/dgecho_VERSION-REV.dsc (and the tarballs beside it)
#   deb   the source package, unpacked and built with dpkg-buildpackage -b
#         on this host, without network (unshare -n, where it can)
#         -> OUTDIR/dgecho_VERSION-REV_ARCH.deb
#   deb-trixie  the source package built as a Debian 13 (trixie) build
#         daemon would: in a trixie container (tests/systemd/boot.sh
#         --no-boot) whose only network is its own lo, with trixie's
#         debhelper, rustc and cargo (1.85) and the tests on, then checked
#         with trixie's lintian (errors and warnings fail). With
#         DGECHO_PKG_REVISIONS="1 2" it builds those revisions in one
#         container (the second reuses the first's build, without tests).
#         -> OUTDIR/dgecho_VERSION-REV_ARCH.deb for each revision, with
#         the dbgsym package, .changes and lintian.txt beside them
#   rpm   rpmbuild -bb packaging/rpm/dgecho.spec   -> OUTDIR/dgecho-VERSION-REL.ARCH.rpm
#   arch  makepkg with packaging/arch/PKGBUILD     -> OUTDIR/dgecho-VERSION-REL-ARCH.pkg.tar.*
#
# Each builds from a copy of the checkout's tracked files in a scratch
# directory, with `cargo build --release --locked`.
#
# Environment:
#   DGECHO_PKG_REVISION  package revision/release (default 1); the install
#                        test builds a second .deb with 2 to test upgrades.
#   DGECHO_PKG_CHECK=1   also run the package's test step (cargo test); off
#                        by default because CI runs cargo test itself
#                        (deb-trixie: on by default, as a build daemon).
#   DGECHO_PKG_ORIG_DIR  take the .orig tarballs from this directory (as
#                        made by `build.sh source`) instead of making them
#                        again; the caller makes sure that they are current.
#   CARGO_TARGET_DIR     cargo's build directory for deb and rpm (default:
#                        the checkout's target/, so that dependencies are
#                        built once). The arch build keeps its own, as the
#                        Arch guidelines ask.
#
# Needs: cargo (rust-version from Cargo.toml), and
#   deb:  dpkg-dev debhelper            (apt-get install -y debhelper)
#   rpm:  rpm (rpmbuild)                (apt-get install -y rpm)
#   arch: makepkg pacman-package-manager fakeroot libarchive-tools
set -euo pipefail

die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'build.sh: %s\n' "$*" >&2; }

[ $# -eq 2 ] || die "usage: packaging/build.sh source|deb|deb-trixie|rpm|arch OUTDIR"
kind=$1
mkdir -p "$2"
outdir=$(cd "$2" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
revision=${DGECHO_PKG_REVISION:-1}
case $revision in ''|*[!0-9a-z.+~]*) die "DGECHO_PKG_REVISION must be like 1 or 2, not '$revision'" ;; esac
check=${DGECHO_PKG_CHECK:-0}

version=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml")
[ -n "$version" ] || die "no version in $root/Cargo.toml"

command -v cargo >/dev/null || die "cargo not found (install Rust $(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' "$root/Cargo.toml") or later, e.g. with rustup)"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

work=$(mktemp -d "${TMPDIR:-/tmp}/dgecho-pkg.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$work/dgecho-$version

# The source tree: the files git tracks, as they are in the working tree (so
# uncommitted edits are built, new files only once added), or, outside git,
# everything but target/ and .git.
stage_source() {
    mkdir -p "$src"
    if git -C "$root" rev-parse --show-toplevel >/dev/null 2>&1; then
        (cd "$root" && git ls-files -z --cached |
            while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
            tar --null -T - -cf -) | tar -xf - -C "$src"
    else
        tar -C "$root" --exclude=./target --exclude=./.git -cf - . | tar -xf - -C "$src"
    fi
    for f in Cargo.toml Cargo.lock README.md CHANGELOG.md LICENSE-MIT LICENSE-APACHE \
        systemd/dgecho.socket systemd/dgecho.service packaging/man/dgecho.1; do
        [ -e "$src/$f" ] || die "$f is missing from the source tree"
    done
}

# A source tarball named as the spec and the PKGBUILD expect.
make_tarball() {
    tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner \
        -czf "$1/dgecho-$version.tar.gz" "dgecho-$version"
}

# debian/ for a revision: packaging/debian, with a changelog entry for the
# revision when it is not the changelog's own.
stage_debian() { # REVISION
    local rev=$1
    rm -rf "$src/debian"
    cp -a "$src/packaging/debian" "$src/debian"
    local changelog_version
    changelog_version=$(cd "$src" && dpkg-parsechangelog -S Version)
    [ "${changelog_version%-*}" = "$version" ] ||
        die "packaging/debian/changelog is at ${changelog_version%-*} but Cargo.toml at $version: add a changelog entry"
    if [ "$changelog_version" != "$version-$rev" ]; then
        # A rebuild with another revision (e.g. to test upgrades).
        {
            printf 'dgecho (%s-%s) unstable; urgency=medium\n\n' "$version" "$rev"
            printf '  * Rebuild as revision %s (packaging/build.sh).\n\n' "$rev"
            # A minute after the previous entry, not now: the same source
            # builds the same package (SOURCE_DATE_EPOCH comes from it),
            # and the entry is newer than the last (lintian).
            printf ' -- %s  %s\n\n' "$(cd "$src" && dpkg-parsechangelog -S Maintainer)" \
                "$(LC_ALL=C date -u -R -d "@$(($(cd "$src" && dpkg-parsechangelog -S Timestamp) + 60))")"
            cat "$src/debian/changelog"
        } >"$src/debian/changelog.new"
        mv "$src/debian/changelog.new" "$src/debian/changelog"
    fi
}

# The winapi-*-pc-windows-gnu crates carry 100 MiB of prebuilt Windows import
# libraries (lib/*.a): prebuilt binaries, which a Debian source package must
# not ship, and never linked on Linux. Drop them, and their entries in the
# crate's .cargo-checksum.json (cargo checks only the files listed there).
prune_vendor() { # VENDOR_DIR
    local d
    for d in "$1"/winapi-*-pc-windows-gnu; do
        [ -d "$d/lib" ] || continue
        rm -rf "$d/lib"
        python3 - "$d/.cargo-checksum.json" <<'PY' || die "cannot rewrite $d/.cargo-checksum.json (python3 is needed)"
import json, sys
path = sys.argv[1]
with open(path) as f:
    sums = json.load(f)
sums["files"] = {k: v for k, v in sums["files"].items() if not k.startswith("lib/")}
with open(path, "w") as f:
    json.dump(sums, f, sort_keys=True, separators=(",", ":"))
PY
    done
}

# The upstream tarball and the vendored crates, made once per run.
make_orig() { # DIR
    local dir=$1 epoch
    command -v dpkg-source >/dev/null || die "dpkg-source is needed: apt-get install -y dpkg-dev"
    epoch=$(cd "$root" && dpkg-parsechangelog -l packaging/debian/changelog -S Timestamp)
    local tarflags=(--sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" --format=gnu)
    [ -e "$dir/dgecho_$version.orig.tar.xz" ] && return
    stage_source
    # Tarballs made earlier in the same run of packaging/ci.sh: the builds of
    # both releases then start from byte-identical sources, and cargo vendor
    # runs once.
    local reuse=${DGECHO_PKG_ORIG_DIR:-}
    if [ -n "$reuse" ] && [ -s "$reuse/dgecho_$version.orig.tar.xz" ] && [ -s "$reuse/dgecho_$version.orig-vendor.tar.xz" ]; then
        log "using the tarballs in $reuse"
        cp "$reuse/dgecho_$version.orig.tar.xz" "$reuse/dgecho_$version.orig-vendor.tar.xz" "$dir/"
        tar -C "$src" -xJf "$dir/dgecho_$version.orig-vendor.tar.xz"
        return
    fi
    tar -C "$work" "${tarflags[@]}" -cf - "dgecho-$version" | xz -T1 -6 >"$dir/dgecho_$version.orig.tar.xz"
    # Every crate Cargo.lock pins, for every platform (cargo vendor cannot
    # leave out the Windows-only ones; they are never compiled here). The
    # crate registry is only reached for crates not already in cargo's cache.
    log "vendoring the crates of Cargo.lock (cargo vendor)"
    (cd "$src" && cargo vendor --locked --quiet "$work/vendor" >/dev/null) ||
        die "cargo vendor failed: it needs the crates of Cargo.lock, from the crate registry or cargo's cache"
    prune_vendor "$work/vendor"
    tar -C "$work" "${tarflags[@]}" -cf - vendor | xz -T1 -6 >"$dir/dgecho_$version.orig-vendor.tar.xz"
    # The tree dpkg-source compares against the tarballs has vendor/ too.
    mv "$work/vendor" "$src/vendor"
}

# The source package of a revision, beside $src (where dpkg-source looks for
# the tarballs).
build_source_into() { # DIR REVISION -> prints the .dsc
    local dir=$1 rev=$2
    make_orig "$dir"
    stage_debian "$rev"
    (cd "$dir" && dpkg-source --compression=xz -b "$src" >&2) ||
        die "dpkg-source -b failed${DGECHO_PKG_ORIG_DIR:+ (are the tarballs in DGECHO_PKG_ORIG_DIR=$DGECHO_PKG_ORIG_DIR from this tree? unset it to make them anew)}"
    rm -rf "$src/debian"
    echo "$dir/dgecho_${version}-${rev}.dsc"
}

build_source() {
    local dsc
    dsc=$(build_source_into "$work" "$revision")
    cp "$work/dgecho_$version.orig.tar.xz" "$work/dgecho_$version.orig-vendor.tar.xz" \
        "$work/dgecho_${version}-${revision}.debian.tar.xz" "$dsc" "$outdir/"
    echo "$outdir/${dsc##*/}"
}

build_deb() {
    command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null ||
        die "dpkg-buildpackage and debhelper are needed: apt-get install -y debhelper"
    local dsc
    dsc=$(build_source_into "$work" "$revision")
    # Unpack it as a build daemon does, and build from that.
    mkdir -p "$work/build"
    (cd "$work" && dpkg-source -x "$dsc" "$work/build/dgecho-$version" >&2)
    local opts=nocheck
    [ "$check" = 1 ] && opts=
    # No network: what the build needs is in the source package. (Not
    # where this user cannot make a network namespace.)
    local offline=()
    unshare -n true 2>/dev/null && offline=(unshare -n)
    # One cargo build directory for the deb builds (both revisions), apart
    # from the checkout's: the package's profile differs (debug info).
    # -d: the Build-Depends name Debian's cargo/rustc >= 1.85 (trixie);
    # here Rust may come from rustup instead.
    (cd "$work/build/dgecho-$version" && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/deb" \
        DEB_BUILD_OPTIONS="$opts ${DEB_BUILD_OPTIONS:-}" \
        "${offline[@]}" dpkg-buildpackage -b -d -us -uc --no-sign >&2)
    local arch
    arch=$(dpkg-architecture -qDEB_HOST_ARCH)
    cp "$work/build/dgecho_${version}-${revision}_${arch}.deb" "$outdir/"
    # The source package beside it, for lintian.
    cp "$work/dgecho_$version.orig.tar.xz" "$work/dgecho_$version.orig-vendor.tar.xz" \
        "$work/dgecho_${version}-${revision}.debian.tar.xz" "$work/dgecho_${version}-${revision}.dsc" "$outdir/"
    echo "$outdir/dgecho_${version}-${revision}_${arch}.deb"
}

# Build packages for trixie inside a trixie container, offline.
TRIXIE_BUILD_PACKAGES=build-essential,debhelper,cargo,rustc,lintian,xz-utils
build_deb_trixie() {
    local revs=${DGECHO_PKG_REVISIONS:-$revision} rev dscs=() copies=() f
    for rev in $revs; do
        case $rev in ''|*[!0-9a-z.+~]*) die "DGECHO_PKG_REVISIONS must be like '1 2', not '$revs'" ;; esac
        dscs+=("$(build_source_into "$work" "$rev")")
    done
    for f in "$work"/dgecho_*.dsc "$work"/dgecho_*.tar.xz; do copies+=(--copy "$f:/root/src/"); done
    local docheck=1
    [ "${DGECHO_PKG_CHECK:-1}" = 0 ] && docheck=0
    rm -rf "$work/out"
    local rc=0
    "$root/tests/systemd/boot.sh" --suite trixie --no-boot --timeout "${DGECHO_TRIXIE_TIMEOUT:-2400}" \
        --packages "$TRIXIE_BUILD_PACKAGES" "${copies[@]}" \
        --output "/root/out:$work/out" \
        --test "$root/packaging/debian-build-offline.sh" -- "$docheck" "${dscs[@]##*/}" >&2 || rc=$?
    for f in lintian.txt environment.txt; do
        [ ! -e "$work/out/$f" ] || cp "$work/out/$f" "$outdir/"
    done
    [ "$rc" = 0 ] || die "the trixie build failed (status $rc; its log is above)"
    cp "$work"/out/*.deb "$work"/out/*.changes "$work"/out/*.buildinfo "$outdir/" 2>/dev/null || true
    local arch
    for rev in $revs; do
        arch=$(cd "$work/out" && ls dgecho_"${version}-${rev}"_*.deb | sed -n 's/.*_\([^_]*\)\.deb$/\1/p' | head -1)
        [ -n "$arch" ] || die "the trixie build made no dgecho_${version}-${rev}_*.deb"
        echo "$outdir/dgecho_${version}-${rev}_${arch}.deb"
    done
}

build_rpm() {
    command -v rpmbuild >/dev/null || die "rpmbuild is needed: apt-get install -y rpm"
    stage_source
    local top=$work/rpmbuild
    mkdir -p "$top"/{SOURCES,SPECS,BUILD,RPMS,SRPMS}
    make_tarball "$top/SOURCES"
    local macros=()
    # Fedora's %systemd_* macros come from systemd-rpm-macros; an RPM
    # installed elsewhere (Debian's rpm package) lacks them.
    if [ -z "$(rpm --eval '%{?systemd_post:1}')" ]; then
        log "this rpm has no systemd macros; using packaging/rpm/macros.foreign-host"
        macros=(--load "$root/packaging/rpm/macros.foreign-host")
    fi
    local nocheck=(--nocheck)
    [ "$check" = 1 ] && nocheck=()
    # --nodeps: BuildRequires (cargo, systemd-rpm-macros) are RPM packages
    # that a non-RPM host does not have in its rpm database.
    rpmbuild "${macros[@]}" -bb --nodeps "${nocheck[@]}" \
        --define "_topdir $top" --define "dgecho_release $revision" \
        "$root/packaging/rpm/dgecho.spec" >&2
    local rpm
    for rpm in "$top"/RPMS/*/dgecho-"$version"-*.rpm; do
        case $rpm in *-debuginfo-*|*-debugsource-*) continue ;; esac
        cp "$rpm" "$outdir/"
        echo "$outdir/${rpm##*/}"
    done
}

build_arch() {
    command -v makepkg >/dev/null && command -v bsdtar >/dev/null && command -v fakeroot >/dev/null ||
        die "makepkg is needed: apt-get install -y makepkg pacman-package-manager fakeroot libarchive-tools"
    stage_source
    local dir=$work/arch
    mkdir -p "$dir"
    cp "$root/packaging/arch/PKGBUILD" "$root/packaging/arch/dgecho.install" "$dir/"
    make_tarball "$dir"
    local sum
    sum=$(sha256sum "$dir/dgecho-$version.tar.gz" | cut -d' ' -f1)
    sed -i -e "s/^pkgrel=.*/pkgrel=$revision/" -e "s/^sha256sums=.*/sha256sums=('$sum')/" "$dir/PKGBUILD"
    grep -q "^pkgver=$version\$" "$dir/PKGBUILD" ||
        die "packaging/arch/PKGBUILD's pkgver is not $version (Cargo.toml)"
    local nocheck=(--nocheck)
    [ "$check" = 1 ] && nocheck=()
    # makepkg refuses to run as root. As root, run it as uid 1000 in a user
    # namespace that maps that uid to root outside, so it can still read
    # the rustup toolchain under /root.
    local asuser=()
    if [ "$(id -u)" = 0 ]; then
        asuser=(unshare --map-user=1000 --map-group=1000)
        export CARGO_HOME=${CARGO_HOME:-$HOME/.cargo} RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
    fi
    # -d: dependencies are pacman packages, unknown on a non-Arch host.
    (cd "$dir" && unset CARGO_TARGET_DIR &&
        PKGDEST="$dir/out" "${asuser[@]}" makepkg -d -f "${nocheck[@]}" >&2)
    local pkg
    for pkg in "$dir"/out/dgecho-"$version"-*.pkg.tar.*; do
        case $pkg in *-debug-*) continue ;; esac
        cp "$pkg" "$outdir/"
        echo "$outdir/${pkg##*/}"
    done
}

case $kind in
    source) build_source ;;
    deb) build_deb ;;
    deb-trixie) build_deb_trixie ;;
    rpm) build_rpm ;;
    arch) build_arch ;;
    *) die "unknown package kind '$kind': use source, deb, deb-trixie, rpm or arch" ;;
esac
