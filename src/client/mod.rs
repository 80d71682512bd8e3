//! `dgecho client`: sends datagrams and prints the replies, and when that
//! fails, says what is wrong and what to do about it.
//!
//! The error messages matter more than anything else here: the blog post
//! this project grew from lost an evening to a permission error on a Unix
//! datagram socket. Connecting a socket to the target makes the kernel
//! report most problems (missing, unwritable, stale or wrong-type socket)
//! before anything is sent, and each gets its own explanation
//! ([`explain`]). Without an address, [`discover`] finds a running dgecho,
//! whoever started it, or lists the sockets it found and why they cannot
//! be used. The `ping` module is the `--count`/`--interval` mode.
//!
//! The command line's socket is not left connected: a connected socket
//! silently drops a reply that comes from another address, and telling
//! that apart from a lost reply is the point of the client.

pub mod discover;
pub mod explain;
mod modes;
mod ping;
mod sockets;
pub mod words;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixSocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::addr::Addr;

pub use discover::default_target;
pub(crate) use modes::print;
pub use modes::run;
pub(crate) use sockets::unix_socket;
use sockets::{describe_std_unix, udp_socket, unix_peer_is};

/// The largest reply the client reads whole.
const MAX_REPLY: usize = 1 << 20;

/// Marks an error as the loss of one reply: in stdin and ping mode the
/// client goes on with the next datagram. It adds no text.
#[derive(Debug)]
pub struct Lost;

impl std::fmt::Display for Lost {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}

impl std::error::Error for Lost {}

/// The client's socket, bound (autobind, `--bind PATH`, or an ephemeral
/// UDP port) and non-blocking: every wait is a `poll`.
enum Sock {
    Unix(UnixDatagram),
    Udp(UdpSocket),
}

/// Where the datagrams go, as the kernel takes it.
enum Peer {
    Unix(UnixSocketAddr),
    Udp(SocketAddr),
}

/// One reply and where it came from.
pub struct Reply {
    pub data: Vec<u8>,
    pub from: String,
    pub rtt: Duration,
}

