//! The counters: written by each worker without locks, summed on demand,
//! and shown as one line of text that [`Stats`] both formats and parses.

use std::fmt;
use std::ops::{Index, Sub};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use super::reason::Reason;

/// A snapshot of the counters, for one worker or summed over all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub received: u64,
    pub answered: u64,
    /// Datagrams received but not answered, by reason.
    pub dropped: [u64; Reason::COUNT],
}

impl Stats {
    /// Every datagram received but not answered.
    pub fn dropped(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// Adds one to the counter of `reason`.
    pub fn drop_one(&mut self, reason: Reason) {
        self.dropped[reason.index()] += 1;
    }

    /// The same counters with `n` drops for `reason`.
    pub fn with(mut self, reason: Reason, n: u64) -> Stats {
        self.dropped[reason.index()] = n;
        self
    }
}

impl Index<Reason> for Stats {
    type Output = u64;
    fn index(&self, r: Reason) -> &u64 {
        &self.dropped[r.index()]
    }
}

/// What happened between two snapshots (`later - earlier`).
impl Sub for Stats {
    type Output = Stats;
    fn sub(self, earlier: Stats) -> Stats {
        Stats {
            received: self.received - earlier.received,
            answered: self.answered - earlier.answered,
            dropped: std::array::from_fn(|i| self.dropped[i] - earlier.dropped[i]),
        }
    }
}

/// The counter text, for `STATUS=` and the final log line: "received 9,
/// answered 5, dropped 4 (loop guard 1, rate limited 3)". The parenthesis
/// lists the reasons with drops, in the order of [`Reason::ALL`], and is
/// left out when nothing was dropped.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {}, answered {}, dropped {}",
            self.received,
            self.answered,
            self.dropped()
        )?;
        let mut sep = " (";
        for r in Reason::ALL.into_iter().filter(|&r| self[r] > 0) {
            write!(f, "{sep}{} {}", r.text().label, self[r])?;
            sep = ", ";
        }
        if sep == ", " {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Why a counter text could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseStatsError(String);

impl fmt::Display for ParseStatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a dgecho counter text: {}", self.0)
    }
}

impl std::error::Error for ParseStatsError {}

/// Reads back what [`Display`](fmt::Display) writes; the dropped total must
/// equal the sum of its reasons.
impl FromStr for Stats {
    type Err = ParseStatsError;
    fn from_str(s: &str) -> Result<Stats, ParseStatsError> {
        let err = |why: &str| ParseStatsError(format!("{why} in {s:?}"));
        let (head, reasons) = match s.trim().split_once(" (") {
            Some((h, r)) => (h, r.strip_suffix(')').ok_or_else(|| err("no ')'"))?),
            None => (s.trim(), ""),
        };
        let number = |part: &str, name: &str| -> Result<u64, ParseStatsError> {
            part.strip_prefix(name)
                .and_then(|n| n.strip_prefix(' '))
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| err(&format!("no number after '{name}'")))
        };
        let parts: Vec<&str> = head.split(", ").collect();
        let [r, a, d] = parts[..] else {
            return Err(err("not 'received R, answered A, dropped D'"));
        };
        let mut stats = Stats {
            received: number(r, "received")?,
            answered: number(a, "answered")?,
            dropped: [0; Reason::COUNT],
        };
        let total = number(d, "dropped")?;
        for part in reasons.split(", ").filter(|p| !p.is_empty()) {
            let (label, n) = part.rsplit_once(' ').ok_or_else(|| err("a bare reason"))?;
            let reason = Reason::from_label(label).ok_or_else(|| err("an unknown reason"))?;
            stats.dropped[reason.index()] =
                n.parse().map_err(|_| err("a reason without a number"))?;
        }
        if stats.dropped() != total {
            return Err(err("a dropped total that is not the sum of its reasons"));
        }
        Ok(stats)
    }
}

/// One worker's counters. Each is written by that worker only, from its
/// own [`Stats`], so a relaxed store (a plain move on x86) is enough and
/// readers see a recent value.
#[derive(Debug, Default)]
pub(super) struct Counters {
    received: AtomicU64,
    answered: AtomicU64,
    dropped: [AtomicU64; Reason::COUNT],
    /// Idle wake-ups; with `received`, proof that the loop turns.
    pub(super) ticks: AtomicU64,
    /// Set when the worker's loop has ended.
    pub(super) finished: AtomicBool,
}

impl Counters {
    /// Publishes what changed for a datagram's outcome.
    pub(super) fn publish_received(&self, local: &Stats) {
        self.received.store(local.received, Relaxed);
    }

    pub(super) fn publish_answered(&self, local: &Stats) {
        self.answered.store(local.answered, Relaxed);
    }

    pub(super) fn publish_dropped(&self, local: &Stats, reason: Reason) {
        self.dropped[reason.index()].store(local[reason], Relaxed);
    }

    /// Adds this worker's counters to `sum`.
    pub(super) fn add_to(&self, sum: &mut Stats) {
        sum.received += self.received.load(Relaxed);
        sum.answered += self.answered.load(Relaxed);
        for (s, c) in sum.dropped.iter_mut().zip(&self.dropped) {
            *s += c.load(Relaxed);
        }
    }

    /// A number that grows while the loop turns, busy or idle.
    pub(super) fn heartbeat(&self) -> u64 {
        self.received.load(Relaxed) + self.ticks.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lists_only_reasons_with_drops() {
        let s = Stats {
            received: 5,
            answered: 3,
            ..Stats::default()
        }
        .with(Reason::Unbound, 1)
        .with(Reason::LoopGuard, 1);
        assert_eq!(
            s.to_string(),
            "received 5, answered 3, dropped 2 (unbound sender 1, loop guard 1)"
        );
        let quiet = Stats {
            received: 2,
            answered: 2,
            ..Stats::default()
        };
        assert_eq!(quiet.to_string(), "received 2, answered 2, dropped 0");
    }

    #[test]
    fn text_parses_back() {
        let mut s = Stats {
            received: 100,
            answered: 100 - 15,
            ..Stats::default()
        };
        for (i, r) in Reason::ALL.into_iter().enumerate() {
            s = s.with(r, i as u64 + 1);
        }
        assert_eq!(s.to_string().parse::<Stats>().unwrap(), s);
        assert_eq!(
            "received 0, answered 0, dropped 0"
                .parse::<Stats>()
                .unwrap(),
            Stats::default()
        );
        for bad in [
            "",
            "received 1, answered 1",
            "received 2, answered 1, dropped 1 (nonsense 1)",
            "received 2, answered 1, dropped 2 (loop guard 1)",
            "received x, answered 1, dropped 0",
        ] {
            assert!(bad.parse::<Stats>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn difference() {
        let a = Stats {
            received: 1,
            ..Stats::default()
        }
        .with(Reason::TooLarge, 1);
        let b = Stats {
            received: 4,
            answered: 2,
            ..Stats::default()
        }
        .with(Reason::TooLarge, 2);
        assert_eq!(
            b - a,
            Stats {
                received: 3,
                answered: 2,
                ..Stats::default()
            }
            .with(Reason::TooLarge, 1)
        );
    }
}
