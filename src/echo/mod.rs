//! The echo engine: takes sockets that are already bound (from systemd,
//! from `--listen`, or a test's `127.0.0.1:0`) and answers every datagram
//! on them until stopped.
//!
//! # Layout
//! - [`server`](Server): the lifecycle. [`Server::start`] starts the
//!   workers, [`Server::stop`] is the stop trigger.
//! - `policy`: the pure per-datagram decision, [`decide`], and what it
//!   needs to know of a peer ([`Peer`]).
//! - `reason`: the one list of drop reasons, [`Reason`].
//! - `stats`: the counters and their one text form ([`Stats`] formats and
//!   parses it).
//! - `worker`: one worker's bookkeeping around the decision.
//! - `report`: rate-limited warnings about drops and failures.
//! - `slots`: the receive buffers and a batch's replies, allocated once.
//! - `mmsg`: batched receive (`recvmmsg`), with headers reset every call.
//! - `serve`: the one loop, for every transport; `transport`: what
//!   differs between them; `udp`, `unix`: the transports.
//! - `send`: the one routine that sends replies; `gso`: UDP segmentation
//!   offload for runs of replies to one peer.
//! - `unread`: each user's share of replies not read yet (Unix);
//!   `creds`: the senders' credentials, asked for only while that share
//!   matters.
//! - `tuning`: socket options set at start.
//!
//! # The hot path
//! Every socket is served with `recvmmsg` (through `mmsg`, which resets its
//! headers so that Unix addresses of every length come back whole): one
//! call takes up to [`BATCH`](crate::defaults::BATCH) queued datagrams,
//! blocking only for the first, and after a lone datagram the loop asks for
//! one at a time, so ping-pong pays no batching overhead. Replies leave
//! together, in arrival order: runs to one UDP peer with one size as a
//! single GSO send, the rest with `sendmmsg`, a lone one with `sendto`.
//!
//! On a UDP socket bound to a wildcard address (`0.0.0.0`, `[::]`) each
//! datagram's destination is received with it (`IP_PKTINFO`,
//! `IPV6_PKTINFO`) and the reply is sent from that address. The loop
//! guard refuses the server's own UDP ports as source ports, besides
//! `--guard-ports`, and `--rate-limit` checks each UDP source against its
//! token bucket ([`crate::ratelimit`], one table per worker, one clock read
//! per batch).
//!
//! Every datagram goes through one pure decision, [`decide`], whose
//! [`Verdict`] drives all the bookkeeping. A worker touches only its own
//! buffers, allocated once, and publishes its counters with relaxed atomic
//! stores. Nothing is formatted unless trace logging is on or a drop must
//! be reported; reports are rate-limited.
//!
//! # Stopping without losing datagrams
//! Sockets carry a receive timeout (`SO_RCVTIMEO`,
//! [`TICK`]) so an idle worker wakes up a few times
//! a second to see the stop flag. A stopping worker never receives again,
//! so whatever is still queued stays in the socket for the next instance
//! that systemd starts. A blocking receive with a timeout costs nothing per
//! datagram, unlike polling a second "stop" fd before every receive.

mod creds;
mod gso;
mod mmsg;
mod policy;
mod reason;
mod report;
mod send;
mod serve;
mod server;
mod slots;
mod stats;
mod transport;
mod tuning;
mod udp;
mod unix;
mod unread;
mod worker;

pub use crate::defaults::TICK;
pub use policy::{Bucket, Checks, Datagram, Peer, ReplyMode, Share, Verdict, decide};
pub use reason::{Reason, Text};
pub use server::{Options, Server};
pub use stats::{ParseStatsError, Stats};
pub use unread::Ledger;
