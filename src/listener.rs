//! A socket that `serve` answers on: either passed in by systemd or bound by
//! dgecho itself from a `--listen` address.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixSocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use log::debug;
use nix::sys::socket::{AddressFamily, SockaddrLike, SockaddrStorage, getsockname};

use crate::addr::Addr;
use crate::escape::Escaped;

/// The address families dgecho serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Unix,
    Inet,
    Inet6,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Unix => "AF_UNIX",
            Family::Inet => "AF_INET",
            Family::Inet6 => "AF_INET6",
        })
    }
}

/// A bound datagram socket ready to be served.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    family: Family,
    name: String,
    /// The local address, from the one `getsockname` made for this socket.
    addr: Option<SockaddrStorage>,
    /// Its readable form, for logs.
    local: String,
    /// A socket file dgecho created itself and so removes on exit. Never set
    /// for sockets from systemd: those outlive us, with any datagrams still
    /// queued in them, until the next activation.
    cleanup: Option<OwnFile>,
}

impl Listener {
    /// Wraps a socket whose type and family the caller has already checked.
    pub(crate) fn new(fd: OwnedFd, family: Family, name: String) -> Listener {
        let addr = getsockname::<SockaddrStorage>(fd.as_raw_fd()).ok();
        Listener::with_addr(fd, family, name, addr)
    }

    /// Wraps a socket whose local address the caller has already read.
    pub(crate) fn with_addr(
        fd: OwnedFd,
        family: Family,
        name: String,
        addr: Option<SockaddrStorage>,
    ) -> Listener {
        let local = match &addr {
            Some(sa) => describe_local(sa),
            None => "(unknown address)".into(),
        };
        Listener {
            fd,
            family,
            name,
            addr,
            local,
            cleanup: None,
        }
    }

    /// Serves an already-bound UDP socket (tests hand in `127.0.0.1:0`).
    pub fn from_udp(sock: std::net::UdpSocket, name: &str) -> Result<Listener> {
        let family = match sock.local_addr()? {
            std::net::SocketAddr::V4(_) => Family::Inet,
            std::net::SocketAddr::V6(_) => Family::Inet6,
        };
        Ok(Listener::new(sock.into(), family, name.to_string()))
    }

    /// Serves an already-bound Unix datagram socket.
    pub fn from_unix(sock: UnixDatagram, name: &str) -> Listener {
        Listener::new(sock.into(), Family::Unix, name.to_string())
    }

    /// Binds every socket that `addr` stands for: one per resolved address
    /// for UDP, exactly one for Unix.
    pub fn bind(addr: &Addr) -> Result<Vec<Listener>> {
        Listener::bind_with(addr, &SocketFile::default())
    }

