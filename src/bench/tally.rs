//! The bookkeeping of a run in progress: a ring of recent requests, and the
//! counts of replies, losses, late and mismatched replies.

use super::LATE_AFTER;
use super::histogram::Histogram;
use super::pattern::Pattern;

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
    /// What the latency is measured from: when the request was sent
    /// (closed loop), or when it was due (open loop, even if it left late).
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
    /// Open loop: the furthest behind its schedule the sender was.
    pub(super) max_lag_ns: u64,
    /// Open loop: requests sent [`SENT_BEHIND`](super::SENT_BEHIND) or
    /// more after they were due.
    pub(super) behind: u64,
}

impl Tally {
    /// A tally that remembers the last `ring` requests (a power of two, so
    /// that the slot of a sequence number is a mask away).
    pub(super) fn new(ring: usize) -> Tally {
        debug_assert!(ring.is_power_of_two());
        Tally {
            ring: vec![
                Slot {
                    seq: u64::MAX,
                    sent_ns: 0,
                    state: State::Free,
                };
                ring
            ],
            next: 1,
            oldest: 1,
            in_flight: 0,
            replies: 0,
            replies_in_time: 0,
            lost: 0,
            late: 0,
            // The warm-up is not counted as sent, so its reply is not
            // counted either: a wrong one shows again in every measured
            // reply.
            mismatched: 0,
            rtt: Histogram::new(),
            max_lag_ns: 0,
            behind: 0,
        }
    }

    /// How many requests may be outstanding before the ring would
    /// overwrite one still pending.
    pub(super) fn room(&self) -> usize {
        self.ring.len() - (self.next - self.oldest) as usize
    }

    /// Requests sent so far.
    pub(super) fn count_sent(&self) -> u64 {
        self.next - 1
    }

    pub(super) fn slot(&mut self, seq: u64) -> &mut Slot {
        let mask = self.ring.len() as u64 - 1;
        &mut self.ring[(seq & mask) as usize]
    }

    /// Marks the next `k` requests as sent; `from(seq)` is the time each
    /// one's latency is measured from.
    pub(super) fn sent(&mut self, k: usize, from: impl Fn(u64) -> u64) {
        for seq in self.next..self.next + k as u64 {
            *self.slot(seq) = Slot {
                seq,
                sent_ns: from(seq),
                state: State::Pending,
            };
        }
        self.next += k as u64;
        self.in_flight += k;
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

    /// Accounts for one reply received at `now_ns`; returns its round-trip
    /// time if it is a correct, first reply to a pending request.
    pub(super) fn reply(
        &mut self,
        pattern: &Pattern,
        data: &[u8],
        now_ns: u64,
        in_time: bool,
    ) -> Option<u64> {
        let ring = self.ring.len() as u64;
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
                    if seq == 0 || seq >= self.next || self.next - seq > ring {
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
            return None;
        };
        if seq == 0 || seq >= self.next {
            self.mismatched += 1;
            return None;
        }
        if self.next - seq > ring {
            self.late += 1;
            return None;
        }
        let slot = self.slot(seq);
        if slot.seq != seq {
            self.late += 1;
            return None;
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
                return Some(rtt);
            }
            State::Lost => {
                slot.state = State::Answered;
                self.lost -= 1;
                self.late += 1;
            }
            State::Answered | State::Free => self.mismatched += 1,
        }
        None
    }
}
