//! The server's lifecycle: start one worker thread per socket (or
//! `--workers N` per socket), read their counters, stop them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::thread::JoinHandle;

use anyhow::{Context, Result};

use super::policy::{Policy, ReplyMode};
use super::serve::serve;
use super::stats::{Counters, Stats};
use super::transport::Transport;
use super::tuning;
use super::udp::{Udp, V4, V6};
use super::unix::Unix;
use super::worker::Job;
use crate::listener::{Family, Listener};
use crate::ratelimit::Rate;

/// How the server treats datagrams: the engine's own options, which the
/// command line maps onto.
#[derive(Debug, Clone)]
pub struct Options {
    pub reply: ReplyMode,
    /// UDP source ports never answered (the loop guard). The ports of
    /// every UDP socket the server serves are refused too, always.
    pub guard_ports: Vec<u16>,
    /// Threads per socket, all receiving from the same fd; 0 means 1.
    /// With more than one, two datagrams from the same sender can be
    /// answered out of order; `ReusePort=` sockets (one flow, one socket)
    /// keep the order.
    pub workers: usize,
    /// The per-source limit on UDP sockets (`--rate-limit`), for each
    /// socket as a whole: every worker takes `1/workers` of it.
    pub rate_limit: Option<Rate>,
    /// Loopback sources are not limited (`serve`'s default limit).
    pub spare_loopback: bool,
    /// Runs of same-size UDP replies to one peer may leave as one GSO send.
    pub gso: bool,
}

/// A socket and what its workers share besides the policy.
struct Socket {
    listener: Listener,
    /// The control-message room a datagram needs ([`Transport::setup`]).
    cmsg_len: usize,
    kernel_dropped: AtomicU32,
    /// How many workers serve it.
    workers: usize,
}

impl Default for Options {
    /// Reversed replies, no guard list beyond the server's own ports, one
    /// worker, no rate limit, GSO on.
    fn default() -> Options {
        Options {
            reply: ReplyMode::default(),
            guard_ports: Vec::new(),
            workers: 1,
            rate_limit: None,
            spare_loopback: false,
            gso: true,
        }
    }
}

struct Worker {
    label: String,
    counters: Arc<Counters>,
    handle: JoinHandle<Result<()>>,
}

/// The running echo loops.
pub struct Server {
    stop: Arc<AtomicBool>,
    workers: Vec<Worker>,
}

impl Server {
    /// Starts `opts.workers` threads per socket (at least one), all
    /// serving the same socket.
    pub fn start(listeners: Vec<Listener>, opts: &Options) -> Result<Server> {
        let stop = Arc::new(AtomicBool::new(false));
        let per_socket = opts.workers.max(1);
        let own = listeners.iter().filter_map(|l| l.udp_port()).collect();
        let policy = Arc::new(Policy::new(
            opts.reply,
            &opts.guard_ports,
            own,
            opts.rate_limit.map(|r| r.per_worker(per_socket)),
            opts.spare_loopback,
            opts.gso,
        ));
        let mut workers = Vec::with_capacity(listeners.len() * per_socket);
        for (i, listener) in listeners.into_iter().enumerate() {
            tuning::prepare(&listener)?;
            // Socket options go on before any worker runs, so that as few
            // datagrams as possible arrive without what they turn on.
            let cmsg_len = match listener.family() {
                Family::Unix => Unix::setup(&listener),
                Family::Inet => Udp::<V4>::setup(&listener),
                Family::Inet6 => Udp::<V6>::setup(&listener),
            };
            let socket = Arc::new(Socket {
                listener,
                cmsg_len,
                kernel_dropped: AtomicU32::new(0),
                workers: per_socket,
            });
            for w in 0..per_socket {
                let label = if per_socket == 1 {
                    socket.listener.to_string()
                } else {
                    format!("{} (worker {w})", socket.listener)
                };
                workers.push(spawn(
                    format!("dgecho-{i}-{w}"),
                    label,
                    socket.clone(),
                    policy.clone(),
                    stop.clone(),
                )?);
            }
        }
        Ok(Server { stop, workers })
    }

    /// The counters summed over all sockets.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for w in &self.workers {
            w.counters.add_to(&mut s);
        }
        s
    }

    /// One number per worker that grows while its loop turns, whether busy
    /// (datagrams) or idle (receive timeouts). Comparing two heartbeats at
    /// least two [`TICK`](crate::defaults::TICK)s apart tells a live loop
    /// from a stuck one.
    pub fn heartbeats(&self) -> Vec<u64> {
        self.workers
            .iter()
            .map(|w| w.counters.heartbeat())
            .collect()
    }

    /// The first loop that has ended although nobody asked it to, if any.
    pub fn failed(&self) -> Option<&str> {
        self.workers
            .iter()
            .find(|w| w.counters.finished.load(Relaxed))
            .map(|w| w.label.as_str())
    }

    /// Asks every loop to stop, waits for them (at most about one
    /// [`TICK`](crate::defaults::TICK)) and returns the final counters and
    /// the first loop error, if any.
    pub fn stop(self) -> (Stats, Result<()>) {
        self.stop.store(true, Relaxed);
        let mut result = Ok(());
        let mut stats = Stats::default();
        for w in self.workers {
            let r = match w.handle.join() {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("the loop on {} panicked", w.label)),
            };
            if result.is_ok() {
                result = r;
            }
            w.counters.add_to(&mut stats);
        }
        (stats, result)
    }
}

/// Starts one worker thread on `listener`.
fn spawn(
    thread: String,
    label: String,
    socket: Arc<Socket>,
    policy: Arc<Policy>,
    stop: Arc<AtomicBool>,
) -> Result<Worker> {
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let handle = std::thread::Builder::new()
        .name(thread)
        .spawn(move || {
            let listener = &socket.listener;
            let job = Job {
                listener,
                policy: &policy,
                counters: &c,
                stop: &stop,
                kernel_dropped: &socket.kernel_dropped,
                cmsg_len: socket.cmsg_len,
                workers: socket.workers,
            };
            let r = match listener.family() {
                Family::Unix => serve::<Unix>(&job),
                Family::Inet => serve::<Udp<V4>>(&job),
                Family::Inet6 => serve::<Udp<V6>>(&job),
            };
            c.finished.store(true, Relaxed);
            r.with_context(|| format!("the loop on {listener} stopped"))
        })
        .context("cannot start a worker thread")?;
    Ok(Worker {
        label,
        counters,
        handle,
    })
}
