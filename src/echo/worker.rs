//! One worker's state and bookkeeping, shared by both loops: the decision
//! for each datagram and everything that follows from its verdict
//! (counters, reports, the reply's content).

use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

use anyhow::{Context, Result};
use log::{Level, log_enabled, trace};
use nix::errno::Errno;

use nix::sys::socket::{getsockopt, sockopt};

use super::creds::{self, Countdown, UNATTRIBUTED};
use super::policy::{Bucket, Checks, Datagram, Peer, Policy, Share, Verdict, decide};
use super::reason::Reason;
use super::report::{Preview, Reports};
use super::stats::{Counters, Stats};
use super::unread::{self, Ledger};
use crate::listener::{Family, Listener};
use crate::ratelimit::Limiter;

/// What one worker serves, and with what.
pub(super) struct Job<'a> {
    pub listener: &'a Listener,
    pub policy: &'a Policy,
    pub counters: &'a Counters,
    /// Set by [`Server::stop`](super::Server::stop).
    pub stop: &'a AtomicBool,
    /// The socket's kernel drop count already counted, shared by the
    /// socket's workers (each sees the same running total).
    pub kernel_dropped: &'a AtomicU32,
    /// The control-message room one datagram needs.
    pub cmsg_len: usize,
    /// How many workers serve the socket, this one included.
    pub workers: usize,
}

impl Job<'_> {
    /// False once the server is stopping.
    pub fn running(&self) -> bool {
        !self.stop.load(Relaxed)
    }
}

/// One worker's view of its socket: the policy, its counters (a plain
/// local copy, published with relaxed stores) and its report throttles.
pub(super) struct Worker<'a> {
    pub listener: &'a Listener,
    policy: &'a Policy,
    /// The source table of `--rate-limit`, on UDP sockets.
    limiter: Option<Limiter>,
    /// The limiter's time for the current batch: one clock read per batch.
    now: u64,
    counters: &'a Counters,
    local: Stats,
    ticks: u64,
    reports: Reports,
    /// Unread replies per user, on Unix sockets ([`super::unread`]).
    ledger: Option<Ledger>,
    /// The ledger was reconciled in this batch: at most one `SIOCOUTQ`
    /// per batch.
    reconciled: bool,
    /// What this batch's answered datagrams charged: their replies go out
    /// when the batch ends, so `SIOCOUTQ` cannot see them yet.
    pending: u64,
    /// When to next read `SIOCOUTQ` and settle the socket's credentials
    /// ([`super::creds`]).
    countdown: Countdown,
    /// The socket's whole send buffer, as the kernel counts it.
    send_buffer: u64,
    /// Receive without control buffers: a Unix socket that passes no
    /// credentials has no control messages to give, and the kernel's
    /// receive is shorter without a buffer for them.
    no_control: bool,
    kernel_dropped: &'a AtomicU32,
    /// The last kernel drop total this worker saw.
    kernel_seen: u32,
    /// The socket's workers: this one's part of the send buffer is
    /// 1/`parts` of it.
    parts: u64,
}

