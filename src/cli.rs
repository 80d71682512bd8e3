//! The command-line definition.
//!
//! It lives in the library, not in `main.rs`, so that the man page and the
//! shell completions can be generated from the very same definition (see
//! `tests/docs.rs`) and can never drift from what the binary accepts.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::addr::Addr;
use crate::defaults::{self, GUARD_PORTS as DEFAULT_GUARD_PORTS};
use crate::duration::{MAX_DURATION, parse_duration};
pub use crate::echo::ReplyMode;

const LONG_ABOUT: &str = "\
dgecho answers every datagram it receives, on Unix datagram sockets and UDP. \
It is built for systemd socket activation: the packaged dgecho.socket binds \
/run/dgecho/dgecho.sock and UDP port 7 on loopback, and the first datagram \
starts dgecho.service. `dgecho client` checks whether a datagram socket is \
reachable, by whom and how fast.";

const AFTER_HELP: &str = "\
ADDRESSES:
  unix:/path     Unix datagram socket bound to a path
  unix:@name     Unix datagram socket in the abstract namespace (Linux)
  /path          any argument containing '/' is a Unix socket path
  udp:HOST:PORT  UDP; HOST may be a name, an IPv4 address or [IPv6]
  HOST:PORT      UDP, same as udp:HOST:PORT
  [IPV6]:PORT    UDP over IPv6";

