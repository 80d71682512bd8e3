//! Finding a running dgecho when no address is given, whoever started it.
//!
//! A daemon started by hand binds `$XDG_RUNTIME_DIR/dgecho.sock` or
//! `$TMPDIR/dgecho-UID.sock` of *its* user and shell, so a client that
//! only looked at its own default would call a running daemon "not
//! running" as soon as another user started it, or the two shells differ
//! in `XDG_RUNTIME_DIR`. So every place a dgecho binds by default is tried,
//! each by connecting a probe socket (which sends nothing): the first one
//! that works wins, in this order: the packaged socket, this user's own
//! sockets, other users'. When none works, the error lists every socket
//! found, whose it is and why it cannot be used.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use nix::unistd::getuid;

use super::explain::{self, user_name};
use crate::addr::Addr;
use crate::defaults::{self, PACKAGED_SOCKET, RUNTIME_DIRS, SOCKET_NAME};

/// What a probe found at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Connecting worked: this user can send to it.
    Usable,
    /// Nothing listens on it: a server exited without removing it.
    Stale,
    /// A socket this user may not reach; `live` when a socket is bound to
    /// the path (per /proc/net/unix).
    Denied { live: bool },
    /// Not a datagram socket, or some other error.
    Unusable(String),
}

/// One dgecho socket found.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    pub state: State,
}

/// The address `client` and `bench` use when none is given.
pub fn default_target(verbose: bool) -> Result<Addr> {
    let found = probe_all(&candidates());
    match pick(&found) {
        Some(f) => {
            if verbose {
                eprintln!("using {} ({})", f.path.display(), owner(&f.path));
            }
            Ok(Addr::UnixPath(f.path.clone()))
        }
        None => Err(report(&found)),
    }
}

/// The first usable socket, in the order of the candidates.
pub fn pick(found: &[Found]) -> Option<&Found> {
    found.iter().find(|f| f.state == State::Usable)
}

/// Every place a dgecho binds by default: the packaged socket, this user's
/// own defaults (with and without `XDG_RUNTIME_DIR`), then other users'.
pub fn candidates() -> Vec<PathBuf> {
    let uid = getuid().as_raw();
    let tmp_dirs = [std::env::temp_dir(), PathBuf::from("/tmp")];
    let mut out = vec![
        PathBuf::from(PACKAGED_SOCKET),
        defaults::unix_path(),
        defaults::tmp_path(uid),
        PathBuf::from("/tmp").join(format!("dgecho-{uid}.sock")),
        Path::new(RUNTIME_DIRS)
            .join(uid.to_string())
            .join(SOCKET_NAME),
    ];
    for dir in &tmp_dirs {
        out.extend(list(dir, |name| {
            let uid = name.strip_prefix("dgecho-")?.strip_suffix(".sock")?;
            uid.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
            Some(dir.join(name))
        }));
    }
    out.extend(list(Path::new(RUNTIME_DIRS), |name| {
        name.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
        Some(Path::new(RUNTIME_DIRS).join(name).join(SOCKET_NAME))
    }));
    let mut seen = HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

/// The directory's entries that `f` turns into candidates, sorted.
fn list(dir: &Path, f: impl Fn(&str) -> Option<PathBuf>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| f(e.ok()?.file_name().to_str()?))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Probes every candidate; leaves out those that do not exist.
pub fn probe_all(paths: &[PathBuf]) -> Vec<Found> {
    let bound = bound_paths();
    paths
        .iter()
        .filter_map(|p| {
            let mut state = probe(p, &bound)?;
            if state == State::Usable {
                if let Some(why) = squatted(p) {
                    state = State::Unusable(why);
                }
            }
            Some(Found {
                path: p.clone(),
                state,
            })
        })
        .collect()
}

/// Why a `dgecho-UID.sock` must not be trusted: its file belongs to
/// neither the user its name gives nor root. In a shared directory such as
/// /tmp any user can bind that name first and answer in that user's place.
fn squatted(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let name = path.file_name()?.to_str()?;
    let uid: u32 = name
        .strip_prefix("dgecho-")?
        .strip_suffix(".sock")?
        .parse()
        .ok()?;
    let owner = std::fs::symlink_metadata(path).ok()?.uid();
    (owner != uid && owner != 0).then(|| {
        format!(
            "not used: it belongs to {}, not to {} whose name it bears, so another user \
             may have taken the path to answer in their place",
            user_name(owner),
            user_name(uid)
        )
    })
}

fn probe(path: &Path, bound: &HashSet<PathBuf>) -> Option<State> {
    let Ok((sock, _)) = super::unix_socket(None) else {
        return Some(State::Unusable("cannot create a probe socket".into()));
    };
    match sock.connect(path) {
        Ok(()) => Some(State::Usable),
        Err(e) => match e.kind() {
            // Behind a directory we may not search, the file cannot even be
            // seen: /proc/net/unix tells whether a socket is bound there.
            io::ErrorKind::NotFound => None,
            io::ErrorKind::PermissionDenied => Some(State::Denied {
                live: bound.contains(path),
            }),
            io::ErrorKind::ConnectionRefused => Some(if bound.contains(path) {
                State::Unusable("not a datagram socket, or its queue is full".into())
            } else {
                State::Stale
            }),
            _ => Some(State::Unusable(e.to_string())),
        },
    }
}

/// The paths of the datagram sockets bound in this network namespace.
fn bound_paths() -> HashSet<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/net/unix") else {
        return HashSet::new();
    };
    // Num RefCount Protocol Flags Type St Inode Path; Type 0002 is
    // SOCK_DGRAM.
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && f[4] == "0002" && f[7].starts_with('/')).then(|| PathBuf::from(f[7]))
        })
        .collect()
}

