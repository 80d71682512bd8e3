//! Ping mode (`--count`, `--interval`, `--size`): ping's conventions for a
//! datagram echo service. One line per reply, a line per lost one, and
//! ping's closing summary, also on Ctrl-C.
//!
//! SIGINT is blocked and read from a `signalfd` that every wait polls
//! along with the socket, so that no signal handler is needed and no wait
//! can miss the signal.

use std::fmt::Write as _;
use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::{Client, Received, print};
use crate::cli::ClientArgs;
use crate::defaults::{PING_INTERVAL, PING_SIZE};

/// The round-trip times of the replies, and the counts.
#[derive(Default)]
struct Stats {
    sent: u64,
    received: u64,
    rtts_ms: Vec<f64>,
}

impl Stats {
    /// ping's closing lines.
    fn summary(&self, target: &str, took: Duration) -> String {
        let loss = if self.sent == 0 {
            0.0
        } else {
            100.0 * (self.sent - self.received) as f64 / self.sent as f64
        };
        let mut s = format!(
            "\n--- {target} ping statistics ---\n{} datagrams sent, {} received, {loss:.0}% loss, \
             time {}ms\n",
            self.sent,
            self.received,
            took.as_millis()
        );
        if !self.rtts_ms.is_empty() {
            let n = self.rtts_ms.len() as f64;
            let min = self.rtts_ms.iter().copied().fold(f64::INFINITY, f64::min);
            let max = self.rtts_ms.iter().copied().fold(0.0, f64::max);
            let avg = self.rtts_ms.iter().sum::<f64>() / n;
            let sq = self.rtts_ms.iter().map(|r| r * r).sum::<f64>() / n;
            let mdev = (sq - avg * avg).max(0.0).sqrt();
            let _ = writeln!(
                s,
                "rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms"
            );
        }
        s
    }
}

/// The datagram for `seq`: its number in 16 hex digits, then filler that
/// is not a palindrome, so that echo and reverse replies both identify it.
fn payload(seq: u64, size: usize) -> Vec<u8> {
    let mut p = format!("{seq:016x}").into_bytes();
    p.extend((0..size.saturating_sub(16)).map(|i| b'a' + (i % 26) as u8));
    p.truncate(size);
    p
}

/// Whether `reply` answers `request`, echoed or reversed.
fn answers(reply: &[u8], request: &[u8]) -> bool {
    reply == request || reply.iter().rev().eq(request.iter())
}

/// How one datagram ended.
enum Outcome {
    Reply,
    Lost(anyhow::Error),
    Interrupted,
}

/// Runs ping mode against the client's target.
pub fn run(client: &mut Client, args: &ClientArgs) -> Result<()> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.thread_block().context("cannot block SIGINT")?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("cannot create a signalfd")?;
    let interval = args.interval.unwrap_or(PING_INTERVAL);
    let size = args.size.map_or(PING_SIZE, |s| s as usize);
    let target = client.target().to_string();
    let mut out = io::stdout().lock();
    if !print(
        &mut out,
        format!("PING {target}: {size} bytes\n").as_bytes(),
    )? {
        return Ok(());
    }
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut first_loss = None;
    for seq in 1.. {
        if args.count.is_some_and(|c| seq > c) {
            break;
        }
        let request = payload(seq, size);
        let (outcome, line) = one(client, &request, seq, &sigfd)?;
        match outcome {
            Outcome::Interrupted => break,
            Outcome::Reply => stats.received += 1,
            Outcome::Lost(e) => {
                first_loss.get_or_insert(e);
            }
        }
        stats.sent += 1;
        if let Some(rtt) = line.1 {
            stats.rtts_ms.push(rtt);
        }
        if !print(&mut out, line.0.as_bytes())? {
            return Ok(());
        }
        if args.count.is_some_and(|c| seq >= c) {
            break;
        }
        let next = start + interval * seq as u32;
        if pause(client, next, &sigfd) {
            break;
        }
    }
    let summary = stats.summary(&target, start.elapsed());
    if !print(&mut out, summary.as_bytes())? {
        return Ok(());
    }
    match first_loss {
        None => Ok(()),
        Some(e) => Err(e.context(anyhow!(
            "{} of {} datagrams got no reply",
            stats.sent - stats.received,
            stats.sent
        ))),
    }
}

/// Sends one datagram and waits for its reply; returns the outcome and the
/// line to print with the round-trip time in ms.
fn one(
    client: &mut Client,
    request: &[u8],
    seq: u64,
    sigfd: &SignalFd,
) -> Result<(Outcome, (String, Option<f64>))> {
    let sent = client.send(request)?;
    let deadline = sent + client.timeout;
    let mut elsewhere = None;
    loop {
        match client.recv(deadline, Some(sigfd.as_fd()))? {
            Received::Peer(n, from) if answers(&client.buf[..n], request) => {
                let ms = sent.elapsed().as_secs_f64() * 1000.0;
                let line = format!("{n} bytes from {from}: seq={seq} time={ms:.3} ms\n");
                return Ok((Outcome::Reply, (line, Some(ms))));
            }
            // A late reply to an earlier datagram, or something else.
            Received::Peer(..) => {}
            Received::Elsewhere(from) => {
                elsewhere.get_or_insert(from);
            }
            Received::Nothing => {
                let line = format!(
                    "no reply for seq={seq} within {}s\n",
                    client.timeout.as_secs_f64()
                );
                let why = client.silence(request.len(), elsewhere);
                return Ok((Outcome::Lost(why), (line, None)));
            }
            // The datagram whose reply was still awaited is left out of the
            // counts: it was neither answered nor lost.
            Received::Interrupted => return Ok((Outcome::Interrupted, (String::new(), None))),
        }
    }
}

/// Waits until `until`, reading (and ignoring) late replies; true when
/// interrupted.
fn pause(client: &mut Client, until: std::time::Instant, sigfd: &SignalFd) -> bool {
    loop {
        match client.recv(until, Some(sigfd.as_fd())) {
            Ok(Received::Interrupted) => return true,
            Ok(Received::Nothing) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_identifies_the_datagram_both_ways() {
        let p = payload(7, 20);
        assert_eq!(p, b"0000000000000007abcd");
        assert!(answers(&p, &p));
        let rev: Vec<u8> = p.iter().rev().copied().collect();
        assert!(answers(&rev, &p));
        assert!(!answers(&payload(8, 20), &p));
        assert_eq!(payload(1, 64).len(), 64);
    }

    #[test]
    fn summary_like_ping() {
        let s = Stats {
            sent: 4,
            received: 3,
            rtts_ms: vec![1.0, 2.0, 3.0],
        };
        let text = s.summary("udp:127.0.0.1:7", Duration::from_millis(3002));
        assert!(
            text.contains("--- udp:127.0.0.1:7 ping statistics ---"),
            "{text}"
        );
        assert!(text.contains("4 datagrams sent, 3 received, 25% loss, time 3002ms"));
        assert!(text.contains("rtt min/avg/max/mdev = 1.000/2.000/3.000/0.816 ms"));
    }
}
