//! Per-interval report lines (`--interval`), as ping and iperf print them:
//! each covers one interval of the sending phase, with its own replies per
//! second, losses and round-trip percentiles, so that a stall or a slow
//! start shows instead of disappearing into the run's totals.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::histogram::Histogram;
use super::tally::Tally;

/// One interval's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// Its start and end, in seconds from the start of the run.
    pub start_s: f64,
    pub end_s: f64,
    /// Requests sent in it, all flows together.
    pub sent: u64,
    /// Correct replies received in it.
    pub replies: u64,
    pub replies_per_s: f64,
    /// Requests counted as lost in it (a request is counted as lost once it
    /// has waited for its reply for a second), less lost requests whose
    /// reply turned up late.
    pub lost: u64,
    pub rtt_p50_us: f64,
    pub rtt_p99_us: f64,
    pub rtt_max_us: f64,
    /// Open loop: the furthest behind its schedule the sender was in it.
    pub max_send_lag_us: Option<f64>,
}

/// Counters summed over every flow, to take differences between intervals.
#[derive(Default, Clone, Copy)]
struct Totals {
    sent: u64,
    replies: u64,
    lost: u64,
}

impl Totals {
    fn of<'t>(tallies: impl Iterator<Item = &'t Tally>) -> Totals {
        tallies.fold(Totals::default(), |a, t| Totals {
            sent: a.sent + t.count_sent(),
            replies: a.replies + t.replies,
            lost: a.lost + t.lost,
        })
    }
}

/// The interval in progress, and where finished ones are printed.
pub(super) struct Intervals<'a> {
    every_ns: Option<u64>,
    start_ns: u64,
    rtt: Histogram,
    lag_ns: u64,
    open_loop: bool,
    json: bool,
    last: Totals,
    out: &'a mut dyn Write,
    /// Every finished interval, for the report.
    pub(super) done: Vec<Interval>,
}

impl<'a> Intervals<'a> {
    pub(super) fn new(
        every: Option<std::time::Duration>,
        open_loop: bool,
        json: bool,
        out: &'a mut dyn Write,
    ) -> Intervals<'a> {
        Intervals {
            every_ns: every.map(|d| d.as_nanos() as u64),
            start_ns: 0,
            rtt: Histogram::new(),
            lag_ns: 0,
            open_loop,
            json,
            last: Totals::default(),
            out,
            done: Vec::new(),
        }
    }

    /// Records one round-trip time in the interval in progress.
    pub(super) fn record(&mut self, rtt_ns: u64) {
        if self.every_ns.is_some() {
            self.rtt.record(rtt_ns);
        }
    }

    /// Records how far behind its schedule a send was.
    pub(super) fn lag(&mut self, lag_ns: u64) {
        self.lag_ns = self.lag_ns.max(lag_ns);
    }

    /// Ends the interval in progress if it is over at `now_ns`.
    pub(super) fn tick<'t>(
        &mut self,
        now_ns: u64,
        tallies: impl Iterator<Item = &'t Tally>,
    ) -> io::Result<()> {
        match self.every_ns {
            Some(every) if now_ns >= self.start_ns + every => {
                self.close(self.start_ns + every, tallies)
            }
            _ => Ok(()),
        }
    }

    /// Ends the last, possibly shorter, interval at the end of the sending
    /// phase (unless it would be under a millisecond long).
    pub(super) fn finish<'t>(
        &mut self,
        end_ns: u64,
        tallies: impl Iterator<Item = &'t Tally>,
    ) -> io::Result<()> {
        if self.every_ns.is_some() && end_ns >= self.start_ns + 1_000_000 {
            self.close(end_ns, tallies)?;
        }
        Ok(())
    }

    fn close<'t>(
        &mut self,
        end_ns: u64,
        tallies: impl Iterator<Item = &'t Tally>,
    ) -> io::Result<()> {
        let now = Totals::of(tallies);
        let us = |ns: u64| ns as f64 / 1000.0;
        let seconds = (end_ns - self.start_ns) as f64 / 1e9;
        let replies = now.replies - self.last.replies;
        let i = Interval {
            start_s: self.start_ns as f64 / 1e9,
            end_s: end_ns as f64 / 1e9,
            sent: now.sent - self.last.sent,
            replies,
            replies_per_s: replies as f64 / seconds,
            lost: now.lost.saturating_sub(self.last.lost),
            rtt_p50_us: us(self.rtt.quantile(0.5)),
            rtt_p99_us: us(self.rtt.quantile(0.99)),
            rtt_max_us: us(self.rtt.max),
            max_send_lag_us: self.open_loop.then(|| us(self.lag_ns)),
        };
        let line = if self.json {
            i.to_json()
        } else {
            i.to_string()
        };
        writeln!(self.out, "{line}")?;
        self.out.flush()?;
        self.done.push(i);
        self.last = now;
        self.start_ns = end_ns;
        self.rtt.clear();
        self.lag_ns = 0;
        Ok(())
    }
}

impl Interval {
    /// One JSON object, on one line, marked `"type":"interval"`.
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\"type\":\"interval\",\"start_s\":{:.3},\"end_s\":{:.3},\"sent\":{},\
             \"replies\":{},\"replies_per_s\":{:.1},\"lost\":{},\"rtt_p50_us\":{:.2},\
             \"rtt_p99_us\":{:.2},\"rtt_max_us\":{:.2}",
            self.start_s,
            self.end_s,
            self.sent,
            self.replies,
            self.replies_per_s,
            self.lost,
            self.rtt_p50_us,
            self.rtt_p99_us,
            self.rtt_max_us
        );
        if let Some(lag) = self.max_send_lag_us {
            let _ = write!(s, ",\"max_send_lag_us\":{lag:.2}");
        }
        s.push('}');
        s
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{:6.2}-{:6.2} s] {:8.0} replies/s, sent {}, lost {}",
            self.start_s, self.end_s, self.replies_per_s, self.sent, self.lost
        )?;
        if self.replies == 0 {
            write!(f, ", RTT: no replies")?;
        } else {
            write!(
                f,
                ", RTT p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
                self.rtt_p50_us, self.rtt_p99_us, self.rtt_max_us
            )?;
        }
        if let Some(lag) = self.max_send_lag_us {
            write!(f, ", send lag max {lag:.1} µs")?;
        }
        Ok(())
    }
}
