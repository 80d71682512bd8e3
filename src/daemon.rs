//! `dgecho serve`: gathers the sockets, runs the [`Server`], and keeps the
//! service manager informed (readiness, status, watchdog, stopping) until a
//! signal or the idle timeout ends it.
//!
//! The main thread is the supervisor. It blocks the signals it handles
//! before any worker starts (threads inherit the mask) and reads them from
//! a `signalfd`, so a signal never interrupts a worker and no signal handler
//! (and no `unsafe`) is needed:
//! - SIGTERM and SIGINT stop the daemon: `STOPPING=1`, the final counters,
//!   exit 0.
//! - SIGUSR1 logs the counters and goes on. SIGHUP and SIGUSR2 do the
//!   same: dgecho has no configuration file to reload, and a daemon that
//!   dies on the reload signal (the default action) would fail `systemctl
//!   reload` silently.
//! - The other signals whose default action ends a process without a core
//!   dump (SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSTKFLT) stop it
//!   like SIGTERM, with `STOPPING=1` and the final counters: a stray `kill
//!   -ALRM` must never end it silently. SIGKILL cannot be caught, and the
//!   core-dumping ones (SIGQUIT, SIGABRT, ...) keep their meaning.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use log::{debug, error, info};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::AsFd;

use crate::activation::{self, Inherited};
use crate::addr::Addr;
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

/// The signals that stop the daemon: the usual two, and every other one
/// whose default action would end it silently.
const STOP_SIGNALS: [Signal; 8] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGALRM,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGIO,
    Signal::SIGPWR,
    Signal::SIGSTKFLT,
];

/// The signals that make it log its counters and go on.
const REPORT_SIGNALS: [Signal; 3] = [Signal::SIGUSR1, Signal::SIGHUP, Signal::SIGUSR2];

/// Runs `dgecho serve` until SIGTERM/SIGINT or the idle timeout.
pub fn run(args: &ServeArgs, inherited: Inherited) -> Result<()> {
    let watchdog = notify::watchdog_interval();
    // Take the passed-in fds before opening anything: a new fd (such as the
    // notify socket's) would otherwise reuse the number of a passed fd that
    // turned out to be closed, and be mistaken for it.
    let listeners = gather(args, inherited).map_err(limit_hint)?;
    let notifier = &Notifier::from_env();
    let sigfd = block_signals().map_err(limit_hint)?;
    let opts = Options {
        reply: args.reply,
        guard_ports: args.guard_ports.0.clone(),
        workers: usize::from(args.workers),
        rate_limit: args.rate().0,
        spare_loopback: args.rate().1,
        gso: args.gso,
    };
    let count = listeners.len();
    let server = Server::start(listeners, &opts).map_err(limit_hint)?;
    announce(args, count);
    notifier.ready(&Stats::default().to_string());

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

/// Names the limit behind a start-up failure that a setting caused: too
/// few file descriptors (`EMFILE`) or threads (`EAGAIN` from a thread
/// start) for the sockets and `--workers` asked for. Such a failure is a
/// configuration error (exit status 6), and the bare errno says neither
/// which limit nor how to raise it.
fn limit_hint(err: anyhow::Error) -> anyhow::Error {
    use nix::errno::Errno;
    use nix::sys::resource::{Resource, getrlimit};
    let errno = err.chain().find_map(|c| {
        c.downcast_ref::<Errno>().copied().or_else(|| {
            c.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error)
                .map(Errno::from_raw)
        })
    });
    let threads = err.chain().any(|c| c.to_string().contains("worker thread"));
    let hint = match errno {
        Some(Errno::EMFILE) => {
            let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(0, |(soft, _)| soft);
            format!(
                "out of file descriptors: this process may open only {soft} \
                 (RLIMIT_NOFILE); raise LimitNOFILE= in the service unit (or ulimit -n), \
                 or serve fewer sockets"
            )
        }
        Some(Errno::EAGAIN) if threads => "the system refused another thread: lower --workers \
             (it starts that many threads per socket), or raise TasksMax= or LimitNPROC= \
             in the service unit"
            .to_string(),
        _ => return err,
    };
    exit::not_configured(err.context(hint))
}

/// The sockets to serve: systemd's, then `--listen`, else the defaults.
/// Any failure here is a configuration error (exit status 6).
fn gather(args: &ServeArgs, inherited: Inherited) -> Result<Vec<Listener>> {
    // The same address twice would fail to bind as if "another server"
    // held it, when the other one is this very command line. (UDP port 0
    // is a new ephemeral port each time.)
    for (i, addr) in args.listen.iter().enumerate() {
        if matches!(addr, Addr::Udp { port: 0, .. }) {
            continue;
        }
        if let Some(first) = args.listen[..i].iter().find(|a| *a == addr) {
            return Err(exit::usage(anyhow::anyhow!(
                "--listen {addr} names the same address as --listen {first}: give each \
                 address once"
            )));
        }
    }
    let mut listeners = activation::listeners(inherited).map_err(exit::not_configured)?;
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
    Ok(listeners)
}

