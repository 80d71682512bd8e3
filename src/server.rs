//! The echo loop: one thread per socket, each a raw `recvmsg`/`sendto` loop.
//!
//! [`Server::start`] takes sockets that are already bound, from systemd or
//! from a test's `127.0.0.1:0`, so the loop can be exercised without systemd.
//! [`Server::stop`] is the stop trigger.
//!
//! # The hot path
//! Per datagram a worker makes exactly two syscalls (`recvmsg` and
//! `sendto`), touches only its own buffer, allocated once, and publishes its
//! counters with relaxed atomic stores. Nothing is formatted unless trace
//! logging is on or a drop must be reported; reports are rate-limited.
//!
//! # Stopping without losing datagrams
//! Sockets carry a receive timeout (`SO_RCVTIMEO`, [`TICK`]) so an idle
//! worker wakes up a few times a second to see the stop flag. A stopping
//! worker never calls `recvmsg` again, so whatever is still queued stays in
//! the socket for the next instance that systemd starts. A blocking receive
//! with a timeout costs nothing per datagram, unlike polling a second "stop"
//! fd before every receive.

use std::fmt;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use log::{Level, debug, log_enabled, trace, warn};
use nix::errno::Errno;
use nix::sys::socket::{
    MsgFlags, SockaddrIn, SockaddrIn6, SockaddrLike, UnixAddr, recvmsg, sendto, setsockopt, sockopt,
};
use nix::sys::time::TimeVal;

use crate::cli::ReplyMode;
use crate::listener::{Family, Listener};

/// How often an idle worker wakes up to check whether it should stop; also
/// the worst-case delay between a stop request and a worker's exit.
pub const TICK: Duration = Duration::from_millis(250);

/// The receive buffer: larger than the largest UDP payload (65,507 bytes on
/// IPv4, 65,527 on IPv6). A Unix datagram that does not fit is detected
/// with `MSG_TRUNC` and dropped, never answered with a partial copy.
pub const BUFFER_SIZE: usize = 65536;

/// The smallest interval between two reports of the same kind of drop from
/// one worker, so a flood of bad datagrams cannot flood the journal.
const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// How the loop treats datagrams.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub reply: ReplyMode,
    /// UDP source ports never answered (the loop guard).
    pub guard_ports: Vec<u16>,
}

/// Counters of one worker. Each is written by that worker only, so a relaxed
/// store (a plain move on x86) is enough; readers see a recent value.
#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    answered: AtomicU64,
    unbound: AtomicU64,
    truncated: AtomicU64,
    guarded: AtomicU64,
    send_failed: AtomicU64,
    /// Idle wake-ups; with `received`, proof that the loop turns.
    ticks: AtomicU64,
    finished: AtomicBool,
}

/// A snapshot of the counters, summed over sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub received: u64,
    pub answered: u64,
    /// Unix datagrams from a sender with no address to answer to.
    pub unbound: u64,
    /// Datagrams larger than [`BUFFER_SIZE`].
    pub truncated: u64,
    /// UDP datagrams refused by the loop guard.
    pub guarded: u64,
    /// Replies that `sendto` failed to send.
    pub send_failed: u64,
}

impl Stats {
    /// Every datagram received but not answered.
    pub fn dropped(&self) -> u64 {
        self.unbound + self.truncated + self.guarded + self.send_failed
    }

    fn add(&mut self, c: &Counters) {
        self.received += c.received.load(Relaxed);
        self.answered += c.answered.load(Relaxed);
        self.unbound += c.unbound.load(Relaxed);
        self.truncated += c.truncated.load(Relaxed);
        self.guarded += c.guarded.load(Relaxed);
        self.send_failed += c.send_failed.load(Relaxed);
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {}, answered {}, dropped {}",
            self.received,
            self.answered,
            self.dropped()
        )?;
        if self.dropped() > 0 {
            write!(
                f,
                " (unbound sender {}, too large {}, loop guard {}, send failed {})",
                self.unbound, self.truncated, self.guarded, self.send_failed
            )?;
        }
        Ok(())
    }
}

struct Worker {
    label: String,
    counters: Arc<Counters>,
    handle: JoinHandle<Result<()>>,
}

/// The running echo loops.
pub struct Server {
    stop: Arc<AtomicBool>,
    workers: Vec<Worker>,
}

