//! `dgecho bench` against an in-process `dgecho::echo::Server` (or a
//! small echo thread of the test's own where the test needs to see the
//! sources or to make the server stall): every reply verified, nothing
//! lost, a wrong `--reply` expectation reported as mismatches, remote
//! targets refused; the open loop's schedule, its latency measured from
//! each request's due time, the `.hgrm` file, `--flows` and the interval
//! lines. No assertion depends on speed.

use std::collections::HashSet;
use std::net::UdpSocket;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::thread::JoinHandle;
use std::time::Duration;

use dgecho::addr::Addr;
use dgecho::bench::{Options, measure};
use dgecho::echo::ReplyMode;
use dgecho::echo::{self as server, Server};
use dgecho::listener::Listener;

use crate::util;

fn udp_server(reply: ReplyMode) -> (Server, Addr) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let opts = server::Options {
        reply,
        ..server::Options::default()
    };
    let server = Server::start(vec![Listener::from_udp(sock, "bench").unwrap()], &opts).unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    (server, addr)
}

fn options(target: Addr, window: usize, size: usize, reply: ReplyMode) -> Options {
    Options {
        target,
        window,
        size,
        duration: Duration::from_millis(300),
        reply,
        allow_remote: false,
        json: false,
        rate: None,
        flows: 1,
        interval: None,
        hgrm: None,
    }
}

#[test]
fn udp_window_every_reply_verified() {
    let (server, addr) = udp_server(ReplyMode::Reverse);
    let r = measure(&options(addr, 32, 100, ReplyMode::Reverse)).unwrap();
    let stats = server.stop().0;
    assert!(r.sent > 0, "{r:?}");
    assert_eq!(r.replies, r.sent, "every request answered: {r:?}");
    assert_eq!((r.lost, r.late, r.mismatched), (0, 0, 0), "{r:?}");
    assert!(r.rtt_p50_us > 0.0 && r.rtt_p50_us <= r.rtt_p99_us, "{r:?}");
    assert!(r.rtt_p99_us <= r.rtt_p999_us && r.rtt_p999_us <= r.rtt_max_us);
    // The warm-up exchange plus every measured request reached the server.
    assert_eq!(stats.answered, r.sent + 1);
}

#[test]
fn unix_ping_pong_echo_mode() {
    let name = util::unique("dgecho-bench");
    let sa = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&sa).unwrap();
    let opts = server::Options {
        reply: ReplyMode::Echo,
        ..server::Options::default()
    };
    let server = Server::start(vec![Listener::from_unix(sock, "bench")], &opts).unwrap();
    let target = format!("unix:@{name}").parse().unwrap();
    let r = measure(&options(target, 1, 8, ReplyMode::Echo)).unwrap();
    server.stop().1.unwrap();
    assert!(r.replies > 0);
    assert_eq!(r.replies, r.sent);
    assert_eq!((r.lost, r.late, r.mismatched), (0, 0, 0), "{r:?}");
}

#[test]
fn wrong_reply_mode_is_mismatched() {
    let (server, addr) = udp_server(ReplyMode::Echo);
    let r = measure(&options(addr, 8, 64, ReplyMode::Reverse)).unwrap();
    server.stop().1.unwrap();
    assert_eq!(r.replies, 0, "{r:?}");
    assert!(r.mismatched > r.sent / 2, "{r:?}");
    // The warm-up datagram is not counted as sent, so not as mismatched.
    assert!(r.mismatched <= r.sent, "more mismatched than sent: {r:?}");
    assert_eq!(r.lost, 0, "a wrong reply still ends the wait: {r:?}");
}

