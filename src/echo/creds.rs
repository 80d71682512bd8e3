//! Credentials on demand: who sent each Unix datagram is asked of the
//! kernel only while the answer matters.
//!
//! # Why not always
//! The per-user share of unread replies ([`super::unread`]) needs each
//! datagram's sender, which `SO_PASSCRED` gives. It is not free: with it
//! on, the kernel takes a reference to the sender's pid for every datagram
//! (and to ours for every reply, since the option also marks what the
//! socket sends), and builds an `SCM_CREDENTIALS` message for each one
//! received. At 64-byte datagrams the kernel functions doing this take
//! about 5% of the daemon's CPU by `perf`, and a build without the option
//! spent about 10% less CPU per reply (`bench/RESULTS.md`). Yet the share
//! only ever refuses a reply once one user holds half of the send buffer.
//!
//! # The switch
//! So the option starts off, and each worker charges what it cannot
//! attribute to one account, [`UNATTRIBUTED`], which the share rule bounds
//! like any user's. Every 1/[`ON_ABOVE`] of its part of the send buffer
//! charged, a worker reads the real total of unread bytes (`SIOCOUTQ`,
//! also reconciling its ledger) and [`settle`]s the option: on above
//! 1/[`ON_ABOVE`] of the buffer, off again below 1/[`OFF_BELOW`]. The
//! socket's own state is read back each time, so the workers sharing a
//! socket agree without talking to each other. Ordinary traffic never
//! comes near: 256 unread 1400-byte replies hold about 0.6 MiB of 8 MiB.
//!
//! While they are off, a worker receives without control buffers (the
//! kernel's receive is shorter then); a datagram whose credentials found
//! no room (`MSG_CTRUNC`) tells it that another worker turned them on.
//!
//! # What it costs the share
//! Replies charged before the switch, and to datagrams that were already
//! queued when it came (the kernel marks those with pid 0 and the overflow
//! uid, see [`super::unix`]), stay on the unattributed account: a hostile
//! user can hold that account's share *and* its own. Its own is then half
//! of what the unattributed account leaves, so everyone else still has at
//! least an eighth of the buffer, never nothing.

use log::{debug, warn};
use nix::sys::socket::{getsockopt, setsockopt, sockopt};

use crate::listener::Listener;

/// The ledger account of replies whose sender the kernel did not name:
/// `(uid_t)-1`, which no user can have.
pub const UNATTRIBUTED: u32 = u32::MAX;

/// Credentials go on when more than 1/`ON_ABOVE` of the send buffer is
/// unread, and a worker checks every 1/`ON_ABOVE` of its part charged.
pub const ON_ABOVE: u64 = 8;

/// Credentials go off again when less than 1/`OFF_BELOW` is unread: far
/// enough below [`ON_ABOVE`] that a load near the line does not flip the
/// option at every check.
pub const OFF_BELOW: u64 = 32;

/// Whether the socket should pass credentials: `on` is whether it does
/// now, `unread` the bytes its clients have not read (`SIOCOUTQ`), out of
/// a send buffer of `capacity` bytes.
pub fn wanted(on: bool, unread: u64, capacity: u64) -> bool {
    if on {
        unread >= capacity / OFF_BELOW
    } else {
        unread > capacity / ON_ABOVE
    }
}

/// When a worker next checks: a countdown of the bytes it charges, so
/// the check costs nothing per datagram but a subtraction.
#[derive(Debug, Clone)]
pub(super) struct Countdown {
    left: u64,
    every: u64,
}

impl Countdown {
    /// A check every 1/[`ON_ABOVE`] of `part`, the worker's part of the
    /// send buffer.
    pub fn new(part: u64) -> Countdown {
        let every = (part / ON_ABOVE).max(1);
        Countdown { left: every, every }
    }

    /// Counts `cost` bytes charged; true when a check is due.
    pub fn due(&mut self, cost: u64) -> bool {
        if cost < self.left {
            self.left -= cost;
            return false;
        }
        self.left = self.every;
        true
    }
}

/// Turns the socket's credentials on or off as [`wanted`] says, given the
/// real total of `unread` bytes out of `capacity`. Returns whether they
/// are on now, when known.
pub(super) fn settle(listener: &Listener, unread: u64, capacity: u64) -> Option<bool> {
    let on = getsockopt(listener, sockopt::PassCred).ok()?;
    let want = wanted(on, unread, capacity);
    if want == on {
        return Some(on);
    }
    match setsockopt(listener, sockopt::PassCred, &want) {
        Ok(()) => {
            debug!(
                "credentials {} on {listener}: {unread} of {capacity} bytes of replies unread",
                if want { "on" } else { "off" }
            );
            Some(want)
        }
        Err(e) => {
            warn!("cannot turn SO_PASSCRED {want} on {listener}: {e}");
            Some(on)
        }
    }
}

/// Checks once, at start, that the socket can pass credentials, and
/// leaves them off (a previous instance may have left them on).
pub(super) fn available(listener: &Listener) -> nix::Result<()> {
    setsockopt(listener, sockopt::PassCred, &true)?;
    setsockopt(listener, sockopt::PassCred, &false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: u64 = 8 << 20;

    #[test]
    fn on_above_an_eighth_off_below_a_thirty_second() {
        assert!(!wanted(false, 0, CAP));
        assert!(!wanted(false, CAP / 8, CAP));
        assert!(wanted(false, CAP / 8 + 1, CAP));
        // Once on, it stays on down to a thirty-second...
        assert!(wanted(true, CAP / 8, CAP));
        assert!(wanted(true, CAP / 32, CAP));
        // ...and goes off below it.
        assert!(!wanted(true, CAP / 32 - 1, CAP));
        assert!(!wanted(true, 0, CAP));
    }

    #[test]
    fn a_check_every_eighth_of_the_part() {
        let mut c = Countdown::new(CAP);
        let mut checks = 0;
        // 64-byte replies, as the ledger costs them (832 bytes).
        for _ in 0..100_000 {
            checks += u32::from(c.due(832));
        }
        // 83.2 MB charged, a check every 1 MiB: 79 of them.
        assert_eq!(checks, 79);
        // A reply larger than the interval is due at once.
        assert!(c.due(CAP));
    }

    #[test]
    fn a_zero_buffer_checks_every_time() {
        let mut c = Countdown::new(0);
        assert!(c.due(1) && c.due(1));
    }
}
