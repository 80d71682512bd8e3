//! `dgecho client`: sends datagrams and prints the replies, and when that
//! fails, says what is wrong and what to do about it.
//!
//! The error messages matter more than anything else here: the blog post
//! this project grew from lost an evening to a permission error on a Unix
//! datagram socket. Connecting the client socket makes the kernel report
//! most problems (missing, unreadable, stale or wrong-type socket) at once,
//! before anything is sent, and each gets its own explanation.

use std::io::{self, BufRead, IsTerminal, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, bind, socket};
use nix::unistd::{Gid, Group, Uid, User};
use std::os::fd::AsRawFd;

use crate::addr::Addr;
use crate::cli::ClientArgs;
use crate::defaults::{self, PACKAGED_SOCKET};

/// The largest reply the client reads whole.
const MAX_REPLY: usize = 1 << 20;

/// The address used when none is given: the packaged socket when it exists,
/// otherwise the Unix socket `dgecho serve` binds by default.
pub fn default_addr() -> Addr {
    let packaged = Path::new(PACKAGED_SOCKET);
    if packaged.exists() {
        Addr::UnixPath(packaged.into())
    } else {
        Addr::UnixPath(defaults::unix_path())
    }
}

/// A connected client socket.
enum Conn {
    Unix {
        sock: UnixDatagram,
        /// A `--bind` path we created and remove on drop.
        bound: Option<PathBuf>,
    },
    Udp(UdpSocket),
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Conn::Unix { bound: Some(p), .. } = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// One reply and where it came from.
pub struct Reply {
    pub data: Vec<u8>,
    pub from: String,
    pub rtt: Duration,
}

/// A client connected to one echo service.
pub struct Client {
    conn: Conn,
    target: Addr,
    timeout: Duration,
    buf: Vec<u8>,
}

impl Client {
    /// Creates the socket, binds it (autobind, `--bind PATH`, or an
    /// ephemeral UDP port) and connects it to `target`.
    pub fn connect(target: &Addr, bind_path: Option<&Path>, timeout: Duration) -> Result<Client> {
        let conn = match target {
            Addr::UnixPath(_) | Addr::UnixAbstract(_) => {
                let (sock, bound) = unix_socket(bind_path)?;
                let res = match target {
                    Addr::UnixPath(p) => sock.connect(p),
                    Addr::UnixAbstract(name) => {
                        use std::os::linux::net::SocketAddrExt;
                        let sa = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                        sock.connect_addr(&sa)
                    }
                    Addr::Udp { .. } => unreachable!(),
                };
                let conn = Conn::Unix { sock, bound };
                res.map_err(|e| explain_unix(target, e))?;
                conn
            }
            Addr::Udp { .. } => {
                if bind_path.is_some() {
                    bail!("--bind PATH applies to Unix sockets only; {target} is UDP");
                }
                Conn::Udp(udp_socket(target)?)
            }
        };
        Ok(Client {
            conn,
            target: target.clone(),
            timeout,
            buf: vec![0u8; MAX_REPLY],
        })
    }

    /// Sends one datagram and waits for its reply.
    pub fn exchange(&mut self, msg: &[u8]) -> Result<Reply> {
        let start = Instant::now();
        let sent = match &self.conn {
            Conn::Unix { sock, .. } => {
                sock.set_write_timeout(Some(self.timeout))?;
                sock.send(msg)
            }
            Conn::Udp(sock) => sock.send(msg),
        };
        sent.map_err(|e| self.explain_io(e, "send to"))?;
        let received = match &self.conn {
            Conn::Unix { sock, .. } => {
                sock.set_read_timeout(Some(self.timeout))?;
                sock.recv_from(&mut self.buf)
                    .map(|(n, a)| (n, describe_std_unix(&a)))
            }
            Conn::Udp(sock) => {
                sock.set_read_timeout(Some(self.timeout))?;
                sock.recv_from(&mut self.buf)
                    .map(|(n, a)| (n, a.to_string()))
            }
        };
        let rtt = start.elapsed();
        let (n, from) = received.map_err(|e| self.explain_io(e, "receive from"))?;
        Ok(Reply {
            data: self.buf[..n].to_vec(),
            from,
            rtt,
        })
    }

