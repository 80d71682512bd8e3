//! The outcome of a run, as text or as one JSON object.

use std::fmt::Write as _;

use crate::echo::ReplyMode;

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub target: String,
    pub size: usize,
    pub window: usize,
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
}

impl Report {
    /// One JSON object, on one line.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{");
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
        s.push('}');
        s
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} bytes, window {}, {} replies expected, {:.1} s",
            self.target, self.size, self.window, self.reply, self.seconds
        )?;
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
