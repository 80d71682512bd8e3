#!/bin/bash
# The .deb install test, run INSIDE a clean Debian system booted with systemd
# as PID 1 (packaging/test-deb.sh runs it there with tests/systemd/boot.sh).
#
#   test-install.sh DEB DEB_UPGRADE
#
# DEB_UPGRADE is the same package with a higher version. The container has
# no network: `apt-get install ./file.deb` must work with what the minimal
# system has. Every wait is bounded (client --timeout, systemctl).
set -euo pipefail
deb=$(readlink -f "$1") deb2=$(readlink -f "$2")
export DEBIAN_FRONTEND=noninteractive
cd /

pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; exit 1; }
step() { echo; echo "=== $*"; }
expect() { # WHAT ACTUAL EXPECTED
    [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
    pass "$1: $2"
}
state() { systemctl is-active "$1" 2>/dev/null || true; }
prop() { systemctl show -p "$2" --value "$1"; }
deb_version() { dpkg-deb -f "$1" Version; }

systemctl is-system-running --wait >/dev/null 2>&1 || true

step "install: apt-get install $deb (offline, nothing else)"
apt-get install -y "$deb"
expect "installed version" "$(dpkg-query -W -f '${Version}' dgecho)" "$(deb_version "$deb")"
expect "systemctl is-enabled dgecho.socket" "$(systemctl is-enabled dgecho.socket)" enabled
expect "dgecho.socket" "$(state dgecho.socket)" active
# Socket-activated: the service is neither enabled nor running yet.
svc_enabled=$(systemctl is-enabled dgecho.service 2>/dev/null || true)
case $svc_enabled in enabled|enabled-runtime) fail "dgecho.service is $svc_enabled; only the socket should be" ;; esac
pass "dgecho.service is not enabled itself ($svc_enabled)"
expect "dgecho.service before the first datagram" "$(state dgecho.service)" inactive
[ -S /run/dgecho/dgecho.sock ] || fail "no socket at /run/dgecho/dgecho.sock"
unit=$(dpkg -L dgecho | grep '/systemd/system/dgecho\.socket$')
pass "units installed by debhelper into $(dirname "$unit") ($(systemctl --version | head -1))"
# Quiet: the units parse, and the man pages their Documentation= names are
# installed (the package ships them; man-db is in the container).
verify=$(systemd-analyze verify dgecho.socket dgecho.service 2>&1) || fail "systemd-analyze verify failed: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify printed: $verify"
pass "systemd-analyze verify dgecho.socket dgecho.service prints nothing"

step "the daemon answers, started by the first datagram"
expect "dgecho client hello" "$(dgecho client hello)" olleh
expect "dgecho.service after the first datagram" "$(state dgecho.service)" active
expect "UDP on 127.0.0.1:7" "$(dgecho client 127.0.0.1:7 hello udp)" "pdu olleh"
expect "UDP on [::1]:7" "$(dgecho client '[::1]:7' hello v6)" "6v olleh"

step "man pages"
MANPAGER=cat MANWIDTH=80 man dgecho >/tmp/man.txt 2>/tmp/man.err || { cat /tmp/man.err; fail "man dgecho failed"; }
for s in SYNOPSIS ADDRESSES FILES ENVIRONMENT "EXIT STATUS" EXAMPLES; do
    grep -q "^$s" /tmp/man.txt || fail "man dgecho has no $s section"
done
pass "man dgecho renders, with its sections"
for sub in serve client; do
    # The synopsis is justified: "dgecho   serve" may carry several spaces.
    MANPAGER=cat man "dgecho-$sub" 2>/dev/null | grep -Eq "dgecho +$sub" || fail "man dgecho-$sub"
done
pass "man dgecho-serve, man dgecho-client"

