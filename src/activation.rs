//! Sockets passed in by systemd (the `sd_listen_fds(3)` protocol).
//!
//! systemd hands over sockets as fds 3, 4, ... and describes them in
//! `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`. Every fd is checked one
//! small step at a time (open? a socket? datagram? a family we serve?) before
//! it is trusted, so that a mistake in a `.socket` unit stops start-up with a
//! message that names the fd and the fix, instead of a confusing failure in
//! the echo loop later.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{Context, Result, bail};
use listenfd::ListenFd;
use log::{debug, warn};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::socket::{
    AddressFamily, SockType, SockaddrLike, SockaddrStorage, getpeername, getsockname, getsockopt,
    sockopt,
};
use nix::sys::stat::{SFlag, fstat};

use crate::defaults::MAX_LISTEN_FDS;
use crate::listener::{Family, Listener};

/// The `LISTEN_*` variables as they were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenEnv {
    pub pid: Option<String>,
    pub fds: Option<String>,
    pub names: Option<String>,
}

/// What this process inherited from systemd: the variables, and the fds
/// that `listenfd` took when they are meant for us.
pub struct Inherited {
    env: ListenEnv,
    fds: ListenFd,
}

impl Inherited {
    /// Reads the environment, once, in `main` before any thread starts.
    /// When the variables are meant for this process, `listenfd` takes the
    /// fds (and removes `LISTEN_PID` and `LISTEN_FDS`, so that no child
    /// would take them again); otherwise nothing is taken. Whatever is
    /// wrong is reported later, by [`listeners`], once logging is set up.
    pub fn take() -> Inherited {
        let env = ListenEnv {
            pid: std::env::var("LISTEN_PID").ok(),
            fds: std::env::var("LISTEN_FDS").ok(),
            names: std::env::var("LISTEN_FDNAMES").ok(),
        };
        let fds = match env.count_for(std::process::id()) {
            Some(Ok(_)) => ListenFd::from_env(),
            _ => ListenFd::empty(),
        };
        Inherited { env, fds }
    }

    /// Nothing inherited (for tests and tools that never take sockets).
    pub fn none() -> Inherited {
        Inherited {
            env: ListenEnv::default(),
            fds: ListenFd::empty(),
        }
    }
}

impl ListenEnv {
    /// The number of fds meant for process `pid`: `None` when the
    /// variables are absent or meant for another process, an error when
    /// `LISTEN_FDS` is not a number within [`MAX_LISTEN_FDS`]. Pure: the
    /// bound is checked before `listenfd` allocates a slot for each fd.
    fn count_for(&self, pid: u32) -> Option<Result<usize, String>> {
        let fds = self.fds.as_deref()?;
        let ours = self.pid.as_deref().and_then(|p| p.parse::<u32>().ok()) == Some(pid);
        if !ours {
            return None;
        }
        Some(match fds.parse::<usize>() {
            Ok(n) if n <= MAX_LISTEN_FDS => Ok(n),
            _ => Err(format!(
                "LISTEN_FDS={fds:?} is not a number of file descriptors from 0 to \
                 {MAX_LISTEN_FDS}; check how dgecho is started"
            )),
        })
    }

    /// How many fds are meant for this process, with their names; `None`
    /// when the variables are absent or meant for another process.
    pub fn for_pid(&self, pid: u32) -> Result<Option<Vec<String>>> {
        let Some(fds) = &self.fds else {
            debug!("LISTEN_FDS is not set: no sockets from systemd");
            return Ok(None);
        };
        match self.pid.as_deref().map(str::parse::<u32>) {
            Some(Ok(p)) if p == pid => {}
            other => {
                debug!(
                    "ignoring LISTEN_FDS={fds}: LISTEN_PID is {}, not our pid {pid}",
                    match other {
                        None => "unset".to_string(),
                        Some(_) => format!("{:?}", self.pid.as_deref().unwrap_or_default()),
                    }
                );
                return Ok(None);
            }
        }
        let count = match self.count_for(pid) {
            Some(Ok(n)) => n,
            Some(Err(e)) => bail!(e),
            None => return Ok(None),
        };
        let mut names: Vec<String> = match &self.names {
            Some(n) if !n.is_empty() => n.split(':').map(str::to_string).collect(),
            _ => Vec::new(),
        };
        if names.len() != count {
            if !names.is_empty() {
                debug!(
                    "LISTEN_FDNAMES has {} names for {count} fds; calling them \"unknown\"",
                    names.len()
                );
            }
            names = vec!["unknown".to_string(); count];
        }
        Ok(Some(names))
    }
}

