//! Turning a failure into advice: what is wrong, which thing to change, and
//! the fix that fits the kind of daemon (the packaged socket unit, or a
//! daemon someone started by hand).

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use nix::unistd::{AccessFlags, Gid, Group, Uid, User, access};

use crate::addr::Addr;
use crate::defaults::{BUFFER_SIZE, PACKAGED_SOCKET};

/// Who set up the socket, and so how it is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `dgecho.socket`: systemd binds it, a drop-in changes it.
    Packaged,
    /// `dgecho serve` bound it itself: its options change it.
    ByHand,
}

impl Kind {
    pub fn of(path: &Path) -> Kind {
        if path.parent() == Path::new(PACKAGED_SOCKET).parent() {
            Kind::Packaged
        } else {
            Kind::ByHand
        }
    }
}

/// What keeps this user from sending to a socket file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// A directory on the way that this user may not search (x).
    Directory(PathBuf),
    /// The socket itself, which this user may not write to (w).
    Socket,
}

/// The first thing on the way to `path` that this user (real uid, as
/// `access(2)` checks) may not pass: a directory without search permission,
/// else the socket without write permission.
pub fn blocker(path: &Path) -> Option<Blocker> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut dirs: Vec<&Path> = absolute.ancestors().skip(1).collect();
    dirs.reverse();
    if let Some(d) = dirs
        .into_iter()
        .find(|d| access(*d, AccessFlags::X_OK).is_err())
    {
        return Some(Blocker::Directory(d.to_path_buf()));
    }
    access(path, AccessFlags::W_OK)
        .is_err()
        .then_some(Blocker::Socket)
}

/// "mode 0755, owner root:root" of anything, or why it cannot be seen.
pub fn mode_owner(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!(
            "mode {:04o}, owner {}:{}",
            m.mode() & 0o7777,
            user_name(m.uid()),
            group_name(m.gid())
        ),
        Err(e) => format!("cannot be examined: {e}"),
    }
}

/// The permission story of one socket: what blocks, who you are, what to
/// change and how, for this kind of daemon.
pub fn permission(path: &Path) -> String {
    let shown = path.display();
    let me = describe_self();
    match blocker(path) {
        Some(Blocker::Directory(dir)) => format!(
            "permission denied on {shown}: you may not search its directory {} ({}), and \
             reaching a socket needs search (x) permission on every directory above it; you \
             are {me}. {}",
            dir.display(),
            mode_owner(&dir),
            directory_fix(&dir, Kind::of(path))
        ),
        // Also when access(2) sees no problem: connect(2) said EACCES.
        _ => format!(
            "permission denied on {shown}: you may not write to the socket ({}), and sending \
             to a socket needs write (w) permission on it; you are {me}. {}",
            mode_owner(path),
            socket_fix(path, Kind::of(path))
        ),
    }
}

fn socket_fix(path: &Path, kind: Kind) -> String {
    match kind {
        Kind::Packaged => "Fix it in the socket unit: `sudo systemctl edit dgecho.socket`, add \
             [Socket] SocketMode=0666 (every local user), or SocketGroup=GROUP and \
             SocketMode=0660 and add yourself to GROUP, then `sudo systemctl restart \
             dgecho.socket`"
            .into(),
        Kind::ByHand => format!(
            "The daemon was started by hand: start it again with `dgecho serve --listen {} \
             --socket-mode 0666` (every local user), or with --socket-group GROUP \
             --socket-mode 0660 (members of GROUP), or run the client as a user who may write \
             to it",
            path.display()
        ),
    }
}

fn directory_fix(dir: &Path, kind: Kind) -> String {
    match kind {
        Kind::Packaged => format!(
            "Fix it in the socket unit: `sudo systemctl edit dgecho.socket`, add [Socket] \
             DirectoryMode=0755, then `sudo systemctl restart dgecho.socket` ({} must be \
             searchable)",
            dir.display()
        ),
        Kind::ByHand => format!(
            "The daemon was started by hand: its user can let others through with `chmod o+x \
             {}`, or start it on a socket in a directory everyone can search, such as \
             `dgecho serve --listen /tmp/dgecho-shared.sock --socket-mode 0666`",
            dir.display()
        ),
    }
}

