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

mod histogram;
mod load;
mod pattern;
mod report;
mod tally;

use std::io::Write;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use crate::addr::Addr;
use crate::client::Client;
use crate::defaults::{BENCH_MAX_WINDOW as MAX_WINDOW, BENCH_MIN_SIZE as MIN_SIZE};
use crate::echo::ReplyMode;
use histogram::Histogram;
use load::Load;
use pattern::Pattern;
pub use report::Report;
use tally::{Slot, State, Tally};

/// The most datagrams sent or received by one system call.
pub const BATCH: usize = 64;
/// A request without a reply after this long is counted as lost.
pub const LATE_AFTER: Duration = Duration::from_secs(1);
/// How long one wait for replies may block before the loop looks at the
/// clock again (end of the run, lost requests, progress).
const POLL: Duration = Duration::from_millis(20);
/// Requests remembered, so that a late or duplicated reply is recognised.
pub(crate) const RING: usize = 1 << 16;
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
    let run = Load {
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
}
