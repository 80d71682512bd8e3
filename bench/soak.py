#!/usr/bin/env python3
"""Endurance soak for dgecho: memory, fds and counters under full load.

Starts one `dgecho serve` on a UDP port and an abstract Unix socket, with a
NOTIFY_SOCKET this script owns, and loads both at full speed with
`dgecho bench` for the whole duration: UDP and Unix with 64-byte datagrams
and a window of 64, plus UDP with 65,507-byte datagrams (the largest) and a
window of 4. Every few seconds it samples the daemon's VmRSS
(/proc/PID/status), its open fds (/proc/PID/fd) and its STATUS= line.
At the end it sends SIGTERM in the middle of the load and checks:

- RSS after warm-up stays within 5% ((max - min) / min <= 0.05);
- the fd count never changes;
- STOPPING=1 arrives and the daemon exits 0 within one second;
- the final log line adds up: received = answered + dropped, and dropped is
  the sum of its causes; the daemon answered at least what bench counted.

Usage: bench/soak.py [--duration SECONDS] [--quick] [--bin PATH]
       [--json FILE]
  --duration  default 600; --quick is 20 seconds.
  --bin       default target/release/dgecho (built if missing).
Exit status 0 when every check holds, 1 otherwise. Traffic stays on
127.0.0.1 and an abstract Unix socket.
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Notify:
    """The NOTIFY_SOCKET the daemon reports to (abstract, owned here)."""

    def __init__(self):
        self.name = f"dgecho-soak-notify-{os.getpid()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.messages = []
        self.status = None

    def drain(self, timeout=0.0):
        """Reads what has arrived; waits up to `timeout` for the first."""
        self.sock.settimeout(timeout if timeout > 0 else None)
        if timeout <= 0:
            self.sock.setblocking(False)
        got = []
        while True:
            try:
                m = self.sock.recv(4096).decode(errors="replace")
            except (BlockingIOError, socket.timeout):
                break
            got.append(m)
            self.messages.append(m)
            for line in m.splitlines():
                if line.startswith("STATUS="):
                    self.status = line[len("STATUS="):]
            self.sock.setblocking(False)
        return got

    def wait_for(self, needle, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in m for m in self.messages):
                return True
            self.drain(timeout=max(0.01, deadline - time.monotonic()))
        return any(needle in m for m in self.messages)


def parse_final(log):
    m = re.search(r"stopping \(received SIGTERM\): (.*)", log)
    if not m:
        return None
    line = m.group(1).strip()
    nums = {k: int(v) for k, v in re.findall(r"([a-z][a-z ]*?) (\d+)", line)}
    causes = {}
    paren = re.search(r"\((.*)\)", line)
    if paren:
        for part in paren.group(1).split(", "):
            k, v = part.rsplit(" ", 1)
            causes[k] = int(v)
    return {
        "line": line,
        "received": nums.get("received"),
        "answered": nums.get("answered"),
        "dropped": nums.get("dropped"),
        "causes": causes,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--quick", action="store_true", help="20 seconds")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/dgecho"))
    ap.add_argument("--interval", type=float, default=None, help="seconds between samples")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    duration = 20.0 if args.quick else args.duration
    interval = args.interval or (1.0 if duration <= 60 else 5.0)
    warmup = max(5.0, duration * 0.1)

    if not os.path.exists(args.bin):
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)

    port = free_udp_port()
    udp = f"udp:127.0.0.1:{port}"
    unix = f"unix:@dgecho-soak-{os.getpid()}"
    notify = Notify()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LISTEN_") and k not in ("RUST_LOG", "JOURNAL_STREAM")}
    env["NOTIFY_SOCKET"] = "@" + notify.name
    log = tempfile.TemporaryFile(mode="w+")
    daemon = subprocess.Popen([args.bin, "serve", "--listen", udp, "--listen", unix],
                              stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    failures = []
    benches = []
    bench_reports = []
    samples = []
    try:
        if not notify.wait_for("READY=1", 10):
            log.seek(0)
            sys.exit(f"soak: dgecho did not send READY=1 within 10 s:\n{log.read()}")
        pid = daemon.pid
        print(f"soak: dgecho pid {pid} on {udp} and {unix}; {duration:.0f} s of load, "
              f"sampling every {interval:.0f} s, warm-up {warmup:.0f} s", flush=True)

        loads = [
            (udp, "64", "64"),
            (unix, "64", "64"),
            (udp, "65507", "4"),
        ]

        def start_load(seconds):
            out = []
            for target, size, window in loads:
                p = subprocess.Popen(
                    [args.bin, "bench", target, "--size", size, "--window", window,
                     "--duration", str(seconds), "--json", "-q"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True)
                out.append(((target, size, window), p))
            return out

        benches = start_load(duration)

        start = time.monotonic()
        while True:
            t = time.monotonic() - start
            notify.drain()
            if daemon.poll() is not None:
                failures.append(f"dgecho exited early with {daemon.returncode}")
                break
            samples.append({"t": round(t, 1), "rss_kib": rss_kib(pid), "fds": fd_count(pid),
                            "status": notify.status})
            if t >= duration:
                break
            time.sleep(min(interval, max(0.0, duration - t)))
        for s in samples[:: max(1, len(samples) // 12)] + samples[-1:]:
            print(f"  t={s['t']:7.1f}s  rss={s['rss_kib']:7d} KiB  fds={s['fds']:3d}  "
                  f"{s['status']}", flush=True)

        # The soak's load ends on its own, with its figures ...
        for spec, p in benches:
            try:
                out, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            rep = None
            for line in out.splitlines():
                if line.startswith("{"):
                    rep = json.loads(line)
            bench_reports.append({"load": spec, "report": rep, "exit": p.returncode,
                                  "stderr": err.strip()[-300:]})
            if rep is None or p.returncode != 0:
                failures.append(f"bench {spec} failed: {err.strip()[-300:]}")
        benches = []
        # ... then a fresh flood, and SIGTERM in the middle of it (those
        # benches then fail: their target is gone).
        flood = start_load(30)
        benches = flood
        before = notify.status
        notify.wait_for("\0never", 1.0)
        if notify.status == before:
            failures.append("the final flood did not reach the daemon within 1 s")
        stop_at = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        stopping = notify.wait_for("STOPPING=1", 1.0)
        try:
            code = daemon.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - stop_at
        if not stopping:
            failures.append("no STOPPING=1 within 1 s of SIGTERM")
        if code != 0:
            failures.append(f"exit status {code}, expected 0")
        if took > 1.0:
            failures.append(f"exit took {took:.2f} s after SIGTERM, more than 1 s")
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        for _, p in benches:
            try:
                p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()

    log.seek(0)
    text = log.read()
    final = parse_final(text)

    post = [s for s in samples if s["t"] >= warmup]
    rss_min = min(s["rss_kib"] for s in post) if post else None
    rss_max = max(s["rss_kib"] for s in post) if post else None
    fds = sorted({s["fds"] for s in samples})
    if not post:
        failures.append("no samples after warm-up")
    elif (rss_max - rss_min) / rss_min > 0.05:
        failures.append(f"RSS not flat after warm-up: {rss_min}..{rss_max} KiB")
    if len(fds) != 1:
        failures.append(f"fd count changed: {fds}")
    if final is None:
        failures.append("no final 'stopping (received SIGTERM)' log line")
    else:
        if final["received"] != final["answered"] + final["dropped"]:
            failures.append(f"counters do not add up: {final['line']}")
        if final["causes"] and sum(final["causes"].values()) != final["dropped"]:
            failures.append(f"drop causes do not sum to dropped: {final['line']}")
    replies = sum((b["report"] or {}).get("replies", 0) for b in bench_reports)
    if final and final["answered"] is not None and final["answered"] < replies:
        failures.append(f"bench counted {replies} replies but dgecho answered {final['answered']}")

    figures = {
        "duration_s": duration,
        "warmup_s": warmup,
        "samples": len(samples),
        "rss_kib_first": samples[0]["rss_kib"] if samples else None,
        "rss_kib_after_warmup_min": rss_min,
        "rss_kib_after_warmup_max": rss_max,
        "rss_kib_last": samples[-1]["rss_kib"] if samples else None,
        "fd_counts_seen": fds,
        "final": final,
        "bench": bench_reports,
        "failures": failures,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures | {"series": samples}, f, indent=1)
    print(f"soak: RSS {figures['rss_kib_first']} KiB at start, {rss_min}..{rss_max} KiB after "
          f"warm-up, {figures['rss_kib_last']} KiB at the end; fds {fds}")
    for b in bench_reports:
        r = b["report"] or {}
        print(f"soak: bench {b['load'][0]} size {b['load'][1]} window {b['load'][2]}: "
              f"sent {r.get('sent')}, replies {r.get('replies')}, lost {r.get('lost')}, "
              f"mismatched {r.get('mismatched')}, {r.get('replies_per_s')} replies/s")
    print(f"soak: final: {final['line'] if final else None}")
    if failures:
        for f in failures:
            print(f"soak: FAIL: {f}")
        return 1
    print("soak: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
