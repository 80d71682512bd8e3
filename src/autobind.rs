//! A Unix datagram socket bound to an automatic abstract address.
//!
//! A Unix client that never binds has no address, so no reply can reach it.
//! Linux's autobind (binding to an empty address) gives the socket a unique
//! abstract name instead: it needs no file, works across users and private
//! `/tmp`s, and vanishes with the socket. The client, the tests and the
//! fuzz targets all build their sockets here.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, bind, socket};

/// A new Unix datagram socket with an automatic abstract address.
pub fn autobound() -> nix::Result<UnixDatagram> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(fd.as_raw_fd(), &UnixAddr::new_unnamed())?;
    Ok(UnixDatagram::from(fd))
}

#[cfg(test)]
mod tests {
    #[test]
    fn gets_a_unique_abstract_name() {
        use std::os::linux::net::SocketAddrExt;
        let a = super::autobound().unwrap().local_addr().unwrap();
        let b = super::autobound().unwrap().local_addr().unwrap();
        assert!(a.as_abstract_name().is_some(), "{a:?}");
        assert_ne!(a.as_abstract_name(), b.as_abstract_name());
    }
}