impl Server {
    /// Starts one worker thread per socket.
    pub fn start(listeners: Vec<Listener>, opts: &Options) -> Result<Server> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::with_capacity(listeners.len());
        for (i, listener) in listeners.into_iter().enumerate() {
            let timeout = TimeVal::new(TICK.as_secs() as _, TICK.subsec_micros() as _);
            setsockopt(&listener, sockopt::ReceiveTimeout, &timeout)
                .with_context(|| format!("cannot set a receive timeout on {listener}"))?;
            let label = listener.to_string();
            let counters = Arc::new(Counters::default());
            let (c, s, o) = (counters.clone(), stop.clone(), opts.clone());
            let handle = std::thread::Builder::new()
                .name(format!("dgecho-{i}"))
                .spawn(move || {
                    let r = match listener.family() {
                        Family::Unix => serve::<UnixAddr>(&listener, &o, &c, &s),
                        Family::Inet => serve::<SockaddrIn>(&listener, &o, &c, &s),
                        Family::Inet6 => serve::<SockaddrIn6>(&listener, &o, &c, &s),
                    };
                    c.finished.store(true, Relaxed);
                    r.with_context(|| format!("the loop on {listener} stopped"))
                })
                .context("cannot start a worker thread")?;
            workers.push(Worker {
                label,
                counters,
                handle,
            });
        }
        Ok(Server { stop, workers })
    }

    /// The counters summed over all sockets.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for w in &self.workers {
            s.add(&w.counters);
        }
        s
    }

    /// One number per socket that grows while its loop turns, whether busy
    /// (datagrams) or idle (receive timeouts). Comparing two heartbeats at
    /// least two [`TICK`]s apart tells a live loop from a stuck one.
    pub fn heartbeats(&self) -> Vec<u64> {
        self.workers
            .iter()
            .map(|w| w.counters.received.load(Relaxed) + w.counters.ticks.load(Relaxed))
            .collect()
    }

    /// The first loop that has ended although nobody asked it to, if any.
    pub fn failed(&self) -> Option<&str> {
        self.workers
            .iter()
            .find(|w| w.counters.finished.load(Relaxed))
            .map(|w| w.label.as_str())
    }

    /// Asks every loop to stop, waits for them (at most about one [`TICK`])
    /// and returns the final counters and the first loop error, if any.
    pub fn stop(self) -> (Stats, Result<()>) {
        self.stop.store(true, Relaxed);
        let stats_before_join = self.stats();
        let mut result = Ok(());
        let mut stats = Stats::default();
        for w in self.workers {
            let r = match w.handle.join() {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("the loop on {} panicked", w.label)),
            };
            if result.is_ok() {
                result = r;
            }
            stats.add(&w.counters);
        }
        debug_assert!(stats.received >= stats_before_join.received);
        (stats, result)
    }
}

/// What the loop needs to know about a sender's address.
trait Peer: SockaddrLike + Copy + fmt::Display {
    /// The UDP source port, for the loop guard.
    fn port(&self) -> Option<u16>;
    /// True for a Unix sender that never bound its socket: there is no
    /// address to reply to.
    fn is_unbound(&self) -> bool;
}

impl Peer for UnixAddr {
    fn port(&self) -> Option<u16> {
        None
    }
    fn is_unbound(&self) -> bool {
        // An unbound sender's address has no path bytes at all (the kernel
        // may report a length of 0). Check the length first: nix's
        // `is_unnamed` asserts that the family field is present.
        (SockaddrLike::len(self) as usize) <= std::mem::size_of::<nix::libc::sa_family_t>()
    }
}

impl Peer for SockaddrIn {
    fn port(&self) -> Option<u16> {
        Some(SockaddrIn::port(self))
    }
    fn is_unbound(&self) -> bool {
        false
    }
}

impl Peer for SockaddrIn6 {
    fn port(&self) -> Option<u16> {
        Some(SockaddrIn6::port(self))
    }
    fn is_unbound(&self) -> bool {
        false
    }
}

/// Decides how often a kind of event is reported.
#[derive(Default)]
struct RateLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    /// Returns how many reports were suppressed since the last one, when a
    /// report is due now; `None` when this one must be suppressed.
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < REPORT_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

fn suppressed(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more since the last report)")
    }
}