#[test]
fn binary_prints_json_and_fails_on_mismatch() {
    let (server, addr) = udp_server(ReplyMode::Reverse);
    let a = addr.to_string();
    let (code, out, err) = util::run(&["bench", &a, "-d", "0.2", "-w", "4", "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.is_empty(),
        "no progress line without a terminal: {err:?}"
    );
    let line = out.trim();
    assert!(line.starts_with('{') && line.ends_with('}') && !line.contains('\n'));
    for field in [
        "\"target\":",
        "\"replies_per_s\":",
        "\"lost\":0,",
        "\"late\":0,",
        "\"mismatched\":0,",
        "\"rtt_p50_us\":",
        "\"rtt_p99_us\":",
        "\"rtt_p999_us\":",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    let (code, out, err) = util::run(&["bench", &a, "-d", "0.2", "--reply", "echo"], &[]);
    server.stop().1.unwrap();
    assert_eq!(code, 1);
    assert!(
        out.contains("mismatched"),
        "the report is still printed: {out}"
    );
    assert!(out.contains("RTT: no replies verified"), "{out}");
    assert!(
        !out.contains("p50"),
        "no RTT without a verified reply: {out}"
    );
    assert!(
        err.contains("did not match what --reply echo expects"),
        "{err}"
    );
}

#[test]
fn remote_target_needs_allow_remote() {
    let (code, _, err) = util::run(&["bench", "192.0.2.1:7", "-d", "0.1"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("dgecho: error: refusing to load udp:192.0.2.1:7"),
        "{err}"
    );
    assert!(err.contains("--allow-remote"), "{err}");
}

/// The body of the test's own echo threads (reversing, as dgecho does):
/// it can stall once, for `stall`, before answering the first measured
/// request (the warm-up exchanges, whose sequence number is 0, are
/// answered at once), and it stops on a 1-byte datagram. Every wait is
/// bounded by the socket's read timeout.
fn echo_loop<A>(
    stall: Duration,
    mut recv: impl FnMut(&mut [u8]) -> std::io::Result<(usize, A)>,
    mut send: impl FnMut(&[u8], &A),
) {
    let mut stalled = stall.is_zero();
    let mut buf = vec![0u8; 65536];
    while let Ok((n, from)) = recv(&mut buf) {
        if n == 1 {
            break;
        }
        if !stalled && buf[..8] != [0u8; 8] {
            // The server's own slowness, not a synchronisation: every
            // request sent meanwhile waits in the socket, or in its sender.
            std::thread::sleep(stall);
            stalled = true;
        }
        buf[..n].reverse();
        send(&buf[..n], &from);
    }
}

/// A UDP echo thread of the test's own, which records every source
/// address; stopped by a datagram from the returned socket.
fn own_udp_echo(stall: Duration) -> (Addr, UdpSocket, JoinHandle<HashSet<std::net::SocketAddr>>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let mut sources = HashSet::new();
        echo_loop(
            stall,
            |buf| sock.recv_from(buf),
            |data, from| {
                sources.insert(*from);
                let _ = sock.send_to(data, from);
            },
        );
        sources
    });
    let stopper = UdpSocket::bind("127.0.0.1:0").unwrap();
    stopper.connect(addr).unwrap();
    let target = format!("127.0.0.1:{}", addr.port()).parse().unwrap();
    (target, stopper, thread)
}

/// The same on an abstract Unix socket, where a stalled server soon
/// blocks its senders: a Unix datagram socket queues only
/// `net.unix.max_dgram_qlen` datagrams (10 by default) for its reader.
fn own_unix_echo(stall: Duration) -> (Addr, UnixDatagram, JoinHandle<()>) {
    let name = util::unique("dgecho-bench-own");
    let sa = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&sa).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let thread = std::thread::spawn(move || {
        echo_loop(
            stall,
            |buf| sock.recv_from(buf),
            |data, from| {
                let _ = sock.send_to_addr(data, from);
            },
        );
    });
    let stopper = UnixDatagram::unbound().unwrap();
    stopper.connect_addr(&sa).unwrap();
    (format!("unix:@{name}").parse().unwrap(), stopper, thread)
}

/// The rows of an `.hgrm` file: (value, percentile, total count), after
/// checking its header and footer; and the footer's total count.
fn parse_hgrm(text: &str) -> (Vec<(f64, f64, u64)>, u64) {
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("     Value     Percentile TotalCount 1/(1-Percentile)"),
        "{text}"
    );
    assert_eq!(lines.next(), Some(""), "{text}");
    let mut rows = Vec::new();
    let mut footer = Vec::new();
    for line in lines {
        if line.starts_with("#[") {
            footer.push(line);
            continue;
        }
        assert!(footer.is_empty(), "a row after the footer: {text}");
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(f.len() == 4 || f.len() == 3, "{line}");
        rows.push((
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
        ));
    }
    assert_eq!(footer.len(), 3, "{text}");
    assert!(footer[0].starts_with("#[Mean    = ") && footer[0].contains(", StdDeviation   = "));
    assert!(footer[1].starts_with("#[Max     = ") && footer[1].contains(", Total count    = "));
    assert!(footer[2].starts_with("#[Buckets = ") && footer[2].contains(", SubBuckets     = "));
    let total = footer[1]
        .rsplit('=')
        .next()
        .unwrap()
        .trim_end_matches(']')
        .trim()
        .parse()
        .unwrap();
    (rows, total)
}

