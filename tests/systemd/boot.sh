#!/bin/bash
# Boot a throw-away Debian system with systemd as PID 1 in a container, copy
# files into it, run one script inside as the test, and return its status.
#
#   tests/systemd/boot.sh [--suite bookworm|trixie] [--copy SRC:DST]...
#                         [--packages PKG,...] [--timeout SECONDS] [--keep]
#                         [--no-boot] [--output DIR:HOSTDIR]
#                         --test SCRIPT [-- ARG...]
#
#   --suite NAME     the Debian release to boot (default bookworm, or
#                    $DGECHO_E2E_SUITE): bookworm has systemd 252, trixie 257.
#   --copy SRC:DST   copy host file SRC to DST (absolute path inside the
#                    container; parent directories are created, mode is kept).
#                    A DST ending in / keeps SRC's file name.
#   --packages LIST  extra Debian packages (comma-separated) for the rootfs;
#                    they change the cache key, so each set is built once.
#   --timeout SECS   hard bound on the whole boot+test (default 600).
#   --keep           keep the scratch directory (overlay upper layer with the
#                    container's journal) even on success.
#   --test SCRIPT    the test, run inside by a Type=exec unit ordered after
#                    multi-user.target; ARGs after -- are passed to it.
#   --no-boot        do not boot systemd: run the test as the container's only
#                    program (nspawn --as-pid2), e.g. a package build. The
#                    container is the same: own /dev, /proc, only lo.
#   --output DIR:HOSTDIR  after the run (pass or fail), copy the container's
#                    directory DIR (as the test left it) to HOSTDIR.
#
# Exit status: the test's exit status; 0 with "SKIP: reason" when this machine
# cannot boot a container at all (not root, no nspawn/mmdebstrap, no mount
# namespaces, no package mirror). DGECHO_E2E_REQUIRED=1 turns a skip into a
# failure (exit 1), as CI must.
#
# How it works (the host's PID 1 need not be systemd):
#   1. a minbase rootfs of the suite with systemd is built once by mmdebstrap
#      and cached as a tarball ($DGECHO_E2E_CACHE, default
#      /var/cache/dgecho-e2e), from the same package registry as the host's
#      own apt sources (tests/systemd/apt-sources.sh; $DGECHO_E2E_MIRROR, an
#      apt line or URI, overrides it);
#   2. each run extracts it into a scratch directory as the read-only lower
#      layer of an overlayfs, with a fresh upper layer, mounted inside a
#      private mount namespace (unshare -m --propagation private), so nothing
#      is mounted on the host and the host's root is never the container's;
#   3. this shell moves into a private cgroup in the name=systemd and unified
#      hierarchies, so nspawn and the container's systemd get a subtree of
#      their own instead of the top of the host's tree;
#   4. systemd-nspawn --boot --private-network runs the container: its only
#      network interface is its own lo, no host device node is bound in;
#   5. the test unit has SuccessAction=/FailureAction=exit-force, so PID 1
#      exits with the test's status and nspawn returns it. The test's status is
#      also written to /var/lib/dgecho-e2e/status inside, read from the upper
#      layer, so a container that died before the test ran is not a pass;
#   6. on failure the container's journal is printed from the upper layer
#      with journalctl -D. A test may write a one-line summary (such as
#      "N passed, N failed") to /var/lib/dgecho-e2e/summary: it is printed
#      last, on the host.
set -euo pipefail

SUITE=${DGECHO_E2E_SUITE:-bookworm}
VARIANT=minbase
BASE_PACKAGES=dbus,systemd,systemd-sysv
CACHE_DIR=${DGECHO_E2E_CACHE:-${XDG_CACHE_HOME:+$XDG_CACHE_HOME/dgecho-e2e}}
CACHE_DIR=${CACHE_DIR:-/var/cache/dgecho-e2e}
SCRATCH_PARENT=${DGECHO_E2E_SCRATCH:-/var/tmp}

