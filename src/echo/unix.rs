//! The Unix transport: the sender's uid comes with a datagram while the
//! socket passes credentials (`SO_PASSCRED`, turned on only while unread
//! replies matter, see [`super::creds`]), for the per-user share of unread
//! replies ([`super::unread`]).

use std::mem::size_of;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use log::warn;
use nix::libc;
use nix::sys::socket::UnixAddr;

use super::creds;
use super::mmsg::{Cmsgs, cmsg_space};
use super::send::NoSource;
use super::transport::{Meta, Transport};
use crate::listener::Listener;

pub(super) struct Unix;

/// The uid the kernel reports when it cannot say who sent a datagram
/// (`kernel.overflowuid`, 65534 unless changed), read once at start.
static OVERFLOW_UID: AtomicU32 = AtomicU32::new(65_534);

impl Transport for Unix {
    type Peer = UnixAddr;
    type Src = NoSource;
    const GSO: bool = false;

    fn setup(listener: &Listener) -> usize {
        if let Some(uid) = std::fs::read_to_string("/proc/sys/kernel/overflowuid")
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            OVERFLOW_UID.store(uid, Relaxed);
        }
        match creds::available(listener) {
            Ok(()) => cmsg_space(size_of::<libc::ucred>()),
            Err(e) => {
                warn!(
                    "cannot learn who sends on {listener} (SO_PASSCRED: {e}): one user's \
                     unread replies can then fill the send buffer for everyone"
                );
                0
            }
        }
    }

    fn src_space() -> Option<Vec<u8>> {
        None
    }

    fn meta(cmsgs: Cmsgs<'_>) -> Meta<NoSource> {
        let mut meta = Meta::default();
        for c in cmsgs {
            if (c.level, c.kind) == (libc::SOL_SOCKET, libc::SCM_CREDENTIALS) {
                meta.uid = sender(c.data);
            }
        }
        meta
    }
}

/// The sender's uid from an `SCM_CREDENTIALS` message's data, `struct
/// ucred { pid_t pid; uid_t uid; gid_t gid; }`. A datagram queued before
/// the socket passed credentials carries none, and the kernel fills in
/// pid 0 and the overflow uid: that is nobody in particular, not the user
/// of that uid, so it gives `None` (a sender in another pid namespace also
/// shows pid 0, but with its real uid).
fn sender(data: &[u8]) -> Option<u32> {
    let field = |i: usize| {
        data.get(i..i + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
    };
    let (pid, uid) = (field(0)?, field(4)?);
    (pid != 0 || uid != OVERFLOW_UID.load(Relaxed)).then_some(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ucred(pid: u32, uid: u32, gid: u32) -> Vec<u8> {
        [pid, uid, gid]
            .iter()
            .flat_map(|x| x.to_ne_bytes())
            .collect()
    }

    #[test]
    fn the_kernels_placeholder_names_nobody() {
        let overflow = OVERFLOW_UID.load(Relaxed);
        assert_eq!(sender(&ucred(0, overflow, overflow)), None);
        // The user of the overflow uid, sending for itself, has a pid.
        assert_eq!(sender(&ucred(4321, overflow, overflow)), Some(overflow));
        // Another pid namespace hides the pid, not the uid.
        assert_eq!(sender(&ucred(0, 1000, 1000)), Some(1000));
        assert_eq!(sender(&ucred(77, 0, 0)), Some(0));
        assert_eq!(sender(&[0u8; 6]), None, "too short");
    }
}