/// Turns a failed connect or send on a Unix socket into advice.
pub fn unix(target: &Addr, e: io::Error) -> anyhow::Error {
    let Addr::UnixPath(path) = target else {
        return match e.kind() {
            io::ErrorKind::ConnectionRefused => anyhow!(
                "nothing listens on the abstract socket {target}: start the daemon \
                 (`dgecho serve --listen {target}`), or check the name"
            ),
            _ => anyhow::Error::new(e).context(format!("cannot connect to {target}")),
        };
    };
    let shown = path.display();
    let start = match Kind::of(path) {
        Kind::Packaged => "is dgecho.socket started? Try `sudo systemctl start dgecho.socket`",
        Kind::ByHand => "is the daemon running? Start it with `dgecho serve`, or check the path",
    };
    match e.kind() {
        io::ErrorKind::NotFound => anyhow!("the socket {shown} does not exist: {start}"),
        io::ErrorKind::PermissionDenied => anyhow!("{}", permission(path)),
        io::ErrorKind::ConnectionRefused => match std::fs::metadata(path) {
            Ok(m) if !m.file_type().is_socket() => anyhow!(
                "{shown} is not a socket but a {}: check the path",
                file_kind(&m)
            ),
            _ => anyhow!(
                "the socket file {shown} exists but nothing listens on it: it is stale, \
                 left by a server that exited. {start}; a by-hand server replaces it on start"
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

/// What the client knows about a datagram that got no reply.
pub struct Silence<'a> {
    pub target: &'a Addr,
    pub timeout: Duration,
    pub size: usize,
    /// The `--bind` path, if any.
    pub bound: Option<&'a Path>,
    /// The automatic abstract address, when there was no `--bind`.
    pub autobound: Option<String>,
    /// The source of a datagram that came from somewhere else meanwhile.
    pub elsewhere: Option<String>,
}

/// Tells the causes of silence apart, most certain first.
pub fn silence(s: &Silence) -> String {
    let head = format!(
        "no reply from {} within {}s",
        s.target,
        s.timeout.as_secs_f64()
    );
    let log = match s.target {
        Addr::UnixPath(p) if Kind::of(p) == Kind::Packaged => {
            "see `systemctl status dgecho.socket dgecho.service` and `journalctl -u dgecho`"
        }
        _ => {
            "a daemon started by hand logs on its own stderr; a packaged one in \
              `journalctl -u dgecho`"
        }
    };
    if let Some(from) = &s.elsewhere {
        return format!(
            "{head}, but a reply came from {from}, not from {} where the request went: the \
             server answers from another address (a server on a host with several addresses \
             that does not reply from the one it was sent to, or one that replies from another \
             socket). Send to {from} instead, or fix the server",
            s.target
        );
    }
    let unix = !matches!(s.target, Addr::Udp { .. });
    if unix && s.size > BUFFER_SIZE {
        return format!(
            "{head}: the datagram was {} bytes, and dgecho drops Unix datagrams larger than \
             {BUFFER_SIZE} bytes (its receive buffer); send at most {BUFFER_SIZE} bytes",
            s.size
        );
    }
    if let (Some(bound), Addr::UnixPath(server)) = (s.bound, s.target) {
        if let Some(why) = daemon_cannot_write(server, bound) {
            return format!(
                "{head}: the daemon's replies cannot reach your --bind socket {}: {why}. \
                 Leave out --bind (an automatic abstract address needs no permission), or \
                 bind in a directory it can search with `umask 000` so the socket is \
                 writable by all",
                bound.display()
            );
        }
    }
    match (&s.autobound, unix) {
        (Some(name), true) => format!(
            "{head}, though a socket is bound there. Your client's address is an automatic \
             abstract one ({name}): servers that read a client's address as a C string (a \
             NUL-terminated sun_path) see an empty address and cannot reply to it; try again \
             with --bind /tmp/NAME.sock. A dgecho daemon never has that problem: {log}"
        ),
        (_, true) => format!(
            "{head}, though a socket is bound there: the server is stopped, busy, or does not \
             answer; {log}"
        ),
        _ => format!(
            "{head}, and no \"port unreachable\" came back either: something bound there does \
             not answer, or a firewall drops the datagrams. Is the daemon running? {log}"
        ),
    }
}

/// Why the daemon behind `server` (running as the socket's owner) may not
/// write to the client's socket `bound`, if the client can tell.
fn daemon_cannot_write(server: &Path, bound: &Path) -> Option<String> {
    let owner = std::fs::metadata(server).ok()?.uid();
    let me = Uid::current().as_raw();
    // The packaged daemon runs as a dynamic user: it has only the rights
    // of "others".
    let (uid, gids) = match Kind::of(server) {
        Kind::Packaged => (None, Vec::new()),
        Kind::ByHand if owner == me || owner == 0 => return None,
        Kind::ByHand => (Some(owner), groups_of(owner)),
    };
    let who = uid.map_or("a dynamic user".to_string(), user_name);
    let absolute = std::path::absolute(bound).ok()?;
    for dir in absolute.ancestors().skip(1) {
        if !may(uid, &gids, dir, 0o1) {
            return Some(format!(
                "the daemon runs as {who} and may not search {} ({})",
                dir.display(),
                mode_owner(dir)
            ));
        }
    }
    (!may(uid, &gids, bound, 0o2)).then(|| {
        format!(
            "the daemon runs as {who} and may not write to it ({})",
            mode_owner(bound)
        )
    })
}

/// Whether `uid` (None: anybody) in `gids` has permission `bit` (1 = x,
/// 2 = w, 4 = r) on `path`, by its mode bits.
fn may(uid: Option<u32>, gids: &[u32], path: &Path, bit: u32) -> bool {
    let Ok(m) = std::fs::metadata(path) else {
        return true;
    };
    let shift = if uid == Some(m.uid()) {
        6
    } else if gids.contains(&m.gid()) {
        3
    } else {
        0
    };
    m.mode() >> shift & bit != 0
}

fn groups_of(uid: u32) -> Vec<u32> {
    let Ok(Some(u)) = User::from_uid(Uid::from_raw(uid)) else {
        return Vec::new();
    };
    let Ok(name) = std::ffi::CString::new(u.name) else {
        return vec![u.gid.as_raw()];
    };
    nix::unistd::getgrouplist(&name, u.gid)
        .map(|g| g.into_iter().map(Gid::as_raw).collect())
        .unwrap_or_else(|_| vec![u.gid.as_raw()])
}

/// `uid 1000 (alice) in groups alice, wheel`.
pub fn describe_self() -> String {
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

pub fn user_name(uid: u32) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_fit_the_kind_of_daemon() {
        let packaged = Path::new(PACKAGED_SOCKET);
        assert_eq!(Kind::of(packaged), Kind::Packaged);
        assert_eq!(Kind::of(Path::new("/tmp/dgecho-0.sock")), Kind::ByHand);
        let s = socket_fix(packaged, Kind::Packaged);
        assert!(
            s.contains("SocketMode=0666") && s.contains("systemctl edit"),
            "{s}"
        );
        assert!(!s.contains("--socket-mode"), "{s}");
        let s = socket_fix(Path::new("/tmp/x.sock"), Kind::ByHand);
        assert!(s.contains("--listen /tmp/x.sock --socket-mode 0666"), "{s}");
        assert!(!s.contains("SocketMode="), "{s}");
        let s = directory_fix(Path::new("/run/dgecho"), Kind::Packaged);
        assert!(s.contains("DirectoryMode=0755"), "{s}");
        let s = directory_fix(Path::new("/run/user/1000"), Kind::ByHand);
        assert!(s.contains("chmod o+x /run/user/1000"), "{s}");
    }

    #[test]
    fn silences_are_told_apart() {
        let target: Addr = "unix:/tmp/dgecho-test-silence.sock".parse().unwrap();
        let mut s = Silence {
            target: &target,
            timeout: Duration::from_millis(200),
            size: 5,
            bound: None,
            autobound: Some("@00001".into()),
            elsewhere: None,
        };
        assert!(silence(&s).contains("within 0.2s"), "{}", silence(&s));
        assert!(silence(&s).contains("--bind"), "{}", silence(&s));
        s.size = BUFFER_SIZE + 1;
        assert!(silence(&s).contains("larger than 65536 bytes"));
        s.elsewhere = Some("@other".into());
        assert!(silence(&s).contains("a reply came from @other"));
        let udp: Addr = "127.0.0.1:9".parse().unwrap();
        let s = Silence {
            target: &udp,
            timeout: Duration::from_secs(1),
            size: BUFFER_SIZE + 1,
            bound: None,
            autobound: None,
            elsewhere: None,
        };
        assert!(silence(&s).contains("port unreachable"), "{}", silence(&s));
    }
}
