//! `--flows N`: N sockets, each with its own address (its own UDP port, or
//! its own autobound Unix name), so that a server sees N distinct peers.
//! This is what spreads load over `ReusePort=` sockets and per-source rate
//! limits, which one socket with a large window never exercises.
//!
//! `--window` applies to each flow (N flows keep N × window requests in
//! flight, like N clients); `--rate` is the total, shared evenly (see
//! `schedule.rs`), so that adding flows spreads the same offered load.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::socket::{SockaddrStorage, getsockname, setsockopt, sockopt};
use nix::sys::time::TimeVal;
use std::os::fd::AsRawFd;

use super::histogram::Histogram;
use super::load::Flow;
use super::pattern::Pattern;
use super::report::FlowReport;
use super::schedule::Schedule;
use super::tally::Tally;
use super::{BATCH, Options, POLL, RING};
use crate::client::Client;

/// Connects `opts.flows` sockets to the target, each checked with one
/// plain exchange first: it proves the service is there, and a missing
/// one gets the client's explanation rather than 100% loss.
pub(super) fn connect(opts: &Options, pattern: &Pattern) -> Result<Vec<Client>> {
    (0..opts.flows)
        .map(|_| {
            let mut client = Client::connect(&opts.target, None, Duration::from_secs(2))?;
            client.exchange(&pattern.request)?;
            Ok(client)
        })
        .collect()
}

/// Makes a flow's socket blocking with short timeouts, gives it room for
/// its share of the load, and names its address for the report.
pub(super) fn prepare<'c>(client: &'c Client, opts: &Options) -> Result<(BorrowedFd<'c>, String)> {
    let fd = client.blocking_fd()?;
    // Room for a full window of replies (or a burst of them) in our own
    // receive queue.
    let want = (opts.window.max(BATCH * 4) * (opts.size + 1024) * 2).max(1 << 20);
    if setsockopt(&fd, sockopt::RcvBufForce, &want).is_err() {
        let _ = setsockopt(&fd, sockopt::RcvBuf, &want);
    }
    let _ = setsockopt(&fd, sockopt::SndBuf, &want);
    let poll = TimeVal::new(0, POLL.as_micros() as _);
    setsockopt(&fd, sockopt::ReceiveTimeout, &poll).context("cannot set a receive timeout")?;
    setsockopt(&fd, sockopt::SendTimeout, &poll).context("cannot set a send timeout")?;
    let local = getsockname::<SockaddrStorage>(fd.as_raw_fd())
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    Ok((fd, local))
}

/// The flows' own state: a tally each (rings sized so that all of them
/// together stay near [`RING`] entries) and, in the open loop, a schedule.
pub(super) fn states(opts: &Options) -> Vec<Flow> {
    let n = opts.flows;
    let ring = (RING / n.next_power_of_two()).max(8192);
    let duration_ns = opts.duration.as_nanos() as u64;
    (0..n)
        .map(|i| {
            let schedule = opts.rate.map(|rate| Schedule::new(rate, n, i, duration_ns));
            Flow::new(Tally::new(ring), opts.window, schedule)
        })
        .collect()
}

/// One flow's figures for the report.
pub(super) fn report(local: String, t: &Tally) -> FlowReport {
    let us = |ns: u64| ns as f64 / 1000.0;
    FlowReport {
        local,
        sent: t.count_sent(),
        replies: t.replies,
        lost: t.lost,
        late: t.late,
        mismatched: t.mismatched,
        rtt_p50_us: us(t.rtt.quantile(0.5)),
        rtt_p99_us: us(t.rtt.quantile(0.99)),
        rtt_max_us: us(t.rtt.max),
    }
}

/// Every flow's round-trip times in one histogram.
pub(super) fn total_rtt(flows: &[Flow]) -> Histogram {
    let mut h = Histogram::new();
    for f in flows {
        h.add(&f.tally.rtt);
    }
    h
}
