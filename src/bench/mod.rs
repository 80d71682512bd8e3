//! `dgecho bench`: a load generator that checks every reply.
//!
//! Each request carries its sequence number in its first 8 bytes
//! (little-endian) followed by a fixed, asymmetric pattern, so a reply is
//! checked for both: which request it answers, and that its content is
//! exactly what `--reply` promises (the request reversed, or unchanged).
//!
//! Two ways to load:
//! - closed loop (`--window N`, the default): up to N requests are
//!   outstanding at once per flow, and a new one leaves when a reply comes.
//!   This measures the most replies per second, but its latencies are
//!   those of a client that slows down whenever the server does;
//! - open loop (`--rate R`): requests leave on a fixed schedule whatever
//!   the replies do, and each round-trip time is measured from when its
//!   request was *due*, so a stall shows in every request it delays
//!   (no "coordinated omission", see `schedule.rs`).
//!
//! Requests go out with `sendmmsg` and replies come back with `recvmmsg`,
//! up to [`BATCH`] per call, so that the generator stays cheap compared
//! with the server it measures. A request that gets no reply within
//! [`LATE_AFTER`] is counted as lost and frees its place; if its reply
//! turns up later it is counted as late instead.
//!
//! Round-trip times go into a log-linear histogram (HdrHistogram's layout,
//! no allocation per datagram) from which the percentiles, the
//! `--interval` lines and the `--hgrm` file are read.

mod flows;
mod hgrm;
mod histogram;
mod interval;
mod load;
mod pattern;
mod report;
mod schedule;
mod tally;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::addr::Addr;
use crate::defaults::{
    BENCH_MAX_FLOWS as MAX_FLOWS, BENCH_MAX_RATE as MAX_RATE, BENCH_MAX_WINDOW as MAX_WINDOW,
    BENCH_MIN_SIZE as MIN_SIZE,
};
use crate::echo::ReplyMode;
pub use interval::Interval;
use interval::Intervals;
use load::Load;
use pattern::Pattern;
pub use report::{FlowReport, Report};

/// The most datagrams sent or received by one system call.
pub const BATCH: usize = 64;
/// A request without a reply after this long is counted as lost.
pub const LATE_AFTER: Duration = Duration::from_secs(1);
/// How long one wait for replies may block before the loop looks at the
/// clock again (end of the run, lost requests, intervals).
const POLL: Duration = Duration::from_millis(20);
/// Requests remembered, so that a late or duplicated reply is recognised
/// (shared by the flows).
pub(crate) const RING: usize = 1 << 16;
/// The largest datagram read whole; anything longer is a mismatch anyway.
const MAX_REPLY: usize = 65536;
/// An open-loop request that leaves this late is counted as sent behind
/// schedule: the generator, not the server, held it up.
pub const SENT_BEHIND: Duration = Duration::from_millis(1);

/// What to load, and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Addr,
    /// Closed loop: requests in flight per flow.
    pub window: usize,
    pub size: usize,
    pub duration: Duration,
    pub reply: ReplyMode,
    pub allow_remote: bool,
    /// Print the report as JSON lines.
    pub json: bool,
    /// Open loop: requests per second, all flows together.
    pub rate: Option<f64>,
    /// Sockets, each with its own address.
    pub flows: usize,
    /// Print a report line for each interval this long.
    pub interval: Option<Duration>,
    /// Write the round-trip times to this file as an HdrHistogram
    /// percentile distribution, in microseconds.
    pub hgrm: Option<PathBuf>,
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

/// Loads `opts.target` for `opts.duration` and reports; interval lines, if
/// any, are only kept in the report.
pub fn measure(opts: &Options) -> Result<Report> {
    measure_to(opts, &mut std::io::sink())
}