    /// The connected socket, for `dgecho bench`, which drives it with
    /// `sendmmsg`/`recvmmsg` after a first [`Client::exchange`].
    pub(crate) fn socket_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match &self.conn {
            Conn::Unix { sock, .. } => sock.as_fd(),
            Conn::Udp(sock) => sock.as_fd(),
        }
    }

    pub(crate) fn explain_io(&self, e: io::Error, what: &str) -> anyhow::Error {
        let target = &self.target;
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => anyhow!(
                "no reply from {target} within {}: is the daemon running? \
                 Check `systemctl status dgecho.socket dgecho.service` and `journalctl -u dgecho`; \
                 a daemon started by hand logs on its own stderr",
                seconds(self.timeout)
            ),
            io::ErrorKind::ConnectionRefused => match target {
                Addr::Udp { port, .. } => anyhow!(
                    "nothing listens on UDP port {port} at {target} (the host answered \
                     \"port unreachable\"): start the daemon, or check the port"
                ),
                _ => explain_unix(target, e),
            },
            _ => anyhow::Error::new(e).context(format!("cannot {what} {target}")),
        }
    }
}

/// A Unix datagram socket bound to an automatic abstract address (Linux
/// autobind) or to `path`. Bound either way, it has an address the daemon
/// can reply to; an abstract one also works across users and private /tmp.
pub(crate) fn unix_socket(path: Option<&Path>) -> Result<(UnixDatagram, Option<PathBuf>)> {
    match path {
        Some(p) => {
            let sock = UnixDatagram::bind(p).with_context(|| {
                format!(
                    "cannot bind the client socket to {}: choose a path that does not exist yet, \
                     in a directory you can write to",
                    p.display()
                )
            })?;
            Ok((sock, Some(p.to_path_buf())))
        }
        None => {
            let fd = socket(
                AddressFamily::Unix,
                SockType::Datagram,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .context("cannot create a Unix datagram socket")?;
            bind(fd.as_raw_fd(), &UnixAddr::new_unnamed())
                .context("cannot autobind the client socket")?;
            Ok((UnixDatagram::from(fd), None))
        }
    }
}

/// A UDP socket on an ephemeral port, connected to the first address of
/// `target` that accepts it. Connecting makes the kernel deliver only the
/// target's replies and report "port unreachable" as an error.
pub(crate) fn udp_socket(target: &Addr) -> Result<UdpSocket> {
    let addrs = target
        .resolve()
        .with_context(|| format!("cannot resolve the host of {target}"))?;
    if let Addr::Udp { port: 0, .. } = target {
        bail!("cannot send to port 0 of {target}: give the port the daemon listens on");
    }
    let mut last = None;
    for sa in addrs {
        let local: SocketAddr = if sa.is_ipv4() {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        let res = UdpSocket::bind(local).and_then(|s| s.connect(sa).map(|_| s));
        match res {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(anyhow::Error::new(e).context(format!("cannot reach {sa}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("{target} resolves to no address")))
}

/// Turns a failed connect or send on a Unix socket into advice.
fn explain_unix(target: &Addr, e: io::Error) -> anyhow::Error {
    let path = match target {
        Addr::UnixPath(p) => p.clone(),
        _ => {
            return match e.kind() {
                io::ErrorKind::ConnectionRefused => anyhow!(
                    "nothing listens on the abstract socket {target}: start the daemon \
                     (`dgecho serve --listen {target}`), or check the name"
                ),
                _ => anyhow::Error::new(e).context(format!("cannot connect to {target}")),
            };
        }
    };
    let shown = path.display();
    let activation = if path == Path::new(PACKAGED_SOCKET) {
        "is dgecho.socket started? Try `sudo systemctl start dgecho.socket`"
    } else {
        "is the daemon running? Start it with `dgecho serve`, or check the path"
    };
    match e.kind() {
        io::ErrorKind::NotFound => anyhow!("the socket {shown} does not exist: {activation}"),
        io::ErrorKind::PermissionDenied => anyhow!(
            "permission denied on {shown}: {}; you are {}. Ask for write access to the socket \
             (for the packaged unit: SocketMode=/SocketGroup= in a drop-in for dgecho.socket), \
             or run as a user who has it",
            describe_owner(&path),
            describe_self()
        ),
        io::ErrorKind::ConnectionRefused => match std::fs::metadata(&path) {
            Ok(m) if !m.file_type().is_socket() => anyhow!(
                "{shown} is not a socket but a {}: check the path",
                file_kind(&m)
            ),
            _ => anyhow!(
                "the socket file {shown} exists but nothing listens on it: it is stale, \
                 left by a server that exited. {activation}; a by-hand server replaces it on start"
            ),
        },
        _ if e.raw_os_error() == Some(nix::libc::EPROTOTYPE) => anyhow!(
            "{shown} is not a datagram socket (it is a stream or seqpacket socket): \
             dgecho speaks SOCK_DGRAM only; check the path"
        ),
        _ => anyhow::Error::new(e).context(format!("cannot connect to {shown}")),
    }
}

fn file_kind(m: &std::fs::Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

/// `mode 0660, owner root:dgecho`, or why the socket cannot even be seen.
fn describe_owner(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!(
            "the socket has mode {:04o}, owner {}:{}",
            m.mode() & 0o7777,
            user_name(m.uid()),
            group_name(m.gid())
        ),
        Err(_) => {
            let dir = path.parent().unwrap_or(Path::new("/"));
            match std::fs::metadata(dir) {
                Ok(m) => format!(
                    "its directory {} (mode {:04o}, owner {}:{}) cannot be searched",
                    dir.display(),
                    m.mode() & 0o7777,
                    user_name(m.uid()),
                    group_name(m.gid())
                ),
                Err(_) => format!("a directory above {} cannot be searched", path.display()),
            }
        }
    }
}

/// `uid 1000 (alice), groups alice, wheel`.
fn describe_self() -> String {
    let uid = Uid::current();
    let groups = nix::unistd::getgroups().unwrap_or_default();
    let mut names: Vec<String> = vec![group_name(Gid::current().as_raw())];
    for g in groups {
        let n = group_name(g.as_raw());
        if !names.contains(&n) {
            names.push(n);
        }
    }
    format!(
        "uid {} ({}) in groups {}",
        uid,
        user_name(uid.as_raw()),
        names.join(", ")
    )
}

fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

fn group_name(gid: u32) -> String {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}

fn describe_std_unix(a: &std::os::unix::net::SocketAddr) -> String {
    use std::os::linux::net::SocketAddrExt;
    crate::listener::describe_unix_parts(a.as_pathname(), a.as_abstract_name())
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// Runs `dgecho client`.
pub fn run(args: &ClientArgs, verbose: bool) -> Result<()> {
    let (addr, message) = args.addr_and_message()?;
    let target = addr.unwrap_or_else(default_addr);
    let mut client = Client::connect(&target, args.bind.as_deref(), args.timeout)?;
    let mut out = io::stdout().lock();
    let mut answer = |client: &mut Client, msg: &[u8]| -> Result<()> {
        let reply = client.exchange(msg)?;
        out.write_all(&reply.data)?;
        out.write_all(b"\n")?;
        out.flush()?;
        if verbose {
            eprintln!(
                "{} bytes from {} in {} µs",
                reply.data.len(),
                reply.from,
                reply.rtt.as_micros()
            );
        }
        Ok(())
    };
    if !message.is_empty() {
        return answer(&mut client, message.join(" ").as_bytes());
    }
    let stdin = io::stdin();
    let interactive = stdin.is_terminal();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    loop {
        if interactive {
            eprint!(">> ");
        }
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            if interactive {
                eprintln!();
            }
            return Ok(());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        answer(&mut client, &line)?;
    }
}
