#!/bin/bash
# Build a dgecho package from this checkout.
#
#   packaging/build.sh deb|rpm|arch OUTDIR
#
#   deb   dpkg-buildpackage -b with packaging/debian as ./debian (debhelper)
#         -> OUTDIR/dgecho_VERSION-REV_ARCH.deb
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
#                        by default because CI runs cargo test itself.
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

[ $# -eq 2 ] || die "usage: packaging/build.sh deb|rpm|arch OUTDIR"
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

build_deb() {
    command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null ||
        die "dpkg-buildpackage and debhelper are needed: apt-get install -y debhelper"
    stage_source
    cp -a "$src/packaging/debian" "$src/debian"
    local changelog_version
    changelog_version=$(cd "$src" && dpkg-parsechangelog -S Version)
    [ "${changelog_version%-*}" = "$version" ] ||
        die "packaging/debian/changelog is at ${changelog_version%-*} but Cargo.toml at $version: add a changelog entry"
    if [ "$changelog_version" != "$version-$revision" ]; then
        # A rebuild with another revision (e.g. to test upgrades).
        {
            printf 'dgecho (%s-%s) unstable; urgency=medium\n\n' "$version" "$revision"
            printf '  * Rebuild as revision %s (packaging/build.sh).\n\n' "$revision"
            printf ' -- %s  %s\n\n' "$(cd "$src" && dpkg-parsechangelog -S Maintainer)" "$(date -R)"
            cat "$src/debian/changelog"
        } >"$src/debian/changelog.new"
        mv "$src/debian/changelog.new" "$src/debian/changelog"
    fi
    local opts=nocheck
    [ "$check" = 1 ] && opts=
    # -d: the Build-Depends name Debian's cargo/rustc >= 1.85 (trixie);
    # here Rust may come from rustup instead.
    (cd "$src" && DEB_BUILD_OPTIONS="$opts ${DEB_BUILD_OPTIONS:-}" \
        dpkg-buildpackage -b -d -us -uc --no-sign >&2)
    local arch
    arch=$(dpkg-architecture -qDEB_HOST_ARCH)
    cp "$work/dgecho_${version}-${revision}_${arch}.deb" "$outdir/"
    echo "$outdir/dgecho_${version}-${revision}_${arch}.deb"
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
    deb) build_deb ;;
    rpm) build_rpm ;;
    arch) build_arch ;;
    *) die "unknown package kind '$kind': use deb, rpm or arch" ;;
esac
