//! UDP segmentation offload (GSO) for runs of replies.
//!
//! When consecutive replies in a batch go to the same peer, from the same
//! source, with the same size, they leave as one `sendmsg` carrying
//! `UDP_SEGMENT`: the kernel's stack runs once for the whole run and cuts
//! it into datagrams of that size at the end, instead of once per reply. A
//! ping-pong client never makes a run; a client with many requests in
//! flight makes long ones.
//!
//! Where the kernel or the route refuses (`EIO`: no checksum offload on
//! the device; `EINVAL`: segments larger than the path allows), the size
//! is remembered per worker as the limit for later runs, and the run is
//! sent again the ordinary way: no reply is lost.

use nix::errno::Errno;

use super::policy::Peer;
use super::send::Source;
use super::slots::Replies;

/// The most segments one send may carry (`UDP_MAX_SEGMENTS` is 64 on the
/// kernels that dgecho supports; newer ones allow 128).
pub(super) const MAX_SEGMENTS: usize = 64;

/// The most bytes one GSO send may carry: one UDP datagram's payload.
pub(super) const MAX_BYTES: usize = 65_507;

/// Per worker: whether GSO is on, and the largest segment size the kernel
/// and route have not refused.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gso {
    /// The largest segment size still worth trying; 0 turns GSO off.
    limit: usize,
}

impl Gso {
    pub fn new(on: bool) -> Gso {
        Gso {
            limit: if on { MAX_BYTES } else { 0 },
        }
    }

    /// The end of the GSO run that starts at `from` (at most `to`): the
    /// replies that go to the same peer, from the same source, with the
    /// same non-zero size within the limit. A run of one is no run.
    pub fn run_end<P: Peer + PartialEq, S: Source>(
        &self,
        replies: &Replies<P, S>,
        from: usize,
        to: usize,
    ) -> usize {
        let size = replies.len[from];
        if size == 0 || size > self.limit {
            return from + 1;
        }
        let max = (MAX_BYTES / size).min(MAX_SEGMENTS);
        let mut end = from + 1;
        while end < to
            && end - from < max
            && replies.len[end] == size
            && replies.to[end] == replies.to[from]
            && same_src(&replies.src[end], &replies.src[from])
        {
            end += 1;
        }
        end
    }

    /// Learns from a refused GSO send of `size`-byte segments: whether the
    /// run must be sent again without GSO.
    pub fn refused(&mut self, size: usize, e: Errno) -> bool {
        match e {
            Errno::EIO | Errno::EINVAL | Errno::EOPNOTSUPP | Errno::ENOPROTOOPT => {
                self.limit = self.limit.min(size.saturating_sub(1));
                true
            }
            _ => false,
        }
    }
}

fn same_src<S: Source>(a: &Option<S>, b: &Option<S>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.same(b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::send::NoSource;
    use nix::sys::socket::SockaddrIn;

    fn peer(s: &str) -> SockaddrIn {
        s.parse::<std::net::SocketAddrV4>().unwrap().into()
    }

    fn replies(list: &[(&str, usize)]) -> Replies<SockaddrIn, NoSource> {
        let mut r = Replies::new();
        for (i, &(p, len)) in list.iter().enumerate() {
            r.push(peer(p), None, i, len);
        }
        r
    }

    #[test]
    fn runs_break_on_peer_size_and_limits() {
        let a = "127.0.0.1:1000";
        let b = "127.0.0.1:1001";
        let r = replies(&[
            (a, 64),
            (a, 64),
            (a, 64),
            (a, 32),
            (b, 32),
            (b, 32),
            (b, 0),
            (b, 0),
        ]);
        let g = Gso::new(true);
        assert_eq!(g.run_end(&r, 0, r.n), 3, "a size change ends a run");
        assert_eq!(g.run_end(&r, 3, r.n), 4, "a peer change ends a run");
        assert_eq!(g.run_end(&r, 4, r.n), 6);
        assert_eq!(g.run_end(&r, 6, r.n), 7, "empty replies never use GSO");
        assert_eq!(g.run_end(&r, 0, 2), 2, "never past the span");
        let off = Gso::new(false);
        assert_eq!(off.run_end(&r, 0, r.n), 1);
        // Large segments: at most what one datagram holds.
        let big = replies(&[(a, 40_000), (a, 40_000), (a, 40_000)]);
        assert_eq!(g.run_end(&big, 0, big.n), 1);
        let mid = replies(&[(a, 30_000), (a, 30_000), (a, 30_000)]);
        assert_eq!(g.run_end(&mid, 0, mid.n), 2);
    }

    #[test]
    fn a_refusal_lowers_the_limit() {
        let a = "127.0.0.1:1000";
        let r = replies(&[(a, 1400), (a, 1400), (a, 100), (a, 100)]);
        let mut g = Gso::new(true);
        assert!(g.refused(1400, Errno::EINVAL));
        assert_eq!(g.run_end(&r, 0, r.n), 1, "1400 is not tried again");
        assert_eq!(g.run_end(&r, 2, r.n), 4, "smaller segments still are");
        assert!(
            !g.refused(100, Errno::EAGAIN),
            "EAGAIN is the peer's, not GSO's"
        );
        assert_eq!(g.run_end(&r, 2, r.n), 4);
    }
}
