//! The outcome of a run, as text or as one JSON object.

use std::fmt::Write as _;

use super::interval::Interval;
use crate::echo::ReplyMode;

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub target: String,
    pub size: usize,
    /// Closed loop: requests in flight per flow.
    pub window: usize,
    /// Open loop: requests per second, all flows together.
    pub rate: Option<f64>,
    pub reply: ReplyMode,
    /// The sending phase, in seconds.
    pub seconds: f64,
    /// Requests sent.
    pub sent: u64,
    /// Correct replies, received at any time.
    pub replies: u64,
    /// Correct replies received during the sending phase, per second.
    pub replies_per_s: f64,
    /// Requests never answered (not counting late ones).
    pub lost: u64,
    /// Replies that came after their request had been counted as lost.
    pub late: u64,
    /// Replies with an unknown sequence number, a wrong length or wrong
    /// content, or a second reply to the same request.
    pub mismatched: u64,
    pub rtt_p50_us: f64,
    pub rtt_p99_us: f64,
    pub rtt_p999_us: f64,
    pub rtt_max_us: f64,
    /// Open loop: the furthest behind its schedule the sender was; each
    /// late request's round-trip time includes its delay.
    pub max_send_lag_us: Option<f64>,
    /// Open loop: requests sent a millisecond or more after they were due.
    pub sent_behind: Option<u64>,
    /// Each flow's own figures, in the order of `--flows`.
    pub flows: Vec<FlowReport>,
    /// The `--interval` lines, in order.
    pub intervals: Vec<Interval>,
}

/// One flow's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowReport {
    /// The flow's own address (its UDP port or autobound Unix name).
    pub local: String,
    pub sent: u64,
    pub replies: u64,
    pub lost: u64,
    pub late: u64,
    pub mismatched: u64,
    pub rtt_p50_us: f64,
    pub rtt_p99_us: f64,
    pub rtt_max_us: f64,
}

impl Report {
    /// One JSON object, on one line, marked `"type":"summary"` (after the
    /// `"type":"interval"` lines, if any).
    pub fn to_json(&self) -> String {
        let mut s = String::from("{\"type\":\"summary\",");
        let _ = write!(
            s,
            "\"target\":\"{}\",\"size\":{},\"window\":{},\"reply\":\"{}\",\"seconds\":{:.3},\
             \"sent\":{},\"replies\":{},\"replies_per_s\":{:.1},\"lost\":{},\"late\":{},\
             \"mismatched\":{},\"rtt_p50_us\":{:.2},\"rtt_p99_us\":{:.2},\"rtt_p999_us\":{:.2},\
             \"rtt_max_us\":{:.2}",
            json_escape(&self.target),
            self.size,
            self.window,
            self.reply,
            self.seconds,
            self.sent,
            self.replies,
            self.replies_per_s,
            self.lost,
            self.late,
            self.mismatched,
            self.rtt_p50_us,
            self.rtt_p99_us,
            self.rtt_p999_us,
            self.rtt_max_us
        );
        if let (Some(rate), Some(lag), Some(behind)) =
            (self.rate, self.max_send_lag_us, self.sent_behind)
        {
            let _ = write!(
                s,
                ",\"rate\":{rate:.1},\"max_send_lag_us\":{lag:.2},\"sent_behind\":{behind}"
            );
        }
        s.push_str(",\"flows\":[");
        for (i, f) in self.flows.iter().enumerate() {
            let _ = write!(
                s,
                "{}{{\"local\":\"{}\",\"sent\":{},\"replies\":{},\"lost\":{},\"late\":{},\
                 \"mismatched\":{},\"rtt_p50_us\":{:.2},\"rtt_p99_us\":{:.2},\"rtt_max_us\":{:.2}}}",
                if i == 0 { "" } else { "," },
                json_escape(&f.local),
                f.sent,
                f.replies,
                f.lost,
                f.late,
                f.mismatched,
                f.rtt_p50_us,
                f.rtt_p99_us,
                f.rtt_max_us
            );
        }
        s.push_str("]}");
        s
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let load = match self.rate {
            Some(rate) => format!("open loop at {rate:.0} requests/s"),
            None => format!("window {}", self.window),
        };
        let flows = match (self.flows.len(), self.rate) {
            (0 | 1, _) => String::new(),
            (n, Some(_)) => format!(" shared by {n} flows"),
            (n, None) => format!(" per flow, {n} flows"),
        };
        writeln!(
            f,
            "{}: {} bytes, {load}{flows}, {} replies expected, {:.1} s",
            self.target, self.size, self.reply, self.seconds
        )?;
        if let (Some(lag), Some(behind)) = (self.max_send_lag_us, self.sent_behind) {
            writeln!(
                f,
                "  schedule: {behind} requests sent 1 ms or more late, at most {lag:.1} µs \
                 behind{}",
                if behind > 0 {
                    " (the generator could not keep up: their RTTs include the delay)"
                } else {
                    ""
                }
            )?;
        }
        writeln!(
            f,
            "  {:.0} replies/s ({} sent, {} replies verified)",
            self.replies_per_s, self.sent, self.replies
        )?;
        writeln!(
            f,
            "  lost {}, late {}, mismatched {}",
            self.lost, self.late, self.mismatched
        )?;
        if self.flows.len() > 1 {
            for (i, fl) in self.flows.iter().enumerate() {
                write!(
                    f,
                    "  flow {} ({}): sent {}, replies {}, lost {}, late {}, mismatched {}",
                    i + 1,
                    fl.local,
                    fl.sent,
                    fl.replies,
                    fl.lost,
                    fl.late,
                    fl.mismatched
                )?;
                match fl.replies {
                    0 => writeln!(f)?,
                    _ => writeln!(
                        f,
                        ", RTT p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
                        fl.rtt_p50_us, fl.rtt_p99_us, fl.rtt_max_us
                    )?,
                }
            }
        }
        if self.replies == 0 {
            // Zeros would read as a measurement.
            return write!(f, "  RTT: no replies verified");
        }
        write!(
            f,
            "  RTT p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
            self.rtt_p50_us, self.rtt_p99_us, self.rtt_p999_us, self.rtt_max_us
        )
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_escaped() {
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\u000a");
    }
}