    /// The same, giving a Unix socket file the mode and group of `file`.
    pub fn bind_with(addr: &Addr, file: &SocketFile) -> Result<Vec<Listener>> {
        let name = addr.to_string();
        match addr {
            Addr::UnixPath(path) => Ok(vec![bind_unix_path(path, name, file)?]),
            Addr::UnixAbstract(bytes) => {
                let sa = UnixSocketAddr::from_abstract_name(bytes)?;
                let sock = UnixDatagram::bind_addr(&sa).with_context(|| {
                    format!("cannot bind {addr}: is another server using that abstract name?")
                })?;
                Ok(vec![Listener::from_unix(sock, &name)])
            }
            Addr::Udp { .. } => {
                let resolved = addr
                    .resolve()
                    .with_context(|| format!("cannot resolve the host of {addr}"))?;
                if resolved.is_empty() {
                    bail!("{addr} resolves to no address");
                }
                resolved
                    .iter()
                    .map(|sa| {
                        // Nothing sent to a group address may be answered
                        // (the Fraggle attack): such a socket could never
                        // answer anyone, so it is a mistake to refuse.
                        if let Some(kind) = crate::addr::group_kind(sa.ip()) {
                            bail!(
                                "cannot serve {addr}: {} is {kind} address, and dgecho never \
                                 answers datagrams sent to one (they would make every echo \
                                 service on the network reply at once); listen on one of this \
                                 host's own addresses, or 0.0.0.0",
                                sa.ip()
                            );
                        }
                        let sock = std::net::UdpSocket::bind(sa).with_context(|| {
                            format!("cannot bind UDP {sa}{}", bind_hint(sa.port()))
                        })?;
                        Listener::from_udp(sock, &name)
                    })
                    .collect()
            }
        }
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// The name systemd gave the socket (`FileDescriptorName=`), or the
    /// `--listen` address as written.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local address, as the kernel reports it.
    pub fn local(&self) -> &str {
        &self.local
    }

    /// The UDP port this socket is bound to, if it is a UDP socket.
    pub fn udp_port(&self) -> Option<u16> {
        let sa = self.addr.as_ref()?;
        sa.as_sockaddr_in()
            .map(|s| s.port())
            .or_else(|| sa.as_sockaddr_in6().map(|s| s.port()))
    }

    /// The IP address a UDP socket is bound to.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        let sa = self.addr.as_ref()?;
        sa.as_sockaddr_in()
            .map(|s| std::net::IpAddr::V4(s.ip()))
            .or_else(|| sa.as_sockaddr_in6().map(|s| std::net::IpAddr::V6(s.ip())))
    }

    /// True when the socket is bound to `0.0.0.0` or `[::]`: only then can a
    /// request arrive at one of several addresses, and the reply must name
    /// which one it comes from.
    pub fn is_wildcard(&self) -> bool {
        let Some(sa) = &self.addr else {
            return false;
        };
        sa.as_sockaddr_in().is_some_and(|a| a.ip().is_unspecified())
            || sa
                .as_sockaddr_in6()
                .is_some_and(|a| a.ip().is_unspecified())
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = self.name == self.local
            || self.name.strip_prefix("unix:") == Some(&self.local)
            || self.name.strip_prefix("udp:") == Some(&self.local);
        if plain {
            write!(f, "{} ({})", self.local, self.family)
        } else {
            write!(f, "{} ({}, name {:?})", self.local, self.family, self.name)
        }
    }
}

/// A socket file dgecho created: its path, and the device and inode it had
/// right after `bind`, to tell it from a file bound later at the same path.
#[derive(Debug)]
struct OwnFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl OwnFile {
    fn of(path: &Path) -> io::Result<OwnFile> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(path)?;
        Ok(OwnFile {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// Removes the file if it is still the one dgecho bound. If someone
    /// removed it and another process bound a socket at the same path,
    /// that socket is theirs and stays.
    fn remove(&self) {
        let shown = Escaped(self.path.as_os_str().as_encoded_bytes());
        match OwnFile::of(&self.path) {
            Ok(now) if (now.dev, now.ino) == (self.dev, self.ino) => {
                match std::fs::remove_file(&self.path) {
                    Ok(()) => debug!("removed {shown}"),
                    Err(e) => debug!("could not remove {shown}: {e}"),
                }
            }
            Ok(_) => debug!("left {shown} alone: it is not the socket dgecho bound any more"),
            Err(e) => debug!("{shown} is already gone: {e}"),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(file) = self.cleanup.take() {
            file.remove();
        }
    }
}

/// The mode and group of a socket file dgecho binds itself: what
/// `SocketMode=` and `SocketGroup=` are to a socket unit. Connecting to a
/// Unix socket needs write permission on its file, so these decide which
/// users may talk to a daemon started by hand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketFile {
    /// Permission bits, as for chmod; `None` leaves what the umask gave.
    pub mode: Option<u32>,
    /// A group id; `None` leaves the user's group.
    pub group: Option<u32>,
}

impl SocketFile {
    fn apply(&self, path: &Path) -> Result<()> {
        if let Some(gid) = self.group {
            nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid))).with_context(
                || {
                    format!(
                        "cannot give {} to group {gid} (--socket-group): only root, or a \
                         member of the group, may; check `id`",
                        path.display()
                    )
                },
            )?;
        }
        if let Some(mode) = self.mode {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("cannot set mode {mode:04o} on {}", path.display()))?;
        }
        Ok(())
    }
}

