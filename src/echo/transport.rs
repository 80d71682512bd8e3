//! What differs between the transports the one loop serves: the peer's
//! address type, the socket options each needs, and what each datagram's
//! control messages say.

use super::mmsg::Cmsgs;
use super::policy::Peer;
use super::send::Source;
use crate::listener::Listener;

/// What one datagram's control messages told.
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta<S> {
    /// The address to reply from (wildcard UDP sockets).
    pub src: Option<S>,
    /// The datagram was sent to a broadcast or multicast address.
    pub to_group: bool,
    /// The sender's uid (Unix sockets, `SO_PASSCRED`).
    pub uid: Option<u32>,
    /// The socket's count of datagrams the kernel dropped so far
    /// (`SO_RXQ_OVFL`), when it has dropped any.
    pub dropped: Option<u32>,
}

impl<S> Default for Meta<S> {
    fn default() -> Meta<S> {
        Meta {
            src: None,
            to_group: false,
            uid: None,
            dropped: None,
        }
    }
}

/// One transport: UDP over IPv4, UDP over IPv6, or Unix.
pub(super) trait Transport {
    /// The sender's address.
    type Peer: Peer + PartialEq;
    /// The address a reply leaves from, where the loop chooses it.
    type Src: Source;
    /// Turns on the socket options the loop relies on and returns the
    /// control-message room one datagram needs. Called once per socket,
    /// before its workers start.
    fn setup(listener: &Listener) -> usize;
    /// The control buffer a reply's source needs, if replies set one.
    fn src_space() -> Option<Vec<u8>>;
    /// Whether runs of replies may leave as one GSO send (UDP).
    const GSO: bool;
    /// Reads one datagram's control messages.
    fn meta(cmsgs: Cmsgs<'_>) -> Meta<Self::Src>;
}
