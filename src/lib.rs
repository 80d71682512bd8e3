//! dgecho: a datagram echo daemon for systemd socket activation, and its
//! client.
//!
//! systemd binds the sockets of `dgecho.socket` and starts `dgecho serve`
//! on the first datagram; the daemon answers every datagram on every socket
//! with a raw receive/send loop (`recvmmsg`/`sendmmsg` batches, a lone
//! datagram answered at once) and keeps systemd informed with
//! `sd_notify`. `dgecho client` checks a socket from the other side and, when
//! something is wrong, says what and how to fix it.
//!
//! # Layout
//! - [`cli`]: the command line, shared with the man page and completions;
//!   [`manual`]: the man pages' own sections.
//! - [`defaults`]: every default (ports, paths, guard list, buffer sizes).
//! - [`duration`]: the one grammar of every time option (`500ms`, `2s`).
//! - [`addr`]: the one address grammar (`unix:/path`, `unix:@name`,
//!   `udp:HOST:PORT`, ...), pure and separately testable.
//! - [`activation`]: sockets passed in by systemd, each checked before use.
//! - [`listener`]: a socket to serve, from systemd or bound by dgecho.
//! - [`echo`]: the engine, a folder of one concern per file: the server's
//!   lifecycle, the pure per-datagram decision, the drop reasons, the
//!   counters, and one loop per transport. It takes already-bound sockets
//!   and a stop trigger, so tests can hand it a `127.0.0.1:0` socket.
//! - [`ratelimit`]: the per-source token buckets of `--rate-limit`, in a
//!   table of fixed size.
//! - [`daemon`]: `dgecho serve`: readiness, status, watchdog, signals, idle
//!   exit.
//! - [`notify`]: `sd_notify` over path and abstract sockets.
//! - [`client`]: `dgecho client` and its explanations of failures.
//! - [`autobind`]: a Unix socket with an automatic abstract address, for
//!   the client and the tests.
//! - [`bench`](mod@bench): `dgecho bench`, a batched load generator that
//!   checks every reply and reports replies/s, loss and RTT percentiles.
//! - [`escape`]: peer-controlled text made safe to log.
//! - [`logging`]: journal-aware log format; [`throttle`]: rate-limited
//!   reports.
//! - [`exit`]: exit statuses (2 usage, 6 configuration) and how errors
//!   choose them.
//!
//! `main.rs` only parses, sets up logging, dispatches and maps errors to an
//! exit status.
//!
//! # Unsafe code
//! Only where neither the standard library nor `nix` can do the job, each
//! block with its reasoning beside it:
//! - `activation::adopt`: owning an fd inherited from systemd;
//! - `echo::mmsg`: `recvmmsg` with headers reset before every call, and
//!   reading a peer's address from the storage the kernel filled;
//! - `echo::unread`: the `SIOCOUTQ` ioctl;
//! - `echo::slots`: `madvise`, giving the pages of unused slots back and
//!   keeping the slots out of transparent huge pages.

pub mod activation;
pub mod addr;
pub mod autobind;
pub mod bench;
pub mod cli;
pub mod client;
pub mod daemon;
pub mod defaults;
pub mod duration;
pub mod echo;
pub mod escape;
pub mod exit;
pub mod listener;
pub mod logging;
pub mod manual;
pub mod notify;
pub mod ratelimit;
pub mod throttle;
