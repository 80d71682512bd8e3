//! `dgecho bench`: a load generator that checks every reply.
//!
//! Each request carries its sequence number in its first 8 bytes
//! (little-endian) followed by a fixed, asymmetric pattern, so a reply is
//! checked for both: which request it answers, and that its content is
//! exactly what `--reply` promises (the request reversed, or unchanged).
//!
//! Up to `--window` requests are outstanding at once. Requests go out with
//! `sendmmsg` and replies come back with `recvmmsg`, up to [`BATCH`] per
//! call, so that the generator stays cheap compared with the server it
//! measures. A request that gets no reply within [`LATE_AFTER`] is counted
//! as lost and frees its place in the window; if its reply turns up later
//! it is counted as late instead.
//!
//! Round-trip times go into a log-linear histogram (about 1.6% resolution,
//! no allocation per datagram) from which p50, p99 and p99.9 are read.

use std::fmt::Write as _;
use std::io::{IoSlice, IoSliceMut, Write};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg, setsockopt,
    sockopt,
};
use nix::sys::time::TimeVal;

use crate::addr::Addr;
use crate::client::Client;
use crate::defaults::{BENCH_MAX_WINDOW as MAX_WINDOW, BENCH_MIN_SIZE as MIN_SIZE};
use crate::echo::ReplyMode;

/// The most datagrams sent or received by one system call.
pub const BATCH: usize = 64;
/// A request without a reply after this long is counted as lost.
pub const LATE_AFTER: Duration = Duration::from_secs(1);
/// How long one wait for replies may block before the loop looks at the
/// clock again (end of the run, lost requests, progress).
const POLL: Duration = Duration::from_millis(20);
/// Requests remembered, so that a late or duplicated reply is recognised.
const RING: usize = 1 << 16;
/// The largest datagram read whole; anything longer is a mismatch anyway.
const MAX_REPLY: usize = 65536;

/// What to load, and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Addr,
    pub window: usize,
    pub size: usize,
    pub duration: Duration,
    pub reply: ReplyMode,
    pub allow_remote: bool,
    /// Print a progress line on stderr once a second.
    pub progress: bool,
    /// Print the report as one JSON object.
    pub json: bool,
}

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

/// Refuses targets that are neither loopback nor Unix unless allowed.
pub fn check_target(target: &Addr, allow_remote: bool) -> Result<()> {
    if allow_remote || !matches!(target, Addr::Udp { .. }) {
        return Ok(());
    }
    let addrs = target
        .resolve()
        .with_context(|| format!("cannot resolve the host of {target}"))?;
    let loopback = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v| v.is_loopback()),
    };
    if let Some(sa) = addrs.iter().find(|sa| !loopback(sa.ip())) {
        bail!(
            "refusing to load {target}: {} is not a loopback address, and dgecho bench sends \
             as fast as the target answers. Use 127.0.0.1, [::1] or a Unix socket, or pass \
             --allow-remote to load a host you are responsible for",
            sa.ip()
        );
    }
    Ok(())
}