/// Refuses options that make no sense, naming the fix.
fn check_options(opts: &Options) -> Result<()> {
    check_target(&opts.target, opts.allow_remote)?;
    if opts.window == 0 || opts.window > MAX_WINDOW {
        bail!("--window must be between 1 and {MAX_WINDOW}");
    }
    if opts.size < MIN_SIZE || opts.size > MAX_REPLY {
        bail!("--size must be between {MIN_SIZE} and {MAX_REPLY} bytes");
    }
    if opts.flows == 0 || opts.flows > MAX_FLOWS {
        bail!("--flows must be between 1 and {MAX_FLOWS}");
    }
    if let Some(rate) = opts.rate {
        if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE) {
            bail!("--rate must be more than 0 and at most {MAX_RATE} requests per second");
        }
    }
    Ok(())
}

/// Loads `opts.target` for `opts.duration`, prints the interval lines on
/// `out` as they end, writes the `--hgrm` file, and reports.
pub fn measure_to(opts: &Options, out: &mut dyn Write) -> Result<Report> {
    check_options(opts)?;
    // Created before the run, so that a wrong path fails at once.
    let hgrm_file = match &opts.hgrm {
        Some(path) => Some(File::create(path).with_context(|| {
            format!(
                "cannot create the --hgrm file {}: give a path in a writable directory",
                path.display()
            )
        })?),
        None => None,
    };
    let pattern = Pattern::new(opts.size, opts.reply);
    let clients = flows::connect(opts, &pattern)?;
    let mut fds = Vec::with_capacity(clients.len());
    let mut locals = Vec::with_capacity(clients.len());
    for c in &clients {
        let (fd, local) = flows::prepare(c, opts)?;
        fds.push(fd);
        locals.push(local);
    }
    let mut states = flows::states(opts);
    let mut iv = Intervals::new(opts.interval, opts.rate.is_some(), opts.json, out);
    let run = Load {
        fds: &fds,
        clients: &clients,
        pattern: &pattern,
        opts,
    };
    let seconds = run.run(&mut states, &mut iv)?;

    let rtt = flows::total_rtt(&states);
    if let (Some(file), Some(path)) = (hgrm_file, &opts.hgrm) {
        let mut w = BufWriter::new(file);
        hgrm::write(&rtt, &mut w)
            .and_then(|()| w.flush())
            .with_context(|| format!("cannot write the --hgrm file {}", path.display()))?;
    }
    let sum = |f: &dyn Fn(&tally::Tally) -> u64| states.iter().map(|s| f(&s.tally)).sum::<u64>();
    let us = |ns: u64| ns as f64 / 1000.0;
    let open = opts.rate.is_some();
    Ok(Report {
        target: opts.target.to_string(),
        size: opts.size,
        window: opts.window,
        rate: opts.rate,
        reply: opts.reply,
        seconds,
        sent: sum(&|t| t.count_sent()),
        replies: sum(&|t| t.replies),
        replies_per_s: sum(&|t| t.replies_in_time) as f64 / seconds,
        lost: sum(&|t| t.lost),
        late: sum(&|t| t.late),
        mismatched: sum(&|t| t.mismatched),
        rtt_p50_us: us(rtt.quantile(0.5)),
        rtt_p99_us: us(rtt.quantile(0.99)),
        rtt_p999_us: us(rtt.quantile(0.999)),
        rtt_max_us: us(rtt.max),
        max_send_lag_us: open
            .then(|| us(states.iter().map(|s| s.tally.max_lag_ns).max().unwrap_or(0))),
        sent_behind: open.then(|| sum(&|t| t.behind)),
        flows: locals
            .into_iter()
            .zip(&states)
            .map(|(local, s)| flows::report(local, &s.tally))
            .collect(),
        intervals: std::mem::take(&mut iv.done),
    })
}

/// Runs `dgecho bench`.
pub fn run(opts: &Options) -> Result<()> {
    let mut stdout = std::io::stdout();
    let report = measure_to(opts, &mut stdout)?;
    let mut out = stdout.lock();
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
