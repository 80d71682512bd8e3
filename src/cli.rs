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
    /// $XDG_RUNTIME_DIR/dgecho.sock (/tmp/dgecho-UID.sock without
    /// XDG_RUNTIME_DIR).
    #[arg(short, long = "listen", value_name = "ADDR")]
    pub listen: Vec<Addr>,

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
    /// without reordering (see tests/bench/RESULTS.md).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,

    /// Answer each UDP source at most RATE datagrams per second (e.g. 20
    /// or 20/s); the rest are dropped and counted as "rate limited". A
    /// source is an IPv4 address or an IPv6 /64, whatever its port. The
    /// limit applies to each socket, and with --workers N each worker
    /// allows 1/N of it. Sources are tracked in a table of fixed size
    /// (4096 per worker): a flood of distinct sources evicts the oldest,
    /// it never uses more memory. Unix sockets are not limited. Off by
    /// default; turn it on wherever UDP is reachable from a network.
    #[arg(long, value_name = "RATE[/s]", value_parser = crate::ratelimit::parse_rate)]
    pub rate_limit: Option<f64>,

    /// How many datagrams a source may send at once, before
    /// --rate-limit spaces them out. Default: one second's worth of RATE.
    #[arg(long, value_name = "N", requires = "rate_limit",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub burst: Option<u32>,

    /// Exit cleanly after this long without a datagram (e.g. 30s, 5m, 1h).
    /// Under socket activation, systemd starts dgecho again on the next
    /// datagram, which waits in the socket meanwhile.
    #[arg(long, value_name = "DURATION", value_parser = parse_idle_timeout)]
    pub idle_timeout: Option<Duration>,
}

#[derive(Debug, Args)]
#[command(override_usage = "dgecho client [OPTIONS] [ADDR] [MESSAGE]...")]
pub struct ClientArgs {
    /// Where to send (ADDR), then the message, its words joined by single
    /// spaces. The first word is the address when it looks
    /// like one (see ADDRESSES); otherwise the default is used:
    /// /run/dgecho/dgecho.sock when it exists, else the Unix socket that
    /// `dgecho serve` binds by default. Without a message, each line of
    /// standard input is sent as one datagram. Put `--` before a message
    /// that starts with '-'.
    #[arg(value_name = "WORDS")]
    pub words: Vec<String>,

    /// Seconds to wait for each reply.
    #[arg(short, long, value_name = "SECONDS", default_value = "2",
          value_parser = parse_seconds)]
    pub timeout: Duration,

    /// Bind the client's Unix socket to PATH instead of an automatic
    /// abstract address. The daemon's user must be able to write to PATH,
    /// and PATH must be visible to it (not under a private /tmp).
    #[arg(long, value_name = "PATH")]
    pub bind: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Where to send. Default: the same as `dgecho client`.
    #[arg(value_name = "ADDR")]
    pub addr: Option<Addr>,

    /// Datagrams outstanding at once; 1 is ping-pong (latency).
    #[arg(short, long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=defaults::BENCH_MAX_WINDOW as i64))]
    pub window: u32,

    /// Size of each datagram in bytes (at least 8: each carries its
    /// sequence number).
    #[arg(short, long, value_name = "BYTES", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(defaults::BENCH_MIN_SIZE as i64..=defaults::MAX_UDP_PAYLOAD as i64))]
    pub size: u32,

    /// How long to send, in seconds.
    #[arg(short, long, value_name = "SECONDS", default_value = "5",
          value_parser = parse_seconds)]
    pub duration: Duration,

    /// What the service sends back, and so what each reply must be.
    #[arg(long, value_enum, default_value_t = ReplyMode::Reverse)]
    pub reply: ReplyMode,

    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,

    /// Load a target that is neither loopback nor a Unix socket. Only
    /// for hosts you are responsible for: this floods them.
    #[arg(long)]
    pub allow_remote: bool,
}

impl ServeArgs {
    /// The per-source limit of --rate-limit and --burst, if any.
    pub fn rate(&self) -> Option<crate::ratelimit::Rate> {
        self.rate_limit.map(|per_sec| crate::ratelimit::Rate {
            per_sec,
            burst: self
                .burst
                .unwrap_or_else(|| crate::ratelimit::Rate::default_burst(per_sec)),
        })
    }
}

