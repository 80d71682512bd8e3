#!/usr/bin/env python3
"""Side-by-side benchmark of `dgecho serve` against two C baselines.

Called by run.sh, which builds the binaries. Every server is started the way
systemd starts dgecho: its socket pre-bound by this harness (with the
SO_RCVBUF of systemd/dgecho.socket's ReceiveBuffer=) and passed as fd 3 with
LISTEN_FDS/LISTEN_PID, and a NOTIFY_SOCKET owned by the harness, on which we
wait for READY=1 (the C baselines send it too). Each server runs pinned to
one CPU inside a cgroup with a fixed CPU quota; `dgecho bench` runs pinned
to another CPU as the generator.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SO_RCVBUFFORCE = 33


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def receive_buffer():
    """ReceiveBuffer= from the packaged unit, in bytes."""
    text = open(os.path.join(ROOT, "systemd", "dgecho.socket")).read()
    m = re.search(r"^ReceiveBuffer=(\d+)([KMG]?)\s*$", text, re.M)
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


class Cgroup:
    """A CPU-quota cgroup: v1 cpu controller, or v2 cpu.max."""

    def __init__(self, share, period_us):
        self.path = None
        self.procs = None
        self.how = "none"
        quota = int(share * period_us)
        name = f"dgecho-bench-{os.getpid()}"
        for base, v2 in (("/sys/fs/cgroup/cpu", False), ("/sys/fs/cgroup", True)):
            if v2 and not os.path.exists(os.path.join(base, "cgroup.subtree_control")):
                continue
            if not v2 and not os.path.exists(os.path.join(base, "cpu.cfs_quota_us")):
                continue
            path = os.path.join(base, name)
            try:
                os.mkdir(path)
                if v2:
                    with open(os.path.join(path, "cpu.max"), "w") as f:
                        f.write(f"{quota} {period_us}")
                else:
                    with open(os.path.join(path, "cpu.cfs_period_us"), "w") as f:
                        f.write(str(period_us))
                    with open(os.path.join(path, "cpu.cfs_quota_us"), "w") as f:
                        f.write(str(quota))
            except OSError as e:
                log(f"cgroup {path}: {e}")
                try:
                    os.rmdir(path)
                except OSError:
                    pass
                continue
            self.path = path
            self.procs = os.path.join(path, "cgroup.procs")
            self.how = f"{'v2 cpu.max' if v2 else 'v1 cpu.cfs_quota_us'} {quota}/{period_us} us"
            break

    def join(self):
        if self.procs:
            with open(self.procs, "w") as f:
                f.write("0")

    def remove(self):
        if self.path:
            for _ in range(50):
                try:
                    os.rmdir(self.path)
                    return
                except OSError:
                    time.sleep(0.02)


class NoQuota:
    """Where ping-pong cells run: pinned like the others, but with a whole
    core. At window 1 a server spends most of its CPU being woken (about
    15 to 20 us per round trip on a VM), near a 30% share at 13k round
    trips/s, so a quota would add throttling stalls to the latency it is
    meant to leave alone."""

    def join(self):
        pass


class Server:
    def __init__(self, cmd, transport, tmp, rcvbuf, cpu, cgroup, tag):
        if transport == "udp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            self.addr = f"127.0.0.1:{sock.getsockname()[1]}"
        else:
            path = os.path.join(tmp, f"{tag}.sock")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(path)
            self.addr = path
        if rcvbuf:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        notify_path = os.path.join(tmp, f"{tag}.notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(10)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_", "RUST_LOG", "JOURNAL_"))}
        env.update(NOTIFY_SOCKET=notify_path, LISTEN_FDS="1", LISTEN_FDNAMES="bench")
        fd = sock.fileno()

        def pre():
            os.sched_setaffinity(0, {cpu})
            cgroup.join()

        move = "" if fd == 3 else f"exec 3<&{fd}; exec {fd}<&-; "
        script = f'{move}export LISTEN_PID=$$; exec "$0" "$@"'
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(["sh", "-c", script] + cmd, env=env, pass_fds=(fd,),
                                     preexec_fn=pre, stdin=subprocess.DEVNULL)
        sock.close()
        try:
            while True:
                msg = notify.recv(4096).decode(errors="replace")
                if any(line == "READY=1" for line in msg.split("\n")):
                    break
        except socket.timeout:
            self.stop()
            raise SystemExit(f"{cmd[0]} sent no READY=1 within 10 s")
        self.ready_ms = (time.perf_counter() - t0) * 1000
        # Kept open (and unread) so STATUS= updates find a listener.
        self.notify, self.notify_path = notify, notify_path

    def cpu_ns(self):
        """CPU time the server has used so far, all threads, in ns: the
        first field of each thread's schedstat (time on a CPU, exact, not
        sampled at the clock tick like utime/stime)."""
        total = 0
        base = f"/proc/{self.proc.pid}/task"
        for tid in os.listdir(base):
            try:
                with open(f"{base}/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return total

    def hwm_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if hasattr(self, "notify"):
            self.notify.close()
            os.unlink(self.notify_path)


def bench(dgecho, addr, window, size, duration, cpu):
    cmd = [dgecho, "bench", addr, "--window", str(window), "--size", str(size),
           "--duration", str(duration), "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30,
                         preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs, {model}, Linux {os.uname().release}"


def unix_qlen():
    """How many datagrams a Unix socket queues (plus one), in this namespace."""
    try:
        with open("/proc/sys/net/unix/max_dgram_qlen") as f:
            return int(f.read())
    except OSError:
        return "unknown"


def paired(results, t, s, w, key):
    """dgecho against the better C loop (the lower median of `key`, a
    cost), round by round: the median and quartiles of the per-round
    ratios best/dgecho, so above 1 means dgecho costs less. Pairing within a round
    cancels what moves the whole machine between rounds; choosing the
    baseline once, by its median, avoids crediting it with whichever of
    the two had the luckier round."""
    by_round = {}
    for name in ("plain", "mmsg", "dgecho"):
        for x in results[(t, s, w, name)]:
            by_round.setdefault(x["round"], {})[name] = x[key]
    best = min(("plain", "mmsg"),
               key=lambda n: statistics.median(r[n] for r in by_round.values()))
    ratios = sorted(r[best] / r["dgecho"]
                    for r in by_round.values() if r.get("dgecho") and r.get(best))
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return best, statistics.median(ratios), q[0], q[-1]


def paired_table(configs, results, rounds):
    """Prints CPU per reply and the paired ratios; returns the worst paired
    figures: replies per CPU-second at window 256, p50 at window 1."""
    print(f"CPU per reply is each server's own CPU time (schedstat) over its replies. "
          f"Paired: dgecho against the better C loop by median, round by round "
          f"({rounds} rounds), median (quartiles) of the ratios.")
    print()
    print("| transport | size | window | CPU µs/reply plain | mmsg | dgecho "
          "| replies per CPU-second vs best (paired) | p50 ratio vs best (paired) |")
    print("|---|---|---|---|---|---|---|---|")
    worst = {"cpu": None, "p50": None}
    for (t, s, w) in configs:
        cpu = {n: statistics.median(x["cpu_us_per_reply"] for x in results[(t, s, w, n)])
               for n in ("plain", "mmsg", "dgecho")}
        cb, cm, c1, c3 = paired(results, t, s, w, "cpu_us_per_reply")
        # The ratio of p50s is dgecho's over the best's: invert the pairing.
        pb, pm, p1, p3 = paired(results, t, s, w, "rtt_p50_us")
        pm, p1, p3 = 1 / pm, 1 / p3, 1 / p1
        if w > 1:
            worst["cpu"] = cm if worst["cpu"] is None else min(worst["cpu"], cm)
        else:
            worst["p50"] = pm if worst["p50"] is None else max(worst["p50"], pm)
        print(f"| {t} | {s} | {w} | {cpu['plain']:.3f} | {cpu['mmsg']:.3f} "
              f"| {cpu['dgecho']:.3f} | {cm:.3f} ({c1:.3f} to {c3:.3f}) vs {cb} "
              f"| {pm:.3f} ({p1:.3f} to {p3:.3f}) vs {pb} |")
    return worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dgecho", required=True)
    ap.add_argument("--plain", required=True)
    ap.add_argument("--mmsg", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--share", type=float, default=0.30)
    ap.add_argument("--period-us", type=int, default=10000)
    ap.add_argument("--duration", type=float)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--serve-args", default="", help="extra arguments for dgecho serve")
    ap.add_argument("--raw", help="write every bench report (JSON lines) here")
    ap.add_argument("--cells", metavar="T:S:W,...",
                    help="run only these cells, e.g. unix:64:256 (transport:size:window)")
    ap.add_argument("--compare", metavar="PATH", action="append", default=[],
                    help="also run another dgecho build (e.g. an older commit) as 'other'; "
                         "repeat for more ('other2', ...)")
    a = ap.parse_args()
    duration = a.duration or (0.5 if a.quick else 2.0)
    rounds = a.rounds or (1 if a.quick else 5)
    ncpu = os.cpu_count()
    server_cpu, gen_cpu = (0, 1) if ncpu >= 2 else (0, 0)
    rcvbuf = receive_buffer()
    cgroup = Cgroup(a.share, a.period_us)
    tmp = tempfile.mkdtemp(prefix="dgecho-bench-")
    servers = {
        "plain": [a.plain],
        "mmsg": [a.mmsg],
        "dgecho": [a.dgecho, "serve", "-q"] + a.serve_args.split(),
    }
    # The same build with GSO off, on UDP cells: what GSO itself brings.
    servers["nogso"] = [a.dgecho, "serve", "-q", "--gso", "off"] + a.serve_args.split()
    others = {}
    for i, path in enumerate(a.compare):
        others[f"other{i + 1}" if i else "other"] = path
    for name, path in others.items():
        servers[name] = [path, "serve", "-q"] + a.serve_args.split()
    log(f"machine: {machine()}")
    log(f"server on CPU {server_cpu}, generator on CPU {gen_cpu}; quota: {cgroup.how}; "
        f"SO_RCVBUF(FORCE) {rcvbuf} (ReceiveBuffer= of systemd/dgecho.socket)")
    if cgroup.how == "none":
        log("WARNING: no CPU quota could be set; replies/s then measures the generator too")
    results = {}
    raw = open(a.raw, "w") if a.raw else None
    hwm = 0
    ready = {k: [] for k in servers}
    configs = [(t, s, w) for t in ("udp", "unix") for s in (64, 1400) for w in (1, 256)]
    if a.cells:
        want = {tuple(c.split(":")) for c in a.cells.split(",")}
        configs = [c for c in configs if tuple(map(str, c)) in want]
        if not configs:
            sys.exit(f"harness.py: error: --cells {a.cells} names no cell; "
                     "use transport:size:window, e.g. unix:64:256")
    try:
        n = 0
        for r in range(rounds):
            for (t, s, w) in configs:
                # Where a server runs within a round moves its figures by a
                # few points on a VM (what ran just before it warms or cools
                # the caches and the host's scheduling): every other round
                # runs them in reverse order, so that no server keeps one
                # position.
                order = list(servers.items())
                if r % 2:
                    order.reverse()
                for name, cmd in order:
                    if name == "nogso" and t != "udp":
                        continue
                    n += 1
                    group = cgroup if w > 1 else NoQuota()
                    srv = Server(cmd, t, tmp, rcvbuf, server_cpu, group, f"{name}{n}")
                    ready[name].append(srv.ready_ms)
                    try:
                        cpu0 = srv.cpu_ns()
                        rep = bench(a.dgecho, srv.addr, w, s, duration, gen_cpu)
                        cpu = srv.cpu_ns() - cpu0
                        rep["cpu_us_per_reply"] = cpu / 1000 / max(rep["replies"], 1)
                        if name == "dgecho":
                            hwm = max(hwm, srv.hwm_kib() or 0)
                    finally:
                        srv.stop()
                    rep.update(server=name, transport=t, round=r)
                    if raw:
                        raw.write(json.dumps(rep) + "\n")
                    results.setdefault((t, s, w, name), []).append(rep)
                    log(f"round {r + 1}/{rounds} {t:4} {s:5} B window {w:3} {name:6}: "
                        f"{rep['replies_per_s']:9.0f}/s p50 {rep['rtt_p50_us']:7.1f} us "
                        f"cpu/reply {rep['cpu_us_per_reply']:6.3f} us "
                        f"lost {rep['lost']} mismatched {rep['mismatched']}")
    finally:
        cgroup.remove()
        # The servers' Unix sockets: nothing of a run stays in /tmp.
        shutil.rmtree(tmp, ignore_errors=True)
        if raw:
            raw.close()

    def fmt(x):
        return "not run" if x is None else f"{x:.3f}"

    def med(t, s, w, name, key):
        return statistics.median(x[key] for x in results[(t, s, w, name)])

    def total(t, s, w, name, key):
        return sum(x[key] for x in results[(t, s, w, name)])

    print(f"Machine: {machine()}")
    print(f"Server CPU share at window 256: {cgroup.how}; at window 1 a whole core, "
          f"so that ping-pong latency is not throttled (server on CPU {server_cpu}, generator "
          f"`dgecho bench` on CPU {gen_cpu}); {rounds} round(s) of {duration} s per cell, "
          f"medians shown; SO_RCVBUF {rcvbuf} bytes as in dgecho.socket; "
          f"net.unix.max_dgram_qlen {unix_qlen()}.")
    print()
    print("| transport | size | window | plain /s | mmsg /s | dgecho /s | efficiency "
          "| no GSO /s | GSO gain "
          "| p50 plain µs | p50 mmsg µs | p50 dgecho µs | p50 ratio | lost (p/m/d) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    worst_eff, worst_p50, worst_udp = None, None, None
    loss256 = 0
    for (t, s, w) in configs:
        names = [k for k in servers if (t, s, w, k) in results]
        rate = {k: med(t, s, w, k, "replies_per_s") for k in names}
        p50 = {k: med(t, s, w, k, "rtt_p50_us") for k in names}
        lost = {k: total(t, s, w, k, "lost") for k in names}
        best = max(rate["plain"], rate["mmsg"])
        eff = rate["dgecho"] / best if best else float("nan")
        fast = min(p50["plain"], p50["mmsg"])
        ratio = p50["dgecho"] / fast if fast else float("nan")
        if w == 256:
            worst_eff = eff if worst_eff is None else min(worst_eff, eff)
            loss256 += lost["dgecho"]
            if t == "udp":
                worst_udp = eff if worst_udp is None else min(worst_udp, eff)
        else:
            worst_p50 = ratio if worst_p50 is None else max(worst_p50, ratio)
        if "nogso" in rate:
            nogso = f"{rate['nogso']:.0f} | {rate['dgecho'] / rate['nogso']:.2f}"
        else:
            nogso = "- | -"
        print(f"| {t} | {s} | {w} | {rate['plain']:.0f} | {rate['mmsg']:.0f} | "
              f"{rate['dgecho']:.0f} | {eff:.3f} | {nogso} | {p50['plain']:.1f} | "
              f"{p50['mmsg']:.1f} | {p50['dgecho']:.1f} | {ratio:.3f} | "
              f"{lost['plain']}/{lost['mmsg']}/{lost['dgecho']} |")
    print()
    paired = paired_table(configs, results, rounds)
    print()
    startup = statistics.median(ready["dgecho"])
    startup_plain = statistics.median(ready["plain"])
    print("| figure | target | measured |")
    print("|---|---|---|")
    print(f"| replies/s at the fixed share, window 256, worst cell (vs better baseline) "
          f"| >= 0.97 | {fmt(worst_eff)} |")
    print(f"| replies per CPU-second, window 256, worst cell (paired per round) "
          f"| >= 0.97 | {fmt(paired['cpu'])} |")
    print(f"| ping-pong RTT p50, worst cell (paired per round) | <= 1.05 "
          f"| {fmt(paired['p50'])} |")
    print(f"| UDP replies/s with GSO, window 256, worst cell (vs better baseline) "
          f"| >= 1.3 | {fmt(worst_udp)} |")
    print(f"| ping-pong RTT p50, worst cell (vs better baseline) | <= 1.05 | {fmt(worst_p50)} |")
    print(f"| peak RSS of dgecho serve (VmHWM) | < 4 MiB | {hwm} KiB |")
    print(f"| start-up to READY=1 (median of {len(ready['dgecho'])}, incl. fork+exec) "
          f"| reported | {startup:.1f} ms (C baseline {startup_plain:.1f} ms) |")
    print(f"| datagrams lost by dgecho at window 256 (all cells) | 0 | {loss256} |")
    for other, path in others.items():
        print()
        print(f"Side by side with {path} (\"old\", run as {other}), medians; CPU per "
              "reply is the server's own CPU time (schedstat) over its replies:")
        print()
        print("| transport | size | window | old /s | new /s | new/old | old p50 µs "
              "| new p50 µs | new/old p50 | old CPU µs/reply | new CPU µs/reply | old/new CPU |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for (t, s, w) in configs:
            o, n = med(t, s, w, other, "replies_per_s"), med(t, s, w, "dgecho", "replies_per_s")
            op, np_ = med(t, s, w, other, "rtt_p50_us"), med(t, s, w, "dgecho", "rtt_p50_us")
            oc, nc = (med(t, s, w, other, "cpu_us_per_reply"),
                      med(t, s, w, "dgecho", "cpu_us_per_reply"))
            print(f"| {t} | {s} | {w} | {o:.0f} | {n:.0f} | {n / o:.2f} | {op:.1f} "
                  f"| {np_:.1f} | {np_ / op:.2f} | {oc:.3f} | {nc:.3f} | {oc / nc:.3f} |")


if __name__ == "__main__":
    main()
