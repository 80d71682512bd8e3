//! The integration tests: one binary (ripgrep style) whose modules spawn the
//! real `dgecho` binary the way systemd does, with pre-bound sockets on fd 3
//! onwards, `LISTEN_*` variables and a `NOTIFY_SOCKET` the test owns.
//!
//! Every wait is bounded and ends on a signal (`READY=1`, a reply, a status
//! line, an exit), never on a sleep.

mod util;

mod abuse;
mod activation;
mod bench;
mod client;
mod client_cli;
mod discover;
mod docs;
mod echo;
mod engine;
mod hardening;
mod interop;
mod lifecycle;
mod netns;
mod permissions;
mod ping;
mod reflection;
