//! The echo loop: one thread per socket (`--workers N`: N threads
//! sharing each socket).
//!
//! [`Server::start`] takes sockets that are already bound, from systemd or
//! from a test's `127.0.0.1:0`, so the loop can be exercised without systemd.
//! [`Server::stop`] is the stop trigger.
//!
//! # The hot path
//! UDP sockets are served with `recvmmsg`/`sendmmsg`: one call takes up to
//! [`BATCH`] queued datagrams, blocking only for the first (so a lone
//! datagram is answered at once, with no added latency), and one call sends
//! their replies in arrival order. Measured with `tests/bench/run.sh`, this
//! answers more datagrams per CPU second than one call per datagram under
//! load, and the same in ping-pong. Unix sockets take one `recvmsg` per
//! datagram but send the replies of a burst with one `sendmmsg` (see
//! `serve_unix` for why receiving is not batched there).
//!
//! On a UDP socket bound to a wildcard address (`0.0.0.0`, `[::]`) each
//! datagram's destination is received with it (`IP_PKTINFO`,
//! `IPV6_PKTINFO`) and the reply is sent from that address; sockets bound
//! to one address skip this. The loop guard refuses the server's own UDP
//! ports as source ports, besides `--guard-ports`, and `--rate-limit`
//! checks each UDP source against its token bucket ([`crate::ratelimit`],
//! one table per worker, one clock read per batch).
//!
//! Every datagram goes through one pure decision, `verdict`. A worker
//! touches only its own buffers, allocated once, and publishes its counters
//! with relaxed atomic stores. Nothing is formatted unless trace logging is
//! on or a drop must be reported; reports are rate-limited.
//!
//! # Stopping without losing datagrams
//! Sockets carry a receive timeout (`SO_RCVTIMEO`, [`TICK`]) so an idle
//! worker wakes up a few times a second to see the stop flag. A stopping
//! worker never calls `recvmsg` again, so whatever is still queued stays in
//! the socket for the next instance that systemd starts. A blocking receive
//! with a timeout costs nothing per datagram, unlike polling a second "stop"
//! fd before every receive.

use std::fmt;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use log::{Level, debug, info, log_enabled, trace, warn};
use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn, SockaddrIn6,
    SockaddrLike, SockaddrStorage, UnixAddr, getsockname, getsockopt, recvmmsg, recvmsg, sendmmsg,
    sendto, setsockopt, sockopt,
};
use nix::sys::time::TimeVal;

use crate::defaults::{BATCH, BUFFER_SIZE, UNIX_SEND_BUFFER};
use crate::listener::{Family, Listener};
use crate::ratelimit::{self, Limiter, Rate};

pub use crate::defaults::TICK;

/// The smallest interval between two reports of the same kind of drop from
/// one worker, so a flood of bad datagrams cannot flood the journal.
const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// What the daemon sends back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReplyMode {
    /// The datagram's bytes in reverse order, as the original ctypes echo
    /// server did.
    #[default]
    Reverse,
    /// The datagram unchanged, as RFC 862 describes.
    Echo,
}

impl fmt::Display for ReplyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplyMode::Reverse => "reverse",
            ReplyMode::Echo => "echo",
        })
    }
}

/// How the loop treats datagrams.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub reply: ReplyMode,
    /// UDP source ports never answered (the loop guard). The ports of
    /// every UDP socket the server serves are refused too, always.
    pub guard_ports: Vec<u16>,
    /// Threads per socket, all receiving from the same fd; 0 means 1.
    /// With more than one, two datagrams from the same sender can be
    /// answered out of order; `ReusePort=` sockets (one flow, one socket)
    /// keep the order.
    pub workers: usize,
    /// The per-source limit on UDP sockets (`--rate-limit`), for each
    /// socket as a whole: every worker takes `1/workers` of it.
    pub rate_limit: Option<Rate>,
}

/// What every worker of a server applies: the options, with the guard
/// extended by the server's own UDP ports.
#[derive(Debug, Clone)]
struct Policy {
    reverse: bool,
    /// `--guard-ports` plus `own`.
    guard: Vec<u16>,
    /// The UDP ports of the server's own sockets.
    own: Vec<u16>,
    /// Each worker's share of the limit.
    rate: Option<Rate>,
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
    rate_limited: AtomicU64,
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
    /// UDP datagrams over their source's `--rate-limit`.
    pub rate_limited: u64,
    /// Replies that `sendto` failed to send.
    pub send_failed: u64,
}

impl Stats {
    /// Every datagram received but not answered.
    pub fn dropped(&self) -> u64 {
        self.unbound + self.truncated + self.guarded + self.rate_limited + self.send_failed
    }