/// Takes and checks every socket systemd passed to this process.
pub fn listeners(inherited: Inherited) -> Result<Vec<Listener>> {
    let Inherited { env, mut fds } = inherited;
    let Some(names) = env.for_pid(std::process::id())? else {
        return Ok(Vec::new());
    };
    if fds.len() != names.len() {
        bail!(
            "LISTEN_FDS says {} sockets, but only {} were found; check how dgecho is started",
            names.len(),
            fds.len()
        );
    }
    let mut out = Vec::with_capacity(names.len());
    for (idx, name) in names.into_iter().enumerate() {
        let Some(raw) = fds.take_raw_fd(idx)? else {
            bail!("socket {idx} from systemd was already taken");
        };
        out.push(check(raw, name)?);
    }
    Ok(out)
}

/// Checks one inherited fd, one step at a time, and prepares it.
fn check(raw: RawFd, name: String) -> Result<Listener> {
    let expected = "expected a datagram socket (AF_UNIX, AF_INET or AF_INET6); \
                    use ListenDatagram= in the .socket unit";
    // Is it open? getsockname answers EBADF for a closed fd (and ENOTSOCK
    // for an open non-socket) without /proc, which a sandbox may lack.
    if getsockname::<SockaddrStorage>(raw) == Err(Errno::EBADF) {
        bail!("fd {raw} (name {name:?}) from systemd is not open; {expected}");
    }
    let fd = adopt(raw);
    let stat = fstat(fd.as_fd())?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        let what = describe_fd(raw, stat.st_mode);
        bail!("fd {raw} (name {name:?}) from systemd is not a socket but {what}; {expected}");
    }
    let ty = getsockopt(&fd, sockopt::SockType)?;
    if ty != SockType::Datagram {
        let kind = match ty {
            SockType::Stream => "a stream socket (ListenStream=)",
            SockType::SeqPacket => "a seqpacket socket (ListenSequentialPacket=)",
            _ => "a socket of another type",
        };
        bail!("fd {raw} (name {name:?}) from systemd is {kind}; {expected}");
    }
    let local: SockaddrStorage = getsockname(fd.as_raw_fd())?;
    let family = match local.family() {
        Some(AddressFamily::Unix) => Family::Unix,
        Some(AddressFamily::Inet) => Family::Inet,
        Some(AddressFamily::Inet6) => Family::Inet6,
        other => {
            let other = other.map_or_else(|| "unknown".to_string(), |f| format!("{f:?}"));
            bail!(
                "fd {raw} (name {name:?}) from systemd is a datagram socket of family {other}; \
                 {expected}"
            )
        }
    };
    prepare(&fd, raw, &name, family)?;
    if unreachable(&fd, &local) {
        warn!(
            "fd {raw} (name {name:?}) from systemd is not bound to any address: no client \
             can send to it, so nothing will be answered there; give ListenDatagram= an \
             address or a path in the .socket unit"
        );
    }
    Ok(Listener::with_addr(fd, family, name, Some(local)))
}

/// Makes an inherited socket fit for the loops:
/// - close-on-exec, so that nothing dgecho might start inherits it;
/// - blocking: with `O_NONBLOCK` (`NonBlocking=yes` in the socket unit) the
///   loops' blocking receives would return at once and spin the CPU while
///   idle. The flag belongs to the open file description, which PID 1
///   shares; PID 1 only polls the socket, it never reads from it.
///
/// A connected UDP socket only ever receives from its peer: that is
/// allowed, but warned about, since strangers' datagrams never arrive.
fn prepare(fd: &OwnedFd, raw: RawFd, name: &str, family: Family) -> Result<()> {
    fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .with_context(|| format!("cannot set close-on-exec on fd {raw} (name {name:?})"))?;
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    if flags.contains(OFlag::O_NONBLOCK) {
        debug!("fd {raw} (name {name:?}) is non-blocking (NonBlocking=yes?); making it blocking");
        fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))
            .with_context(|| format!("cannot make fd {raw} (name {name:?}) blocking"))?;
    }
    if family != Family::Unix {
        if let Ok(peer) = getpeername::<SockaddrStorage>(fd.as_raw_fd()) {
            warn!(
                "fd {raw} (name {name:?}) from systemd is a UDP socket connected to {peer}: \
                 it receives only from that address, so no other client is answered; \
                 remove the connect from whatever set the socket up"
            );
        }
    }
    Ok(())
}

