//! The man pages' own text: what `--help` cannot say (addresses, files,
//! environment, exit status, examples), kept beside the command line it
//! explains. `tests/docs.rs` renders it with the clap definition into the
//! pages under `packaging/man/` and fails when the committed ones differ,
//! so a change here or in [`crate::cli`] is one edit plus a refresh.

/// A run of text in one font.
#[derive(Debug, Clone, Copy)]
pub enum Span {
    Roman(&'static str),
    Bold(&'static str),
    Italic(&'static str),
}

/// A paragraph, a tagged paragraph, or an example.
#[derive(Debug, Clone, Copy)]
pub enum Block {
    Para(&'static str),
    Item(&'static [Span], &'static str),
    /// What it shows, then the lines to type (and their output).
    Example(&'static str, &'static [&'static str]),
}

/// A section of `dgecho(1)`, after clap's own.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    pub title: &'static str,
    pub blocks: &'static [Block],
}

/// The date in the pages' footers: the date of the release they describe,
/// set when the version changes (not the build date, so that the pages are
/// reproducible).
pub const DATE: &str = "2026-12-02";

/// The pages' source footer: the program and its version.
pub const SOURCE: &str = concat!("dgecho ", env!("CARGO_PKG_VERSION"));

/// The manual's name in the pages' header.
pub const MANUAL: &str = "User Commands";

/// The pages every page refers to, after dgecho's own.
pub const SEE_ALSO: &[&str] = &[
    "systemctl(1)",
    "systemd.socket(5)",
    "systemd.service(5)",
    "sd_listen_fds(3)",
];

use Block::{Example, Item, Para};
use Span::{Bold, Italic, Roman};

/// The sections of `dgecho(1)` after clap's.
pub const SECTIONS: &[Section] = &[
    Section {
        title: "ADDRESSES",
        blocks: &[
            Para(
                "serve --listen and the client's ADDR use one grammar. Anything else is rejected \
                 with an error that lists these forms:",
            ),
            Item(
                &[Bold("unix:"), Italic("/path")],
                "A Unix datagram socket bound to a path in the file system.",
            ),
            Item(
                &[Bold("unix:@"), Italic("name")],
                "A Unix datagram socket in the abstract namespace (Linux): no file, gone with \
                 the last socket.",
            ),
            Item(
                &[Italic("/path")],
                "Any argument containing a slash is a Unix socket path.",
            ),
            Item(
                &[Bold("udp:"), Italic("HOST"), Bold(":"), Italic("PORT")],
                "UDP. HOST may be a host name, an IPv4 address or an IPv6 address in brackets.",
            ),
            Item(
                &[Italic("HOST"), Bold(":"), Italic("PORT")],
                "UDP, the same as udp:HOST:PORT.",
            ),
            Item(
                &[Bold("["), Italic("IPV6"), Bold("]:"), Italic("PORT")],
                "UDP over IPv6, for example [::1]:7.",
            ),
            Para(
                "Without sockets from systemd and without --listen, dgecho serve binds \
                 127.0.0.1:7007 and $XDG_RUNTIME_DIR/dgecho.sock (/tmp/dgecho-UID.sock when \
                 XDG_RUNTIME_DIR is unset), for trying it out by hand, and logs where it listens. \
                 Without ADDR, dgecho client uses /run/dgecho/dgecho.sock when that socket exists, \
                 otherwise the Unix socket that serve binds by default.",
            ),
        ],
    },
    Section {
        title: "FILES",
        blocks: &[
            Item(
                &[Italic("/run/dgecho/dgecho.sock")],
                "The Unix datagram socket of the packaged dgecho.socket unit (mode 0666: every \
                 local user may use it), and the client's default address.",
            ),
            Item(
                &[Italic("/usr/lib/systemd/system/dgecho.socket")],
                "The sockets systemd holds for the daemon: the Unix socket above and UDP port 7 \
                 (echo) on 127.0.0.1 and [::1]. Enabled by the packages; the first datagram \
                 starts the service. Debian installs the units in /lib/systemd/system.",
            ),
            Item(
                &[Italic("/usr/lib/systemd/system/dgecho.service")],
                "The daemon, dgecho serve, as a hardened Type=notify service with a watchdog. It \
                 is not enabled by itself: it is socket-activated. Change it with a drop-in \
                 (systemctl edit dgecho.service).",
            ),
        ],
    },
    Section {
        title: "ENVIRONMENT",
        blocks: &[
            Item(
                &[
                    Bold("LISTEN_PID"),
                    Roman(", "),
                    Bold("LISTEN_FDS"),
                    Roman(", "),
                    Bold("LISTEN_FDNAMES"),
                ],
                "Sockets passed in by systemd (sd_listen_fds(3)), from file descriptor 3 on. They \
                 are used only when LISTEN_PID is the daemon's own PID. Every one must be a \
                 datagram socket of the Unix, IPv4 or IPv6 family; anything else stops start-up \
                 with an error naming the descriptor.",
            ),
            Item(
                &[Bold("NOTIFY_SOCKET")],
                "Where serve sends READY=1, STATUS= with its counters, WATCHDOG=1 and STOPPING=1 \
                 (sd_notify(3)). A path or an abstract @name.",
            ),
            Item(
                &[Bold("WATCHDOG_USEC")],
                "When set (WatchdogSec= in the unit), serve sends WATCHDOG=1 at half this \
                 interval, and only while every socket's loop is alive.",
            ),
            Item(
                &[Bold("JOURNAL_STREAM")],
                "When standard error is the journal, log lines carry syslog priority prefixes \
                 instead of time stamps.",
            ),
            Item(
                &[Bold("RUST_LOG")],
                "Log filter in env_logger syntax (for example debug, or dgecho=trace); it \
                 overrides -v and -q. At trace level serve logs one line per datagram.",
            ),
            Item(
                &[Bold("XDG_RUNTIME_DIR")],
                "Where serve binds its default Unix socket, and where the client looks for it, \
                 when neither systemd nor --listen gives a socket.",
            ),
        ],
    },
    Section {
        title: "EXIT STATUS",
        blocks: &[
            Item(
                &[Bold("0")],
                "Success: every message got its reply, or the daemon stopped cleanly (SIGTERM, \
                 SIGINT or the idle timeout).",
            ),
            Item(
                &[Bold("1")],
                "An error, printed as \"dgecho: error: ...\" with its causes: no reply within \
                 --timeout, an unreachable address, a socket loop that failed.",
            ),
            Item(
                &[Bold("2")],
                "A usage error: an unknown option, a malformed address or value.",
            ),
            Item(
                &[Bold("6")],
                "A configuration error (EXIT_NOTCONFIGURED in systemd.exec(5)): a socket from \
                 systemd that is not a datagram socket of a served family, a bad LISTEN_FDS, a \
                 --listen address that cannot be bound. Restarting cannot help, so \
                 dgecho.service has RestartPreventExitStatus=6.",
            ),
        ],
    },
    Section {
        title: "EXAMPLES",
        blocks: &[
            Example(
                "Enable the packaged sockets, then ask the daemon (started by the first datagram):",
                &[
                    "systemctl enable --now dgecho.socket",
                    "dgecho client hello",
                    "olleh",
                ],
            ),
            Example(
                "The same over UDP on the echo port, with size, source and round-trip time:",
                &["dgecho client -v 127.0.0.1:7 hello"],
            ),
            Example(
                "Run a daemon by hand on an abstract socket and a UDP port, answering RFC 862 \
                 style:",
                &["dgecho serve --listen unix:@dgecho --listen [::1]:7007 --reply echo"],
            ),
            Example(
                "Send each line of a file as one datagram, waiting half a second for each reply:",
                &["dgecho client --timeout 0.5 unix:@dgecho < lines.txt"],
            ),
        ],
    },
];
