//! The one routine that sends replies, for both loops.
//!
//! A batch's replies go out in arrival order, in runs that leave from the
//! same address: `sendmmsg` (as nix wraps it) gives one set of control
//! messages to a whole call, so a change of source address (`IP_PKTINFO`
//! on wildcard UDP sockets) starts a new call. A lone reply with no source
//! to set goes out with `sendto`, the cheapest call for it.
//!
//! Every send uses `MSG_DONTWAIT`: a client whose queue is full costs its
//! own reply (`EAGAIN`, counted), never the other clients' replies.

use std::os::fd::RawFd;

use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, sendmmsg, sendto};

use super::policy::Peer;
use super::slots::{Replies, Slots};
use super::worker::Worker;
use crate::defaults::BATCH;

/// The address a reply leaves from, on sockets that must choose it.
pub(super) trait Source: Copy {
    fn same(&self, other: &Self) -> bool;
    /// The control message that sets it.
    fn cmsg(&self) -> ControlMessage<'_>;
}

/// For sockets whose replies never choose their source (Unix sockets).
#[derive(Debug, Clone, Copy)]
pub(super) enum NoSource {}

impl Source for NoSource {
    fn same(&self, _: &Self) -> bool {
        match *self {}
    }
    fn cmsg(&self) -> ControlMessage<'_> {
        match *self {}
    }
}

/// The send headers of one worker, allocated once: one set without control
/// messages, and one with room for a source address.
pub(super) struct Sender<P> {
    plain: MultiHeaders<P>,
    with_src: MultiHeaders<P>,
}

impl<P: Peer> Sender<P> {
    /// `cmsg_space` is the control buffer of one source address, when
    /// replies may choose theirs.
    pub fn new(cmsg_space: Option<Vec<u8>>) -> Sender<P> {
        Sender {
            plain: MultiHeaders::preallocate(BATCH, None),
            with_src: MultiHeaders::preallocate(BATCH, cmsg_space),
        }
    }
}

/// Sends every queued reply, counting each as sent or failed.
pub(super) fn send_replies<P: Peer, S: Source>(
    fd: RawFd,
    sender: &mut Sender<P>,
    slots: &Slots,
    replies: &Replies<P, S>,
    w: &mut Worker<'_>,
) {
    let mut done = 0;
    while done < replies.n {
        // The run of replies that leave from the same address.
        let mut end = replies.n;
        if let Some(first) = &replies.src[done] {
            end = done + 1;
            while end < replies.n && replies.src[end].as_ref().is_some_and(|s| first.same(s)) {
                end += 1;
            }
        }
        done += send_run(fd, sender, slots, replies, done, end, w);
    }
}

/// Sends `replies[from..to]`, which share a source, with one call; returns
/// how many replies it used up. `sendmmsg` stops at the first failure after
/// a success and the next call reports that failure, so a failed call uses
/// up exactly its first reply.
fn send_run<P: Peer, S: Source>(
    fd: RawFd,
    sender: &mut Sender<P>,
    slots: &Slots,
    replies: &Replies<P, S>,
    from: usize,
    to: usize,
    w: &mut Worker<'_>,
) -> usize {
    let iovs = slots.reply_iovs(replies, from, to);
    let Some(first) = replies.to[from] else {
        return 1;
    };
    let src = replies.src[from];
    if to - from == 1 && src.is_none() {
        match sendto(fd, &iovs[0][0], &first, MsgFlags::MSG_DONTWAIT) {
            Ok(_) => w.sent(1),
            Err(e) => w.send_failed(e, &first),
        }
        return 1;
    }
    let one;
    let (hdrs, cmsgs): (_, &[ControlMessage<'_>]) = match &src {
        Some(s) => {
            one = [s.cmsg()];
            (&mut sender.with_src, &one)
        }
        None => (&mut sender.plain, &[]),
    };
    let result = sendmmsg(
        fd,
        hdrs,
        &iovs[..to - from],
        &replies.to[from..to],
        cmsgs,
        MsgFlags::MSG_DONTWAIT,
    )
    .map(|r| r.count());
    match result {
        Ok(k) => {
            w.sent(k);
            k.max(1)
        }
        Err(e) => {
            w.send_failed(e, &first);
            1
        }
    }
}