/// True when no client can send to the socket: neither bound (a UDP
/// socket on port 0, a Unix socket with no name) nor connected to a peer
/// (which could send to it, as the other end of a socketpair does).
fn unreachable(fd: &OwnedFd, local: &SockaddrStorage) -> bool {
    let unbound = if let Some(u) = local.as_unix_addr() {
        u.path().is_none() && u.as_abstract().is_none()
    } else if let Some(a) = local.as_sockaddr_in() {
        a.port() == 0
    } else {
        local.as_sockaddr_in6().is_some_and(|a| a.port() == 0)
    };
    unbound && getpeername::<SockaddrStorage>(fd.as_raw_fd()).is_err()
}

/// What a non-socket fd is: its path when `/proc` can tell, else its kind.
fn describe_fd(raw: RawFd, mode: nix::libc::mode_t) -> String {
    if let Ok(p) = std::fs::read_link(format!("/proc/self/fd/{raw}")) {
        return crate::escape::Escaped(p.as_os_str().as_encoded_bytes()).to_string();
    }
    let kind = SFlag::from_bits_truncate(mode) & SFlag::S_IFMT;
    match kind {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFIFO => "a pipe",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        _ => "something else",
    }
    .to_string()
}

/// Takes ownership of an fd inherited from systemd.
///
/// One of the crate's few `unsafe` blocks (listed in the crate docs). The
/// standard library and `nix` cannot conjure ownership of an fd number that
/// came from our parent process; only `from_raw_fd` can. It is sound because:
/// - the caller has just checked (with `getsockname`) that `raw` is open;
/// - `sd_listen_fds(3)` passes these fds to this process to own;
/// - `listenfd::take_raw_fd` hands each index out at most once, so no other
///   owner exists in this process.
fn adopt(raw: RawFd) -> OwnedFd {
    // SAFETY: see the function's documentation.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pid: Option<&str>, fds: Option<&str>, names: Option<&str>) -> ListenEnv {
        ListenEnv {
            pid: pid.map(Into::into),
            fds: fds.map(Into::into),
            names: names.map(Into::into),
        }
    }

    #[test]
    fn pid_must_match() {
        assert_eq!(env(None, None, None).for_pid(7).unwrap(), None);
        assert_eq!(env(None, Some("1"), None).for_pid(7).unwrap(), None);
        assert_eq!(env(Some("8"), Some("1"), None).for_pid(7).unwrap(), None);
        assert_eq!(env(Some("x"), Some("1"), None).for_pid(7).unwrap(), None);
        assert_eq!(
            env(Some("7"), Some("2"), Some("a:b")).for_pid(7).unwrap(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
    }

    #[test]
    fn names_default_to_unknown() {
        assert_eq!(
            env(Some("7"), Some("2"), None).for_pid(7).unwrap(),
            Some(vec!["unknown".to_string(), "unknown".to_string()])
        );
        assert_eq!(
            env(Some("7"), Some("2"), Some("only-one"))
                .for_pid(7)
                .unwrap(),
            Some(vec!["unknown".to_string(), "unknown".to_string()])
        );
    }

    #[test]
    fn bad_count_is_an_error() {
        let err = env(Some("7"), Some("three"), None).for_pid(7).unwrap_err();
        assert!(err.to_string().contains("not a number"), "{err}");
    }

    #[test]
    fn huge_counts_are_refused_before_anything_is_allocated() {
        for huge in [
            "1000000000",
            "18446744073709551615",
            "99999999999999999999999",
        ] {
            let e = env(Some("7"), Some(huge), None);
            assert!(matches!(e.count_for(7), Some(Err(_))), "{huge}");
            let err = e.for_pid(7).unwrap_err().to_string();
            assert!(err.contains("from 0 to 1024"), "{err}");
        }
        assert_eq!(
            env(Some("7"), Some("1024"), None).count_for(7),
            Some(Ok(1024))
        );
        assert_eq!(env(Some("8"), Some("1"), None).count_for(7), None);
    }
}
