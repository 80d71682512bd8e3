//! The Unix transport: the sender's uid comes with every datagram
//! (`SO_PASSCRED`), for the per-user share of unread replies
//! ([`super::unread`]).

use std::mem::size_of;

use log::warn;
use nix::libc;
use nix::sys::socket::{UnixAddr, setsockopt, sockopt};

use super::mmsg::{Cmsgs, cmsg_space};
use super::send::NoSource;
use super::transport::{Meta, Transport};
use crate::listener::Listener;

pub(super) struct Unix;

impl Transport for Unix {
    type Peer = UnixAddr;
    type Src = NoSource;
    const GSO: bool = false;

    fn setup(listener: &Listener) -> usize {
        match setsockopt(listener, sockopt::PassCred, &true) {
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
            if (c.level, c.kind) == (libc::SOL_SOCKET, libc::SCM_CREDENTIALS) && c.data.len() >= 12
            {
                // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
                meta.uid = c.data[4..8].try_into().ok().map(u32::from_ne_bytes);
            }
        }
        meta
    }
}
