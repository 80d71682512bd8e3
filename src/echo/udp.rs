//! The loop for one UDP socket: `recvmmsg` takes up to [`BATCH`] datagrams
//! (blocking for the first only, so a lone datagram is answered at once)
//! and their replies go out together, in the order received.
//!
//! On a socket bound to a wildcard address (`0.0.0.0`, `[::]`), each
//! datagram's destination comes with it (`IP_PKTINFO`/`IPV6_PKTINFO`) and
//! its reply is sent from that address: a client with a connected socket
//! drops a reply from any other. Sockets bound to one address skip this.

use std::os::fd::{AsFd, AsRawFd};

use anyhow::{Context, Result};
use log::{debug, warn};
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn, SockaddrIn6, recvmmsg,
    setsockopt, sockopt,
};

use super::policy::{Datagram, Peer};
use super::send::{Sender, Source, send_replies};
use super::slots::{Replies, Slots};
use super::worker::{Job, Worker};
use crate::defaults::BATCH;
use crate::listener::{Family, Listener};

/// What the UDP loop needs to reply from the address a request was sent
/// to, per address family.
pub(super) trait UdpPeer: Peer {
    /// The source to send a reply from, as its control message carries it.
    type Src: Source;
    /// The reply's source, from a received control message.
    fn reply_src(c: ControlMessageOwned) -> Option<Self::Src>;
}

impl Source for nix::libc::in_pktinfo {
    fn same(&self, other: &Self) -> bool {
        self.ipi_spec_dst.s_addr == other.ipi_spec_dst.s_addr
    }
    fn cmsg(&self) -> ControlMessage<'_> {
        ControlMessage::Ipv4PacketInfo(self)
    }
}

impl Source for nix::libc::in6_pktinfo {
    fn same(&self, other: &Self) -> bool {
        self.ipi6_addr.s6_addr == other.ipi6_addr.s6_addr
    }
    fn cmsg(&self) -> ControlMessage<'_> {
        ControlMessage::Ipv6PacketInfo(self)
    }
}

impl UdpPeer for SockaddrIn {
    type Src = nix::libc::in_pktinfo;
    fn reply_src(c: ControlMessageOwned) -> Option<Self::Src> {
        match c {
            // ipi_spec_dst is the local address the datagram reached (for
            // a broadcast, the interface's own address, never the
            // broadcast address): send from it, and let routing choose the
            // interface (ifindex 0).
            ControlMessageOwned::Ipv4PacketInfo(i) => Some(nix::libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: i.ipi_spec_dst,
                ipi_addr: nix::libc::in_addr { s_addr: 0 },
            }),
            _ => None,
        }
    }
}

impl UdpPeer for SockaddrIn6 {
    type Src = nix::libc::in6_pktinfo;
    fn reply_src(c: ControlMessageOwned) -> Option<Self::Src> {
        match c {
            ControlMessageOwned::Ipv6PacketInfo(mut i) => {
                i.ipi6_ifindex = 0;
                // A multicast destination cannot be a source: leave the
                // choice to the kernel (::).
                if i.ipi6_addr.s6_addr[0] == 0xff {
                    i.ipi6_addr.s6_addr = [0; 16];
                }
                Some(i)
            }
            _ => None,
        }
    }
}

/// Asks the kernel for each datagram's destination address.
fn enable_pktinfo(listener: &Listener) -> nix::Result<()> {
    match listener.family() {
        Family::Inet6 => setsockopt(listener, sockopt::Ipv6RecvPacketInfo, &true),
        _ => setsockopt(listener, sockopt::Ipv4PacketInfo, &true),
    }
}

/// One received datagram: what the kernel said of it, its sender, and the
/// address to reply from (on wildcard sockets).
type Received<P> = (Datagram, Option<P>, Option<<P as UdpPeer>::Src>);