/// A datagram echo daemon for systemd socket activation, and its client.
#[derive(Debug, Parser)]
#[command(
    name = "dgecho",
    version,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Log more: -v for debug, -vv for one line per datagram (trace).
    /// With `client`, -v also prints each reply's size, source and
    /// round-trip time on stderr.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Log less: -q shows only warnings and errors, -qq only errors.
    #[arg(short, long, action = ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Answer datagrams on the sockets systemd passed in and on --listen
    /// addresses.
    #[command(after_help = AFTER_HELP)]
    Serve(ServeArgs),
    /// Send datagrams to an echo service and print the replies.
    #[command(after_help = AFTER_HELP)]
    Client(ClientArgs),
    /// Load an echo service and measure replies/s, loss and round-trip
    /// times, checking every reply.
    #[command(after_help = AFTER_HELP)]
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Also bind and serve ADDR (repeatable). With neither this nor sockets
    /// from systemd, serve binds 127.0.0.1:7007 and
    /// $XDG_RUNTIME_DIR/dgecho.sock (without XDG_RUNTIME_DIR:
    /// dgecho-UID.sock in $TMPDIR, normally /tmp).
    #[arg(short, long = "listen", value_name = "ADDR")]
    pub listen: Vec<Addr>,

    /// The mode of the socket files serve binds itself (--listen paths
    /// and the default path), in octal as for chmod, like SocketMode= of a
    /// socket unit. Connecting needs write permission: 0666 lets every
    /// local user in, 0660 with --socket-group only that group. Default:
    /// what the umask leaves, usually 0755 (only this user).
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub socket_mode: Option<u32>,

    /// The group of those socket files (a name or a number), like
    /// SocketGroup=. This user must be a member of it, or root.
    #[arg(long, value_name = "GROUP", value_parser = parse_group)]
    pub socket_group: Option<u32>,

    /// What to send back.
    #[arg(long, value_enum, default_value_t = ReplyMode::Reverse)]
    pub reply: ReplyMode,

    /// Never answer UDP datagrams from these source ports, to stop
    /// echo loops with other always-answering services. A comma-separated
    /// list; "none" turns the guard off.
    #[arg(long, value_name = "PORTS", default_value = DEFAULT_GUARD_PORTS,
          value_parser = parse_ports)]
    pub guard_ports: GuardPorts,

    /// Threads per socket, all serving the same socket. More than 1 only
    /// helps with more than one CPU and heavy load, and may reorder the
    /// replies to one sender; ReusePort= sockets from systemd scale
    /// without reordering.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,

    /// Answer each UDP source at most RATE datagrams per second (e.g. 20
    /// or 20/s); the rest are dropped and counted as "rate limited". A
    /// source is an IPv4 address or an IPv6 /64, whatever its port. The
    /// limit applies to each socket, and with --workers N each worker
    /// allows 1/N of it. Sources are tracked in a table of fixed size
    /// (4096 per worker): a flood of distinct sources evicts the oldest,
    /// it never uses more memory. Unix sockets are not limited. Without
    /// this option, sources other than loopback get 1000/s with a burst of
    /// 2000: enough for any check, and it ends an echo loop that a forged
    /// datagram starts between two services within a fraction of a
    /// second. "none" turns every limit off.
    #[arg(long, value_name = "RATE[/s]|none", value_parser = parse_rate_limit)]
    pub rate_limit: Option<RateLimit>,

    /// How many datagrams a source may send at once, before
    /// --rate-limit spaces them out. Default: one second's worth of RATE.
    #[arg(long, value_name = "N", requires = "rate_limit",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub burst: Option<u32>,

    /// Send runs of same-size UDP replies to one client as one GSO send
    /// (UDP_SEGMENT): "on" (the default) or "off", to compare. Where the
    /// kernel or the route refuses, dgecho falls back by itself.
    #[arg(long, value_name = "on|off", default_value = "on", action = ArgAction::Set,
          value_parser = parse_on_off)]
    pub gso: bool,

    /// Exit cleanly after this long without a datagram (e.g. 30s, 5m, 1h).
    /// Under socket activation, systemd starts dgecho again on the next
    /// datagram, which waits in the socket meanwhile.
    #[arg(long, value_name = "DURATION", value_parser = parse_idle_timeout)]
    pub idle_timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Where to send, when the first word looks like an address (see
    /// ADDRESSES). Without one, the client looks for a running dgecho:
    /// /run/dgecho/dgecho.sock, then $XDG_RUNTIME_DIR/dgecho.sock or
    /// dgecho-UID.sock in $TMPDIR or /tmp, then other users' sockets; when
    /// none can be used it lists the ones it found and says why. A first
    /// word that looks like an address but is not one (127.0.0.1,
    /// localhost, host:-1, dgecho.sock) is refused with a suggestion.
    #[arg(value_name = "ADDR")]
    pub addr: Option<String>,

    /// The message: its words joined by single spaces, sent as one
    /// datagram. Without one, each line of standard input is sent as one
    /// datagram. Everything after `--` is message, never an address: use it
    /// for a message that starts with '-' or with an address-like word.
    #[arg(value_name = "MESSAGE")]
    pub message: Vec<String>,

    /// The words after `--`: always message.
    #[arg(last = true, value_name = "MESSAGE", hide = true)]
    pub literal: Vec<String>,

    /// How long to wait for each reply (e.g. 500ms, 2s).
    #[arg(short, long, value_name = "DURATION", default_value = "2s",
          value_parser = parse_duration)]
    pub timeout: Duration,

    /// Bind the client's Unix socket to PATH instead of an automatic
    /// abstract address. The daemon's user must be able to write to PATH,
    /// and PATH must be visible to it (not under a private /tmp). Needed
    /// for servers that cannot answer an abstract address.
    #[arg(long, value_name = "PATH")]
    pub bind: Option<PathBuf>,

    /// Ping mode: send N datagrams, one per --interval, print a line per
    /// reply (size, source, sequence number, round-trip time) and a
    /// summary. Exits 0 only when every reply came back.
    #[arg(short = 'c', long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Ping mode: the time between datagrams (default 1s). Without
    /// --count, ping mode runs until interrupted (Ctrl-C prints the summary).
    #[arg(short = 'i', long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<Duration>,

    /// Ping mode: the size of each datagram in bytes (default 64).
    #[arg(short = 's', long, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(defaults::PING_MIN_SIZE as i64..=defaults::MAX_UDP_PAYLOAD as i64))]
    pub size: Option<u32>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Where to send. Default: the same as `dgecho client`.
    #[arg(value_name = "ADDR")]
    pub addr: Option<Addr>,

    /// Closed loop: datagrams outstanding at once in each flow; 1 is
    /// ping-pong. Best for the most replies per second; for latency under
    /// a given load use --rate.
    #[arg(short, long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=defaults::BENCH_MAX_WINDOW as i64))]
    pub window: u32,

    /// Open loop: send RATE datagrams per second (e.g. 10000 or
    /// 10000/s) on a fixed schedule, all flows together, whatever the
    /// replies do. Each round-trip time is measured from when its datagram
    /// was due, so a late sender or a stalled server shows in every
    /// datagram it delays (no coordinated omission). The report says how
    /// far behind schedule the sender fell.
    #[arg(short, long, value_name = "RATE[/s]", value_parser = parse_bench_rate,
          conflicts_with = "window")]
    pub rate: Option<f64>,

    /// Load from N sockets at once, each with its own address (its own
    /// UDP port or autobound Unix name), reporting each flow and the
    /// total. --window applies to each flow; --rate is shared evenly.
    #[arg(short, long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=defaults::BENCH_MAX_FLOWS as i64))]
    pub flows: u32,

    /// Print a report line every DURATION (e.g. 1s, 500ms): time,
    /// replies/s, sent, lost, and the interval's RTT p50/p99/max. Default:
    /// every second when the output is a terminal, else none.
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<Duration>,

    /// Write the round-trip times to FILE as an HdrHistogram percentile
    /// distribution (.hgrm, values in microseconds), for HdrHistogram's
    /// plotFiles.html or hdr-plot.
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,

    /// Size of each datagram in bytes (at least 8: each carries its
    /// sequence number).
    #[arg(short, long, value_name = "BYTES", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(defaults::BENCH_MIN_SIZE as i64..=defaults::MAX_UDP_PAYLOAD as i64))]
    pub size: u32,

    /// How long to send (e.g. 500ms, 5s, 1m).
    #[arg(short, long, value_name = "DURATION", default_value = "5s",
          value_parser = parse_duration)]
    pub duration: Duration,

    /// What the service sends back, and so what each reply must be.
    #[arg(long, value_enum, default_value_t = ReplyMode::Reverse)]
    pub reply: ReplyMode,

    /// Print the report as one JSON object, after one per interval line
    /// (JSON lines, each with a "type").
    #[arg(long)]
    pub json: bool,

    /// Load a target that is neither loopback nor a Unix socket. Only
    /// for hosts you are responsible for: this floods them.
    #[arg(long)]
    pub allow_remote: bool,
}