/// Why a reply could not be sent, and what to do about it.
fn send_hint(e: Errno) -> &'static str {
    match e {
        Errno::EACCES | Errno::EPERM => {
            "the client's socket file must be writable by the daemon's user; \
             bind the client to an abstract address (dgecho client does by default) \
             or make its socket file writable"
        }
        Errno::ENOENT => {
            "the client's socket file does not exist for the daemon: it was removed, \
             or it lives in a /tmp that the daemon cannot see (PrivateTmp=); \
             bind clients to an abstract address or under /run"
        }
        Errno::ECONNREFUSED => "the client closed its socket before the reply arrived",
        Errno::EAGAIN => "the client's receive queue is full: it is not reading its replies",
        Errno::ENOBUFS | Errno::ENOMEM => {
            "the kernel ran out of socket buffer space; the sender is faster than the replies"
        }
        Errno::EMSGSIZE => "the reply is larger than the socket's send buffer allows",
        Errno::ENETUNREACH | Errno::EHOSTUNREACH => "there is no route back to the sender",
        _ => "the reply was dropped",
    }
}

/// Shows at most the first 32 bytes of a datagram, escaped, for trace logs.
struct Preview<'a>(&'a [u8]);

impl fmt::Display for Preview<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(32)];
        write!(f, "\"{}\"", shown.escape_ascii())?;
        if self.0.len() > shown.len() {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// The loop for one socket, for senders of address type `P`.
fn serve<P: Peer>(
    listener: &Listener,
    opts: &Options,
    counters: &Counters,
    stop: &AtomicBool,
) -> Result<()> {
    let fd = listener.as_fd().as_raw_fd();
    let mut buf = vec![0u8; BUFFER_SIZE];
    let reverse = opts.reply == ReplyMode::Reverse;
    let guard: &[u16] = &opts.guard_ports;
    let (
        mut received,
        mut answered,
        mut unbound,
        mut truncated,
        mut guarded,
        mut failed,
        mut ticks,
    ) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut report = [
        RateLimit::default(),
        RateLimit::default(),
        RateLimit::default(),
        RateLimit::default(),
        RateLimit::default(),
    ];
    debug!("loop started on {listener}");

    while !stop.load(Relaxed) {
        let (len, flags, peer) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            // MSG_TRUNC makes the kernel return the datagram's real length,
            // so an oversized one is seen and never half-answered.
            match recvmsg::<P>(fd, &mut iov, None, MsgFlags::MSG_TRUNC) {
                Ok(m) => (m.bytes, m.flags, m.address),
                Err(Errno::EAGAIN) => {
                    ticks += 1;
                    counters.ticks.store(ticks, Relaxed);
                    continue;
                }
                Err(Errno::EINTR) => continue,
                Err(e @ (Errno::EBADF | Errno::ENOTSOCK | Errno::EINVAL | Errno::EFAULT)) => {
                    return Err(e).context("recvmsg failed");
                }
                Err(e) => {
                    // Anything else (ENOMEM, a pending ICMP error) belongs to
                    // one datagram or peer, never to the socket: keep going.
                    if let Some(n) = report[4].due() {
                        warn!(
                            "receiving on {listener} failed: {e}; continuing{}",
                            suppressed(n)
                        );
                    }
                    continue;
                }
            }
        };
        received += 1;
        counters.received.store(received, Relaxed);

        let Some(peer) = peer.filter(|p| !p.is_unbound()) else {
            unbound += 1;
            counters.unbound.store(unbound, Relaxed);
            if let Some(n) = report[0].due() {
                warn!(
                    "not answering a datagram on {listener} from a sender with no address: \
                     the client must bind its socket (dgecho client does){}",
                    suppressed(n)
                );
            }
            continue;
        };
        if len > buf.len() || flags.contains(MsgFlags::MSG_TRUNC) {
            truncated += 1;
            counters.truncated.store(truncated, Relaxed);
            if let Some(n) = report[1].due() {
                warn!(
                    "not answering a {len}-byte datagram on {listener} from {peer}: \
                     larger than the {BUFFER_SIZE}-byte buffer; send at most {BUFFER_SIZE} bytes{}",
                    suppressed(n)
                );
            }
            continue;
        }
        if let Some(port) = peer.port().filter(|p| guard.contains(p)) {
            guarded += 1;
            counters.guarded.store(guarded, Relaxed);
            if let Some(n) = report[2].due() {
                warn!(
                    "not answering {peer} on {listener}: source port {port} is loop-guarded \
                     (it could be another echo service; see --guard-ports){}",
                    suppressed(n)
                );
            }
            continue;
        }

        let data = &mut buf[..len];
        if log_enabled!(Level::Trace) {
            trace!(
                "got {len} bytes {} from {peer} on {listener}",
                Preview(data)
            );
        }
        if reverse {
            data.reverse();
        }
        match sendto(fd, data, &peer, MsgFlags::MSG_DONTWAIT) {
            Ok(_) => {
                answered += 1;
                counters.answered.store(answered, Relaxed);
            }
            Err(e) => {
                failed += 1;
                counters.send_failed.store(failed, Relaxed);
                if let Some(n) = report[3].due() {
                    warn!(
                        "cannot reply to {peer} on {listener}: {e}: {}{}",
                        send_hint(e),
                        suppressed(n)
                    );
                }
            }
        }
    }
    debug!("loop stopped on {listener}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn udp_server(opts: Options) -> (Server, std::net::SocketAddr) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let server = Server::start(vec![Listener::from_udp(sock, "test").unwrap()], &opts).unwrap();
        (server, addr)
    }

    fn client() -> UdpSocket {
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c
    }

    #[test]
    fn reverses_and_counts() {
        let (server, addr) = udp_server(Options::default());
        let c = client();
        c.send_to(b"hello", addr).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"olleh");
        assert_eq!(from, addr);
        let (stats, result) = server.stop();
        result.unwrap();
        assert_eq!(stats.received, 1);
        assert_eq!(stats.answered, 1);
        assert_eq!(stats.dropped(), 0);
    }

    #[test]
    fn echo_mode_and_zero_length() {
        let (server, addr) = udp_server(Options {
            reply: ReplyMode::Echo,
            guard_ports: vec![],
        });
        let c = client();
        let mut buf = [0u8; 64];
        c.send_to(b"abc", addr).unwrap();
        let n = c.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"abc");
        c.send_to(b"", addr).unwrap();
        assert_eq!(c.recv(&mut buf).unwrap(), 0);
        assert_eq!(server.stop().0.answered, 2);
    }

    #[test]
    fn loop_guard_refuses_listed_ports() {
        let c = client();
        let port = c.local_addr().unwrap().port();
        let (server, addr) = udp_server(Options {
            reply: ReplyMode::Reverse,
            guard_ports: vec![port],
        });
        c.send_to(b"x", addr).unwrap();
        // A second, unguarded client proves the first datagram was handled
        // (datagrams from one socket are processed in order) without a sleep.
        let other = client();
        other.send_to(b"ok", addr).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(other.recv(&mut buf).unwrap(), 2);
        // Any reply to `c` would have been sent before the one to `other`.
        c.set_nonblocking(true).unwrap();
        let err = c.recv(&mut buf).unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::WouldBlock,
            "a guarded port gets no reply"
        );
        let (stats, _) = server.stop();
        assert_eq!(stats.guarded, 1);
        assert_eq!(stats.received, 2);
    }

    #[test]
    fn stop_is_prompt_and_heartbeats_advance() {
        let (server, _) = udp_server(Options::default());
        let before = server.heartbeats();
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.heartbeats() == before {
            assert!(Instant::now() < deadline, "an idle loop must keep ticking");
            std::thread::park_timeout(Duration::from_millis(20));
        }
        assert!(server.failed().is_none());
        let t = Instant::now();
        server.stop().1.unwrap();
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn stats_display() {
        let s = Stats {
            received: 5,
            answered: 3,
            unbound: 1,
            guarded: 1,
            ..Stats::default()
        };
        assert_eq!(
            s.to_string(),
            "received 5, answered 3, dropped 2 (unbound sender 1, too large 0, loop guard 1, send failed 0)"
        );
    }

    #[test]
    fn rate_limit_suppresses_and_counts() {
        let mut r = RateLimit::default();
        assert_eq!(r.due(), Some(0));
        assert_eq!(r.due(), None);
        assert_eq!(r.due(), None);
        r.last = Some(Instant::now() - REPORT_INTERVAL);
        assert_eq!(r.due(), Some(2));
    }
}
