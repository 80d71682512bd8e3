//! The one loop, for every transport: `recvmmsg` takes up to [`BATCH`]
//! datagrams (blocking for the first only, so a lone datagram is answered
//! at once), each goes through the worker's decision, and the replies go
//! out together, in the order received.
//!
//! # Adaptive batching
//! A batch call that finds one datagram still costs a second, empty
//! attempt in the kernel and the set-up of every slot: that is why a plain
//! `recvfrom` loop answers a lone datagram faster. So after a batch of
//! one, the loop asks for one datagram at a time, and every
//! [`PROBE_EVERY`]th call asks for a whole batch again, to notice a
//! backlog; a batch that brings more than one keeps it batching.
//!
//! # Large datagrams
//! Every slot must hold the largest datagram, so [`BATCH`] slots of 64 KiB
//! would all stay resident once large datagrams had filled them. A large
//! datagram (over [`SMALL`] bytes) makes the loop ask for at most
//! [`LARGE_BATCH`] at a time for the next [`LARGE_HOLD`] calls; and when
//! one lands in a slot past those (a batch of small ones turning large),
//! the pages it touched past the slot's first [`SMALL`] bytes are given
//! back to the kernel once its replies are out. Small datagrams touch only
//! those first pages, which stay: they would fault in again, zeroed, at
//! the next full batch.

use std::os::fd::{AsFd, AsRawFd};

use anyhow::{Context, Result};
use log::debug;
use nix::sys::socket::MsgFlags;

use super::mmsg::RecvBatch;
use super::policy::Datagram;
use super::send::{Sender, send_replies};
use super::slots::{Replies, Slots};
use super::transport::Transport;
use super::worker::{Job, Worker};
use crate::defaults::{BATCH, LARGE_BATCH, SMALL};

// One bit per slot in a batch's set of slots with large datagrams.
const _: () = assert!(BATCH <= 64);

/// Serves the job's socket until the server stops or the socket fails.
pub(super) fn serve<T: Transport>(job: &Job<'_>) -> Result<()> {
    let listener = job.listener;
    let fd = listener.as_fd().as_raw_fd();
    let mut slots = Slots::new();
    let mut batch = RecvBatch::new(job.cmsg_len);
    let mut sender = Sender::<T::Peer>::new(T::src_space(), T::GSO && job.policy.gso);
    let mut replies = Replies::<T::Peer, T::Src>::new();
    let mut w = Worker::new(job);
    let mut pace = Pace::new(slots.page());
    debug!(
        "loop started on {listener}, up to {} datagrams per system call",
        pace.most
    );
    while job.running() {
        let n = match batch.recv(fd, &mut slots, pace.want(), MsgFlags::empty(), w.control()) {
            Ok(n) => n,
            Err(e) => {
                w.recv_error(e).with_context(|| format!("on {listener}"))?;
                continue;
            }
        };
        w.batch_start();
        // The slots that took a large datagram, one bit each.
        let mut large = 0u64;
        for i in 0..n {
            if batch.control_cut(i) {
                w.control_cut();
            }
            let meta = T::meta(batch.cmsgs(i));
            if let Some(total) = meta.dropped {
                w.kernel_dropped(total);
            }
            let d = Datagram {
                len: batch.len(i),
                truncated: batch.truncated(i),
                to_group: meta.to_group,
                uid: meta.uid,
            };
            if d.len > SMALL {
                large |= 1 << i;
            }
            let peer = replies.next_peer();
            *peer = batch.addr::<T::Peer>(i);
            if w.handle(slots.data_mut(i, d.len), d, peer.as_ref()) {
                replies.commit(meta.src, i, d.len);
            }
        }
        send_replies(fd, &mut sender, &slots, &replies, &mut w);
        replies.clear();
        pace.got(n, large != 0);
        slots.release_large(large);
    }
    debug!("loop stopped on {listener}");
    Ok(())
}