/// What `--rate-limit` says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateLimit {
    /// `none`: no limit at all.
    Off,
    /// A rate per source, for every source.
    PerSec(f64),
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s.trim() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("'{s}' is neither 'on' nor 'off'")),
    }
}

fn parse_rate_limit(s: &str) -> Result<RateLimit, String> {
    if s.trim() == "none" {
        return Ok(RateLimit::Off);
    }
    crate::ratelimit::parse_rate(s)
        .map(RateLimit::PerSec)
        .map_err(|e| format!("{e}, or 'none'"))
}

impl ServeArgs {
    /// The per-source limit of --rate-limit and --burst, and whether it
    /// spares loopback sources: the default limit does (only root can
    /// forge a loopback source, and local benchmarks are the point of a
    /// local echo service); one given on the command line does not.
    pub fn rate(&self) -> (Option<crate::ratelimit::Rate>, bool) {
        use crate::ratelimit::Rate;
        match self.rate_limit {
            Some(RateLimit::Off) => (None, false),
            Some(RateLimit::PerSec(per_sec)) => (
                Some(Rate {
                    per_sec,
                    burst: self.burst.unwrap_or_else(|| Rate::default_burst(per_sec)),
                }),
                false,
            ),
            None => (Some(defaults::RATE_LIMIT), true),
        }
    }
}

impl ClientArgs {
    /// Ping mode: any of --count, --interval, --size.
    pub fn ping(&self) -> bool {
        self.count.is_some() || self.interval.is_some() || self.size.is_some()
    }
}

/// Parses `bench --rate`: requests per second, as `N` or `N/s`, the
/// grammar of `serve --rate-limit` with an error message about bench.
fn parse_bench_rate(s: &str) -> Result<f64, String> {
    match crate::ratelimit::parse_rate(s) {
        Ok(v) if v <= defaults::BENCH_MAX_RATE => Ok(v),
        _ => Err(format!(
            "'{s}' is not a rate: give requests per second, all flows together, such as \
             10000 or 10000/s (at most {})",
            defaults::BENCH_MAX_RATE
        )),
    }
}

/// The set of UDP source ports the loop guard refuses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuardPorts(pub Vec<u16>);

fn parse_ports(s: &str) -> Result<GuardPorts, String> {
    let s = s.trim();
    if s == "none" {
        return Ok(GuardPorts(Vec::new()));
    }
    if s.is_empty() {
        return Err(format!(
            "an empty list would turn the loop guard off by accident; give ports such as \
             {DEFAULT_GUARD_PORTS}, or 'none' to turn it off"
        ));
    }
    let mut ports = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let port = part.parse::<u16>().map_err(|_| {
            format!("'{part}' is not a port number (0-65535); give a comma-separated list such as {DEFAULT_GUARD_PORTS}, or 'none'")
        })?;
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    Ok(GuardPorts(ports))
}

