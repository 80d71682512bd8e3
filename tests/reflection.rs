//! Loops and reflection: the per-source rate limit as `STATUS=` shows it,
//! and two dgecho instances that a forged datagram tries to set bouncing
//! off each other, on loopback only.
//!
//! Forging a source address needs a raw socket (root or CAP_NET_RAW):
//! without one those tests say so and pass, except under CI (`CI=true`),
//! where they fail.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, bind, sendto, socket,
};

use crate::netns::cannot_run;
use dgecho::echo::Reason;

use crate::util::{Daemon, counted, udp};

/// (received, answered, loop guard, rate limited).
type Counters = (u64, u64, u64, u64);

/// The final log line's counters, after SIGTERM.
fn final_counters(d: &mut Daemon) -> Counters {
    d.signal(Signal::SIGTERM);
    let (status, _) = d.wait_exit();
    assert!(status.success(), "{status}: {}", d.stderr());
    let s = d.final_stats("SIGTERM");
    (
        s.received,
        s.answered,
        s[Reason::LoopGuard],
        s[Reason::RateLimited],
    )
}

#[test]
fn rate_limit_answers_the_burst_then_drops_and_counts() {
    let sock = udp("127.0.0.1:0");
    let addr = sock.local_addr().unwrap();
    let mut d = Daemon::builder()
        .socket(sock, "udp")
        .arg("--rate-limit")
        .arg("0.01/s")
        .arg("--burst")
        .arg("3")
        .spawn()
        .wait_ready();
    let c = udp("127.0.0.1:0");
    for i in 0..8u8 {
        c.send_to(&[i], addr).unwrap();
    }
    let mut buf = [0u8; 4];
    for i in 0..3u8 {
        assert_eq!(c.recv(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], i);
    }
    let s = d.wait_stats(|s| s.received == 8);
    assert_eq!(s, counted(8, 3).with(Reason::RateLimited, 5));
    // Another source has a bucket of its own.
    let other = udp("127.0.0.2:0");
    other.send_to(b"hi", addr).unwrap();
    assert_eq!(other.recv(&mut buf).unwrap(), 2);
    assert_eq!(final_counters(&mut d), (9, 4, 0, 5));
    assert!(
        d.stderr()
            .contains("over the --rate-limit of 0.01/s, burst 3"),
        "the first drop is reported:\n{}",
        d.stderr()
    );
}

/// A raw UDP socket with source address `from`: the kernel writes the IP
/// header, the test writes the UDP header with any source port.
fn raw_udp(from: Ipv4Addr) -> Result<OwnedFd, String> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Udp,
    )
    .map_err(|e| format!("cannot open a raw socket (needs root or CAP_NET_RAW): {e}"))?;
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(from, 0)),
    )
    .map_err(|e| format!("cannot bind the raw socket to {from}: {e}"))?;
    Ok(fd)
}

/// Sends one datagram that appears to come from `from` (address and
/// port) to `to`.
fn forge(raw: &OwnedFd, from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) {
    let mut pkt = Vec::with_capacity(8 + payload.len());
    pkt.extend_from_slice(&from.port().to_be_bytes());
    pkt.extend_from_slice(&to.port().to_be_bytes());
    pkt.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    // A zero checksum means "none" in UDP over IPv4.
    pkt.extend_from_slice(&[0, 0]);
    pkt.extend_from_slice(payload);
    let dst = SockaddrIn::from(SocketAddrV4::new(*to.ip(), 0));
    sendto(raw.as_raw_fd(), &pkt, &dst, MsgFlags::empty()).expect("sending the forged datagram");
}

fn v4(s: &UdpSocket) -> SocketAddrV4 {
    match s.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        a => panic!("{a} is not IPv4"),
    }
}

/// A UDP socket at `ip` on the same port as `other` (retrying with a
/// new port when that one is taken at `ip`).
fn same_port_pair(ip: Ipv4Addr) -> (UdpSocket, UdpSocket) {
    for _ in 0..20 {
        let a = udp("127.0.0.1:0");
        if let Ok(b) = UdpSocket::bind((ip, v4(&a).port())) {
            return (a, b);
        }
    }
    panic!("no port free on both 127.0.0.1 and {ip}");
}

#[test]
fn same_port_instances_never_bounce() {
    let raw = match raw_udp(Ipv4Addr::new(127, 0, 0, 2)) {
        Ok(r) => r,
        Err(why) => return cannot_run(&why),
    };
    let (a, b) = same_port_pair(Ipv4Addr::new(127, 0, 0, 2));
    let (aa, ba) = (v4(&a), v4(&b));
    let mut da = Daemon::builder().socket(a, "a").spawn().wait_ready();
    let mut db = Daemon::builder().socket(b, "b").spawn().wait_ready();
    // The datagram B would send if it answered something: from B's
    // address and port, to A on the same port.
    forge(&raw, ba, aa, b"ping");
    let s = da.wait_stats(|s| s.received == 1);
    // answered 0: A sent nothing, so B has nothing to answer.
    assert_eq!(s, counted(1, 0).with(Reason::LoopGuard, 1));
    // B handles datagrams in order: its reply to a probe means nothing
    // came before it.
    let probe = udp("127.0.0.1:0");
    probe.send_to(b"probe", ba).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(probe.recv(&mut buf).unwrap(), 5);
    assert_eq!(final_counters(&mut da), (1, 0, 1, 0));
    assert_eq!(
        final_counters(&mut db),
        (1, 1, 0, 0),
        "B received only the probe"
    );
    assert!(
        da.stderr()
            .contains("is one of dgecho's own listening ports"),
        "{}",
        da.stderr()
    );
}

