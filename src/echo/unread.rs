//! Replies a client has not read yet, per user: so that one user's unread
//! replies can never stop the daemon answering other users.
//!
//! # The problem
//! A Unix datagram stays charged to its *sender's* send buffer until the
//! receiver reads it. Every reply a client leaves unread uses the daemon's
//! send buffer; once it is full, every reply to everyone fails with
//! `EAGAIN`. One socket may queue `net.unix.max_dgram_qlen` datagrams (512
//! on systemd distributions), so one client sending full-size datagrams and
//! never reading can hold 33 MiB of the daemon's 8 MiB; at the kernel
//! default of 10, a user needs about 16 sockets.
//!
//! # The mechanism
//! `SO_PASSCRED` gives each datagram its sender's uid, and `SIOCOUTQ` the
//! bytes still charged to the daemon's socket (exact, but only a total).
//! The credentials cost CPU, so they are asked for only once an eighth of
//! the buffer is unread; until then every reply is charged to one
//! unattributed account, bounded like a user (see [`super::creds`]).
//! The [`Ledger`] keeps, per uid, an estimate of the bytes of its replies
//! not read yet: each answered datagram adds its reply's cost. A reply is
//! allowed while its user's share, after it, stays within half of the
//! room the *other* users leave: `held + cost <= (capacity - others) / 2`.
//! So one user can take at most half of the buffer, a second half of the
//! rest, and so on; whoever reads their replies always finds room.
//!
//! The estimate only grows between reconciliations. When a reply would be
//! refused, the worker first reads `SIOCOUTQ` and reconciles: the bytes
//! read since (the estimate's sum minus the real total) are credited to
//! the users holding the least first, since a client that reads its
//! replies holds little; what the estimate missed is charged to the user
//! holding the most. Then it decides again. A refused reply is counted as
//! "unread replies" and warned about, rate-limited.
//!
//! A socket served by N workers (`--workers N`) gives each worker a ledger
//! of its own, lock-free, over 1/N of the buffer, and each reconciles with
//! 1/N of `SIOCOUTQ`: one user still holds at most half of the whole
//! buffer, however its datagrams are spread over the workers. A worker
//! adds what its current batch has allowed: those replies go out when the
//! batch ends, so `SIOCOUTQ` does not count them yet.
//!
//! # What remains possible
//! - A user who controls several uids gets one share per uid: k hostile
//!   uids leave `1/2^k` of the buffer to everyone else.
//! - The credit for reads is an estimate: a hostile user's reads can be
//!   credited to an honest one, which then gets more room than it uses,
//!   never less.
//! - UDP needs none of this: a UDP reply is charged to the socket only
//!   until the kernel has passed it on.
//! - The table holds [`USERS`] uids; with more active users, the one
//!   holding least is forgotten (it starts again from zero).

use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::libc;

/// How many users the ledger tracks at once.
pub const USERS: usize = 64;

/// What a reply of `len` bytes costs the send buffer while unread: the
/// payload plus the kernel's bookkeeping (about 768 bytes per datagram);
/// reconciling with `SIOCOUTQ` corrects the rest.
pub fn cost(len: usize) -> u64 {
    len as u64 + 768
}

/// The estimated unread bytes of each user's replies.
#[derive(Debug, Clone)]
pub struct Ledger {
    uids: [u32; USERS],
    held: [u64; USERS],
    used: usize,
    /// The send buffer's size, as the kernel counts it (`SO_SNDBUF`).
    capacity: u64,
}

impl Ledger {
    pub fn new(capacity: u64) -> Ledger {
        Ledger {
            uids: [0; USERS],
            held: [0; USERS],
            used: 0,
            capacity,
        }
    }

    fn find(&self, uid: u32) -> Option<usize> {
        self.uids[..self.used].iter().position(|&u| u == uid)
    }

    /// What `uid` holds by the estimate.
    pub fn held(&self, uid: u32) -> u64 {
        self.find(uid).map_or(0, |i| self.held[i])
    }

    /// The estimate of everything unread.
    pub fn total(&self) -> u64 {
        self.held[..self.used].iter().sum()
    }

    /// Whether a reply costing `cost` to `uid` fits its share.
    pub fn allows(&self, uid: u32, cost: u64) -> bool {
        let held = self.held(uid);
        let others = self.total() - held;
        held + cost <= self.capacity.saturating_sub(others) / 2
    }

