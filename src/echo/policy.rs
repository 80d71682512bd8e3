//! The per-datagram decision: pure, with no system call, so that every
//! rule is unit-tested without sockets and both loops share it.
//!
//! [`decide`] turns what is known of one datagram (its length, its sender,
//! the socket's guard list, the sender's rate-limit bucket) into one
//! [`Verdict`]: answer, or drop for a [`Reason`]. The loops do the I/O
//! around it; the worker does the bookkeeping that follows from the
//! verdict. A new rule is one more check here and, if it drops, one more
//! [`Reason`].

use std::fmt;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};

use nix::sys::socket::{SockaddrIn, SockaddrIn6, SockaddrLike, UnixAddr};

use super::reason::Reason;
use super::unread::Ledger;
use crate::defaults::BUFFER_SIZE;
use crate::ratelimit::{self, Limiter, Rate};

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

/// What every worker of a server applies: the options, with the guard
/// extended by the server's own UDP ports.
#[derive(Debug, Clone)]
pub(super) struct Policy {
    pub reverse: bool,
    /// `--guard-ports` plus `own`.
    pub guard: Vec<u16>,
    /// The UDP ports of the server's own sockets.
    pub own: Vec<u16>,
    /// Each worker's share of the limit.
    pub rate: Option<Rate>,
    /// Loopback sources are not limited.
    pub spare_loopback: bool,
    /// UDP replies may leave in GSO runs.
    pub gso: bool,
}

impl Policy {
    /// BSD inetd's check_loop: a datagram from one of our own ports is most
    /// likely another dgecho (or echo service) on the same port of another
    /// host, and answering it would start an endless exchange; so our own
    /// ports join the guard list.
    pub fn new(
        reply: ReplyMode,
        guard_ports: &[u16],
        own: Vec<u16>,
        rate: Option<Rate>,
        spare_loopback: bool,
        gso: bool,
    ) -> Policy {
        let mut guard = guard_ports.to_vec();
        for &p in &own {
            if !guard.contains(&p) {
                guard.push(p);
            }
        }
        Policy {
            reverse: reply == ReplyMode::Reverse,
            guard,
            own,
            rate,
            spare_loopback,
            gso,
        }
    }
}

/// What the decision needs to know about a sender's address.
pub trait Peer: SockaddrLike + Copy + fmt::Display {
    /// The sender's IP address and port, for a UDP sender.
    fn inet(&self) -> Option<SocketAddr> {
        None
    }
    /// True for a Unix sender that never bound its socket: there is no
    /// address to reply to.
    fn is_unbound(&self) -> bool {
        false
    }
    /// The UDP source port, for the loop guard.
    fn port(&self) -> Option<u16> {
        self.inet().map(|a| a.port())
    }
    /// Whether the sender is on this host's loopback (127.0.0.0/8, ::1,
    /// or IPv4 loopback mapped into IPv6).
    fn is_loopback(&self) -> bool {
        self.inet().is_some_and(|a| match a.ip() {
            IpAddr::V4(ip) => ip.is_loopback(),
            IpAddr::V6(ip) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v| v.is_loopback())
            }
        })
    }
    /// The sender's address for a log line, with whatever a peer chose
    /// (its socket path) escaped.
    fn describe(&self) -> String {
        self.to_string()
    }
    /// The `--rate-limit` bucket of a UDP sender (see [`ratelimit`]).
    fn rate_key(&self) -> Option<u128> {
        self.inet().map(|a| match a.ip() {
            IpAddr::V4(ip) => ratelimit::key_v4(ip),
            IpAddr::V6(ip) => ratelimit::key_v6(ip),
        })
    }
}

impl Peer for UnixAddr {
    fn describe(&self) -> String {
        crate::listener::describe_unix(self)
    }
    fn is_unbound(&self) -> bool {
        // An unbound sender's address has no path bytes at all (the kernel
        // may report a length of 0). Check the length first: nix's
        // `is_unnamed` asserts that the family field is present.
        (SockaddrLike::len(self) as usize) <= std::mem::size_of::<nix::libc::sa_family_t>()
    }
}

impl Peer for SockaddrIn {
    fn inet(&self) -> Option<SocketAddr> {
        Some(SocketAddrV4::from(*self).into())
    }
}

impl Peer for SockaddrIn6 {
    fn inet(&self) -> Option<SocketAddr> {
        Some(SocketAddrV6::from(*self).into())
    }
}

/// One received datagram, as the kernel described it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// The datagram's real length (`MSG_TRUNC` reports it even when it did
    /// not fit).
    pub len: usize,
    /// The kernel cut it to fit the buffer.
    pub truncated: bool,
    /// It was sent to a broadcast or multicast address.
    pub to_group: bool,
    /// The sender's uid, where the socket tells it (Unix).
    pub uid: Option<u32>,
}

/// A worker's rate-limit state at the time of a datagram.
pub struct Bucket<'a> {
    pub limiter: &'a mut Limiter,
    /// The limiter's clock for the current batch.
    pub now: u64,
}

/// A user's share of the send buffer, for a reply of `cost` bytes to
/// `uid` (see [`Ledger`]).
pub struct Share<'a> {
    pub ledger: &'a Ledger,
    pub uid: u32,
    pub cost: u64,
}

/// The state the checks consult besides the datagram itself.
#[derive(Default)]
pub struct Checks<'a> {
    /// UDP source ports never answered (with the server's own).
    pub guard: &'a [u16],
    /// The sender's rate-limit bucket, where a limit applies.
    pub bucket: Option<Bucket<'a>>,
    /// The sender's user's share of unread replies, where known.
    pub share: Option<Share<'a>>,
}

