//! Rate-limited reporting: at most one report of a kind per interval, each
//! saying how many were suppressed since the last. A flood of bad datagrams
//! or a notify socket that never drains must not flood the journal, and
//! nothing is formatted while reports are suppressed.

use std::fmt;
use std::time::{Duration, Instant};

/// The smallest interval between two reports of the same kind.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Decides when one kind of event is reported.
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// When a report is due now, how many were suppressed since the last
    /// one (wrapped for " (N more since the last report)"); `None` when
    /// this one must be suppressed.
    pub fn due(&mut self) -> Option<Suppressed> {
        self.due_at(Instant::now())
    }

    /// [`Throttle::due`] at a given time (for tests).
    pub fn due_at(&mut self, now: Instant) -> Option<Suppressed> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < REPORT_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(Suppressed(std::mem::take(&mut self.suppressed)))
            }
        }
    }
}

/// " (N more since the last report)", or nothing when N is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppressed(pub u64);

impl fmt::Display for Suppressed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(f, " ({n} more since the last report)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppresses_and_counts() {
        let mut r = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(r.due_at(t0), Some(Suppressed(0)));
        assert_eq!(r.due_at(t0), None);
        assert_eq!(r.due_at(t0 + Duration::from_secs(1)), None);
        let n = r.due_at(t0 + REPORT_INTERVAL).unwrap();
        assert_eq!(n, Suppressed(2));
        assert_eq!(n.to_string(), " (2 more since the last report)");
        assert_eq!(Suppressed(0).to_string(), "");
    }
}
