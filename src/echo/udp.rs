//! The UDP transports (IPv4 and IPv6).
//!
//! On a socket bound to a wildcard address (`0.0.0.0`, `[::]`), each
//! datagram's destination comes with it (`IP_PKTINFO`/`IPV6_PKTINFO`) and
//! its reply is sent from that address: a client with a connected socket
//! drops a reply from any other. The destination also tells a datagram
//! sent to a broadcast or multicast address, which is never answered (see
//! [`Reason::Broadcast`](super::Reason::Broadcast)). Sockets bound to one
//! unicast address receive neither, and skip all of this. A socket bound
//! to a broadcast or multicast address (`255.255.255.255`, a subnet's
//! broadcast address, `224.0.0.1`, ...) receives nothing else: it asks for
//! the destination too, so that those datagrams are dropped and counted
//! like the ones that reach a wildcard socket, and a warning says so.
//!
//! Every UDP socket counts the datagrams the kernel dropped before dgecho
//! saw them (`SO_RXQ_OVFL`), so that they show in the counters too.

use std::mem::size_of;
use std::net::Ipv4Addr;

use log::warn;
use nix::libc;
use nix::sys::socket::{ControlMessage, SockaddrIn, SockaddrIn6, setsockopt, sockopt};

use super::mmsg::{Cmsg, Cmsgs, cmsg_space};
use super::send::Source;
use super::transport::{Meta, Transport};
use crate::listener::{Family, Listener};

impl Source for libc::in_pktinfo {
    fn same(&self, other: &Self) -> bool {
        self.ipi_spec_dst.s_addr == other.ipi_spec_dst.s_addr
    }
    fn cmsg(&self) -> ControlMessage<'_> {
        ControlMessage::Ipv4PacketInfo(self)
    }
}

impl Source for libc::in6_pktinfo {
    fn same(&self, other: &Self) -> bool {
        self.ipi6_addr.s6_addr == other.ipi6_addr.s6_addr
    }
    fn cmsg(&self) -> ControlMessage<'_> {
        ControlMessage::Ipv6PacketInfo(self)
    }
}

/// What differs between UDP over IPv4 and over IPv6.
pub(super) trait IpFamily {
    type Peer: super::policy::Peer + PartialEq;
    type Src: Source;
    /// The level and type of the destination's control message.
    const PKTINFO: (i32, i32);
    /// Reads the destination from its control message's data.
    fn pktinfo(data: &[u8], meta: &mut Meta<Self::Src>);
}

/// UDP over one address family.
pub(super) struct Udp<F>(std::marker::PhantomData<F>);

impl<F: IpFamily> Transport for Udp<F> {
    type Peer = F::Peer;
    type Src = F::Src;
    const GSO: bool = true;

    fn setup(listener: &Listener) -> usize {
        setup(listener, size_of::<F::Src>())
    }

    fn src_space() -> Option<Vec<u8>> {
        Some(nix::cmsg_space!(F::Src))
    }

    fn meta(cmsgs: Cmsgs<'_>) -> Meta<F::Src> {
        let mut meta = Meta::default();
        for c in cmsgs {
            if (c.level, c.kind) == F::PKTINFO {
                F::pktinfo(c.data, &mut meta);
            }
            dropped(&c, &mut meta);
        }
        meta
    }
}

/// UDP over IPv4.
pub(super) struct V4;
/// UDP over IPv6 (and IPv4-mapped on a dual-stack socket).
pub(super) struct V6;

impl IpFamily for V4 {
    type Peer = SockaddrIn;
    type Src = libc::in_pktinfo;
    const PKTINFO: (i32, i32) = (libc::IPPROTO_IP, libc::IP_PKTINFO);