impl<'a> Worker<'a> {
    pub fn new(job: &Job<'a>) -> Worker<'a> {
        let Job {
            listener,
            policy,
            counters,
            kernel_dropped,
            workers,
            cmsg_len,
            ..
        } = *job;
        let rate = policy.rate.filter(|_| listener.family() != Family::Unix);
        // Each of a socket's workers keeps its own ledger (no lock on the
        // hot path) over an equal part of the send buffer, and takes the
        // same part of the real total when it reconciles: so one user's
        // unread replies stay within half of the buffer however many
        // workers answer them. With one ledger per worker over the whole
        // buffer, a user's replies spread over N workers could fill it.
        let parts = workers.max(1) as u64;
        // No control-message room on a Unix socket: it cannot pass
        // credentials, and the share cannot tell users apart.
        let unix = listener.family() == Family::Unix && cmsg_len > 0;
        let send_buffer = getsockopt(listener, sockopt::SndBuf).unwrap_or(0) as u64;
        let ledger = unix.then(|| Ledger::new(send_buffer / parts));
        Worker {
            listener,
            policy,
            limiter: rate.map(Limiter::new),
            now: 0,
            counters,
            local: Stats::default(),
            ticks: 0,
            reports: Reports::default(),
            ledger,
            reconciled: false,
            pending: 0,
            countdown: Countdown::new(send_buffer / parts),
            send_buffer,
            // Credentials start off (see `creds`).
            no_control: unix,
            kernel_dropped,
            kernel_seen: 0,
            parts,
        }
    }

    /// Whether the next receive needs control buffers.
    pub fn control(&self) -> bool {
        !self.no_control
    }

    /// A datagram's control messages found no room: the socket passes
    /// credentials again (another worker turned them on), so receive with
    /// room for them from the next batch on.
    pub fn control_cut(&mut self) {
        self.no_control = false;
    }

    /// Reads the clock for a new batch, when the rate limit needs it.
    pub fn batch_start(&mut self) {
        if let Some(l) = &self.limiter {
            self.now = l.now();
        }
        self.reconciled = false;
        self.pending = 0;
    }

    /// The socket's running total of datagrams the kernel dropped: counts
    /// the new ones as received and dropped. Only a change costs an atomic
    /// operation, which keeps workers sharing a socket from counting twice.
    pub fn kernel_dropped(&mut self, total: u32) {
        if total == self.kernel_seen {
            return;
        }
        self.kernel_seen = total;
        let before = self.kernel_dropped.fetch_max(total, Relaxed);
        let new = u64::from(total.saturating_sub(before));
        for _ in 0..new.min(1 << 20) {
            self.local.drop_one(Reason::KernelDropped);
        }
        self.local.received += new;
        self.counters.publish_received(&self.local);
        self.counters
            .publish_dropped(&self.local, Reason::KernelDropped);
    }

    /// A receive error: fatal for the socket, or reported and skipped.
    pub fn recv_error(&mut self, e: Errno) -> Result<()> {
        match e {
            Errno::EAGAIN => {
                self.ticks += 1;
                self.counters.ticks.store(self.ticks, Relaxed);
            }
            Errno::EINTR => {}
            Errno::EBADF | Errno::ENOTSOCK | Errno::EINVAL | Errno::EFAULT => {
                return Err(e).context("receiving failed");
            }
            // Anything else (ENOMEM, a pending ICMP error) belongs to one
            // datagram or peer, never to the socket: keep going.
            _ => self.reports.recv_failed(e, self.listener),
        }
        Ok(())
    }

    /// Counts one received datagram and decides. On an answer, turns
    /// `data` into the reply and returns true: the reply goes to `peer`.
    /// The peer is borrowed, not moved: it is read once, in place, into the
    /// batch's reply queue (a Unix address is 110 bytes).
    pub fn handle<P: Peer>(&mut self, data: &mut [u8], d: Datagram, peer: Option<&P>) -> bool {
        self.local.received += 1;
        self.counters.publish_received(&self.local);
        let cost = unread::cost(d.len);
        // While the socket passes no credentials, every reply is charged
        // to the unattributed account ([`super::creds`]).
        let uid = self.ledger.is_some().then(|| d.uid.unwrap_or(UNATTRIBUTED));
        if let Some(uid) = uid {
            self.reconcile_if_short(uid, cost);
        }
        let checks = Checks {
            guard: &self.policy.guard,
            bucket: match &mut self.limiter {
                Some(_) if self.policy.spare_loopback && peer.is_some_and(|p| p.is_loopback()) => {
                    None
                }
                Some(limiter) => Some(Bucket {
                    limiter,
                    now: self.now,
                }),
                None => None,
            },
            share: match (&self.ledger, uid) {
                (Some(ledger), Some(uid)) => Some(Share { ledger, uid, cost }),
                _ => None,
            },
        };
        match decide(d, peer, checks) {
            Verdict::Answer => {
                if let (Some(ledger), Some(uid)) = (&mut self.ledger, uid) {
                    ledger.charge(uid, cost);
                    self.pending += cost;
                    if self.countdown.due(cost) {
                        self.check_unread();
                    }
                }
            }
            Verdict::Drop(reason) => {
                self.dropped(reason);
                self.reports
                    .dropped(reason, d.len, peer, self.listener, self.policy);
                return false;
            }
        }
        let Some(peer) = peer else {
            return false;
        };
        if log_enabled!(Level::Trace) {
            trace!(
                "got {} bytes {} from {} on {}",
                d.len,
                Preview(data),
                peer.describe(),
                self.listener
            );
        }
        if self.policy.reverse {
            data.reverse();
        }
        true
    }

    /// When a reply to `uid` would not fit its share by the estimate, reads
    /// the real total of unread bytes (once per batch) and reconciles; a
    /// refusal is also when credentials matter most.
    fn reconcile_if_short(&mut self, uid: u32, cost: u64) {
        let Some(ledger) = &self.ledger else {
            return;
        };
        if !self.reconciled && !ledger.allows(uid, cost) {
            self.check_unread();
        }
    }

    /// Reads the real total of unread bytes, reconciles the ledger with
    /// it, and turns the socket's credentials on or off to suit.
    fn check_unread(&mut self) {
        let Some(ledger) = &mut self.ledger else {
            return;
        };
        let Ok(outq) = unread::outq(self.listener.as_fd().as_raw_fd()) else {
            return;
        };
        // The replies this batch has allowed are not sent yet: without
        // them, the real total would credit them as read, and the share
        // would let the whole batch through.
        ledger.reconcile(outq / self.parts + self.pending);
        self.reconciled = true;
        if let Some(on) = creds::settle(self.listener, outq, self.send_buffer) {
            self.no_control = !on;
        }
    }

    fn dropped(&mut self, reason: Reason) {
        self.local.drop_one(reason);
        self.counters.publish_dropped(&self.local, reason);
    }

    /// Counts `n` replies sent.
    pub fn sent(&mut self, n: usize) {
        self.local.answered += n as u64;
        self.counters.publish_answered(&self.local);
    }

    /// Counts and reports a reply the kernel refused.
    pub fn send_failed<P: Peer>(&mut self, e: Errno, peer: &P) {
        self.dropped(Reason::SendFailed);
        self.reports.send_failed(e, peer, self.listener);
    }
}