/// Blocks the handled signals in this thread (and so in every worker
/// started after) and returns the signalfd that receives them.
fn block_signals() -> Result<SignalFd> {
    let mut signals = SigSet::empty();
    for sig in STOP_SIGNALS.into_iter().chain(REPORT_SIGNALS) {
        signals.add(sig);
    }
    signals
        .thread_block()
        .context("cannot block the signals the daemon handles")?;
    SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("cannot create a signalfd")
}

/// The "ready" log line: what is served, and how.
fn announce(args: &ServeArgs, count: usize) {
    let idle = match args.idle_timeout {
        Some(d) => format!(", exiting after {} idle", humanize(d)),
        None => String::new(),
    };
    let limit = match args.rate() {
        (Some(r), true) => format!(", at most {r} per UDP source but loopback"),
        (Some(r), false) => format!(", at most {r} per UDP source"),
        (None, _) => String::new(),
    };
    info!(
        "ready: answering on {count} socket{} ({} replies{limit}{idle})",
        if count == 1 { "" } else { "s" },
        args.reply
    );
}

/// What the supervisor keeps between two wake-ups.
struct Supervisor<'a> {
    server: &'a Server,
    notifier: &'a Notifier,
    watchdog: Option<Duration>,
    idle_timeout: Option<Duration>,
    last_stats: Stats,
    next_status: Instant,
    last_activity: Instant,
    next_watchdog: Instant,
    /// Liveness: every loop's heartbeat must move between two checks that
    /// are at least a few ticks apart.
    beats: (Instant, Vec<u64>),
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
    if let Some(w) = watchdog {
        debug!("watchdog on: WATCHDOG=1 every {}", humanize(w));
    }
    let mut sup = Supervisor {
        server,
        notifier,
        watchdog,
        idle_timeout,
        last_stats: Stats::default(),
        next_status: start + STATUS_INTERVAL,
        last_activity: start,
        next_watchdog: start,
        beats: (start, server.heartbeats()),
    };
    loop {
        match wait_signal(sigfd, sup.deadline())? {
            Some(sig) if REPORT_SIGNALS.contains(&sig) => {
                info!("received {sig}: {}", server.stats());
            }
            Some(sig) => return Ok(Exit::Signal(sig)),
            None => {}
        }
        if let Some(label) = server.failed() {
            bail!("the loop on {label} ended unexpectedly");
        }
        if let Some(exit) = sup.wake(Instant::now()) {
            return Ok(exit);
        }
    }
}

/// Waits up to `deadline` for a signal on the signalfd.
fn wait_signal(sigfd: &SignalFd, deadline: Instant) -> Result<Option<Signal>> {
    let wait = deadline.saturating_duration_since(Instant::now());
    let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
    let readable = match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(n) => n > 0,
        Err(nix::errno::Errno::EINTR) => false,
        Err(e) => return Err(e).context("poll on the signalfd failed"),
    };
    if !readable {
        return Ok(None);
    }
    match sigfd.read_signal().context("cannot read the signalfd")? {
        Some(info) => Ok(Some(
            Signal::try_from(info.ssi_signo as i32).unwrap_or(Signal::SIGTERM),
        )),
        None => Ok(None),
    }
}

impl Supervisor<'_> {
    /// When the next thing is due: a status, a watchdog ping, idle exit.
    fn deadline(&self) -> Instant {
        let mut deadline = self.next_status;
        if self.watchdog.is_some() {
            deadline = deadline.min(self.next_watchdog);
        }
        if let Some(idle) = self.idle_timeout {
            deadline = deadline.min(self.last_activity + idle);
        }
        deadline
    }

    /// Does what is due at `now`; returns the idle exit when it is time.
    fn wake(&mut self, now: Instant) -> Option<Exit> {
        let stats = self.server.stats();
        if stats.received != self.last_stats.received {
            self.last_activity = now;
        }
        if let Some(idle) = self.idle_timeout {
            if now.duration_since(self.last_activity) >= idle {
                return Some(Exit::Idle(idle));
            }
        }
        if now >= self.next_status {
            if stats != self.last_stats {
                self.notifier.status(&stats.to_string());
            }
            self.last_stats = stats;
            self.next_status = now + STATUS_INTERVAL;
        }
        if let Some(interval) = self.watchdog {
            if now >= self.next_watchdog {
                if self.loops_turn(now) {
                    self.notifier.watchdog();
                } else {
                    error!("a socket loop has stopped turning: withholding WATCHDOG=1");
                }
                self.next_watchdog = now + interval;
            }
        }
        None
    }

    /// False when some loop's heartbeat has not moved since the last check
    /// at least three ticks ago; true otherwise (also when it is too early
    /// to tell).
    fn loops_turn(&mut self, now: Instant) -> bool {
        if now.duration_since(self.beats.0) < 3 * TICK {
            return true;
        }
        let current = self.server.heartbeats();
        let stuck = current.iter().zip(&self.beats.1).any(|(a, b)| a == b);
        self.beats = (now, current);
        !stuck
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