    fn pktinfo(data: &[u8], meta: &mut Meta<libc::in_pktinfo>) {
        if data.len() < 12 {
            return;
        }
        // struct in_pktinfo { int ifindex; in_addr spec_dst, addr; }
        let ifindex = word(&data[..4]);
        let spec_dst = word(&data[4..8]);
        let addr = word(&data[8..12]);
        let dst = Ipv4Addr::from(u32::from_be(addr));
        meta.to_group = dst.is_multicast() || dst.is_broadcast();
        // A datagram queued before IP_PKTINFO was turned on (the one that
        // activated us, say) carries a zero ifindex and spec_dst: only its
        // header destination is known.
        if ifindex == 0 || spec_dst == 0 {
            return;
        }
        // spec_dst is the local address the datagram reached: the
        // destination itself for unicast, the interface's own address for a
        // broadcast (a subnet's, too) or multicast one. Send from it, and
        // let routing choose the interface (ifindex 0).
        meta.to_group |= addr != spec_dst;
        meta.src = Some(libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr { s_addr: spec_dst },
            ipi_addr: libc::in_addr { s_addr: 0 },
        });
    }
}

impl IpFamily for V6 {
    type Peer = SockaddrIn6;
    type Src = libc::in6_pktinfo;
    const PKTINFO: (i32, i32) = (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO);

    fn pktinfo(data: &[u8], meta: &mut Meta<libc::in6_pktinfo>) {
        // struct in6_pktinfo { in6_addr addr; unsigned ifindex; }
        let Some(bytes) = data.get(..16) else {
            return;
        };
        let mut addr = [0u8; 16];
        addr.copy_from_slice(bytes);
        // IPv6 has no broadcast; multicast is ff00::/8, and an IPv4-mapped
        // destination may be an IPv4 broadcast or multicast address.
        let mapped = std::net::Ipv6Addr::from(addr).to_ipv4_mapped();
        meta.to_group =
            addr[0] == 0xff || mapped.is_some_and(|a| a.is_multicast() || a.is_broadcast());
        meta.src = Some(libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr { s6_addr: addr },
            ipi6_ifindex: 0,
        });
    }
}

/// The socket's drop count (`SO_RXQ_OVFL`), when the message is one.
fn dropped(c: &Cmsg<'_>, meta: &mut Meta<impl Copy>) {
    if (c.level, c.kind) == (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) && c.data.len() >= 4 {
        meta.dropped = Some(word(&c.data[..4]));
    }
}

/// Four bytes as the kernel stored them.
fn word(b: &[u8]) -> u32 {
    u32::from_ne_bytes(b.try_into().unwrap_or_default())
}

/// Turns on the drop count, and the destination where replies must choose
/// their source; returns the control room one datagram needs.
fn setup(listener: &Listener, pktinfo_len: usize) -> usize {
    let mut len = 0;
    match setsockopt(listener, sockopt::RxqOvfl, &1) {
        Ok(()) => len += cmsg_space(size_of::<u32>()),
        Err(e) => warn!(
            "cannot count the datagrams the kernel drops on {listener} (SO_RXQ_OVFL: {e}); \
             they will not show in the counters"
        ),
    }
    let group = listener.ip().and_then(crate::addr::group_kind);
    if let Some(kind) = group {
        warn!(
            "{listener} is bound to {kind} address: the datagrams it receives are \
             never answered, since an echo service that answers them amplifies \
             forged requests (the Fraggle attack); bind a unicast or wildcard \
             address instead"
        );
    }
    if listener.is_wildcard() || group.is_some() {
        match enable_pktinfo(listener) {
            Ok(()) => len += cmsg_space(pktinfo_len),
            Err(e) => warn!(
                "cannot ask for the destination of datagrams on {listener}: {e}; replies \
                 leave from the address the kernel picks, which a client with a \
                 connected socket drops when it asked another of this host's addresses, \
                 and datagrams to a broadcast or multicast address cannot be told apart"
            ),
        }
    }
    len
}

/// Asks the kernel for each datagram's destination address.
fn enable_pktinfo(listener: &Listener) -> nix::Result<()> {
    match listener.family() {
        Family::Inet6 => setsockopt(listener, sockopt::Ipv6RecvPacketInfo, &true),
        _ => setsockopt(listener, sockopt::Ipv4PacketInfo, &true),
    }
}