step "completions"
# What bash does on "dgecho cl<TAB>": load the completion on demand
# (bash-completion's loader finds /usr/share/bash-completion/completions/dgecho)
# and call the function registered for dgecho.
completed=$(bash --norc -c '
    . /usr/share/bash-completion/bash_completion
    _completion_loader dgecho
    fn=$(complete -p dgecho | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
    [ -n "$fn" ] || exit 3
    COMP_WORDS=(dgecho cl) COMP_CWORD=1 COMP_LINE="dgecho cl" COMP_POINT=9
    "$fn" dgecho cl dgecho
    printf "%s\n" "${COMPREPLY[@]}"')
expect "bash completion of 'dgecho cl'" "$(echo $completed)" client
for f in /usr/share/zsh/vendor-completions/_dgecho /usr/share/fish/vendor_completions.d/dgecho.fish; do
    [ -s "$f" ] || fail "missing $f"
done
pass "zsh and fish completions installed"
for f in /usr/share/doc/dgecho/copyright /usr/share/doc/dgecho/README.md.gz; do
    [ -s "$f" ] || fail "missing $f"
done
pass "README and copyright installed"

step "reinstall keeps it answering"
apt-get install -y --reinstall "$deb"
expect "dgecho.socket after reinstall" "$(state dgecho.socket)" active
expect "dgecho client after reinstall" "$(dgecho client hello again)" "niaga olleh"

step "upgrade to $(deb_version "$deb2"): the running daemon restarts with the new binary, the sockets stay"
pid_before=$(prop dgecho.service MainPID)
[ "$pid_before" -gt 0 ] || fail "dgecho.service is not running before the upgrade"
sock_since=$(prop dgecho.socket ActiveEnterTimestampMonotonic)
# A client keeps sending during the upgrade; every datagram must be answered
# (the datagrams that arrive during the restart wait in the socket).
rm -f /tmp/upgrade-done
(
    i=0
    while [ ! -e /tmp/upgrade-done ] || [ "$i" -lt 50 ]; do
        i=$((i + 1))
        echo "m$i"
        sleep 0.01
    done
    echo "$i" >/tmp/sent
) | dgecho client --timeout 10 >/tmp/replies 2>/tmp/client.err &
client=$!
apt-get install -y "$deb2"
touch /tmp/upgrade-done
wait "$client" || { cat /tmp/client.err; fail "the client lost a reply during the upgrade"; }
sent=$(cat /tmp/sent)
expect "replies during the upgrade" "$(wc -l </tmp/replies)" "$sent"
expect "last reply" "$(tail -n1 /tmp/replies)" "$(echo "m$sent" | rev)"
expect "installed version" "$(dpkg-query -W -f '${Version}' dgecho)" "$(deb_version "$deb2")"
pid_after=$(prop dgecho.service MainPID)
[ "$pid_after" -gt 0 ] && [ "$pid_after" != "$pid_before" ] ||
    fail "dgecho.service was not restarted by the upgrade (MainPID $pid_before -> $pid_after)"
exe=$(readlink "/proc/$pid_after/exe")
expect "running binary" "$exe" /usr/bin/dgecho
pass "dgecho.service restarted: MainPID $pid_before -> $pid_after"
expect "dgecho.socket not restarted" "$(prop dgecho.socket ActiveEnterTimestampMonotonic)" "$sock_since"
expect "systemctl is-enabled dgecho.socket after upgrade" "$(systemctl is-enabled dgecho.socket)" enabled
expect "dgecho client after upgrade" "$(dgecho client hello)" olleh

step "remove: both units stop"
files=$(dpkg -L dgecho)
apt-get remove -y dgecho
expect "dgecho.service after remove" "$(state dgecho.service)" inactive
expect "dgecho.socket after remove" "$(state dgecho.socket)" inactive
[ ! -e /usr/bin/dgecho ] || fail "/usr/bin/dgecho still there after remove"
[ ! -e /run/dgecho ] || fail "/run/dgecho still there after remove: $(ls -la /run/dgecho)"
pass "binary and /run/dgecho gone"

step "purge: nothing of dgecho is left"
apt-get purge -y dgecho
status=$(dpkg-query -W -f '${db:Status-Status}' dgecho 2>/dev/null || true)
[ -z "$status" ] || [ "$status" = not-installed ] || fail "dpkg still has dgecho: $status"
for f in $files; do
    [ -d "$f" ] && continue # shared directories such as /usr/share/man
    [ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f is left after purge"
done
pass "every file of dpkg -L dgecho is gone"
# Any path named after dgecho, except this test's own files.
leftovers=$(find / /run /tmp /var/tmp -xdev \( -path /proc -o -path /sys -o -path /dev \) -prune -o \
    -iname '*dgecho*' -print 2>/dev/null |
    grep -v -e '^/usr/local/libexec/dgecho-e2e' -e '^/var/lib/dgecho-e2e' -e 'dgecho-e2e-test\.service$' \
        -e "^$(dirname "$deb")" | sort -u || true)
[ -z "$leftovers" ] || fail "left after purge: $leftovers"
if grep -rlsI dgecho /etc /var/lib/systemd /var/lib/dpkg/info | grep -v dgecho-e2e; then
    fail "files above still mention dgecho after purge"
fi
expect "dgecho.socket unit after purge" "$(prop dgecho.socket LoadState)" not-found
pass "no file, symlink, state or directory of dgecho left"

echo
echo "PASS: .deb install test"