/// A client of one echo service.
pub struct Client {
    sock: Sock,
    peer: Peer,
    connected: bool,
    /// A `--bind` path we created and remove on drop.
    bound: Option<PathBuf>,
    target: Addr,
    timeout: Duration,
    buf: Vec<u8>,
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(p) = &self.bound {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Client {
    /// A client whose socket is connected to `target`, so that plain
    /// `send`/`recv` (and `sendmmsg`/`recvmmsg` in `dgecho bench`) work.
    pub fn connect(target: &Addr, bind_path: Option<&Path>, timeout: Duration) -> Result<Client> {
        let mut client = Client::open(target, bind_path, timeout)?;
        let res = match (&client.sock, &client.peer) {
            (Sock::Unix(s), Peer::Unix(a)) => s.connect_addr(a),
            (Sock::Udp(s), Peer::Udp(a)) => s.connect(a),
            _ => unreachable!("the socket is made for the peer's family"),
        };
        res.map_err(|e| client.explain_io(e, "connect to"))?;
        client.connected = true;
        Ok(client)
    }

    /// A client that sends with `sendto` and sees every reply, also one from
    /// another address. Unix targets are checked by connecting a probe
    /// socket first; UDP sockets get `IP_RECVERR`, so that "port
    /// unreachable" is reported without connecting.
    pub fn open(target: &Addr, bind_path: Option<&Path>, timeout: Duration) -> Result<Client> {
        let (sock, peer, bound) = match target {
            Addr::UnixPath(_) | Addr::UnixAbstract(_) => {
                let peer = match target {
                    Addr::UnixPath(p) => UnixSocketAddr::from_pathname(p)?,
                    Addr::UnixAbstract(n) => UnixSocketAddr::from_abstract_name(n)?,
                    Addr::Udp { .. } => unreachable!(),
                };
                let (probe, _) = unix_socket(None)?;
                probe
                    .connect_addr(&peer)
                    .map_err(|e| explain::unix(target, e))?;
                let (sock, bound) = unix_socket(bind_path)?;
                (Sock::Unix(sock), Peer::Unix(peer), bound)
            }
            Addr::Udp { .. } => {
                if bind_path.is_some() {
                    bail!("--bind PATH applies to Unix sockets only; {target} is UDP");
                }
                let (sock, sa) = udp_socket(target)?;
                (Sock::Udp(sock), Peer::Udp(sa), None)
            }
        };
        match &sock {
            Sock::Unix(s) => s.set_nonblocking(true)?,
            Sock::Udp(s) => s.set_nonblocking(true)?,
        }
        Ok(Client {
            sock,
            peer,
            connected: false,
            bound,
            target: target.clone(),
            timeout,
            buf: vec![0u8; MAX_REPLY],
        })
    }

    pub fn target(&self) -> &Addr {
        &self.target
    }

    /// Sends one datagram and waits for its reply.
    pub fn exchange(&mut self, msg: &[u8]) -> Result<Reply> {
        let start = self.send(msg)?;
        let deadline = start + self.timeout;
        let mut elsewhere = None;
        loop {
            match self.recv(deadline, None)? {
                Received::Peer(n, from) => {
                    return Ok(Reply {
                        data: self.buf[..n].to_vec(),
                        from,
                        rtt: start.elapsed(),
                    });
                }
                Received::Elsewhere(from) => {
                    elsewhere.get_or_insert(from);
                }
                Received::Nothing | Received::Interrupted => {
                    return Err(self.silence(msg.len(), elsewhere));
                }
            }
        }
    }

    /// Sends `msg`; returns when it left. Waits (up to the timeout) while
    /// the receiver's queue is full.
    pub(crate) fn send(&self, msg: &[u8]) -> Result<Instant> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let start = Instant::now();
            let res = match (&self.sock, &self.peer, self.connected) {
                (Sock::Unix(s), _, true) => s.send(msg),
                (Sock::Udp(s), _, true) => s.send(msg),
                (Sock::Unix(s), Peer::Unix(a), false) => s.send_to_addr(msg, a),
                (Sock::Udp(s), Peer::Udp(a), false) => s.send_to(msg, a),
                _ => unreachable!("the socket is made for the peer's family"),
            };
            match res {
                Ok(_) => return Ok(start),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !matches!(self.wait(PollFlags::POLLOUT, deadline, None), Ok(true)) {
                        bail!(
                            "cannot send to {}: its queue stayed full for {}s",
                            self.target,
                            self.timeout.as_secs_f64()
                        );
                    }
                }
                Err(e) if e.raw_os_error() == Some(nix::libc::EMSGSIZE) => {
                    bail!(
                        "cannot send {} bytes to {}: larger than a datagram on this socket may \
                         be (UDP carries at most 65507 bytes over IPv4; a Unix datagram must fit \
                         the socket's send buffer)",
                        msg.len(),
                        self.target
                    )
                }
                Err(e) => return Err(self.explain_io(e, "send to")),
            }
        }
    }

    /// Waits until `deadline` for a datagram, or for `interrupt` to become
    /// readable.
    pub(crate) fn recv(
        &mut self,
        deadline: Instant,
        interrupt: Option<BorrowedFd>,
    ) -> Result<Received> {
        loop {
            let res = match &self.sock {
                Sock::Unix(s) => s.recv_from(&mut self.buf).map(|(n, a)| {
                    let ours = unix_peer_is(&self.peer, &a);
                    (n, describe_std_unix(&a), ours)
                }),
                Sock::Udp(s) => s.recv_from(&mut self.buf).map(|(n, a)| {
                    let ours = matches!(&self.peer, Peer::Udp(p) if *p == a);
                    (n, a.to_string(), ours)
                }),
            };
            match res {
                Ok((n, from, true)) => return Ok(Received::Peer(n, from)),
                Ok((_, from, false)) => return Ok(Received::Elsewhere(from)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.wait(PollFlags::POLLIN, deadline, interrupt) {
                        Ok(true) => {}
                        Ok(false) => return Ok(Received::Nothing),
                        Err(Interrupted) => return Ok(Received::Interrupted),
                    }
                }
                Err(e) => return Err(self.explain_io(e, "receive from")),
            }
        }
    }

    /// Polls the socket for `events` until `deadline`; false when it
    /// passed. `Err` when `interrupt` became readable first.
    fn wait(
        &self,
        events: PollFlags,
        deadline: Instant,
        interrupt: Option<BorrowedFd>,
    ) -> std::result::Result<bool, Interrupted> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let mut fds = vec![PollFd::new(self.socket_fd(), events)];
            if let Some(fd) = interrupt {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            let ms =
                PollTimeout::try_from(left.as_millis().max(1) as i32).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, ms) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {
                    if fds.get(1).is_some_and(|f| f.any().unwrap_or(false)) {
                        return Err(Interrupted);
                    }
                    return Ok(true);
                }
                Err(_) => return Ok(true),
            }
        }
    }

    /// The socket, for `dgecho bench`, which drives it with
    /// `sendmmsg`/`recvmmsg` after a first [`Client::exchange`], and for
    /// ping mode's `poll`.
    pub(crate) fn socket_fd(&self) -> BorrowedFd<'_> {
        match &self.sock {
            Sock::Unix(s) => s.as_fd(),
            Sock::Udp(s) => s.as_fd(),
        }
    }

    /// The socket made blocking again, for `dgecho bench`, which paces
    /// itself with socket timeouts.
    pub(crate) fn blocking_fd(&self) -> Result<BorrowedFd<'_>> {
        match &self.sock {
            Sock::Unix(s) => s.set_nonblocking(false)?,
            Sock::Udp(s) => s.set_nonblocking(false)?,
        }
        Ok(self.socket_fd())
    }

    /// Why the reply to a datagram of `size` bytes did not come.
    pub(crate) fn silence(&self, size: usize, elsewhere: Option<String>) -> anyhow::Error {
        let autobound = match (&self.sock, &self.bound) {
            (Sock::Unix(s), None) => s.local_addr().ok().map(|a| describe_std_unix(&a)),
            _ => None,
        };
        anyhow!(
            "{}",
            explain::silence(&explain::Silence {
                target: &self.target,
                timeout: self.timeout,
                size,
                bound: self.bound.as_deref(),
                autobound,
                elsewhere,
            })
        )
        .context(Lost)
    }

    pub(crate) fn explain_io(&self, e: io::Error, what: &str) -> anyhow::Error {
        let target = &self.target;
        match (e.kind(), target) {
            (io::ErrorKind::ConnectionRefused, Addr::Udp { port, .. }) => anyhow!(
                "nothing listens on UDP port {port} at {target} (the host answered \
                 \"port unreachable\"): start the daemon, or check the port"
            ),
            (_, Addr::UnixPath(_) | Addr::UnixAbstract(_)) => explain::unix(target, e),
            _ => anyhow::Error::new(e).context(format!("cannot {what} {target}")),
        }
    }
}

/// What [`Client::recv`] got.
pub(crate) enum Received {
    /// A datagram of this many bytes from the target, and its source.
    Peer(usize, String),
    /// A datagram from another address.
    Elsewhere(String),
    Nothing,
    Interrupted,
}

struct Interrupted;