/// How many samples of a `.hgrm` distribution lie above `us`.
fn above(rows: &[(f64, f64, u64)], total: u64, us: f64) -> u64 {
    let below = rows
        .iter()
        .filter(|r| r.0 < us)
        .map(|r| r.2)
        .max()
        .unwrap_or(0);
    total - below
}

#[test]
fn open_loop_sends_rate_times_duration() {
    let (server, addr) = udp_server(ReplyMode::Reverse);
    let opts = Options {
        rate: Some(2000.0),
        duration: Duration::from_millis(400),
        ..options(addr, 1, 64, ReplyMode::Reverse)
    };
    let r = measure(&opts).unwrap();
    let stats = server.stop().0;
    // 2000/s for 0.4 s: exactly the 800 requests due before the end, each
    // answered, however the sender's timing went.
    assert_eq!(r.sent, 800, "{r:?}");
    assert_eq!(r.replies, r.sent, "{r:?}");
    assert_eq!((r.lost, r.late, r.mismatched), (0, 0, 0), "{r:?}");
    assert_eq!(stats.answered, r.sent + 1, "plus the warm-up");
    assert_eq!(r.rate, Some(2000.0));
    assert!(
        r.max_send_lag_us.is_some() && r.sent_behind.is_some(),
        "{r:?}"
    );
    assert!(r.seconds >= 0.399, "the schedule spans the duration: {r:?}");
}

#[test]
fn open_loop_measures_from_due_time_closed_loop_does_not() {
    // The server stalls once for 300 ms. Open loop at 500/s: the ~150
    // requests due meanwhile (few enough for the server's default receive
    // buffer) still leave on schedule, wait in the socket, and each is
    // measured from its due time, so about half of them (those due in the
    // stall's first half) took over 150 ms. Closed loop, window
    // 1: the sender waits for the one stalled reply and sends nothing
    // meanwhile, so exactly one sample shows the stall ("coordinated
    // omission"), however fast the rest went.
    let stall = Duration::from_millis(300);
    let dir = util::TempDir::new();
    let mut slow = Vec::new();
    for rate in [Some(500.0), None] {
        let (addr, stopper, thread) = own_udp_echo(stall);
        let hgrm = dir.0.join("rtt.hgrm");
        let opts = Options {
            rate,
            duration: Duration::from_millis(600),
            hgrm: Some(hgrm.clone()),
            ..options(addr, 1, 64, ReplyMode::Reverse)
        };
        let r = measure(&opts).unwrap();
        stopper.send(b"x").unwrap();
        thread.join().unwrap();
        assert_eq!(r.replies, r.sent, "{r:?}");
        assert!(r.rtt_max_us >= stall.as_micros() as f64, "{r:?}");
        let (rows, total) = parse_hgrm(&std::fs::read_to_string(&hgrm).unwrap());
        assert_eq!(total, r.replies);
        slow.push(above(&rows, total, 150_000.0));
    }
    assert!(
        slow[0] >= 50,
        "open loop: the requests due during the stall show it: {slow:?}"
    );
    assert_eq!(slow[1], 1, "closed loop: only the one in flight: {slow:?}");
}