log() { printf 'boot.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
skip() {
    if [ "${DGECHO_E2E_REQUIRED:-0}" = 1 ]; then
        log "ERROR: cannot run, and DGECHO_E2E_REQUIRED=1: $*"
        exit 1
    fi
    echo "SKIP: systemd end-to-end test: $*"
    exit 0
}

# ---------------------------------------------------------------- inner part
# Runs inside the private mount namespace: mount the overlay, boot, collect.
if [ "${1:-}" = --inner ]; then
    scratch=$2 timeout_s=$3 boot=$4
    lower=$scratch/lower upper=$scratch/upper work=$scratch/work merged=$scratch/merged
    # Belt and braces: even though unshare asked for private propagation,
    # make sure no mount below leaks to the host.
    mount --make-rprivate /
    if ! mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$merged"; then
        touch "$scratch/overlay-failed"
        exit 1
    fi
    [ "$(stat -c %d "$merged")" != "$(stat -c %d /)" ] || die "overlay not mounted on $merged"
    # nspawn keeps per-container state under /run/systemd/nspawn: give it a
    # tmpfs of our own there, so nothing is left in the host's /run (which
    # need not be a tmpfs where the host does not run systemd).
    mkdir -p /run/systemd/nspawn
    mount -t tmpfs -o mode=0755 dgecho-e2e /run/systemd/nspawn
    # systemd-nspawn refuses a tree without os-release or with PID 1 missing.
    [ "$boot" = 0 ] || [ -x "$merged/lib/systemd/systemd" ] || die "no systemd in the rootfs"
    # Booted: systemd is PID 1 and runs the test unit. Not booted: nspawn's
    # stub init is PID 1 and the runner its only child.
    mode=(--boot)
    [ "$boot" = 1 ] || mode=(--as-pid2)
    run=()
    [ "$boot" = 1 ] || run=(/usr/local/libexec/dgecho-e2e/run)
    rc=0
    # --keep-unit + --register=no: no host systemd/machined to talk to.
    # --link-journal=no: the journal stays in the container (upper layer).
    # --console=read-only: the container's console (with the test's output)
    # goes to our stdout, and nothing of ours is read by it.
    timeout --kill-after=15 "$timeout_s" \
        systemd-nspawn -D "$merged" "${mode[@]}" --register=no --keep-unit \
        --private-network --console=read-only --link-journal=no \
        --resolv-conf=off --timezone=off --machine="dgecho-e2e-$$" \
        --setenv=SYSTEMD_COLORS=0 --setenv=SYSTEMD_LOG_COLOR=0 \
        "${run[@]}" || rc=$?
    umount "$merged" || umount -l "$merged" || true
    exit "$rc"
fi

# ---------------------------------------------------------------- arguments
copies=() test_script= test_args=() extra_packages= timeout_s=600 keep=0 boot=1 outputs=()
while [ $# -gt 0 ]; do
    case $1 in
        --copy) copies+=("$2"); shift 2 ;;
        --packages) extra_packages=$2; shift 2 ;;
        --timeout) timeout_s=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        --suite) SUITE=$2; shift 2 ;;
        --no-boot) boot=0; shift ;;
        --output) outputs+=("$2"); shift 2 ;;
        --test) test_script=$2; shift 2 ;;
        --) shift; test_args=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
[ -n "$test_script" ] || die "--test SCRIPT is required (see --help)"
case $SUITE in
    bookworm|trixie) ;;
    *) die "unknown suite '$SUITE': use --suite bookworm (systemd 252) or --suite trixie (systemd 257)" ;;
