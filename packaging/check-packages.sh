#!/bin/bash
# Check that the built packages ship the same files, and that the RPM's
# scriptlets are there and call the systemd macros.
#
#   packaging/check-packages.sh DEB RPM [ARCH_PKG]
#
# Paths differ by distribution convention, so each file list is mapped to
# the same names first: the unit directory (/lib/systemd/system on Debian
# bookworm, /usr/lib/systemd/system elsewhere), zsh's completion directory
# (vendor-completions on Debian, site-functions elsewhere), compressed or
# not, the upstream changelog (changelog.gz on Debian), and the license
# (Debian's copyright file, /usr/share/licenses elsewhere). What remains must
# be identical, apart from the files one distribution needs and the others
# have no use for, listed in EXTRA below.
# Needs: dpkg-deb, rpm (rpm, rpm2cpio) and bsdtar (libarchive-tools).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DEB RPM [ARCH_PKG]" >&2; exit 2; }
deb=$1 rpm=$2 arch=${3:-}
fail() { echo "FAIL: $*"; exit 1; }

# Distribution-specific files: Debian's own changelog and lintian overrides.
EXTRA='^(/usr/share/doc/dgecho/changelog\.Debian|/usr/share/lintian/overrides/dgecho)$'

normalize() {
    sed -E -e 's#^\./#/#' -e 's#\.gz$##' \
        -e 's#^/lib/systemd/system/#/usr/lib/systemd/system/#' \
        -e 's#^/usr/share/zsh/(vendor-completions|site-functions)/#/usr/share/zsh/COMPLETIONS/#' \
        -e 's#^/usr/share/doc/dgecho/changelog$#/usr/share/doc/dgecho/CHANGELOG.md#' \
        -e 's#^/usr/share/doc/dgecho/copyright$#/usr/share/licenses/dgecho/LICENSE#' \
        -e 's#^/usr/share/licenses/dgecho/LICENSE-(MIT|APACHE)$#/usr/share/licenses/dgecho/LICENSE#' |
        grep -Ev "$EXTRA" | sort -u
}

# Files and symlinks only (directories are shared with other packages).
dpkg-deb --fsys-tarfile "$deb" | tar -tvf - | awk '$1 !~ /^d/ {print $6}' | normalize >/tmp/dgecho-files.deb.$$
rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm" | awk '$1 !~ /^d/ {print $2}' |
    grep -v '^/usr/lib/\.build-id' | normalize >/tmp/dgecho-files.rpm.$$
trap 'rm -f /tmp/dgecho-files.*.$$' EXIT
lists=(deb rpm)
if [ -n "$arch" ]; then
    bsdtar -tvf "$arch" | awk '$1 !~ /^d/ {print $9}' | grep -v '^\.' | sed 's#^#/#' |
        normalize >/tmp/dgecho-files.arch.$$
    lists+=(arch)
fi

echo "file set (normalized), deb:"
sed 's/^/  /' /tmp/dgecho-files.deb.$$
for l in "${lists[@]:1}"; do
    if ! diff -u /tmp/dgecho-files.deb.$$ "/tmp/dgecho-files.$l.$$"; then
        fail "the $l package's file set differs from the deb's (- deb, + $l)"
    fi
    echo "ok: the $l package ships the same file set as the deb"
done
for must in /usr/bin/dgecho /usr/lib/systemd/system/dgecho.socket /usr/lib/systemd/system/dgecho.service \
    /usr/share/man/man1/dgecho.1 /usr/share/bash-completion/completions/dgecho \
    /usr/share/zsh/COMPLETIONS/_dgecho /usr/share/fish/vendor_completions.d/dgecho.fish \
    /usr/share/doc/dgecho/README.md /usr/share/licenses/dgecho/LICENSE; do
    grep -qx "$must" /tmp/dgecho-files.deb.$$ || fail "the packages lack $must"
done
echo "ok: binary, units, man page, completions, README and license are there"

# RPM scriptlets: present, and doing what the systemd macros do. The patterns
# accept both expansions: systemctl (older macros, and build.sh's fallback on
# non-RPM hosts) and systemd-update-helper (current Fedora).
scripts=$(rpm -qp --scripts "$rpm")
section() { awk -v s="$1" '/^[a-z]+ scriptlet/ {on = ($0 ~ "^" s " scriptlet")} on' <<<"$scripts"; }
section postinstall | grep -Eq 'preset dgecho\.socket|install-system-units dgecho\.socket' ||
    fail "%post does not preset dgecho.socket (%systemd_post)"
# Fedora's preset policy: enabling (and so starting) is the distribution's
# or the administrator's decision, not the package's.
if section postinstall | grep -Eq 'systemctl (--[a-z-]+ )*(start|enable|restart)'; then
    fail "%post starts or enables a unit itself; Fedora leaves that to presets (%systemd_post only)"
fi
section preuninstall | grep -Eq 'disable --now dgecho\.socket dgecho\.service|remove-system-units dgecho\.socket dgecho\.service' ||
    fail "%preun does not stop and disable the units (%systemd_preun)"
section postuninstall | grep -Eq 'try-restart dgecho\.service|mark-restart-system-units dgecho\.service' ||
    fail "%postun does not restart dgecho.service on upgrade (%systemd_postun_with_restart)"
echo "ok: RPM scriptlets %post, %preun, %postun call the systemd macros' commands"
if rpm -qlp "$rpm" | grep -q '^/usr/lib/systemd/system-preset/'; then
    fail "the RPM ships a preset; Fedora's preset policy leaves enabling to the distribution"
fi
echo "ok: the RPM ships no preset and starts nothing itself (Fedora's preset policy)"
echo "PASS: package contents"