#[test]
fn open_loop_sends_late_requests_and_measures_them_from_due_time() {
    // A Unix server that stalls for 300 ms: after about ten queued
    // requests the sender's socket takes no more, so the requests due
    // meanwhile cannot leave on time. They still leave, all of them, as
    // soon as the server reads again, and each is measured from when it
    // was due: the report shows the generator fell behind, and the RTTs
    // include the delay.
    let stall = Duration::from_millis(300);
    let (target, stopper, thread) = own_unix_echo(stall);
    let dir = util::TempDir::new();
    let hgrm = dir.0.join("late.hgrm");
    let opts = Options {
        rate: Some(500.0),
        duration: Duration::from_millis(600),
        hgrm: Some(hgrm.clone()),
        ..options(target, 1, 64, ReplyMode::Reverse)
    };
    let r = measure(&opts).unwrap();
    stopper.send(b"x").unwrap();
    thread.join().unwrap();
    assert_eq!(r.sent, 300, "every scheduled request was sent: {r:?}");
    assert_eq!(r.replies, r.sent, "{r:?}");
    let behind = r.sent_behind.unwrap();
    assert!(
        behind >= 50,
        "most requests due in the stall left late: {r:?}"
    );
    let lag = r.max_send_lag_us.unwrap();
    assert!(lag >= 100_000.0, "the sender fell far behind: {r:?}");
    let (rows, total) = parse_hgrm(&std::fs::read_to_string(&hgrm).unwrap());
    assert!(
        above(&rows, total, 150_000.0) >= 50,
        "measured from the due time, not the late send: {r:?}"
    );
}

#[test]
fn hgrm_file_is_a_percentile_distribution() {
    let (server, addr) = udp_server(ReplyMode::Reverse);
    let dir = util::TempDir::new();
    let hgrm = dir.0.join("bench.hgrm");
    let opts = Options {
        hgrm: Some(hgrm.clone()),
        ..options(addr, 8, 64, ReplyMode::Reverse)
    };
    let r = measure(&opts).unwrap();
    server.stop().1.unwrap();
    let text = std::fs::read_to_string(&hgrm).unwrap();
    let (rows, total) = parse_hgrm(&text);
    assert_eq!(total, r.replies, "{text}");
    assert!(rows.len() > 10, "{text}");
    assert_eq!(rows[0].1, 0.0, "{text}");
    for w in rows.windows(2) {
        assert!(w[0].0 <= w[1].0, "values never decrease: {text}");
        assert!(w[0].1 < w[1].1, "percentiles increase: {text}");
        assert!(w[0].2 <= w[1].2, "counts never decrease: {text}");
    }
    let last = rows.last().unwrap();
    assert_eq!((last.1, last.2), (1.0, r.replies), "{text}");
    // The file is in microseconds, as the report.
    assert!((last.0 - r.rtt_max_us).abs() < 0.01, "{last:?} vs {r:?}");
    let p50 = rows.iter().find(|row| row.1 >= 0.5).unwrap().0;
    assert!(
        (p50 - r.rtt_p50_us).abs() <= r.rtt_p50_us * 0.02 + 0.01,
        "{p50} vs {r:?}"
    );
}

#[test]
fn flows_send_from_distinct_udp_ports() {
    let (addr, stopper, thread) = own_udp_echo(Duration::ZERO);
    let opts = Options {
        flows: 4,
        ..options(addr, 2, 64, ReplyMode::Reverse)
    };
    let r = measure(&opts).unwrap();
    stopper.send(b"x").unwrap();
    let sources = thread.join().unwrap();
    assert_eq!(sources.len(), 4, "the server saw 4 peers: {sources:?}");
    let locals: HashSet<std::net::SocketAddr> =
        r.flows.iter().map(|f| f.local.parse().unwrap()).collect();
    assert_eq!(locals, sources, "the report names them: {r:?}");
    for f in &r.flows {
        assert!(f.sent > 0 && f.replies == f.sent, "{f:?}");
    }
    assert_eq!(r.sent, r.flows.iter().map(|f| f.sent).sum::<u64>());
    assert_eq!(r.replies, r.sent, "{r:?}");
}