esac
for o in "${outputs[@]}"; do
    case $o in /*:?*) ;; *) die "--output wants /absolute/DIR:HOSTDIR, got: $o" ;; esac
done
[ -f "$test_script" ] || die "test script not found: $test_script"
for c in "${copies[@]}"; do
    case $c in *:/*) ;; *) die "--copy wants SRC:/absolute/DST, got: $c" ;; esac
    [ -e "${c%%:/*}" ] || die "--copy source not found: ${c%%:/*}"
done

# ---------------------------------------------------------------- can we run?
[ "$(id -u)" = 0 ] || skip "needs root (it mounts an overlay and boots a container)"
for tool in systemd-nspawn mmdebstrap zstd unshare; do
    command -v "$tool" >/dev/null ||
        skip "$tool not installed (apt-get install -y systemd-container mmdebstrap zstd)"
done
unshare -m --propagation private true 2>/dev/null || skip "cannot create a mount namespace"
[ -d /sys/fs/cgroup ] || skip "no /sys/fs/cgroup"

# ---------------------------------------------------------------- rootfs cache
packages=$BASE_PACKAGES${extra_packages:+,$extra_packages}
packages=$(tr ',' '\n' <<<"$packages" | sed '/^$/d' | sort -u | paste -sd,)
key=$(printf '%s\n' "$SUITE" "$VARIANT" "$packages" | sha256sum | cut -c1-12)
tarball=$CACHE_DIR/rootfs-$SUITE-$VARIANT-$key.tar.zst
mkdir -p "$CACHE_DIR"
(
    flock 9
    if [ ! -s "$tarball" ]; then
        log "building $SUITE $VARIANT rootfs with $packages (once; cached as $tarball)"
        tmp=$tarball.tmp.$$.tar.zst
        if [ -n "${DGECHO_E2E_MIRROR:-}" ]; then
            sources=$DGECHO_E2E_MIRROR
        elif ! sources=$("$(dirname "$0")/apt-sources.sh" "$SUITE"); then
            exit 3
        fi
        if ! mmdebstrap --quiet --variant="$VARIANT" --include="$packages" \
            "$SUITE" "$tmp" "$sources" >&2; then
            rm -f "$tmp"
            exit 3
        fi
        mv "$tmp" "$tarball"
    fi
) 9>"$CACHE_DIR/.lock" || {
    rc=$?
    [ "$rc" = 3 ] && skip "mmdebstrap could not build the rootfs (no package mirror?)"
    die "rootfs cache failed ($rc)"
}

# ---------------------------------------------------------------- scratch tree
scratch=$(mktemp -d "$SCRATCH_PARENT/dgecho-e2e.XXXXXX")
mkdir -p "$scratch"/{lower,upper,work,merged}
cgroups=()
cleanup() {
    local rc=$?
    # Leave the private cgroups (back to the root of each hierarchy) and
    # remove them bottom-up; the container's processes are all gone by now.
    for h in "${cgroups[@]}"; do
        echo $$ >"${h%/*}/cgroup.procs" 2>/dev/null || true
        find "$h" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    if [ "$keep" = 1 ] || [ "$rc" != 0 ]; then
        log "scratch directory kept: $scratch"
        rm -rf "$scratch/lower" "$scratch/work" 2>/dev/null || true
    else
        rm -rf "$scratch"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The lower layer: the cached rootfs, without device nodes (nspawn makes the
# container's /dev itself; we never create or bind host device nodes).
tar --zstd -xpf "$tarball" -C "$scratch/lower" --exclude='./dev/*'

# Everything we add goes to the upper layer, so the lower one stays pristine.
up=$scratch/upper
install_into() { # SRC DST(absolute, in container)
    local src=$1 dst=$2
    case $dst in */) dst=$dst${src##*/} ;; esac
    mkdir -p "$up$(dirname "$dst")"
    cp -L --preserve=mode "$src" "$up$dst"
}
for c in "${copies[@]}"; do
    install_into "${c%%:/*}" "/${c#*:/}"
done
install_into "$test_script" /usr/local/libexec/dgecho-e2e/test
chmod 0755 "$up/usr/local/libexec/dgecho-e2e/test"
# A fixed, valid machine id: the journal lands in /var/log/journal/ID.
mkdir -p "$up/etc" "$up/var/lib/dgecho-e2e"
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$up/etc/machine-id"
echo >>"$up/etc/machine-id"
printf '%q ' "${test_args[@]}" >"$up/usr/local/libexec/dgecho-e2e/args"

# The runner: runs the test, records its status where the host can read it,
# flushes the journal to disk (exit-force stops nothing), exits with it.
cat >"$up/usr/local/libexec/dgecho-e2e/run" <<'EOF'
#!/bin/bash
cd /usr/local/libexec/dgecho-e2e
eval "args=($(cat args))"
if [ -d /run/systemd/system ]; then
    echo "=== dgecho-e2e: running test (system state: $(systemctl is-system-running))"
else
    echo "=== dgecho-e2e: running test (not booted)"