    fn add(&mut self, c: &Counters) {
        self.received += c.received.load(Relaxed);
        self.answered += c.answered.load(Relaxed);
        self.unbound += c.unbound.load(Relaxed);
        self.truncated += c.truncated.load(Relaxed);
        self.guarded += c.guarded.load(Relaxed);
        self.rate_limited += c.rate_limited.load(Relaxed);
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
                " (unbound sender {}, too large {}, loop guard {}, rate limited {}, send failed {})",
                self.unbound, self.truncated, self.guarded, self.rate_limited, self.send_failed
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
    /// Starts `opts.workers` threads per socket (at least one), all
    /// serving the same socket.
    pub fn start(listeners: Vec<Listener>, opts: &Options) -> Result<Server> {
        let stop = Arc::new(AtomicBool::new(false));
        let per_socket = opts.workers.max(1);
        // BSD inetd's check_loop: a datagram from one of our own ports is
        // most likely another dgecho (or echo service) on the same port of
        // another host, and answering it would start an endless exchange.
        let own: Vec<u16> = listeners.iter().filter_map(|l| l.udp_port()).collect();
        let mut guard = opts.guard_ports.clone();
        for &p in &own {
            if !guard.contains(&p) {
                guard.push(p);
            }
        }
        let policy = Policy {
            reverse: opts.reply == ReplyMode::Reverse,
            guard,
            own,
            rate: opts.rate_limit.map(|r| r.per_worker(per_socket)),
        };
        let mut workers = Vec::with_capacity(listeners.len() * per_socket);
        for (i, listener) in listeners.into_iter().enumerate() {
            let timeout = TimeVal::new(TICK.as_secs() as _, TICK.subsec_micros() as _);
            setsockopt(&listener, sockopt::ReceiveTimeout, &timeout)
                .with_context(|| format!("cannot set a receive timeout on {listener}"))?;
            if listener.family() == Family::Unix {
                raise_send_buffer(&listener);
            }
            let listener = Arc::new(listener);
            for w in 0..per_socket {
                let label = if per_socket == 1 {
                    listener.to_string()
                } else {
                    format!("{listener} (worker {w})")
                };
                let counters = Arc::new(Counters::default());
                let (l, c, s, o) = (
                    listener.clone(),
                    counters.clone(),
                    stop.clone(),
                    policy.clone(),
                );
                let handle = std::thread::Builder::new()
                    .name(format!("dgecho-{i}-{w}"))
                    .spawn(move || {
                        let r = match l.family() {
                            Family::Unix => serve_unix(&l, &o, &c, &s),
                            Family::Inet => serve_batched::<SockaddrIn>(&l, &o, &c, &s),
                            Family::Inet6 => serve_batched::<SockaddrIn6>(&l, &o, &c, &s),
                        };
                        c.finished.store(true, Relaxed);
                        r.with_context(|| format!("the loop on {l} stopped"))
                    })
                    .context("cannot start a worker thread")?;
                workers.push(Worker {
                    label,
                    counters,
                    handle,
                });
            }
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
    /// The `--rate-limit` bucket of a UDP sender (see [`ratelimit`]).
    fn rate_key(&self) -> Option<u128>;
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
    fn rate_key(&self) -> Option<u128> {
        None
    }
}

impl Peer for SockaddrIn {
    fn port(&self) -> Option<u16> {
        Some(SockaddrIn::port(self))
    }
    fn is_unbound(&self) -> bool {
        false
    }
    fn rate_key(&self) -> Option<u128> {
        Some(ratelimit::key_v4(self.ip()))
    }
}

impl Peer for SockaddrIn6 {
    fn port(&self) -> Option<u16> {
        Some(SockaddrIn6::port(self))
    }
    fn is_unbound(&self) -> bool {
        false
    }
    fn rate_key(&self) -> Option<u128> {
        Some(ratelimit::key_v6(self.ip()))
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

/// Raises a Unix socket's send buffer to [`UNIX_SEND_BUFFER`], never
/// lowering it (systemd's `SendBuffer=` may have set more). Without
/// `CAP_NET_ADMIN` the kernel caps the request at `net.core.wmem_max`.
fn raise_send_buffer(listener: &Listener) {
    let before = getsockopt(listener, sockopt::SndBuf).unwrap_or(0);
    if before >= 2 * UNIX_SEND_BUFFER {
        return;
    }
    if setsockopt(listener, sockopt::SndBufForce, &UNIX_SEND_BUFFER).is_err() {
        // SO_SNDBUF is capped at wmem_max: ask only for what raises it.
        let cap = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(212_992);
        let want = UNIX_SEND_BUFFER.min(cap);
        if 2 * want > before {
            let _ = setsockopt(listener, sockopt::SndBuf, &want);
        }
    }
    let after = getsockopt(listener, sockopt::SndBuf).unwrap_or(before);
    if after < 2 * UNIX_SEND_BUFFER {
        info!(
            "the send buffer of {listener} is {after} bytes: replies that clients have not read \
             yet are charged to it, so many slow clients can make replies fail; \
             set SendBuffer=4M in the .socket unit (the kernel doubles it) or raise net.core.wmem_max"
        );
    } else {
        debug!("send buffer of {listener}: {after} bytes (was {before})");
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
        Errno::EAGAIN => {
            "the client's receive queue is full: it is not reading its replies; \
             or, on a Unix socket, the daemon's send buffer is full of replies that \
             clients have not read yet (see SendBuffer= in the .socket unit)"
        }
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

/// What to do with one received datagram. This is the whole per-datagram
/// policy, pure and separate from the system calls, so that both loops
/// share it and later rules (a per-source rate limit, say) slot in here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Reply,
    /// A Unix sender with no address.
    Unbound,
    /// Larger than the buffer ([`BUFFER_SIZE`]).
    Truncated,
    /// A loop-guarded UDP source port.
    Guarded(u16),
}

fn verdict<P: Peer>(len: usize, truncated: bool, peer: Option<&P>, guard: &[u16]) -> Verdict {
    let Some(peer) = peer.filter(|p| !p.is_unbound()) else {
        return Verdict::Unbound;
    };
    if truncated || len > BUFFER_SIZE {
        return Verdict::Truncated;
    }
    match peer.port().filter(|p| guard.contains(p)) {
        Some(port) => Verdict::Guarded(port),
        None => Verdict::Reply,
    }
}

/// One worker's view of its socket: options, counters (plain locals,
/// published with relaxed stores) and the rate limits of its reports.
struct Ctx<'a> {
    listener: &'a Listener,
    reverse: bool,
    guard: &'a [u16],
    own: &'a [u16],
    /// The source table of `--rate-limit`, on UDP sockets.
    limiter: Option<Limiter>,
    rate: Option<Rate>,
    /// The limiter's time for the current batch: one clock read per batch.
    now: u64,
    counters: &'a Counters,
    received: u64,
    answered: u64,
    unbound: u64,
    truncated: u64,
    guarded: u64,
    rate_limited: u64,
    failed: u64,
    ticks: u64,
    report: [RateLimit; 6],
}

impl<'a> Ctx<'a> {
    fn new(listener: &'a Listener, policy: &'a Policy, counters: &'a Counters) -> Ctx<'a> {
        let rate = policy.rate.filter(|_| listener.family() != Family::Unix);
        Ctx {
            listener,
            reverse: policy.reverse,
            guard: &policy.guard,
            own: &policy.own,
            limiter: rate.map(Limiter::new),
            rate,
            now: 0,
            counters,
            received: 0,
            answered: 0,
            unbound: 0,
            truncated: 0,
            guarded: 0,
            rate_limited: 0,
            failed: 0,
            ticks: 0,
            report: Default::default(),
        }
    }

    /// Reads the clock for a new batch, when the rate limit needs it.
    fn batch_start(&mut self) {
        if let Some(l) = &self.limiter {
            self.now = l.now();
        }
    }

    fn tick(&mut self) {
        self.ticks += 1;
        self.counters.ticks.store(self.ticks, Relaxed);
    }

    /// A receive error: fatal for the socket, or reported and skipped.
    fn recv_error(&mut self, e: Errno) -> Result<()> {
        match e {
            Errno::EAGAIN => self.tick(),
            Errno::EINTR => {}
            Errno::EBADF | Errno::ENOTSOCK | Errno::EINVAL | Errno::EFAULT => {
                return Err(e).context("receiving failed");
            }
            // Anything else (ENOMEM, a pending ICMP error) belongs to one
            // datagram or peer, never to the socket: keep going.
            _ => {
                if let Some(n) = self.report[4].due() {
                    warn!(
                        "receiving on {} failed: {e}; continuing{}",
                        self.listener,
                        suppressed(n)
                    );
                }
            }
        }
        Ok(())
    }

    /// Counts one received datagram, decides, and on [`Verdict::Reply`]
    /// turns `data` into the reply and returns the peer to send it to.
    fn handle<P: Peer>(
        &mut self,
        data: &mut [u8],
        len: usize,
        truncated: bool,
        peer: Option<P>,
    ) -> Option<P> {
        self.received += 1;
        self.counters.received.store(self.received, Relaxed);
        let listener = self.listener;
        match verdict(len, truncated, peer.as_ref(), self.guard) {
            Verdict::Reply => {}
            Verdict::Unbound => {
                self.unbound += 1;
                self.counters.unbound.store(self.unbound, Relaxed);
                if let Some(n) = self.report[0].due() {
                    warn!(
                        "not answering a datagram on {listener} from a sender with no address: \
                         the client must bind its socket (dgecho client does){}",
                        suppressed(n)
                    );
                }
                return None;
            }
            Verdict::Truncated => {
                self.truncated += 1;
                self.counters.truncated.store(self.truncated, Relaxed);
                if let Some(n) = self.report[1].due() {
                    let from = peer.map(|p| p.to_string()).unwrap_or_default();
                    warn!(
                        "not answering a {len}-byte datagram on {listener} from {from}: \
                         larger than the {BUFFER_SIZE}-byte buffer; send at most {BUFFER_SIZE} bytes{}",
                        suppressed(n)
                    );
                }
                return None;
            }
            Verdict::Guarded(port) => {
                self.guarded += 1;
                self.counters.guarded.store(self.guarded, Relaxed);
                if let Some(n) = self.report[2].due() {
                    let from = peer.map(|p| p.to_string()).unwrap_or_default();
                    if self.own.contains(&port) {
                        warn!(
                            "not answering {from} on {listener}: source port {port} is one of \
                             dgecho's own listening ports (it could be another dgecho or echo \
                             service on that port, and the two would answer each other \
                             forever){}",
                            suppressed(n)
                        );
                    } else {
                        warn!(
                            "not answering {from} on {listener}: source port {port} is loop-guarded \
                             (it could be another echo service; see --guard-ports){}",
                            suppressed(n)
                        );
                    }
                }
                return None;
            }
        }
        let peer = peer?;
        if let (Some(limiter), Some(key)) = (&mut self.limiter, peer.rate_key()) {
            if !limiter.allow(key, self.now) {
                self.rate_limited += 1;
                self.counters.rate_limited.store(self.rate_limited, Relaxed);
                if let Some(n) = self.report[5].due() {
                    let rate = self.rate.unwrap_or(Rate {
                        per_sec: 0.0,
                        burst: 0,
                    });
                    warn!(
                        "not answering {peer} on {listener}: over the --rate-limit of {rate} \
                         per source{}",
                        suppressed(n)
                    );
                }
                return None;
            }
        }
        if log_enabled!(Level::Trace) {
            trace!(
                "got {len} bytes {} from {peer} on {listener}",
                Preview(data)
            );
        }
        if self.reverse {
            data.reverse();
        }
        Some(peer)
    }

    fn sent(&mut self, n: usize) {
        self.answered += n as u64;
        self.counters.answered.store(self.answered, Relaxed);
    }

    /// Counts the outcome of one `sendmmsg` call whose first reply goes to
    /// `first`; returns how many replies it used up. `sendmmsg` stops at the
    /// first failure after a success, and the next call reports that
    /// failure, so a failed call uses up exactly its first reply.
    fn account_sendmmsg<P: Peer>(
        &mut self,
        result: nix::Result<usize>,
        first: Option<&P>,
    ) -> usize {
        match result {
            Ok(k) => {
                self.sent(k);
                k.max(1)
            }
            Err(e) => {
                if let Some(peer) = first {
                    self.send_failed(e, peer);
                }
                1
            }
        }
    }

    fn send_failed<P: Peer>(&mut self, e: Errno, peer: &P) {
        self.failed += 1;
        self.counters.send_failed.store(self.failed, Relaxed);
        if let Some(n) = self.report[3].due() {
            warn!(
                "cannot reply to {peer} on {}: {e}: {}{}",
                self.listener,
                send_hint(e),
                suppressed(n)
            );
        }
    }
}

/// The loop for one Unix socket: `recvmsg` per datagram, `sendmmsg` for
/// the replies of a burst.
///
/// The first `recvmsg` blocks and its reply goes out at once with `sendto`,
/// so a lone datagram waits for nothing. Then up to [`BATCH`]` - 1` more
/// datagrams that are already queued are taken with `MSG_DONTWAIT`, and one
/// `sendmmsg` sends their replies in arrival order (the first reply left
/// before all of them, so each sender's order holds). A burst of `k` costs
/// `k + 1` receives and 2 sends instead of `2k` calls.
///
/// Receiving is not batched because nix 0.32's `recvmmsg` never resets
/// `msg_namelen` between calls: a slot that once held a short Unix address
/// (an autobind name is 8 bytes, an unbound sender's 0) would truncate a
/// longer one later, and its reply would go to a wrong address. Fresh
/// headers per call would fix that only by allocating per call
/// (`MultiHeaders::preallocate`); nix PR #2813 proposes the fix. UDP
/// addresses all have one length, so [`serve_batched`] is safe.
fn serve_unix(
    listener: &Listener,
    opts: &Policy,
    counters: &Counters,
    stop: &AtomicBool,
) -> Result<()> {
    let fd = listener.as_fd().as_raw_fd();
    // As in serve_batched: untouched pages of the slots cost no memory.
    let mut bufs = vec![0u8; BATCH * BUFFER_SIZE];
    let mut send_hdrs = MultiHeaders::<UnixAddr>::preallocate(BATCH, None);
    let mut got: [(usize, bool, Option<UnixAddr>); BATCH] = [(0, false, None); BATCH];
    let mut to: [Option<UnixAddr>; BATCH] = [None; BATCH];
    let mut slot_of = [0usize; BATCH];
    let mut ctx = Ctx::new(listener, opts, counters);
    let no_cmsgs: [ControlMessage<'_>; 0] = [];
    debug!(
        "loop started on {listener}, one receive per datagram, up to {BATCH} replies per \
         system call"
    );
    while !stop.load(Relaxed) {
        // Receive: block for the first datagram only, then take what is
        // already queued.
        let mut n = 0;
        for (i, slot) in bufs.chunks_exact_mut(BUFFER_SIZE).enumerate() {
            // MSG_TRUNC makes the kernel return the datagram's real length,
            // so an oversized one is seen and never half-answered.
            let flags = if i == 0 {
                MsgFlags::MSG_TRUNC
            } else {
                MsgFlags::MSG_TRUNC | MsgFlags::MSG_DONTWAIT
            };
            got[i] = match recvmsg::<UnixAddr>(fd, &mut [IoSliceMut::new(&mut *slot)], None, flags)
            {
                Ok(m) => (m.bytes, m.flags.contains(MsgFlags::MSG_TRUNC), m.address),
                // The queue is empty: answer what we have.
                Err(Errno::EAGAIN) if i > 0 => break,
                Err(e) => {
                    ctx.recv_error(e)
                        .with_context(|| format!("on {listener}"))?;
                    break;
                }
            };
            n += 1;
            if i == 0 {
                // The first reply leaves now: no added latency.
                let (len, truncated, peer) = got[0];
                let data = &mut slot[..len.min(BUFFER_SIZE)];
                if let Some(peer) = ctx.handle(data, len, truncated, peer) {
                    match sendto(fd, data, &peer, MsgFlags::MSG_DONTWAIT) {
                        Ok(_) => ctx.sent(1),
                        Err(e) => ctx.send_failed(e, &peer),
                    }
                }
            }
        }
        // Decide on the rest; their replies keep the arrival order.
        let mut replies = 0;
        for (i, &(len, truncated, peer)) in got.iter().enumerate().take(n).skip(1) {
            let slot = &mut bufs[i * BUFFER_SIZE..(i + 1) * BUFFER_SIZE];
            let data = &mut slot[..len.min(BUFFER_SIZE)];
            if let Some(peer) = ctx.handle(data, len, truncated, peer) {
                to[replies] = Some(peer);
                slot_of[replies] = i;
                replies += 1;
            }
        }
        let mut done = 0;
        while done < replies {
            let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|j| {
                let k = (done + j).min(replies - 1);
                let i = slot_of[k];
                [IoSlice::new(
                    &bufs[i * BUFFER_SIZE..i * BUFFER_SIZE + got[i].0],
                )]
            });
            // MSG_DONTWAIT: a client whose queue is full costs its own
            // reply (EAGAIN, counted), never the other clients' replies.
            let sent = sendmmsg(
                fd,
                &mut send_hdrs,
                &iovs[..replies - done],
                &to[done..replies],
                no_cmsgs,
                MsgFlags::MSG_DONTWAIT,
            )
            .map(|r| r.count());
            done += ctx.account_sendmmsg(sent, to[done].as_ref());
        }
    }
    debug!("loop stopped on {listener}");
    Ok(())
}

/// What the UDP loop needs to reply from the address a request was sent
/// to, per address family (`IP_PKTINFO`, `IPV6_PKTINFO`).
trait UdpPeer: Peer {
    /// The source to send a reply from.
    type Src: Copy;
    /// Asks the kernel for each datagram's destination address.
    fn enable_pktinfo(listener: &Listener) -> nix::Result<()>;
    /// The control buffer for one datagram's destination.
    fn cmsg_space() -> Vec<u8>;
    /// The reply's source, from a received control message.
    fn reply_src(c: ControlMessageOwned) -> Option<Self::Src>;
    fn same_src(a: &Self::Src, b: &Self::Src) -> bool;
    fn src_cmsg(s: &Self::Src) -> ControlMessage<'_>;
}

impl UdpPeer for SockaddrIn {
    type Src = nix::libc::in_pktinfo;
    fn enable_pktinfo(listener: &Listener) -> nix::Result<()> {
        setsockopt(listener, sockopt::Ipv4PacketInfo, &true)
    }
    fn cmsg_space() -> Vec<u8> {
        nix::cmsg_space!(nix::libc::in_pktinfo)
    }
    fn reply_src(c: ControlMessageOwned) -> Option<Self::Src> {
        match c {
            // ipi_spec_dst is the local address the datagram reached (for
            // a broadcast, the interface's own address, never the
            // broadcast address): send from it, and let routing choose the
            // interface (ifindex 0).
            ControlMessageOwned::Ipv4PacketInfo(i) => Some(nix::libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: i.ipi_spec_dst,
                ipi_addr: nix::libc::in_addr { s_addr: 0 },
            }),
            _ => None,
        }
    }
    fn same_src(a: &Self::Src, b: &Self::Src) -> bool {
        a.ipi_spec_dst.s_addr == b.ipi_spec_dst.s_addr
    }
    fn src_cmsg(s: &Self::Src) -> ControlMessage<'_> {
        ControlMessage::Ipv4PacketInfo(s)
    }
}

impl UdpPeer for SockaddrIn6 {
    type Src = nix::libc::in6_pktinfo;
    fn enable_pktinfo(listener: &Listener) -> nix::Result<()> {
        setsockopt(listener, sockopt::Ipv6RecvPacketInfo, &true)
    }
    fn cmsg_space() -> Vec<u8> {
        nix::cmsg_space!(nix::libc::in6_pktinfo)
    }
    fn reply_src(c: ControlMessageOwned) -> Option<Self::Src> {
        match c {
            ControlMessageOwned::Ipv6PacketInfo(mut i) => {
                i.ipi6_ifindex = 0;
                // A multicast destination cannot be a source: leave the
                // choice to the kernel (::).
                if i.ipi6_addr.s6_addr[0] == 0xff {
                    i.ipi6_addr.s6_addr = [0; 16];
                }
                Some(i)
            }
            _ => None,
        }
    }
    fn same_src(a: &Self::Src, b: &Self::Src) -> bool {
        a.ipi6_addr.s6_addr == b.ipi6_addr.s6_addr
    }
    fn src_cmsg(s: &Self::Src) -> ControlMessage<'_> {
        ControlMessage::Ipv6PacketInfo(s)
    }
}

/// One received datagram: its length, whether it was truncated, its
/// sender, and the address to reply from (on wildcard sockets).
type Received<P> = (usize, bool, Option<P>, Option<<P as UdpPeer>::Src>);

/// True when the socket is bound to 0.0.0.0 or [::]: only then can a
/// request arrive at one of several addresses, and the reply must name
/// which one it comes from.
fn is_wildcard(listener: &Listener) -> bool {
    let Ok(sa) = getsockname::<SockaddrStorage>(listener.as_fd().as_raw_fd()) else {
        return false;
    };
    sa.as_sockaddr_in().is_some_and(|a| a.ip().is_unspecified())
        || sa
            .as_sockaddr_in6()
            .is_some_and(|a| a.ip().is_unspecified())
}

/// The loop for one UDP socket: `recvmmsg` takes up to [`BATCH`] datagrams
/// (blocking for the first only, so a lone datagram is answered at once)
/// and one `sendmmsg` sends their replies, in the order received.
///
/// On a socket bound to a wildcard address, each datagram's destination
/// comes with it (`IP_PKTINFO`/`IPV6_PKTINFO`) and its reply is sent from
/// that address: a client with a connected socket drops a reply from any
/// other. `sendmmsg` (as nix wraps it) gives one set of control messages to
/// a whole call, so consecutive replies from the same address go out in
/// one call. Sockets bound to one address skip all of this.
fn serve_batched<P: UdpPeer>(
    listener: &Listener,
    opts: &Policy,
    counters: &Counters,
    stop: &AtomicBool,
) -> Result<()> {
    let fd = listener.as_fd().as_raw_fd();
    let pktinfo = is_wildcard(listener) && {
        match P::enable_pktinfo(listener) {
            Ok(()) => true,
            Err(e) => {
                warn!(
                    "cannot ask for the destination of datagrams on {listener}: {e}; replies \
                     leave from the address the kernel picks, which a client with a \
                     connected socket drops when it asked another of this host's addresses"
                );
                false
            }
        }
    };
    // BATCH buffers of BUFFER_SIZE: untouched pages cost no memory, so
    // small datagrams keep the resident size to a few pages per slot.
    let mut bufs = vec![0u8; BATCH * BUFFER_SIZE];
    let cmsg_buf = || pktinfo.then(P::cmsg_space);
    let mut recv_hdrs = MultiHeaders::<P>::preallocate(BATCH, cmsg_buf());
    let mut send_hdrs = MultiHeaders::<P>::preallocate(BATCH, None);
    let mut send_src_hdrs = MultiHeaders::<P>::preallocate(BATCH, cmsg_buf());
    let mut got: [Received<P>; BATCH] = [(0, false, None, None); BATCH];
    let mut to: [Option<P>; BATCH] = [None; BATCH];
    let mut src: [Option<P::Src>; BATCH] = [None; BATCH];
    let mut slot_of = [0usize; BATCH];
    let mut ctx = Ctx::new(listener, opts, counters);
    debug!(
        "loop started on {listener}, up to {BATCH} datagrams per system call{}",
        if pktinfo {
            ", replying from each datagram's destination address"
        } else {
            ""
        }
    );
    while !stop.load(Relaxed) {
        let mut lost_cmsg = false;
        let n = {
            let mut chunks = bufs.chunks_exact_mut(BUFFER_SIZE);
            let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
            let flags = MsgFlags::MSG_TRUNC | MsgFlags::MSG_WAITFORONE;
            match recvmmsg(fd, &mut recv_hdrs, iovs.iter_mut(), flags, None) {
                Ok(msgs) => {
                    let mut n = 0;
                    for (g, m) in got.iter_mut().zip(msgs) {
                        let dst = if pktinfo {
                            let d = m
                                .cmsgs()
                                .ok()
                                .and_then(|mut c| c.find_map(|c| P::reply_src(c)));
                            lost_cmsg |= d.is_none();
                            d
                        } else {
                            None
                        };
                        *g = (
                            m.bytes,
                            m.flags.contains(MsgFlags::MSG_TRUNC),
                            m.address,
                            dst,
                        );
                        n += 1;
                    }
                    n
                }
                Err(e) => {
                    ctx.recv_error(e)
                        .with_context(|| format!("on {listener}"))?;
                    continue;
                }
            }
        };
        if lost_cmsg {
            // The kernel shrinks a header's control length to what one
            // datagram used, and nix never restores it: start afresh so
            // the next datagrams in these slots carry their destination.
            // (Never seen: every datagram carries one. Not per datagram.)
            debug!("a datagram on {listener} came without its destination; resetting headers");
            recv_hdrs = MultiHeaders::<P>::preallocate(BATCH, cmsg_buf());
        }
        ctx.batch_start();
        // Decide on each datagram; the replies keep the arrival order.
        let mut replies = 0;
        for (i, &(len, truncated, peer, dst)) in got[..n].iter().enumerate() {
            let slot = &mut bufs[i * BUFFER_SIZE..(i + 1) * BUFFER_SIZE];
            let data = &mut slot[..len.min(BUFFER_SIZE)];
            if let Some(peer) = ctx.handle(data, len, truncated, peer) {
                to[replies] = Some(peer);
                src[replies] = dst;
                slot_of[replies] = i;
                replies += 1;
            }
        }
        let mut done = 0;
        while done < replies {
            // The run of replies that leave from the same address.
            let mut end = replies;
            if let Some(first) = &src[done] {
                end = done + 1;
                while end < replies && src[end].as_ref().is_some_and(|s| P::same_src(first, s)) {
                    end += 1;
                }
            }
            let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|j| {
                let k = (done + j).min(end - 1);
                let i = slot_of[k];
                [IoSlice::new(
                    &bufs[i * BUFFER_SIZE..i * BUFFER_SIZE + got[i].0],
                )]
            });
            let one;
            let (hdrs, cmsgs): (_, &[ControlMessage<'_>]) = match &src[done] {
                Some(s) => {
                    one = [P::src_cmsg(s)];
                    (&mut send_src_hdrs, &one)
                }
                None => (&mut send_hdrs, &[]),
            };
            let sent = sendmmsg(
                fd,
                hdrs,
                &iovs[..end - done],
                &to[done..end],
                cmsgs,
                MsgFlags::MSG_DONTWAIT,
            )
            .map(|r| r.count());
            done += ctx.account_sendmmsg(sent, to[done].as_ref());
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
            workers: 1,
            rate_limit: None,
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
            workers: 1,
            rate_limit: None,
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

    /// No reply reaches `c` (checked once a later datagram has been
    /// answered, which proves the earlier ones were handled).
    fn assert_no_reply(c: &UdpSocket) {
        c.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 8];
        let err = c.recv(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock, "no reply");
        c.set_nonblocking(false).unwrap();
    }

    #[test]
    fn loop_guard_refuses_own_ports() {
        // Two sockets; a datagram from either one's port (at another
        // address, as another dgecho on another host would send it) is
        // refused by both, even with --guard-ports none.
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (pa, pb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let listeners = vec![
            Listener::from_udp(a, "a").unwrap(),
            Listener::from_udp(b, "b").unwrap(),
        ];
        let server = Server::start(listeners, &Options::default()).unwrap();
        let Ok(twin_a) = UdpSocket::bind(("127.0.0.2", pa.port())) else {
            eprintln!("skipped: 127.0.0.2:{} is taken", pa.port());
            return;
        };
        let Ok(twin_b) = UdpSocket::bind(("127.0.0.2", pb.port())) else {
            eprintln!("skipped: 127.0.0.2:{} is taken", pb.port());
            return;
        };
        twin_a.send_to(b"loop?", pb).unwrap();
        twin_b.send_to(b"loop?", pa).unwrap();
        let other = client();
        let mut buf = [0u8; 8];
        other.send_to(b"ok", pa).unwrap();
        assert_eq!(other.recv(&mut buf).unwrap(), 2);
        other.send_to(b"ok", pb).unwrap();
        assert_eq!(other.recv(&mut buf).unwrap(), 2);
        assert_no_reply(&twin_a);
        assert_no_reply(&twin_b);
        let (stats, result) = server.stop();
        result.unwrap();
        assert_eq!((stats.received, stats.guarded), (4, 2));
    }

    #[test]
    fn rate_limit_drops_and_counts() {
        let (server, addr) = udp_server(Options {
            rate_limit: Some(Rate {
                per_sec: 0.01,
                burst: 3,
            }),
            ..Options::default()
        });
        let c = client();
        for i in 0..10u8 {
            c.send_to(&[i], addr).unwrap();
        }
        let mut buf = [0u8; 8];
        for i in 0..3u8 {
            assert_eq!(c.recv(&mut buf).unwrap(), 1);
            assert_eq!(buf[0], i, "the burst is the first datagrams");
        }
        // Another source has its own bucket; its reply proves the ten
        // were handled.
        let other = UdpSocket::bind("127.0.0.2:0").unwrap();
        other
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        other.send_to(b"ok", addr).unwrap();
        assert_eq!(other.recv(&mut buf).unwrap(), 2);
        assert_no_reply(&c);
        let (stats, result) = server.stop();
        result.unwrap();
        assert_eq!(
            (stats.received, stats.answered, stats.rate_limited),
            (11, 4, 7)
        );
        assert_eq!(stats.dropped(), 7);
    }

    #[test]
    fn rate_limit_is_shared_by_workers() {
        // 3 workers, burst 6: each allows 2, so never more than 6 in all.
        let (server, addr) = udp_server(Options {
            workers: 3,
            rate_limit: Some(Rate {
                per_sec: 0.01,
                burst: 6,
            }),
            ..Options::default()
        });
        let c = client();
        for i in 0..30u8 {
            c.send_to(&[i], addr).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.stats().received < 30 {
            assert!(Instant::now() < deadline, "{:?}", server.stats());
            std::thread::park_timeout(Duration::from_millis(5));
        }
        let (stats, _) = server.stop();
        assert!(stats.answered <= 6, "{stats:?}");
        assert_eq!(stats.answered + stats.rate_limited, 30);
    }

    /// A socket bound to 0.0.0.0 replies from the address each request
    /// was sent to: a connected client, which drops datagrams from any
    /// other address, gets its reply. (tests/netns.rs does the same with
    /// two addresses on an interface, for IPv4 and IPv6.)
    #[test]
    fn wildcard_socket_replies_from_the_destination() {
        for (bind, dsts) in [
            ("0.0.0.0:0", &["127.0.0.1", "127.0.0.2", "127.0.0.3"][..]),
            (
                "[::]:0",
                &["::1", "::ffff:127.0.0.2", "::ffff:127.0.0.3"][..],
            ),
        ] {
            let Ok(sock) = UdpSocket::bind(bind) else {
                eprintln!("skipped {bind}: cannot bind");
                continue;
            };
            let port = sock.local_addr().unwrap().port();
            let listener = Listener::from_udp(sock, "any").unwrap();
            let server = Server::start(vec![listener], &Options::default()).unwrap();
            for (i, dst) in dsts.iter().enumerate() {
                let ip: std::net::IpAddr = dst.parse().unwrap();
                let to = std::net::SocketAddr::new(ip, port);
                let local = if ip.is_ipv4() {
                    "127.0.0.1:0"
                } else {
                    "[::]:0"
                };
                let c = UdpSocket::bind(local).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                c.connect(to).unwrap();
                // Several at once, so they share a batch too.
                for _ in 0..3 {
                    c.send(&[i as u8, 9]).unwrap();
                }
                let mut buf = [0u8; 8];
                for _ in 0..3 {
                    let n = c.recv(&mut buf).unwrap_or_else(|e| {
                        panic!("no reply from {to} on a socket bound to {bind}: {e}")
                    });
                    assert_eq!(&buf[..n], &[9, i as u8]);
                }
            }
            let (stats, result) = server.stop();
            result.unwrap();
            assert_eq!(stats.answered, 3 * dsts.len() as u64, "{bind}");
        }
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
    fn a_burst_is_answered_whole_and_in_order() {
        // More datagrams than one batch, queued before the loop reads them,
        // with a jumbo one in the middle: every reply arrives, in order.
        let (server, addr) = udp_server(Options::default());
        let c = client();
        let big = vec![7u8; 65507];
        for i in 0..(3 * BATCH as u32) {
            if i == BATCH as u32 {
                c.send_to(&big, addr).unwrap();
            }
            c.send_to(&i.to_be_bytes(), addr).unwrap();
        }
        let mut buf = vec![0u8; 65536];
        for i in 0..(3 * BATCH as u32) {
            if i == BATCH as u32 {
                assert_eq!(c.recv(&mut buf).unwrap(), 65507);
            }
            let n = c.recv(&mut buf).unwrap();
            let mut want = i.to_be_bytes();
            want.reverse();
            assert_eq!(&buf[..n], &want, "reply {i} in order");
        }
        assert_eq!(server.stop().0.answered, 3 * BATCH as u64 + 1);
    }

    #[test]
    fn workers_share_a_socket() {
        let (server, addr) = udp_server(Options {
            workers: 3,
            ..Options::default()
        });
        assert_eq!(server.heartbeats().len(), 3);
        let c = client();
        let mut buf = [0u8; 16];
        for i in 0..50u8 {
            c.send_to(&[i, 1], addr).unwrap();
            assert_eq!(c.recv(&mut buf).unwrap(), 2);
            assert_eq!(&buf[..2], &[1, i]);
        }
        let (stats, result) = server.stop();
        result.unwrap();
        assert_eq!(stats.answered, 50);
    }

    fn autobound_unix() -> std::os::unix::net::UnixDatagram {
        let fd = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        nix::sys::socket::bind(fd.as_raw_fd(), &UnixAddr::new_unnamed()).unwrap();
        let s = std::os::unix::net::UnixDatagram::from(fd);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// Unix clients whose addresses differ in length (autobind, short and
    /// long abstract names, short and long paths) and an unbound sender,
    /// interleaved in bursts: each client gets its own reply, in order.
    /// The first burst is queued before the loop starts, so it is one
    /// batch; later bursts put long addresses where short ones were. A
    /// receive buffer whose address length is not reset between calls
    /// (nix 0.32's `recvmmsg`) truncates a long address after a short one,
    /// and its reply goes astray: this test then fails.
    #[test]
    fn unix_clients_of_every_address_length_each_get_their_replies() {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let server_sock = autobound_unix();
        let addr = server_sock.local_addr().unwrap();
        let dir = std::env::temp_dir().join(format!("dgecho-ut-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bind = |a: SocketAddr| {
            let s = UnixDatagram::bind_addr(&a).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        };
        let abstract_name = |i: usize, len: usize| {
            let mut n = format!("dgecho-ut-{}-{i}-", std::process::id()).into_bytes();
            n.resize(len, b'x');
            bind(SocketAddr::from_abstract_name(&n).unwrap())
        };
        let path = |i: usize, len: usize| {
            let mut p = dir
                .join(format!("{i}-"))
                .into_os_string()
                .into_string()
                .unwrap();
            while p.len() < len {
                p.push('p');
            }
            bind(SocketAddr::from_pathname(&p).unwrap())
        };
        // Short and long alternate; 107 bytes is the longest abstract name.
        let clients = [
            autobound_unix(),
            abstract_name(1, 107),
            path(2, 20),
            abstract_name(3, 30),
            autobound_unix(),
            path(5, 100),
            abstract_name(6, 20),
            path(7, 60),
        ];
        let unbound = UnixDatagram::unbound().unwrap();
        let payload = |i: usize, round: usize| format!("client {i} round {round}").into_bytes();
        // Fewer than net.unix.max_dgram_qlen (10) datagrams, so the burst
        // queues without a reader.
        let send_burst = |round: usize, order: &mut dyn Iterator<Item = usize>| {
            for i in order {
                clients[i].send_to_addr(&payload(i, round), &addr).unwrap();
                if i == 4 {
                    unbound.send_to_addr(b"nobody", &addr).unwrap();
                }
            }
        };
        let check_replies = |round: usize| {
            for (i, c) in clients.iter().enumerate() {
                let mut buf = [0u8; 64];
                let (n, from) = c
                    .recv_from(&mut buf)
                    .unwrap_or_else(|e| panic!("client {i}, round {round}: no reply: {e}"));
                let mut want = payload(i, round);
                want.reverse();
                assert_eq!(&buf[..n], &want[..], "client {i}, round {round}");
                assert_eq!(from.as_abstract_name(), addr.as_abstract_name());
            }
        };
        send_burst(0, &mut (0..clients.len()));
        let server = Server::start(
            vec![Listener::from_unix(server_sock, "test")],
            &Options::default(),
        )
        .unwrap();
        check_replies(0);
        for round in 1..4 {
            // Longest addresses first, then rotated.
            let mut order = (0..clients.len())
                .rev()
                .map(|i| (i + round) % clients.len());
            send_burst(round, &mut order);
            check_replies(round);
        }
        let (stats, result) = server.stop();
        let _ = std::fs::remove_dir_all(&dir);
        result.unwrap();
        assert_eq!(stats.answered, 4 * clients.len() as u64);
        assert_eq!(stats.unbound, 4);
        assert_eq!(stats.dropped(), 4);
    }

    /// Replies a client has not read yet are charged to the daemon's send
    /// buffer: with the kernel's default, one client that leaves five
    /// full-size replies unread made every other client's reply fail with
    /// EAGAIN (found by the datagram fuzz target; tests/abuse.rs has the
    /// 1,000-client case).
    #[test]
    fn unread_unix_replies_do_not_starve_other_clients() {
        let sock = autobound_unix();
        let addr = sock.local_addr().unwrap();
        let server =
            Server::start(vec![Listener::from_unix(sock, "test")], &Options::default()).unwrap();
        let hog = autobound_unix();
        let big = vec![7u8; 65_000];
        for _ in 0..5 {
            hog.send_to_addr(&big, &addr).unwrap();
        }
        let good = autobound_unix();
        let mut buf = [0u8; 16];
        for _ in 0..3 {
            good.send_to_addr(b"ping", &addr).unwrap();
            let n = good.recv(&mut buf).expect("the good client is answered");
            assert_eq!(&buf[..n], b"gnip");
        }
        // The hog's replies were all sent too, and are still queued.
        for _ in 0..5 {
            let mut b = vec![0u8; 65_536];
            assert_eq!(hog.recv(&mut b).unwrap(), 65_000);
        }
        let (stats, result) = server.stop();
        result.unwrap();
        assert_eq!((stats.answered, stats.send_failed), (8, 0));
    }

    #[test]
    fn verdicts() {
        let peer: SockaddrIn = "127.0.0.1:4000"
            .parse::<std::net::SocketAddrV4>()
            .unwrap()
            .into();
        assert_eq!(verdict(5, false, Some(&peer), &[7]), Verdict::Reply);
        assert_eq!(verdict(5, true, Some(&peer), &[7]), Verdict::Truncated);
        assert_eq!(
            verdict(5, false, Some(&peer), &[4000]),
            Verdict::Guarded(4000)
        );
        assert_eq!(verdict::<SockaddrIn>(5, false, None, &[]), Verdict::Unbound);
        let unnamed = UnixAddr::new_unnamed();
        assert_eq!(verdict(5, false, Some(&unnamed), &[]), Verdict::Unbound);
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
            "received 5, answered 3, dropped 2 (unbound sender 1, too large 0, loop guard 1, rate limited 0, send failed 0)"
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
