//! The bookkeeping of a run in progress: a ring of recent requests, and the
//! counts of replies, losses, late and mismatched replies.

use super::histogram::Histogram;
use super::pattern::Pattern;
use super::{LATE_AFTER, RING};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Free,
    Pending,
    Answered,
    Lost,
}

#[derive(Clone, Copy)]
pub(super) struct Slot {
    pub(super) seq: u64,
    pub(super) sent_ns: u64,
    pub(super) state: State,
}

/// The counters of a run in progress.
pub(super) struct Tally {
    pub(super) ring: Vec<Slot>,
    /// The next sequence number to send (0 was the warm-up exchange).
    pub(super) next: u64,
    /// The oldest sequence number that may still be pending.
    pub(super) oldest: u64,
    pub(super) in_flight: usize,
    pub(super) replies: u64,
    pub(super) replies_in_time: u64,
    pub(super) lost: u64,
    pub(super) late: u64,
    pub(super) mismatched: u64,
    pub(super) rtt: Histogram,
}

impl Tally {
    pub(super) fn slot(&mut self, seq: u64) -> &mut Slot {
        &mut self.ring[(seq % RING as u64) as usize]
    }

    /// Counts requests older than [`LATE_AFTER`] as lost.
    pub(super) fn expire(&mut self, now_ns: u64) {
        let limit = LATE_AFTER.as_nanos() as u64;
        while self.oldest < self.next {
            let seq = self.oldest;
            let slot = self.slot(seq);
            if slot.seq == seq && slot.state == State::Pending {
                if now_ns.saturating_sub(slot.sent_ns) < limit {
                    break;
                }
                slot.state = State::Lost;
                self.lost += 1;
                self.in_flight -= 1;
            }
            self.oldest += 1;
        }
    }

    /// Accounts for one reply received at `now_ns`.
    pub(super) fn reply(&mut self, pattern: &Pattern, data: &[u8], now_ns: u64, in_time: bool) {
        let Some(seq) = pattern.check(data) else {
            self.mismatched += 1;
            // A wrong reply to a known request (wrong content, or the other
            // reply mode) still ends that request's wait, so a wrong
            // --reply shows as mismatches at full speed, not as losses.
            if data.len() >= 8 {
                let head = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
                let mut tail = [0u8; 8];
                tail.copy_from_slice(&data[data.len() - 8..]);
                tail.reverse();
                for seq in [head, u64::from_le_bytes(tail)] {
                    if seq == 0 || seq >= self.next || self.next - seq > RING as u64 {
                        continue;
                    }
                    let slot = self.slot(seq);
                    if slot.seq == seq && slot.state == State::Pending {
                        slot.state = State::Answered;
                        self.in_flight -= 1;
                        break;
                    }
                }
            }
            return;
        };
        if seq == 0 || seq >= self.next {
            self.mismatched += 1;
            return;
        }
        if self.next - seq > RING as u64 {
            self.late += 1;
            return;
        }
        let slot = self.slot(seq);
        if slot.seq != seq {
            self.late += 1;
            return;
        }
        match slot.state {
            State::Pending => {
                slot.state = State::Answered;
                let rtt = now_ns.saturating_sub(slot.sent_ns);
                self.in_flight -= 1;
                self.replies += 1;
                if in_time {
                    self.replies_in_time += 1;
                }
                self.rtt.record(rtt);
            }
            State::Lost => {
                slot.state = State::Answered;
                self.lost -= 1;
                self.late += 1;
            }
            State::Answered | State::Free => self.mismatched += 1,
        }
    }
}