fn bind_hint(port: u16) -> &'static str {
    if port != 0 && port < 1024 {
        " (ports below 1024 need privileges: let systemd bind it with dgecho.socket, or pick a port of 1024 or above)"
    } else {
        ""
    }
}

/// Binds a Unix datagram socket to `path`, replacing a stale socket file
/// (one that nothing answers on) but never a live one or a non-socket.
fn bind_unix_path(path: &Path, name: String, file: &SocketFile) -> Result<Listener> {
    let sock = match UnixDatagram::bind(path) {
        Ok(sock) => sock,
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            let meta = std::fs::symlink_metadata(path)?;
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                bail!(
                    "cannot bind {}: the path exists and is not a socket; remove it or choose another path",
                    path.display()
                );
            }
            let probe = UnixDatagram::unbound()?;
            match probe.connect(path) {
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    debug!("removing stale socket {}", path.display());
                    std::fs::remove_file(path).with_context(|| {
                        format!("cannot remove stale socket {}", path.display())
                    })?;
                    UnixDatagram::bind(path)
                        .with_context(|| format!("cannot bind {}", path.display()))?
                }
                _ => {
                    use std::os::unix::fs::MetadataExt;
                    let me = nix::unistd::geteuid().as_raw();
                    if meta.uid() != me {
                        let user = nix::unistd::User::from_uid(meta.uid().into())
                            .ok()
                            .flatten()
                            .map_or_else(|| meta.uid().to_string(), |u| u.name);
                        bail!(
                            "cannot bind {}: another user's server ({user}) is answering on it, \
                             not yours: in a shared directory such as /tmp anyone can take a \
                             path first; choose a path in a directory only you can write \
                             (set XDG_RUNTIME_DIR, or --listen)",
                            path.display()
                        );
                    }
                    bail!(
                        "cannot bind {}: another server is already answering on it; stop it or choose another path",
                        path.display()
                    )
                }
            }
        }
        Err(e) => {
            let hint = match e.kind() {
                io::ErrorKind::NotFound => ": its directory does not exist; create it first",
                io::ErrorKind::PermissionDenied => {
                    ": its directory is not writable by this user; choose a directory you own"
                }
                _ => "",
            };
            return Err(e).with_context(|| format!("cannot bind {}{hint}", path.display()));
        }
    };
    let mut l = Listener::from_unix(sock, &name);
    // Recorded first, so that a failed chmod or chown removes the file.
    l.cleanup = OwnFile::of(path).ok();
    file.apply(path)?;
    Ok(l)
}

/// A readable form of a socket's local address, for logs.
fn describe_local(sa: &SockaddrStorage) -> String {
    match sa.family() {
        Some(AddressFamily::Unix) => match sa.as_unix_addr() {
            Some(u) => describe_unix(u),
            None => "(unnamed)".into(),
        },
        _ => sa.to_string(),
    }
}

/// `/path`, `@name` or `(unnamed)`, the way ss(8) and systemd print them,
/// escaped for logs (a peer chooses its address: see [`crate::escape`]).
pub fn describe_unix(u: &nix::sys::socket::UnixAddr) -> String {
    describe_unix_parts(u.path(), u.as_abstract())
}

/// The longest path a Unix socket address holds (`sun_path`).
const SUN_PATH_LEN: usize = 108;

