//! One worker's state and bookkeeping, shared by both loops: the decision
//! for each datagram and everything that follows from its verdict
//! (counters, reports, the reply's content).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use anyhow::{Context, Result};
use log::{Level, log_enabled, trace};
use nix::errno::Errno;

use super::policy::{Bucket, Datagram, Peer, Policy, Verdict, decide};
use super::reason::Reason;
use super::report::{Preview, Reports};
use super::stats::{Counters, Stats};
use crate::listener::{Family, Listener};
use crate::ratelimit::Limiter;

/// What one worker serves, and with what.
pub(super) struct Job<'a> {
    pub listener: &'a Listener,
    pub policy: &'a Policy,
    pub counters: &'a Counters,
    /// Set by [`Server::stop`](super::Server::stop).
    pub stop: &'a AtomicBool,
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
}

impl<'a> Worker<'a> {
    pub fn new(job: &Job<'a>) -> Worker<'a> {
        let Job {
            listener,
            policy,
            counters,
            ..
        } = *job;
        let rate = policy.rate.filter(|_| listener.family() != Family::Unix);
        Worker {
            listener,
            policy,
            limiter: rate.map(Limiter::new),
            now: 0,
            counters,
            local: Stats::default(),
            ticks: 0,
            reports: Reports::default(),
        }
    }

    /// Reads the clock for a new batch, when the rate limit needs it.
    pub fn batch_start(&mut self) {
        if let Some(l) = &self.limiter {
            self.now = l.now();
        }
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
    /// `data` into the reply and returns the peer to send it to.
    pub fn handle<P: Peer>(&mut self, data: &mut [u8], d: Datagram, peer: Option<P>) -> Option<P> {
        self.local.received += 1;
        self.counters.publish_received(&self.local);
        let bucket = self.limiter.as_mut().map(|limiter| Bucket {
            limiter,
            now: self.now,
        });
        match decide(d, peer.as_ref(), &self.policy.guard, bucket) {
            Verdict::Answer => {}
            Verdict::Drop(reason) => {
                self.dropped(reason);
                self.reports
                    .dropped(reason, d.len, peer.as_ref(), self.listener, self.policy);
                return None;
            }
        }
        let peer = peer?;
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
        Some(peer)
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