/// A log-linear histogram of nanoseconds: exact below 128 ns, then 64
/// buckets per power of two.
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Histogram {
    const BUCKETS: usize = 128 + 57 * 64;

    fn new() -> Histogram {
        Histogram {
            counts: vec![0; Self::BUCKETS],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < 128 {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() as usize - 6;
        shift * 64 + (v >> shift) as usize
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        if i < 128 {
            return i as u64;
        }
        let shift = i / 64 - 1;
        let m = (i - shift * 64) as u64;
        (m << shift) + (1u64 << shift) / 2
    }

    fn record(&mut self, ns: u64) {
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    /// The value below which a fraction `q` of the samples lie, in ns.
    fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Pending,
    Answered,
    Lost,
}

#[derive(Clone, Copy)]
struct Slot {
    seq: u64,
    sent_ns: u64,
    state: State,
}

/// The request pattern and how to check a reply against it.
struct Pattern {
    size: usize,
    reply: ReplyMode,
    /// A request with sequence number 0.
    request: Vec<u8>,
    /// What the bytes after (echo) or before (reverse) the sequence number
    /// must be.
    expected_rest: Vec<u8>,
}

impl Pattern {
    fn new(size: usize, reply: ReplyMode) -> Pattern {
        // Asymmetric, so that a reversed reply never passes for an echo.
        let request: Vec<u8> = (0..size)
            .map(|i| if i < 8 { 0 } else { (i * 131 + 7) as u8 ^ 0x5a })
            .collect();
        let expected_rest = match reply {
            ReplyMode::Echo => request[8..].to_vec(),
            ReplyMode::Reverse => request[8..].iter().rev().copied().collect(),
        };
        Pattern {
            size,
            reply,
            request,
            expected_rest,
        }
    }

    fn fill(&self, buf: &mut [u8], seq: u64) {
        buf[..8].copy_from_slice(&seq.to_le_bytes());
    }

    /// The sequence number a reply answers, if its length and content are
    /// right.
    fn check(&self, reply: &[u8]) -> Option<u64> {
        if reply.len() != self.size {
            return None;
        }
        let mut seq = [0u8; 8];
        match self.reply {
            ReplyMode::Echo => {
                seq.copy_from_slice(&reply[..8]);
                (reply[8..] == self.expected_rest[..]).then_some(())?;
            }
            ReplyMode::Reverse => {
                let n = reply.len();
                for (i, b) in seq.iter_mut().enumerate() {
                    *b = reply[n - 1 - i];
                }
                (reply[..n - 8] == self.expected_rest[..]).then_some(())?;
            }
        }
        Some(u64::from_le_bytes(seq))
    }
}

/// The counters of a run in progress.
struct Tally {
    ring: Vec<Slot>,
    /// The next sequence number to send (0 was the warm-up exchange).
    next: u64,
    /// The oldest sequence number that may still be pending.
    oldest: u64,
    in_flight: usize,
    replies: u64,
    replies_in_time: u64,
    lost: u64,
    late: u64,
    mismatched: u64,
    rtt: Histogram,
}

impl Tally {
    fn slot(&mut self, seq: u64) -> &mut Slot {
        &mut self.ring[(seq % RING as u64) as usize]
    }

    /// Counts requests older than [`LATE_AFTER`] as lost.
    fn expire(&mut self, now_ns: u64) {
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
    fn reply(&mut self, pattern: &Pattern, data: &[u8], now_ns: u64, in_time: bool) {
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

/// Loads `opts.target` for `opts.duration` and reports.
pub fn measure(opts: &Options) -> Result<Report> {
    check_target(&opts.target, opts.allow_remote)?;
    if opts.window == 0 || opts.window > MAX_WINDOW {
        bail!("--window must be between 1 and {MAX_WINDOW}");
    }
    if opts.size < MIN_SIZE || opts.size > MAX_REPLY {
        bail!("--size must be between {MIN_SIZE} and {MAX_REPLY} bytes");
    }
    let pattern = Pattern::new(opts.size, opts.reply);
    let mut client = Client::connect(&opts.target, None, Duration::from_secs(2))?;

    // One plain exchange first: it proves the service is there, and a
    // missing one gets the client's explanation rather than 100% loss.
    client.exchange(&pattern.request)?;

    let fd = client.blocking_fd()?;
    // Room for a full window of replies in our own receive queue.
    let want = (opts.window * (opts.size + 1024) * 2).max(1 << 20);
    if setsockopt(&fd, sockopt::RcvBufForce, &want).is_err() {
        let _ = setsockopt(&fd, sockopt::RcvBuf, &want);
    }
    let _ = setsockopt(&fd, sockopt::SndBuf, &want);
    let poll = TimeVal::new(0, POLL.as_micros() as _);
    setsockopt(&fd, sockopt::ReceiveTimeout, &poll).context("cannot set a receive timeout")?;
    setsockopt(&fd, sockopt::SendTimeout, &poll).context("cannot set a send timeout")?;

    let mut tally = Tally {
        ring: vec![
            Slot {
                seq: u64::MAX,
                sent_ns: 0,
                state: State::Free,
            };
            RING
        ],
        next: 1,
        oldest: 1,
        in_flight: 0,
        replies: 0,
        replies_in_time: 0,
        lost: 0,
        late: 0,
        // The warm-up is not counted as sent, so its reply is not counted
        // either: a wrong one shows again in every measured reply.
        mismatched: 0,
        rtt: Histogram::new(),
    };
    let run = Loop {
        fd,
        pattern: &pattern,
        opts,
        target: &client,
    };
    let seconds = run.run(&mut tally)?;

    let us = |ns: u64| ns as f64 / 1000.0;
    Ok(Report {
        target: opts.target.to_string(),
        size: opts.size,
        window: opts.window,
        reply: opts.reply,
        seconds,
        sent: tally.next - 1,
        replies: tally.replies,
        replies_per_s: tally.replies_in_time as f64 / seconds,
        lost: tally.lost,
        late: tally.late,
        mismatched: tally.mismatched,
        rtt_p50_us: us(tally.rtt.quantile(0.5)),
        rtt_p99_us: us(tally.rtt.quantile(0.99)),
        rtt_p999_us: us(tally.rtt.quantile(0.999)),
        rtt_max_us: us(tally.rtt.max),
    })
}

struct Loop<'a> {
    fd: BorrowedFd<'a>,
    pattern: &'a Pattern,
    opts: &'a Options,
    target: &'a Client,
}

impl Loop<'_> {
    /// Sends and receives until the duration is over and every request is
    /// answered or lost. Returns the length of the sending phase in seconds.
    fn run(&self, t: &mut Tally) -> Result<f64> {
        let fd = self.fd.as_raw_fd();
        let size = self.opts.size;
        let window = self.opts.window;
        let mut sbuf: Vec<u8> = self.pattern.request.repeat(BATCH);
        // One byte more than expected, so that a longer reply shows.
        let rslot = size + 1;
        let mut rbuf = vec![0u8; BATCH * rslot];
        let mut send_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut recv_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let no_addrs = [None::<SockaddrStorage>; BATCH];
        let no_cmsgs: [ControlMessage<'_>; 0] = [];
        let mut lens = [0usize; BATCH];

        let start = Instant::now();
        let duration_ns = self.opts.duration.as_nanos() as u64;
        let late_ns = LATE_AFTER.as_nanos() as u64;
        let ns = || start.elapsed().as_nanos() as u64;
        let mut next_progress = 1_000_000_000u64;
        let mut send_end = None;

        loop {
            let now = ns();
            t.expire(now);
            let sending = now < duration_ns;
            if !sending && send_end.is_none() {
                send_end = Some(now);
            }
            if !sending && (t.in_flight == 0 || now > duration_ns + 2 * late_ns) {
                break;
            }
            if self.opts.progress && now >= next_progress {
                next_progress += 1_000_000_000;
                let secs = now as f64 / 1e9;
                eprint!(
                    "\r{secs:5.1} s: {} replies ({:.0}/s), lost {}, mismatched {}   ",
                    t.replies,
                    t.replies_in_time as f64 / secs,
                    t.lost,
                    t.mismatched
                );
                let _ = std::io::stderr().flush();
            }

            // Fill the window, never overwriting a request still pending.
            let room = (t.next - t.oldest) as usize;
            let n = if sending {
                (window - t.in_flight).min(BATCH).min(RING - room)
            } else {
                0
            };
            if n > 0 {
                for (i, chunk) in sbuf.chunks_exact_mut(size).take(n).enumerate() {
                    self.pattern.fill(chunk, t.next + i as u64);
                }
                let mut chunks = sbuf.chunks_exact(size);
                let iovs: [[IoSlice<'_>; 1]; BATCH] =
                    std::array::from_fn(|_| [IoSlice::new(chunks.next().unwrap_or(&[]))]);
                let sent_at = ns();
                match sendmmsg(
                    fd,
                    &mut send_hdrs,
                    &iovs[..n],
                    &no_addrs[..n],
                    no_cmsgs,
                    MsgFlags::empty(),
                ) {
                    Ok(r) => {
                        let k = r.count();
                        for i in 0..k as u64 {
                            let seq = t.next + i;
                            *t.slot(seq) = Slot {
                                seq,
                                sent_ns: sent_at,
                                state: State::Pending,
                            };
                        }
                        t.next += k as u64;
                        t.in_flight += k;
                    }
                    Err(Errno::EAGAIN | Errno::ENOBUFS | Errno::EINTR) => {}
                    Err(e) => {
                        return Err(self.target.explain_io(std::io::Error::from(e), "send to"));
                    }
                }
            }

            // Wait for at least one reply, then take what is there.
            let received = {
                let mut chunks = rbuf.chunks_exact_mut(rslot);
                let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
                    std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or(&mut []))]);
                match recvmmsg(
                    fd,
                    &mut recv_hdrs,
                    iovs.iter_mut(),
                    MsgFlags::MSG_WAITFORONE,
                    None,
                ) {
                    Ok(r) => {
                        let mut k = 0;
                        for (len, m) in lens.iter_mut().zip(r) {
                            *len = m.bytes;
                            k += 1;
                        }
                        k
                    }
                    Err(Errno::EAGAIN | Errno::EINTR) => 0,
                    Err(e) => {
                        return Err(self
                            .target
                            .explain_io(std::io::Error::from(e), "receive from"));
                    }
                }
            };
            if received > 0 {
                let now = ns();
                let in_time = now < duration_ns;
                for (i, &len) in lens[..received].iter().enumerate() {
                    let data = &rbuf[i * rslot..i * rslot + len.min(rslot)];
                    t.reply(self.pattern, data, now, in_time);
                }
            }
        }
        if self.opts.progress {
            eprintln!();
        }
        // Whatever is still pending now is lost.
        t.lost += t.in_flight as u64;
        let end = send_end.unwrap_or(duration_ns);
        Ok(end as f64 / 1e9)
    }
}

/// Runs `dgecho bench`.
pub fn run(opts: &Options) -> Result<()> {
    let report = measure(opts)?;
    let mut out = std::io::stdout().lock();
    if opts.json {
        writeln!(out, "{}", report.to_json())?;
    } else {
        writeln!(out, "{report}")?;
    }
    out.flush()?;
    if report.mismatched > 0 {
        bail!(
            "{} replies did not match what --reply {} expects: check the service's reply mode \
             (dgecho serve --reply), or that {} is an echo service at all",
            report.mismatched,
            opts.reply,
            opts.target
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 5_000_000.0).abs() / 5_000_000.0 < 0.02, "{p50}");
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 - 9_900_000.0).abs() / 9_900_000.0 < 0.02, "{p99}");
        assert_eq!(h.quantile(1.0), 10_000_000);
        for v in [0u64, 1, 127, 128, 129, 1 << 20, u64::MAX / 2] {
            let i = Histogram::index(v);
            assert!(i < Histogram::BUCKETS);
            let back = Histogram::value(i) as f64;
            assert!(
                (back - v as f64).abs() <= v as f64 / 64.0 + 1.0,
                "{v} -> {i} -> {back}"
            );
        }
    }

    #[test]
    fn pattern_checks_sequence_and_content() {
        for mode in [ReplyMode::Echo, ReplyMode::Reverse] {
            let p = Pattern::new(64, mode);
            let mut req = p.request.clone();
            p.fill(&mut req, 0x0102_0304_0506_0708);
            let mut reply = req.clone();
            if mode == ReplyMode::Reverse {
                reply.reverse();
            }
            assert_eq!(p.check(&reply), Some(0x0102_0304_0506_0708));
            let mut bad = reply.clone();
            bad[30] ^= 1;
            assert_eq!(p.check(&bad), None);
            assert_eq!(p.check(&reply[..63]), None);
            let other = Pattern::new(
                64,
                match mode {
                    ReplyMode::Echo => ReplyMode::Reverse,
                    ReplyMode::Reverse => ReplyMode::Echo,
                },
            );
            assert_eq!(other.check(&reply), None, "the wrong mode never passes");
        }
    }

    #[test]
    fn refuses_remote_targets() {
        let remote: Addr = "192.0.2.1:7".parse().unwrap();
        let err = check_target(&remote, false).unwrap_err().to_string();
        assert!(err.contains("--allow-remote"), "{err}");
        assert!(err.contains("192.0.2.1"), "{err}");
        check_target(&remote, true).unwrap();
        check_target(&"127.0.0.1:7".parse().unwrap(), false).unwrap();
        check_target(&"[::1]:7".parse().unwrap(), false).unwrap();
        check_target(&"unix:@x".parse().unwrap(), false).unwrap();
    }

    #[test]
    fn json_is_escaped() {
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\u000a");
    }
}
