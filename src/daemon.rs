//! `dgecho serve`: gathers the sockets, runs the [`Server`], and keeps the
//! service manager informed (readiness, status, watchdog, stopping) until a
//! signal or the idle timeout ends it.
//!
//! The main thread is the supervisor. It blocks SIGTERM and SIGINT before
//! any worker starts (threads inherit the mask) and reads them from a
//! `signalfd`, so a signal never interrupts a worker and no signal handler
//! (and no `unsafe`) is needed.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use log::{debug, error, info};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::AsFd;

use crate::activation::{self, ListenEnv};
use crate::cli::ServeArgs;
use crate::echo::{Options, Server, Stats, TICK};
use crate::listener::{Listener, SocketFile};
use crate::notify::{self, Notifier};
use crate::{defaults, exit};

/// How often `STATUS=` may change: systemd shows it in `systemctl status`,
/// and once a second is plenty for a human while costing nothing.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Why the supervisor loop ended.
enum Exit {
    Signal(Signal),
    Idle(Duration),
}

/// Runs `dgecho serve` until SIGTERM/SIGINT or the idle timeout.
pub fn run(args: &ServeArgs, listen_env: &ListenEnv) -> Result<()> {
    let watchdog = notify::watchdog_interval();
    // Take the passed-in fds before opening anything: a new fd (such as the
    // notify socket's) would otherwise reuse the number of a passed fd that
    // turned out to be closed, and be mistaken for it.
    let mut listeners = activation::listeners(listen_env).map_err(exit::not_configured)?;
    let notifier = &Notifier::from_env();
    let passed = listeners.len();
    let file = SocketFile {
        mode: args.socket_mode,
        group: args.socket_group,
    };
    for addr in &args.listen {
        listeners.extend(Listener::bind_with(addr, &file).map_err(exit::not_configured)?);
    }
    if listeners.is_empty() {
        info!(
            "no sockets from systemd and no --listen address: binding the defaults \
             (see `dgecho serve --help`)"
        );
        for addr in defaults::serve_addrs() {
            listeners.extend(
                Listener::bind_with(&addr, &file)
                    .context("cannot bind a default address; pass --listen ADDR to choose another")
                    .map_err(exit::not_configured)?,
            );
        }
    }
    for (i, l) in listeners.iter().enumerate() {
        let origin = if i < passed {
            "from systemd"
        } else {
            "bound by dgecho"
        };
        info!("serving {l}, {origin}");
    }

    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals
        .thread_block()
        .context("cannot block SIGTERM and SIGINT")?;
    let sigfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("cannot create a signalfd")?;

    let opts = Options {
        reply: args.reply,
        guard_ports: args.guard_ports.0.clone(),
        workers: usize::from(args.workers),
        rate_limit: args.rate(),
    };
    let count = listeners.len();
    let server = Server::start(listeners, &opts)?;
    let idle = match args.idle_timeout {
        Some(d) => format!(", exiting after {} idle", humanize(d)),
        None => String::new(),
    };
    let limit = match args.rate() {
        Some(r) => format!(", at most {r} per UDP source"),
        None => String::new(),
    };
    info!(
        "ready: answering on {count} socket{} ({} replies{limit}{idle})",
        if count == 1 { "" } else { "s" },
        args.reply
    );
    notifier.ready(&status_line(&Stats::default()));

    let exit = supervise(&server, &sigfd, notifier, watchdog, args.idle_timeout);
    let reason = match &exit {
        Ok(Exit::Signal(sig)) => format!("received {sig}"),
        Ok(Exit::Idle(d)) => format!("no datagram for {}", humanize(*d)),
        Err(e) => format!("{e:#}"),
    };
    notifier.stopping(&format!("stopping: {reason}"));
    let (stats, result) = server.stop();
    info!("stopping ({reason}): {stats}");
    match exit {
        Ok(_) => result,
        Err(e) => Err(e),
    }
}

/// Waits for a signal, the idle timeout or a failed loop, meanwhile sending
/// `STATUS=` and `WATCHDOG=1`.
fn supervise(
    server: &Server,
    sigfd: &SignalFd,
    notifier: &Notifier,
    watchdog: Option<Duration>,
    idle_timeout: Option<Duration>,
) -> Result<Exit> {
    let start = Instant::now();
    let mut last_stats = Stats::default();
    let mut next_status = start + STATUS_INTERVAL;
    let mut last_activity = start;
    let mut next_watchdog = start;
    // Liveness: every loop's heartbeat must move between two checks that
    // are at least a few ticks apart.
    let mut beats = (start, server.heartbeats());
    if let Some(w) = watchdog {
        debug!("watchdog on: WATCHDOG=1 every {}", humanize(w));
    }

    loop {
        let now = Instant::now();
        let mut deadline = next_status;
        if watchdog.is_some() {
            deadline = deadline.min(next_watchdog);
        }
        if let Some(idle) = idle_timeout {
            deadline = deadline.min(last_activity + idle);
        }
        let wait = deadline.saturating_duration_since(now);
        let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        let readable = match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) => n > 0,
            Err(nix::errno::Errno::EINTR) => false,
            Err(e) => return Err(e).context("poll on the signalfd failed"),
        };
        if readable {
            if let Some(info) = sigfd.read_signal().context("cannot read the signalfd")? {
                let sig = Signal::try_from(info.ssi_signo as i32).unwrap_or(Signal::SIGTERM);
                return Ok(Exit::Signal(sig));
            }
        }
        if let Some(label) = server.failed() {
            bail!("the loop on {label} ended unexpectedly");
        }

        let now = Instant::now();
        let stats = server.stats();
        if stats.received != last_stats.received {
            last_activity = now;
        }
        if let Some(idle) = idle_timeout {
            if now.duration_since(last_activity) >= idle {
                return Ok(Exit::Idle(idle));
            }
        }
        if now >= next_status {
            if stats != last_stats {
                notifier.status(&status_line(&stats));
            }
            last_stats = stats;
            next_status = now + STATUS_INTERVAL;
        }
        if let Some(interval) = watchdog {
            if now >= next_watchdog {
                if now.duration_since(beats.0) >= 3 * TICK {
                    let current = server.heartbeats();
                    let stuck = current.iter().zip(&beats.1).any(|(a, b)| a == b);
                    beats = (now, current);
                    if stuck {
                        error!("a socket loop has stopped turning: withholding WATCHDOG=1");
                        next_watchdog = now + interval;
                        continue;
                    }
                }
                notifier.watchdog();
                next_watchdog = now + interval;
            }
        }
    }
}

/// The `STATUS=` text: live counters for `systemctl status`.
///
/// Once a source has gone over `--rate-limit`, the count of those drops
/// follows: "received 9, answered 5, dropped 4 (rate limited 4)". The
/// final log line has every cause.
pub fn status_line(stats: &Stats) -> String {
    let mut s = format!(
        "received {}, answered {}, dropped {}",
        stats.received,
        stats.answered,
        stats.dropped()
    );
    if stats.rate_limited > 0 {
        s.push_str(&format!(" (rate limited {})", stats.rate_limited));
    }
    s
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