/// The shortest `--idle-timeout`: below it a daemon would exit between two
/// datagrams of one exchange, and the loops notice activity only a few
/// times a second anyway.
pub const MIN_IDLE_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest: a year. Longer is "never" (leave the option out), and the
/// bound keeps the deadline arithmetic far from overflow.
pub const MAX_IDLE_TIMEOUT: Duration = MAX_DURATION;

/// Parses `--idle-timeout`: a duration from 100ms to 365 days.
fn parse_idle_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if !(MIN_IDLE_TIMEOUT..=MAX_IDLE_TIMEOUT).contains(&d) {
        return Err(format!(
            "'{}' is out of range: give an idle timeout from 100ms to 365 days (e.g. 30s, 5m, 1h), \
             or leave --idle-timeout out to never exit when idle",
            s.trim()
        ));
    }
    Ok(d)
}

/// An octal file mode such as `0666` or `660`, as chmod takes it.
fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    match u32::from_str_radix(t, 8) {
        Ok(m) if !t.is_empty() && m <= 0o777 => Ok(m),
        _ => Err(format!(
            "'{s}' is not a socket mode: give octal permission bits such as 0666 (every \
             local user may connect) or 0660 (owner and --socket-group)"
        )),
    }
}

/// A group name or number, resolved now so that a typo fails at once.
fn parse_group(s: &str) -> Result<u32, String> {
    if let Ok(gid) = s.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(s) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ => Err(format!(
            "there is no group '{s}': give a group name from /etc/group, or a number"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn idle_timeouts_are_bounded() {
        assert_eq!(parse_idle_timeout("100ms").unwrap(), MIN_IDLE_TIMEOUT);
        assert_eq!(parse_idle_timeout("8760h").unwrap(), MAX_IDLE_TIMEOUT);
        for bad in ["1ms", "0.05", "99ms"] {
            let err = parse_idle_timeout(bad).unwrap_err();
            assert!(err.contains("from 100ms to 365 days"), "{bad}: {err}");
        }
        for huge in ["8761h", "1000000000", "100000000000000000000"] {
            let err = parse_idle_timeout(huge).unwrap_err();
            assert!(err.contains("longer than a year"), "{huge}: {err}");
        }
        assert!(parse_idle_timeout("1e12").is_err());
    }

    #[test]
    fn modes_and_groups() {
        assert_eq!(parse_mode("0666").unwrap(), 0o666);
        assert_eq!(parse_mode("660").unwrap(), 0o660);
        for bad in ["", "999", "rw", "01777", "-1"] {
            assert!(parse_mode(bad).unwrap_err().contains("0666"), "{bad}");
        }
        assert_eq!(parse_group("0").unwrap(), 0);
        assert_eq!(parse_group("root").unwrap(), 0);
        assert!(
            parse_group("no-such-group-x")
                .unwrap_err()
                .contains("no group")
        );
    }

    #[test]
    fn bench_rates() {
        let good = [("1000", 1000.0), ("2500/s", 2500.0), ("1e7", 1e7)];
        for (text, rate) in good {
            assert_eq!(parse_bench_rate(text), Ok(rate), "{text}");
        }
        let bad = ["", "0", "-5", "1.5e7", "inf", "NaN", "fast", "10/m"];
        let errors = bad.map(|b| parse_bench_rate(b).unwrap_err());
        assert!(
            errors.iter().all(|e| e.contains("all flows together")),
            "{errors:?}"
        );
    }

    #[test]
    fn guard_ports() {
        assert_eq!(parse_ports("0,7,13").unwrap().0, vec![0, 7, 13]);
        assert_eq!(parse_ports("none").unwrap().0, Vec::<u16>::new());
        for empty in ["", " ", "  "] {
            let err = parse_ports(empty).unwrap_err();
            assert!(err.contains("'none' to turn it off"), "{empty:?}: {err}");
        }
        assert!(
            parse_ports("7,,13").is_err(),
            "an empty item is refused too"
        );
        assert_eq!(parse_ports("7, 7").unwrap().0, vec![7]);
        let err = parse_ports("7,echo").unwrap_err();
        assert!(err.contains("'echo' is not a port number"), "{err}");
        assert!(err.contains("'none'"), "{err}");
    }
}