#[test]
fn unix_flows_each_get_their_own_replies() {
    let name = util::unique("dgecho-bench-flows");
    let sa = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&sa).unwrap();
    let server = Server::start(
        vec![Listener::from_unix(sock, "bench")],
        &server::Options::default(),
    )
    .unwrap();
    let target = format!("unix:@{name}").parse().unwrap();
    // Closed loop, window 2: a Unix socket queues only a few datagrams for
    // its reader, and a larger burst of replies could be refused while the
    // generator is not scheduled.
    let opts = Options {
        flows: 3,
        ..options(target, 2, 32, ReplyMode::Reverse)
    };
    let r = measure(&opts).unwrap();
    let stats = server.stop().0;
    let locals: HashSet<&str> = r.flows.iter().map(|f| f.local.as_str()).collect();
    assert_eq!(locals.len(), 3, "three autobound names: {r:?}");
    // Each flow's replies came to its own socket: every request answered.
    for f in &r.flows {
        assert!(f.sent > 0 && f.replies == f.sent, "{f:?}");
    }
    assert_eq!(stats.answered, r.sent + 3, "plus a warm-up per flow");
}

#[test]
fn intervals_cover_the_sending_phase() {
    let (server, addr) = udp_server(ReplyMode::Reverse);
    let opts = Options {
        interval: Some(Duration::from_millis(100)),
        rate: Some(1000.0),
        duration: Duration::from_millis(450),
        ..options(addr, 1, 64, ReplyMode::Reverse)
    };
    let mut out = Vec::new();
    let r = dgecho::bench::measure_to(&opts, &mut out).unwrap();
    server.stop().1.unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), r.intervals.len(), "{text}");
    assert!(r.intervals.len() >= 4, "{text}");
    assert_eq!(r.intervals[0].start_s, 0.0);
    for w in r.intervals.windows(2) {
        assert_eq!(w[0].end_s, w[1].start_s, "{text}");
    }
    for line in &lines {
        assert!(
            line.starts_with('[') && line.contains(" replies/s, sent "),
            "{line}"
        );
        assert!(line.contains("send lag max"), "open loop: {line}");
    }
    // Replies after the sending phase count only in the totals.
    assert!(r.intervals.iter().map(|i| i.replies).sum::<u64>() <= r.replies);
    // Every request was sent in one interval or another.
    assert_eq!(
        r.intervals.iter().map(|i| i.sent).sum::<u64>(),
        r.sent,
        "{text}"
    );
    assert_eq!(r.sent, 450);
}

#[test]
fn binary_prints_interval_json_lines_and_hgrm() {
    let (server, addr) = udp_server(ReplyMode::Reverse);
    let dir = util::TempDir::new();
    let hgrm = dir.0.join("out.hgrm");
    let a = addr.to_string();
    let h = hgrm.to_str().unwrap();
    let args = [
        "bench", &a, "-d", "0.35", "-r", "500/s", "-f", "2", "-i", "100ms", "--json", "--hgrm", h,
    ];
    let (code, out, err) = util::run(&args, &[]);
    server.stop().1.unwrap();
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 4, "{out}");
    let (last, intervals) = lines.split_last().unwrap();
    for l in intervals {
        assert!(
            l.starts_with("{\"type\":\"interval\",") && l.ends_with('}'),
            "{l}"
        );
        assert!(
            l.contains("\"rtt_p99_us\":") && l.contains("\"max_send_lag_us\":"),
            "{l}"
        );
    }
    assert!(last.starts_with("{\"type\":\"summary\","), "{last}");
    assert!(
        last.contains("\"sent\":175,") && last.contains("\"rate\":500.0,"),
        "{last}"
    );
    assert_eq!(
        last.matches("\"local\":").count(),
        2,
        "one entry per flow: {last}"
    );
    let (_, total) = parse_hgrm(&std::fs::read_to_string(&hgrm).unwrap());
    assert!(last.contains(&format!("\"replies\":{total},")), "{last}");
}

#[test]
fn bad_bench_options_are_refused() {
    let (code, _, err) = util::run(&["bench", "127.0.0.1:9", "--rate", "0"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("'0' is not a rate") && err.contains("10000/s"),
        "{err}"
    );
    let (code, _, err) = util::run(&["bench", "127.0.0.1:9", "-r", "100", "-w", "4"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--window"), "{err}");
    let (code, _, err) = util::run(&["bench", "127.0.0.1:9", "--flows", "0"], &[]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = util::run(
        &["bench", "127.0.0.1:9", "--hgrm", "/nonexistent-dir/x.hgrm"],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("dgecho: error: cannot create the --hgrm file /nonexistent-dir/x.hgrm"),
        "{err}"
    );
}
