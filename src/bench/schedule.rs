//! The open-loop schedule: when each request of a flow is due.
//!
//! `--rate R` with `--flows N` gives every flow R/N requests per second,
//! the flows' schedules staggered by 1/R so that together they send one
//! request every 1/R seconds. A request's latency is measured from its due
//! time, not from when it actually left: a sender that falls behind (a slow
//! machine, a full socket buffer) makes the requests it delays look slow
//! too, instead of quietly sending fewer of them. This is what avoids
//! "coordinated omission", as wrk2 does.

/// When the requests of one flow are due, in nanoseconds from the start of
/// the run.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schedule {
    offset_ns: f64,
    period_ns: f64,
    /// How many requests are due before the end of the sending phase.
    pub(super) count: u64,
}

impl Schedule {
    /// Flow `flow` of `flows` sharing `rate` requests per second for
    /// `duration_ns`.
    pub(super) fn new(rate: f64, flows: usize, flow: usize, duration_ns: u64) -> Schedule {
        let offset_ns = 1e9 * flow as f64 / rate;
        let period_ns = 1e9 * flows as f64 / rate;
        let span = duration_ns as f64 - offset_ns;
        let count = if span > 0.0 {
            (span / period_ns).ceil() as u64
        } else {
            0
        };
        Schedule {
            offset_ns,
            period_ns,
            count,
        }
    }

    /// When request `k` (from 0) is due.
    pub(super) fn due_ns(&self, k: u64) -> u64 {
        (self.offset_ns + k as f64 * self.period_ns) as u64
    }

    /// How many requests from request `k` on are due at `now_ns`, up to
    /// `most`.
    pub(super) fn due_from(&self, k: u64, now_ns: u64, most: usize) -> usize {
        let mut n = 0;
        while n < most && k + (n as u64) < self.count && self.due_ns(k + n as u64) <= now_ns {
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_share_the_rate_and_interleave() {
        // 1000/s over 2 flows for 1 s: 500 each, alternating every 1 ms.
        let a = Schedule::new(1000.0, 2, 0, 1_000_000_000);
        let b = Schedule::new(1000.0, 2, 1, 1_000_000_000);
        assert_eq!((a.count, b.count), (500, 500));
        assert_eq!((a.due_ns(0), b.due_ns(0)), (0, 1_000_000));
        assert_eq!((a.due_ns(1), b.due_ns(1)), (2_000_000, 3_000_000));
        assert!(b.due_ns(b.count - 1) < 1_000_000_000);
        // A rate that does not divide the duration: requests due strictly
        // before the end are sent, so 3/s for 1 s sends at 0, 1/3 and 2/3.
        let c = Schedule::new(3.0, 1, 0, 1_000_000_000);
        assert_eq!(c.count, 3);
        assert_eq!(Schedule::new(1.0, 4, 3, 1_000_000_000).count, 0);
    }

    #[test]
    fn a_late_sender_finds_every_missed_request_due() {
        let s = Schedule::new(1000.0, 1, 0, 1_000_000_000);
        assert_eq!(s.due_from(0, 0, 64), 1, "the first is due at once");
        assert_eq!(s.due_from(1, 999_999, 64), 0, "the next one not yet");
        // 10.5 ms late: requests 1..=10 are all due, and each keeps its
        // own due time to be measured from.
        assert_eq!(s.due_from(1, 10_500_000, 64), 10);
        assert_eq!(s.due_from(1, 10_500_000, 4), 4, "at most one batch");
        assert_eq!(s.due_ns(10), 10_000_000);
        // Past the end, only the scheduled ones remain.
        assert_eq!(s.due_from(990, 5_000_000_000, 64), 10);
    }
}