/// How often a loop that receives one datagram at a time asks for a whole
/// batch, to notice a backlog.
pub(super) const PROBE_EVERY: u32 = 8;

/// For how many calls after a large datagram the loop asks for at most
/// [`LARGE_BATCH`] (see "Large datagrams").
pub(super) const LARGE_HOLD: u32 = 64;

/// How many datagrams to ask for next (see "Adaptive batching" and "Large
/// datagrams").
#[derive(Debug)]
struct Pace {
    /// Receiving one at a time, and how many calls since the last probe.
    single: Option<u32>,
    /// Calls left at [`LARGE_BATCH`].
    large: u32,
    /// The most per call: [`BATCH`], or [`LARGE_BATCH`] where a page is
    /// larger than [`SMALL`] (64 KiB pages on some ppc64el and arm64
    /// kernels): there a small datagram makes its whole slot resident, and
    /// 64 slots would keep 4 MiB.
    most: usize,
}

impl Pace {
    /// A pace for slots on pages of `page` bytes.
    fn new(page: usize) -> Pace {
        Pace {
            single: None,
            large: 0,
            most: if page <= SMALL { BATCH } else { LARGE_BATCH },
        }
    }

    fn want(&self) -> usize {
        match self.single {
            Some(n) if n < PROBE_EVERY => 1,
            _ if self.large > 0 => LARGE_BATCH,
            _ => self.most,
        }
    }

    /// A call brought `n` datagrams, some of them large or not.
    fn got(&mut self, n: usize, large: bool) {
        self.single = match (self.single, n) {
            (_, 2..) => None,
            (Some(k), _) if k < PROBE_EVERY => Some(k + 1),
            _ => Some(0),
        };
        self.large = if large {
            LARGE_HOLD
        } else {
            self.large.saturating_sub(1)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_goes_single_after_a_lone_datagram_and_probes() {
        let mut p = Pace::new(4096);
        assert_eq!(p.want(), BATCH);
        p.got(1, false);
        for _ in 0..PROBE_EVERY {
            assert_eq!(p.want(), 1);
            p.got(1, false);
        }
        assert_eq!(p.want(), BATCH, "a probe for a backlog");
        p.got(1, false);
        assert_eq!(p.want(), 1, "none: single again");
        for _ in 0..PROBE_EVERY {
            p.got(1, false);
        }
        assert_eq!(p.want(), BATCH);
        p.got(5, false);
        assert_eq!(p.want(), BATCH, "a backlog keeps it batching");
        p.got(16, false);
        assert_eq!(p.want(), BATCH);
    }

    #[test]
    fn pages_larger_than_a_small_datagram_keep_the_batch_small() {
        let mut p = Pace::new(65536);
        assert_eq!(p.want(), LARGE_BATCH);
        p.got(LARGE_BATCH, false);
        assert_eq!(p.want(), LARGE_BATCH);
        assert_eq!(Pace::new(16384).want(), LARGE_BATCH);
        assert_eq!(Pace::new(4096).want(), BATCH);
    }

    #[test]
    fn pace_asks_for_fewer_while_large_datagrams_arrive() {
        let mut p = Pace::new(4096);
        p.got(BATCH, false);
        assert_eq!(p.want(), BATCH);
        p.got(3, true);
        for _ in 0..LARGE_HOLD {
            assert_eq!(p.want(), LARGE_BATCH);
            p.got(LARGE_BATCH, false);
        }
        assert_eq!(p.want(), BATCH, "small again for long enough");
        p.got(5, true);
        p.got(LARGE_BATCH, false);
        p.got(4, true);
        for _ in 0..LARGE_HOLD {
            assert_eq!(p.want(), LARGE_BATCH, "each large one holds it again");
            p.got(2, false);
        }
        assert_eq!(p.want(), BATCH);
        // A lone datagram still goes single, large or not.
        p.got(1, true);
        assert_eq!(p.want(), 1);
    }
}