/// Turns on `IP_PKTINFO`/`IPV6_PKTINFO` where replies must choose their
/// source: only on a socket bound to a wildcard address can a request
/// arrive at one of several addresses.
fn want_pktinfo(listener: &Listener) -> bool {
    if !listener.is_wildcard() {
        return false;
    }
    match enable_pktinfo(listener) {
        Ok(()) => true,
        Err(e) => {
            warn!(
                "cannot ask for the destination of datagrams on {listener}: {e}; replies \
                 leave from the address the kernel picks, which a client with a \
                 connected socket drops when it asked another of this host's addresses"
            );
            false
        }
    }
}

/// Serves `listener` until `stop` is set or the socket fails.
pub(super) fn serve<P: UdpPeer>(job: &Job<'_>) -> Result<()> {
    let listener = job.listener;
    let fd = listener.as_fd().as_raw_fd();
    let pktinfo = want_pktinfo(listener);
    let cmsg_buf = || pktinfo.then(|| nix::cmsg_space!(P::Src));
    let mut slots = Slots::new();
    let mut recv_hdrs = MultiHeaders::<P>::preallocate(BATCH, cmsg_buf());
    let mut sender = Sender::<P>::new(cmsg_buf());
    let mut replies = Replies::<P, P::Src>::new();
    let none = Datagram {
        len: 0,
        truncated: false,
    };
    let mut got: [Received<P>; BATCH] = [(none, None, None); BATCH];
    let mut w = Worker::new(job);
    debug!(
        "loop started on {listener}, up to {BATCH} datagrams per system call{}",
        if pktinfo {
            ", replying from each datagram's destination address"
        } else {
            ""
        }
    );
    while job.running() {
        let (n, lost_cmsg) = match receive(fd, &mut slots, &mut recv_hdrs, &mut got, pktinfo) {
            Ok(r) => r,
            Err(e) => {
                w.recv_error(e).with_context(|| format!("on {listener}"))?;
                continue;
            }
        };
        if lost_cmsg {
            // The kernel shrinks a header's control length to what one
            // datagram used, and nix never restores it: start afresh so
            // the next datagrams in these slots carry their destination.
            // (Never seen: every datagram carries one. Not per datagram.)
            debug!("a datagram on {listener} came without its destination; resetting headers");
            recv_hdrs = MultiHeaders::<P>::preallocate(BATCH, cmsg_buf());
        }
        w.batch_start();
        for (i, &(d, peer, dst)) in got[..n].iter().enumerate() {
            if let Some(peer) = w.handle(slots.data_mut(i, d.len), d, peer) {
                replies.push(peer, dst, i, d.len);
            }
        }
        send_replies(fd, &mut sender, &slots, &replies, &mut w);
        replies.clear();
    }
    debug!("loop stopped on {listener}");
    Ok(())
}

/// One `recvmmsg`: fills `got[..n]` and returns `n`, and whether a
/// datagram that should have carried its destination did not.
fn receive<P: UdpPeer>(
    fd: std::os::fd::RawFd,
    slots: &mut Slots,
    hdrs: &mut MultiHeaders<P>,
    got: &mut [Received<P>; BATCH],
    pktinfo: bool,
) -> nix::Result<(usize, bool)> {
    let mut iovs = slots.iovs_mut();
    let flags = MsgFlags::MSG_TRUNC | MsgFlags::MSG_WAITFORONE;
    let msgs = recvmmsg(fd, hdrs, iovs.iter_mut(), flags, None)?;
    let (mut n, mut lost_cmsg) = (0, false);
    for (g, m) in got.iter_mut().zip(msgs) {
        let dst = if pktinfo {
            let d = m
                .cmsgs()
                .ok()
                .and_then(|mut c| c.find_map(|c| P::reply_src(c)));
            lost_cmsg |= d.is_none();
            d
        } else {
            None
        };
        let d = Datagram {
            len: m.bytes,
            truncated: m.flags.contains(MsgFlags::MSG_TRUNC),
        };
        *g = (d, m.address, dst);
        n += 1;
    }
    Ok((n, lost_cmsg))
}