fi
rc=0
./test "${args[@]}" || rc=$?
echo "=== dgecho-e2e: test exited with status $rc"
echo "$rc" >/var/lib/dgecho-e2e/status
sync /var/lib/dgecho-e2e/status
[ ! -d /run/systemd/system ] || journalctl --sync || true
exit "$rc"
EOF
chmod 0755 "$up/usr/local/libexec/dgecho-e2e/run"

mkdir -p "$up/etc/systemd/system/multi-user.target.wants"
cat >"$up/etc/systemd/system/dgecho-e2e-test.service" <<EOF
[Unit]
Description=dgecho end-to-end test
# Run once the system is fully up. Not Type=oneshot: a oneshot would hold the
# boot transaction open, and the test's own 'systemctl is-system-running
# --wait' (or any job waiting for boot to finish) would deadlock on it.
After=multi-user.target
# PID 1 exits with the test's status; nspawn returns it to the host.
SuccessAction=exit-force
FailureAction=exit-force

[Service]
Type=exec
ExecStart=/usr/local/libexec/dgecho-e2e/run
StandardOutput=journal+console
StandardError=journal+console
# In-container bound, below the host's hard timeout.
RuntimeMaxSec=$((timeout_s > 60 ? timeout_s - 30 : timeout_s))
EOF
ln -s ../dgecho-e2e-test.service "$up/etc/systemd/system/multi-user.target.wants/dgecho-e2e-test.service"
# Nothing in the container needs a login prompt or the console's getty.
ln -s /dev/null "$up/etc/systemd/system/console-getty.service"
ln -s /dev/null "$up/etc/systemd/system/getty@.service"

# ---------------------------------------------------------------- cgroups
# Without a host systemd, nspawn would put its payload at the top of each
# hierarchy; give it a private subtree instead.
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
    hierarchies=(/sys/fs/cgroup)
else
    hierarchies=()
    for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
        [ -e "$h/cgroup.procs" ] && hierarchies+=("$h")
    done
fi
for h in "${hierarchies[@]}"; do
    cur=$(awk -F: -v h="$h" '
        (h ~ /unified$/ || h == "/sys/fs/cgroup") && $1 == "0" { print $3 }
        h ~ /systemd$/ && $2 == "name=systemd" { print $3 }' /proc/self/cgroup)
    cg=$h${cur%/}/dgecho-e2e-$$
    mkdir "$cg"
    cgroups+=("$cg")
    echo $$ >"$cg/cgroup.procs"
done

# ---------------------------------------------------------------- boot
log "$([ "$boot" = 1 ] && echo booting || echo starting) $SUITE container on $scratch (timeout ${timeout_s}s)"
start=$(date +%s)
rc=0
unshare -m --propagation private "$0" --inner "$scratch" "$timeout_s" "$boot" || rc=$?
log "container exited with status $rc after $(($(date +%s) - start))s"
for o in "${outputs[@]}"; do
    src=${o%%:*} dst=${o#*:}
    if [ -d "$up$src" ]; then
        mkdir -p "$dst"
        cp -a "$up$src/." "$dst/"
    else
        log "the test left no $src to copy out"
    fi
done
[ ! -e "$scratch/overlay-failed" ] || skip "cannot mount an overlayfs with its upper layer in $SCRATCH_PARENT (set DGECHO_E2E_SCRATCH)"

status_file=$up/var/lib/dgecho-e2e/status
if [ ! -s "$status_file" ]; then
    log "FAIL: the test did not complete (no status recorded; nspawn status $rc)"
    [ "$rc" != 0 ] || rc=1
elif [ "$(cat "$status_file")" != "$rc" ]; then
    log "FAIL: test recorded status $(cat "$status_file") but the container exited with $rc"
    [ "$rc" != 0 ] || rc=$(cat "$status_file")
    [ "$rc" != 0 ] || rc=1
fi
if [ "$rc" != 0 ]; then
    if [ -d "$up/var/log/journal" ]; then
        log "---- container journal (journalctl -D $up/var/log/journal) ----"
        journalctl -D "$up/var/log/journal" --no-pager -o short-monotonic 2>&1 | tail -n "${DGECHO_E2E_JOURNAL_LINES:-400}" >&2 || true
        log "---- end of container journal ----"
    fi
fi
[ ! -s "$up/var/lib/dgecho-e2e/summary" ] || head -n 1 "$up/var/lib/dgecho-e2e/summary"
exit "$rc"
