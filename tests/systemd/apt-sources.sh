#!/bin/bash
# Print the apt sources for a Debian release as mmdebstrap takes them (one
# "deb [signed-by=KEYRING] URI SUITE COMPONENTS" line each), derived from this
# host's own apt sources: the same package registry, only the suite changed.
#
#   tests/systemd/apt-sources.sh SUITE        e.g. bookworm, trixie
#
# Every host entry for its own release (CODENAME, CODENAME-updates,
# CODENAME-security, ...) becomes the same entry for SUITE (SUITE,
# SUITE-updates, SUITE-security). Reads the deb822 files in
# /etc/apt/sources.list.d/*.sources and the one-line /etc/apt/sources.list and
# /etc/apt/sources.list.d/*.list (only "deb" entries, not deb-src). Prints
# nothing, and exits 1, when the host has no entry for its own release.
# DGECHO_APT_SOURCES_DIR overrides /etc/apt (for tests of this script).
set -euo pipefail
[ $# -eq 1 ] || { echo "apt-sources.sh: error: usage: apt-sources.sh SUITE" >&2; exit 2; }
target=$1
etc=${DGECHO_APT_SOURCES_DIR:-/etc/apt}
host=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$host" ] || { echo "apt-sources.sh: error: no VERSION_CODENAME in /etc/os-release" >&2; exit 1; }

# Normalize both formats to "URI|SUITE|COMPONENTS|KEYRING" lines.
entries() {
    local f
    for f in "$etc"/sources.list.d/*.sources; do
        [ -e "$f" ] || continue
        awk '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && enabled != "no")
                    for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
                        print u[i] "|" s[j] "|" comps "|" key
                types = ""; comps = ""; key = ""; enabled = ""; nu = 0; ns = 0
            }
            /^[[:space:]]*#/ { next }
            /^[[:space:]]*$/ { flush(); next }
            {
                field = tolower($1); sub(/:$/, "", field)
                val = $0; sub(/^[^:]*:[[:space:]]*/, "", val)
                if (field == "types") types = val
                else if (field == "uris") nu = split(val, u, /[[:space:]]+/)
                else if (field == "suites") ns = split(val, s, /[[:space:]]+/)
                else if (field == "components") comps = val
                else if (field == "signed-by") key = val
                else if (field == "enabled") enabled = tolower(val)
            }
            END { flush() }' "$f"
    done
    for f in "$etc"/sources.list "$etc"/sources.list.d/*.list; do
        [ -e "$f" ] || continue
        awk '
            $1 != "deb" { next }
            {
                key = ""; n = 2
                if ($2 ~ /^\[/) {
                    while ($n !~ /\]$/ && n < NF) { if ($n ~ /signed-by=/) { key = $n }; n++ }
                    if ($n ~ /signed-by=/) key = $n
                    sub(/.*signed-by=/, "", key); sub(/[],].*/, "", key); n++
                }
                comps = ""
                for (i = n + 2; i <= NF; i++) comps = comps (comps == "" ? "" : " ") $i
                print $n "|" $(n + 1) "|" comps "|" key
            }' "$f"
    done
}

found=0
while IFS='|' read -r uri suite comps key; do
    case $suite in
        "$host") new=$target ;;
        "$host"-*) new=$target-${suite#"$host"-} ;;
        "$host"/*) new=$target/${suite#"$host"/} ;;
        *) continue ;;
    esac
    # Only file keyrings can be passed on; an inline key block cannot.
    case $key in /*) opt="[signed-by=$key] " ;; *) opt= ;; esac
    echo "deb $opt$uri $new ${comps:-main}"
    found=1
done < <(entries)
[ "$found" = 1 ] || { echo "apt-sources.sh: error: no apt source for this host's release ($host) in $etc: add one, or set DGECHO_E2E_MIRROR" >&2; exit 1; }