/// The outcome for one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Answer,
    Drop(Reason),
}

/// Decides what to do with one datagram. The checks run in this order,
/// and the first that fails names the reason: a sender to reply to, a size
/// that fit, a unicast destination, a source port off the guard list, a
/// token in the sender's bucket, room in its user's share of the send
/// buffer. The bucket comes late so that only datagrams that would
/// otherwise be answered spend a token.
pub fn decide<P: Peer>(d: Datagram, peer: Option<&P>, checks: Checks<'_>) -> Verdict {
    let Some(peer) = peer.filter(|p| !p.is_unbound()) else {
        return Verdict::Drop(Reason::Unbound);
    };
    if d.truncated || d.len > BUFFER_SIZE {
        return Verdict::Drop(Reason::TooLarge);
    }
    if d.to_group {
        return Verdict::Drop(Reason::Broadcast);
    }
    if peer.port().is_some_and(|p| checks.guard.contains(&p)) {
        return Verdict::Drop(Reason::LoopGuard);
    }
    if let (Some(b), Some(key)) = (checks.bucket, peer.rate_key()) {
        if !b.limiter.allow(key, b.now) {
            return Verdict::Drop(Reason::RateLimited);
        }
    }
    if let Some(s) = checks.share {
        if !s.ledger.allows(s.uid, s.cost) {
            return Verdict::Drop(Reason::Unread);
        }
    }
    Verdict::Answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> SockaddrIn {
        s.parse::<std::net::SocketAddrV4>().unwrap().into()
    }

    const OK: Datagram = Datagram {
        len: 5,
        truncated: false,
        to_group: false,
        uid: None,
    };

    fn guard(ports: &[u16]) -> Checks<'_> {
        Checks {
            guard: ports,
            ..Checks::default()
        }
    }

    #[test]
    fn answers_a_plain_datagram() {
        assert_eq!(
            decide(OK, Some(&v4("127.0.0.1:4000")), guard(&[7])),
            Verdict::Answer
        );
    }

    #[test]
    fn size_sender_and_guard() {
        let peer = v4("127.0.0.1:4000");
        let cut = Datagram {
            len: 70_000,
            truncated: true,
            ..OK
        };
        assert_eq!(
            decide(cut, Some(&peer), guard(&[])),
            Verdict::Drop(Reason::TooLarge)
        );
        let big = Datagram {
            len: BUFFER_SIZE + 1,
            ..OK
        };
        assert_eq!(
            decide(big, Some(&peer), guard(&[])),
            Verdict::Drop(Reason::TooLarge)
        );
        assert_eq!(
            decide(OK, Some(&peer), guard(&[4000])),
            Verdict::Drop(Reason::LoopGuard)
        );
        assert_eq!(
            decide::<SockaddrIn>(OK, None, guard(&[])),
            Verdict::Drop(Reason::Unbound)
        );
        let unnamed = UnixAddr::new_unnamed();
        assert_eq!(
            decide(OK, Some(&unnamed), guard(&[])),
            Verdict::Drop(Reason::Unbound)
        );
        // An unbound sender is reported as such even when too large.
        assert_eq!(
            decide::<UnixAddr>(cut, None, guard(&[])),
            Verdict::Drop(Reason::Unbound)
        );
    }

    #[test]
    fn rate_limit_spends_tokens_only_on_answers() {
        let mut limiter = Limiter::new(Rate {
            per_sec: 0.01,
            burst: 2,
        });
        let now = limiter.now();
        let peer = v4("192.0.2.1:4000");
        let mut run = |guard: &[u16]| {
            let checks = Checks {
                guard,
                bucket: Some(Bucket {
                    limiter: &mut limiter,
                    now,
                }),
                share: None,
            };
            decide(OK, Some(&peer), checks)
        };
        // A guarded datagram spends no token.
        assert_eq!(run(&[4000]), Verdict::Drop(Reason::LoopGuard));
        assert_eq!(run(&[]), Verdict::Answer);
        assert_eq!(run(&[]), Verdict::Answer);
        assert_eq!(run(&[]), Verdict::Drop(Reason::RateLimited));
        // Unix senders have no bucket.
        let unix = UnixAddr::new_abstract(b"x").unwrap();
        let checks = Checks {
            bucket: Some(Bucket {
                limiter: &mut limiter,
                now,
            }),
            ..Checks::default()
        };
        assert_eq!(decide(OK, Some(&unix), checks), Verdict::Answer);
    }

    #[test]
    fn group_destinations_are_never_answered() {
        let to_group = Datagram {
            to_group: true,
            ..OK
        };
        let peer = v4("192.0.2.9:5000");
        assert_eq!(
            decide(to_group, Some(&peer), guard(&[])),
            Verdict::Drop(Reason::Broadcast)
        );
    }

    #[test]
    fn a_user_over_its_share_is_refused_others_are_not() {
        let mut ledger = Ledger::new(1 << 20);
        ledger.charge(1000, 600_000);
        let unix = UnixAddr::new_abstract(b"c").unwrap();
        let share = |ledger, uid| Checks {
            share: Some(Share {
                ledger,
                uid,
                cost: 1000,
            }),
            ..Checks::default()
        };
        assert_eq!(
            decide(OK, Some(&unix), share(&ledger, 1000)),
            Verdict::Drop(Reason::Unread)
        );
        assert_eq!(decide(OK, Some(&unix), share(&ledger, 0)), Verdict::Answer);
    }

    #[test]
    fn own_ports_join_the_guard() {
        let p = Policy::new(ReplyMode::Echo, &[7, 13], vec![13, 9000], None, false, true);
        assert_eq!(p.guard, [7, 13, 9000]);
        assert!(!p.reverse);
    }
}
