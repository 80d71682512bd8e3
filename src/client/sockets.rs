//! The client's sockets: how they are bound, and whether a reply comes
//! from the address the request went to.

use std::net::{SocketAddr, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixSocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use nix::sys::socket::{setsockopt, sockopt};

use super::Peer;
use crate::addr::Addr;

/// Whether a reply from `from` comes from the Unix socket we sent to. A
/// path is compared by file identity when both can be examined (the
/// server may have bound a relative path or a symlink's target).
pub(super) fn unix_peer_is(peer: &Peer, from: &UnixSocketAddr) -> bool {
    let Peer::Unix(peer) = peer else {
        return false;
    };
    match (peer.as_pathname(), from.as_pathname()) {
        (Some(p), Some(f)) if p == f => true,
        (Some(_), Some(f)) if f.is_relative() => true,
        (Some(p), Some(f)) => {
            use std::os::unix::fs::MetadataExt;
            match (std::fs::metadata(p), std::fs::metadata(f)) {
                (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
                _ => false,
            }
        }
        _ => {
            peer.as_abstract_name().is_some() && peer.as_abstract_name() == from.as_abstract_name()
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
            let sock = crate::autobind::autobound()
                .context("cannot create and autobind a Unix datagram socket")?;
            Ok((sock, None))
        }
    }
}

/// A UDP socket on an ephemeral port for the first address of `target`
/// that accepts one, with `IP_RECVERR` so that "port unreachable" is
/// reported although the socket is not connected.
pub(crate) fn udp_socket(target: &Addr) -> Result<(UdpSocket, SocketAddr)> {
    let addrs = target
        .resolve()
        .with_context(|| format!("cannot resolve the host of {target}"))?;
    if let Addr::Udp { port: 0, .. } = target {
        return Err(crate::exit::usage(anyhow!(
            "cannot send to port 0 of {target}: give the port the daemon listens on"
        )));
    }
    if let Some((kind, ip)) = addrs
        .iter()
        .find_map(|sa| crate::addr::group_kind(sa.ip()).map(|k| (k, sa.ip())))
    {
        return Err(crate::exit::usage(anyhow!(
            "{target} is {kind} address ({ip}): echo services answer one host at a \
             time, and dgecho never answers datagrams sent to many hosts at once, since \
             that would amplify forged requests; give one host's address"
        )));
    }
    let mut last = None;
    for sa in addrs {
        let local: SocketAddr = if sa.is_ipv4() {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        match UdpSocket::bind(local) {
            Ok(s) => {
                let res = if sa.is_ipv4() {
                    setsockopt(&s, sockopt::Ipv4RecvErr, &true)
                } else {
                    setsockopt(&s, sockopt::Ipv6RecvErr, &true)
                };
                res.context("cannot ask for ICMP errors (IP_RECVERR)")?;
                return Ok((s, sa));
            }
            Err(e) => last = Some(anyhow::Error::new(e).context(format!("cannot reach {sa}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("{target} resolves to no address")))
}

pub(super) fn describe_std_unix(a: &UnixSocketAddr) -> String {
    crate::listener::describe_unix_parts(a.as_pathname(), a.as_abstract_name())
}