impl ClientArgs {
    /// Splits the words into the address, when the first word looks like
    /// one, and the message. A word that looks like an address but is not a
    /// valid one is an error rather than a message sent somewhere else.
    pub fn addr_and_message(&self) -> Result<(Option<Addr>, &[String]), crate::addr::AddrError> {
        let Some(first) = self.words.first() else {
            return Ok((None, &self.words));
        };
        let looks_like_addr = first.starts_with("unix:")
            || first.starts_with("udp:")
            || first.starts_with('[')
            || first.contains('/')
            || first.rsplit_once(':').is_some_and(|(_, port)| {
                !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
            });
        if looks_like_addr {
            Ok((Some(first.parse()?), &self.words[1..]))
        } else {
            Ok((None, &self.words))
        }
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

/// Parses `500ms`, `30s`, `5m`, `1h` or plain seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let scale = match unit {
        "" | "s" | "sec" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => f64::NAN,
    };
    let value: f64 = num.parse().unwrap_or(f64::NAN);
    let secs = value * scale;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!(
            "'{s}' is not a duration; use a positive number with an optional unit: 500ms, 30s, 5m or 1h"
        ));
    }
    // A value too large for a Duration is refused, not a panic.
    Duration::try_from_secs_f64(secs).map_err(|_| {
        format!("'{s}' is too long a duration; use at most a few years, such as 30s, 5m or 1h")
    })
}

/// The shortest `--idle-timeout`: the loops notice activity once per tick,
/// and a daemon that exits between two datagrams of one exchange helps no
/// one.
pub const MIN_IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest: a year. Longer is "never" (leave the option out), and the
/// bound keeps the deadline arithmetic far from overflow.
pub const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses `--idle-timeout`: a duration from 1s to 365 days.
fn parse_idle_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if !(MIN_IDLE_TIMEOUT..=MAX_IDLE_TIMEOUT).contains(&d) {
        return Err(format!(
            "'{}' is out of range: give an idle timeout from 1s to 365 days (e.g. 30s, 5m, 1h), \
             or leave --idle-timeout out to never exit when idle",
            s.trim()
        ));
    }
    Ok(d)
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!(
            "'{s}' is not a number of seconds; use a positive number such as 2 or 0.5"
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
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        for bad in ["", "s", "-1s", "0", "5 parsecs", "1d"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("500ms, 30s, 5m or 1h"), "{bad}: {err}");
        }
    }

    #[test]
    fn idle_timeouts_are_bounded() {
        assert_eq!(parse_idle_timeout("1s").unwrap(), MIN_IDLE_TIMEOUT);
        assert_eq!(parse_idle_timeout("8760h").unwrap(), MAX_IDLE_TIMEOUT);
        for bad in ["1ms", "0.5", "999ms", "8761h", "1000000000"] {
            let err = parse_idle_timeout(bad).unwrap_err();
            assert!(err.contains("from 1s to 365 days"), "{bad}: {err}");
        }
        assert!(parse_idle_timeout("1e12").is_err());
        let huge = parse_idle_timeout("100000000000000000000").unwrap_err();
        assert!(huge.contains("too long"), "{huge}");
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

    fn client(words: &[&str]) -> ClientArgs {
        ClientArgs {
            words: words.iter().map(|w| w.to_string()).collect(),
            timeout: Duration::from_secs(2),
            bind: None,
        }
    }

    #[test]
    fn client_words() {
        let c = client(&["hello", "world"]);
        assert_eq!(c.addr_and_message().unwrap(), (None, &c.words[..]));
        let c = client(&["127.0.0.1:7", "hi"]);
        let (addr, msg) = c.addr_and_message().unwrap();
        assert_eq!(addr.unwrap().to_string(), "udp:127.0.0.1:7");
        assert_eq!(msg, ["hi"]);
        let c = client(&["/run/x.sock"]);
        assert!(c.addr_and_message().unwrap().0.is_some());
        let c = client(&["note:", "this"]);
        assert_eq!(c.addr_and_message().unwrap().0, None);
        for bad in ["::1:7", "host:99999", "unix:", "udp:x"] {
            assert!(client(&[bad, "x"]).addr_and_message().is_err(), "{bad}");
        }
        assert_eq!(client(&[]).addr_and_message().unwrap(), (None, &[][..]));
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("0.5").unwrap(), Duration::from_millis(500));
        assert!(parse_seconds("0").unwrap_err().contains("positive number"));
        assert!(parse_seconds("soon").is_err());
    }
}