/// "owner root", or the owner of the directory that hides it.
fn owner(path: &Path) -> String {
    let of = |p: &Path| std::fs::metadata(p).ok().map(|m| user_name(m.uid()));
    match of(path) {
        Some(u) => format!("owner {u}"),
        None => match path.parent().and_then(of) {
            Some(u) => format!("in a directory of {u}"),
            None => "owner unknown".into(),
        },
    }
}

const STALE: &str =
    "stale: nothing listens on it (a server exited); a new `dgecho serve` replaces it";

/// The error when no socket can be used: every one found, whose, and why.
fn report(found: &[Found]) -> anyhow::Error {
    if found.is_empty() {
        return anyhow!(
            "no dgecho socket found: looked for {PACKAGED_SOCKET}, {}, dgecho-UID.sock in {}, \
             and {RUNTIME_DIRS}/UID/{SOCKET_NAME}. Is the daemon running? Start it \
             with `dgecho serve` (by hand) or `sudo systemctl start dgecho.socket` (packaged), \
             or give the address: dgecho client ADDR MESSAGE",
            defaults::unix_path().display(),
            if std::env::temp_dir() == Path::new("/tmp") {
                "/tmp".to_string()
            } else {
                format!("{} and /tmp", std::env::temp_dir().display())
            }
        );
    }
    let mut lines = vec![format!(
        "no dgecho socket that you can use; you are {}. Found:",
        explain::describe_self()
    )];
    for f in found {
        let why = match &f.state {
            State::Usable => "usable".to_string(),
            State::Stale => STALE.to_string(),
            State::Denied { live: true } => format!(
                "a daemon is running on it; {}",
                explain::permission(&f.path)
            ),
            // Nothing to fix for this user: there is no daemon.
            State::Denied { live: false } => STALE.to_string(),
            State::Unusable(why) => why.clone(),
        };
        lines.push(format!(
            "  {} ({}): {why}",
            f.path.display(),
            owner(&f.path)
        ));
    }
    anyhow!("{}", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn a_live_socket_wins_over_a_stale_one_listed_first() {
        let dir = std::env::temp_dir().join(format!("dgecho-disc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stale = dir.join("stale.sock");
        drop(UnixDatagram::bind(&stale).unwrap());
        let live = dir.join("live.sock");
        let _server = UnixDatagram::bind(&live).unwrap();
        let missing = dir.join("missing.sock");
        let found = probe_all(&[stale.clone(), missing, live.clone()]);
        assert_eq!(found.len(), 2, "a missing candidate is left out: {found:?}");
        assert_eq!(found[0].state, State::Stale);
        assert_eq!(pick(&found).unwrap().path, live);
        let err = report(&found[..1]).to_string();
        assert!(err.contains("stale.sock (owner "), "{err}");
        assert!(err.contains("stale: nothing listens on it"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn candidates_start_with_the_packaged_socket_then_our_own() {
        let c = candidates();
        assert_eq!(c[0], Path::new(PACKAGED_SOCKET));
        assert_eq!(c[1], defaults::unix_path());
        let uid = getuid().as_raw();
        assert!(c.contains(&defaults::tmp_path(uid)));
    }
}