    /// Charges a reply to `uid`.
    pub fn charge(&mut self, uid: u32, cost: u64) {
        let i = match self.find(uid) {
            Some(i) => i,
            None if self.used < USERS => {
                self.used += 1;
                self.uids[self.used - 1] = uid;
                self.held[self.used - 1] = 0;
                self.used - 1
            }
            None => {
                // Forget the user holding least: it loses the least.
                let i = (0..USERS).min_by_key(|&i| self.held[i]).unwrap_or(0);
                self.uids[i] = uid;
                self.held[i] = 0;
                i
            }
        };
        self.held[i] += cost;
    }

    /// Brings the estimate to `outq`, the real total (`SIOCOUTQ`).
    pub fn reconcile(&mut self, outq: u64) {
        let total = self.total();
        let n = self.used;
        if outq >= total {
            // The estimate missed some: charge the largest holder.
            if let Some(i) = (0..n).max_by_key(|&i| self.held[i]) {
                self.held[i] += outq - total;
            }
            return;
        }
        // Credit the bytes read since to the smallest holders first.
        let mut read = total - outq;
        let mut order: [usize; USERS] = std::array::from_fn(|i| i);
        order[..n].sort_unstable_by_key(|&i| self.held[i]);
        for &i in &order[..n] {
            let credit = read.min(self.held[i]);
            self.held[i] -= credit;
            read -= credit;
        }
    }
}

/// The bytes still charged to a socket's send buffer (`SIOCOUTQ`): for a
/// Unix datagram socket, the replies its clients have not read yet.
pub fn outq(fd: RawFd) -> Result<u64, Errno> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int through the pointer, which points to
    // a live local of that type. nix has no wrapper for this request.
    let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
    Errno::result(r).map(|_| n.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: u64 = 8 << 20;
    const FULL: u64 = 65_536 + 768;

    #[test]
    fn one_user_gets_at_most_half() {
        let mut l = Ledger::new(CAP);
        let mut n = 0;
        while l.allows(1000, FULL) {
            l.charge(1000, FULL);
            n += 1;
        }
        assert!(l.held(1000) <= CAP / 2, "{}", l.held(1000));
        assert!(n >= 60, "a single user still gets plenty: {n}");
        // Another user is still answered, many times over.
        for _ in 0..1000 {
            assert!(l.allows(0, cost(64)));
            l.charge(0, cost(64));
        }
    }

    #[test]
    fn shares_shrink_but_never_reach_zero() {
        let mut l = Ledger::new(CAP);
        for uid in 1..=6 {
            while l.allows(uid, FULL) {
                l.charge(uid, FULL);
            }
        }
        assert!(l.total() < CAP, "{}", l.total());
        // A user who holds nothing still fits a short reply.
        assert!(l.allows(99, cost(64)), "room left: {}", CAP - l.total());
    }

    #[test]
    fn reads_are_credited_to_the_smallest_holders_first() {
        let mut l = Ledger::new(CAP);
        l.charge(1, 3_000_000); // a hog, never reading
        l.charge(2, 10_000); // a client that read its replies
        l.charge(3, 20_000);
        // The kernel says only the hog's bytes are left.
        l.reconcile(3_000_000);
        assert_eq!((l.held(1), l.held(2), l.held(3)), (3_000_000, 0, 0));
        // More outstanding than estimated: the excess goes to the largest.
        l.reconcile(3_100_000);
        assert_eq!(l.held(1), 3_100_000);
        assert_eq!(l.total(), 3_100_000);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut l = Ledger::new(CAP);
        for uid in 0..(USERS as u32 * 3) {
            l.charge(uid, u64::from(uid) + 1);
        }
        assert_eq!(l.used, USERS);
        // The largest (latest) holders are still there.
        assert_eq!(l.held(USERS as u32 * 3 - 1), u64::from(USERS as u32 * 3));
    }

    #[test]
    fn outq_of_a_fresh_socket_is_zero() {
        use std::os::fd::AsRawFd;
        let s = std::os::unix::net::UnixDatagram::unbound().unwrap();
        assert_eq!(outq(s.as_raw_fd()), Ok(0));
    }
}