/// Two instances on different ports (the loop guard cannot tell), set
/// bouncing by one forged datagram for `run`; returns each one's
/// (received, answered, loop guard, rate limited).
fn bounce(limit: &[&str], run: Duration) -> Option<[(u64, u64, u64, u64); 2]> {
    let raw = match raw_udp(Ipv4Addr::LOCALHOST) {
        Ok(r) => r,
        Err(why) => {
            cannot_run(&why);
            return None;
        }
    };
    let (a, b) = (udp("127.0.0.1:0"), udp("127.0.0.1:0"));
    let (aa, ba) = (v4(&a), v4(&b));
    let spawn = |s: UdpSocket, name: &str| {
        let mut builder = Daemon::builder().socket(s, name);
        for arg in limit {
            builder = builder.arg(arg);
        }
        builder.spawn().wait_ready()
    };
    let (mut da, mut db) = (spawn(a, "a"), spawn(b, "b"));
    forge(&raw, ba, aa, b"ping");
    let start = Instant::now();
    if limit.is_empty() {
        // The exchange goes on until stopped; wait for it to show.
        da.wait_stats(|s| s.received > 0);
    } else {
        // One side's rate limit drops the datagram and ends it.
        da.wait_stats(|s| s[Reason::RateLimited] > 0);
    }
    std::thread::sleep(run.saturating_sub(start.elapsed()));
    Some([final_counters(&mut da), final_counters(&mut db)])
}

/// Between instances on different ports, the rate limit caps (here: ends)
/// the exchange.
#[test]
fn rate_limit_caps_a_bounce_between_instances() {
    let (rate, burst) = (50, 10);
    let Some([a, b]) = bounce(
        &[
            "--rate-limit",
            &rate.to_string(),
            "--burst",
            &burst.to_string(),
        ],
        Duration::ZERO,
    ) else {
        return;
    };
    // However long it ran, no more than burst + rate * time: here the
    // first drop ends it within microseconds, after burst datagrams.
    assert!(a.1 <= burst + 1 && b.1 <= burst + 1, "{a:?} {b:?}");
    assert_eq!(a.3 + b.3, 1, "one drop ends it: {a:?} {b:?}");
}

/// The figures: bounces in 2 s with and without --rate-limit (run with
/// `cargo test -- --ignored --nocapture bounce_rate`).
#[test]
#[ignore = "a 4-second measurement; prints figures"]
fn bounce_rate_with_and_without_rate_limit() {
    let run = Duration::from_secs(2);
    let (rate, burst) = (100u64, 20u64);
    let Some(free) = bounce(&[], run) else { return };
    let Some(limited) = bounce(
        &[
            "--rate-limit",
            &rate.to_string(),
            "--burst",
            &burst.to_string(),
        ],
        run,
    ) else {
        return;
    };
    let secs = run.as_secs_f64();
    for (what, [a, b]) in [("no limit", free), ("--rate-limit 100 --burst 20", limited)] {
        println!(
            "{what}: in {secs} s, A received {} answered {} (rate limited {}), \
             B received {} answered {} (rate limited {}): {:.0} bounces/s",
            a.0,
            a.1,
            a.3,
            b.0,
            b.1,
            b.3,
            (a.1 + b.1) as f64 / secs
        );
    }
    let [a, b] = limited;
    let cap = rate * run.as_secs() + burst + 1;
    assert!(a.1 <= cap && b.1 <= cap, "capped at {cap}: {a:?} {b:?}");
    assert!(
        free[0].1 > cap,
        "without a limit it bounces freely: {free:?}"
    );
}

/// Two instances on different ports of a non-loopback address, with
/// serve's default settings: one forged datagram starts them bouncing, and
/// the default per-source limit ends it after about its burst. Returns
/// each one's (received, answered, loop guard, rate limited) and how long
/// the loop lived, from the forged datagram to the first drop.
fn forged_loop_under_defaults() -> Option<([Counters; 2], Duration)> {
    let ns = match crate::netns::Netns::create(&["192.0.2.1/24"]) {
        Ok(ns) => ns,
        Err(why) => {
            cannot_run(&why);
            return None;
        }
    };
    ns.run(|| {
        let raw = raw_udp(Ipv4Addr::new(192, 0, 2, 1)).ok()?;
        let (a, b) = (udp("192.0.2.1:0"), udp("192.0.2.1:0"));
        let (aa, ba) = (v4(&a), v4(&b));
        let mut da = Daemon::builder().socket(a, "a").spawn().wait_ready();
        let mut db = Daemon::builder().socket(b, "b").spawn().wait_ready();
        let start = Instant::now();
        forge(&raw, ba, aa, b"ping");
        // The first rate-limited drop, on either side, ends the loop; its
        // warning is logged at once.
        let ended = loop {
            if da.stderr().contains("over the --rate-limit")
                || db.stderr().contains("over the --rate-limit")
            {
                break start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the loop never ended"
            );
            std::thread::park_timeout(Duration::from_millis(1));
        };
        Some(([final_counters(&mut da), final_counters(&mut db)], ended))
    })
}

#[test]
fn the_default_limit_ends_a_forged_loop_between_instances() {
    let Some(([a, b], lived)) = forged_loop_under_defaults() else {
        return;
    };
    let burst = dgecho::defaults::RATE_LIMIT.burst as u64;
    assert_eq!(a.3 + b.3, 1, "one drop ends it: {a:?} {b:?}");
    // Each side answered at most its burst plus what the rate refilled
    // while the loop lived.
    let refill = (dgecho::defaults::RATE_LIMIT.per_sec * lived.as_secs_f64()).ceil() as u64;
    assert!(
        a.1 <= burst + refill + 1 && b.1 <= burst + refill + 1,
        "{a:?} {b:?} in {lived:?}"
    );
    eprintln!(
        "a forged loop under the defaults lived {lived:?}: A answered {}, B answered {}",
        a.1, b.1
    );
}