/// The same for any representation of a Unix address (nix's, std's).
///
/// A path that fills `sun_path` has no terminating NUL, and the kernel
/// reports the address one byte longer than `sun_path` (as if it had one);
/// nix then shows a byte from beyond the path. So the path ends at its
/// first NUL, and never goes past `sun_path`.
pub(crate) fn describe_unix_parts(path: Option<&Path>, abstract_name: Option<&[u8]>) -> String {
    use std::os::unix::ffi::OsStrExt;
    if let Some(p) = path {
        let bytes = p.as_os_str().as_bytes();
        let bytes = &bytes[..bytes.len().min(SUN_PATH_LEN)];
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Escaped(&bytes[..end]).to_string()
    } else if let Some(a) = abstract_name {
        format!("@{}", Escaped(a))
    } else {
        "(unnamed)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory, a socket path in it, and its address.
    fn scratch(tag: &str) -> (PathBuf, PathBuf, Addr) {
        let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let addr = format!("unix:{}", path.display()).parse().unwrap();
        (dir, path, addr)
    }

    #[test]
    fn udp_bind_reports_port() {
        let l = Listener::bind(&"127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].family(), Family::Inet);
        let port = l[0].udp_port().unwrap();
        assert_ne!(port, 0);
        assert_eq!(l[0].local(), format!("127.0.0.1:{port}"));
    }

    #[test]
    fn unix_bind_replaces_stale_socket_and_cleans_up() {
        let (dir, path, addr) = scratch("dgecho-l");
        drop(UnixDatagram::bind(&path).unwrap()); // leaves a stale file
        let l = Listener::bind(&addr).unwrap();
        assert_eq!(l[0].local(), path.display().to_string());
        // A live socket is never replaced.
        let err = Listener::bind(&addr).unwrap_err().to_string();
        assert!(err.contains("already answering"), "{err}");
        drop(l);
        assert!(!path.exists(), "our own socket file is removed on drop");
        std::fs::write(&path, b"x").unwrap();
        let err = Listener::bind(&addr).unwrap_err().to_string();
        assert!(err.contains("not a socket"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cleanup_leaves_a_socket_someone_else_bound_at_the_path() {
        let (dir, path, addr) = scratch("dgecho-lc");
        let ours = Listener::bind(&addr).unwrap();
        // Someone removes our file and binds their own socket there.
        std::fs::remove_file(&path).unwrap();
        let theirs = UnixDatagram::bind(&path).unwrap();
        drop(ours);
        assert!(path.exists(), "the other process's socket file must stay");
        theirs.send_to(b"still mine", &path).unwrap();
        drop(theirs);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn socket_file_mode_and_group() {
        use std::os::unix::fs::MetadataExt;
        let (dir, path, addr) = scratch("dgecho-m");
        let gid = nix::unistd::getgid().as_raw();
        for mode in [0o666, 0o600] {
            let file = SocketFile {
                mode: Some(mode),
                group: Some(gid),
            };
            let l = Listener::bind_with(&addr, &file).unwrap();
            let m = std::fs::metadata(&path).unwrap();
            assert_eq!((m.mode() & 0o777, m.gid()), (mode, gid));
            drop(l);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unix_addresses_are_escaped_and_never_run_past_sun_path() {
        let forged = Path::new("/tmp/x\n<0>forged");
        assert_eq!(
            describe_unix_parts(Some(forged), None),
            "/tmp/x\\n<0>forged"
        );
        use std::os::unix::ffi::OsStrExt;
        let long = "/".to_string() + &"p".repeat(107);
        let mut with_stray = long.clone().into_bytes();
        with_stray.push(b'Z');
        let shown = describe_unix_parts(
            Some(Path::new(std::ffi::OsStr::from_bytes(&with_stray))),
            None,
        );
        assert_eq!(shown, long, "108 bytes at most");
        assert_eq!(describe_unix_parts(None, Some(b"a\x00b")), "@a\\u{0}b");
    }

    #[test]
    fn missing_directory_is_explained() {
        let err = Listener::bind(&"unix:/nonexistent-dgecho/s".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("directory does not exist"), "{err}");
    }
}
