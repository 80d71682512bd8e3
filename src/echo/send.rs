//! The one routine that sends replies, for every transport.
//!
//! A batch's replies go out in arrival order. Runs of replies to the same
//! peer with the same size leave as one GSO send where the socket allows
//! it ([`super::gso`]); the others go in `sendmmsg` calls, one per run of
//! replies that leave from the same address (nix's `sendmmsg` gives one set
//! of control messages to a whole call, so a change of source address,
//! `IP_PKTINFO` on wildcard UDP sockets, starts a new call). A lone reply
//! with no source to set goes out with `sendto`, the cheapest call for it.
//!
//! Every send uses `MSG_DONTWAIT`: a client whose queue is full costs its
//! own reply (`EAGAIN`, counted), never the other clients' replies.

use std::io::IoSlice;
use std::os::fd::RawFd;

use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, sendmmsg, sendto};

use super::gso::Gso;
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
/// messages, one with room for a source address, two for GSO sends (the
/// segment size alone, and with a source), and what GSO may still do.
/// nix hands the kernel a header's whole control buffer, so each set's
/// buffer must be exactly what its messages fill.
pub(super) struct Sender<P> {
    plain: MultiHeaders<P>,
    with_src: MultiHeaders<P>,
    gso_plain: MultiHeaders<P>,
    gso_src: MultiHeaders<P>,
    gso: Gso,
}

impl<P: Peer> Sender<P> {
    /// `src_space` is the control buffer of one source address, when
    /// replies may choose theirs; `gso` whether the socket may use UDP
    /// segmentation offload.
    pub fn new(src_space: Option<Vec<u8>>, gso: bool) -> Sender<P> {
        let segment = nix::cmsg_space!(u16);
        let mut both = segment.clone();
        both.extend(src_space.iter().flatten());
        Sender {
            plain: MultiHeaders::preallocate(BATCH, None),
            with_src: MultiHeaders::preallocate(BATCH, src_space),
            gso_plain: MultiHeaders::preallocate(1, Some(segment)),
            gso_src: MultiHeaders::preallocate(1, Some(both)),
            gso: Gso::new(gso),
        }
    }
}

/// One batch's replies on their way out: the socket, the headers, the
/// slots the replies sit in, and the worker that counts them.
struct Out<'a, 'w, P, S> {
    fd: RawFd,
    sender: &'a mut Sender<P>,
    slots: &'a Slots,
    replies: &'a Replies<P, S>,
    w: &'a mut Worker<'w>,
}

/// Sends every queued reply, counting each as sent or failed.
pub(super) fn send_replies<P: Peer + PartialEq, S: Source>(
    fd: RawFd,
    sender: &mut Sender<P>,
    slots: &Slots,
    replies: &Replies<P, S>,
    w: &mut Worker<'_>,
) {
    let mut out = Out {
        fd,
        sender,
        slots,
        replies,
        w,
    };
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
        // Within it, GSO runs and the spans between them, in order.
        while done < end {
            let run = out.sender.gso.run_end(replies, done, end);
            if run - done >= 2 {
                if let Some(used) = out.gso(done, run) {
                    done += used;
                    continue;
                }
                // Refused: the limit is lower now; send these plainly.
            }
            let mut span = done + 1;
            while span < end && out.sender.gso.run_end(replies, span, end) - span < 2 {
                span += 1;
            }
            done += out.run(done, span);
        }
    }
}

impl<P: Peer, S: Source> Out<'_, '_, P, S> {
    /// Sends `replies[from..to]` (same peer, source and size) as one GSO
    /// send; `None` when GSO was refused and the run must be sent again.
    fn gso(&mut self, from: usize, to: usize) -> Option<usize> {
        let replies = self.replies;
        let iovs = self.slots.reply_iovs(replies, from, to);
        let flat: [IoSlice<'_>; BATCH] = std::array::from_fn(|j| iovs[j][0]);
        let size = replies.len[from];
        let segment = size as u16;
        let src = replies.src[from].as_ref().map(Source::cmsg);
        let cmsgs = [ControlMessage::UdpGsoSegments(&segment)];
        let both;
        let (hdrs, cmsgs): (_, &[ControlMessage<'_>]) = match src {
            Some(s) => {
                both = [cmsgs[0], s];
                (&mut self.sender.gso_src, &both)
            }
            None => (&mut self.sender.gso_plain, &cmsgs),
        };
        let message: [&[IoSlice<'_>]; 1] = [&flat[..to - from]];
        let result = sendmmsg(
            self.fd,
            hdrs,
            &message,
            &replies.to[from..from + 1],
            cmsgs,
            MsgFlags::MSG_DONTWAIT,
        )
        .map(|r| r.count());
        let n = to - from;
        match result {
            Ok(_) => self.w.sent(n),
            Err(e) if self.sender.gso.refused(size, e) => return None,
            Err(e) => {
                for p in replies.to[from..to].iter().flatten() {
                    self.w.send_failed(e, p);
                }
            }
        }
        Some(n)
    }

    /// Sends `replies[from..to]`, which share a source, with one call;
    /// returns how many replies it used up. `sendmmsg` stops at the first
    /// failure after a success and the next call reports that failure, so
    /// a failed call uses up exactly its first reply.
    fn run(&mut self, from: usize, to: usize) -> usize {
        let replies = self.replies;
        let Some(first) = &replies.to[from] else {
            return 1;
        };
        let src = replies.src[from];
        if to - from == 1 && src.is_none() {
            let reply = self.slots.reply(replies, from);
            match sendto(self.fd, reply, first, MsgFlags::MSG_DONTWAIT) {
                Ok(_) => self.w.sent(1),
                Err(e) => self.w.send_failed(e, first),
            }
            return 1;
        }
        let iovs = self.slots.reply_iovs(replies, from, to);
        let one;
        let (hdrs, cmsgs): (_, &[ControlMessage<'_>]) = match &src {
            Some(s) => {
                one = [s.cmsg()];
                (&mut self.sender.with_src, &one)
            }
            None => (&mut self.sender.plain, &[]),
        };
        let result = sendmmsg(
            self.fd,
            hdrs,
            &iovs[..to - from],
            &replies.to[from..to],
            cmsgs,
            MsgFlags::MSG_DONTWAIT,
        )
        .map(|r| r.count());
        match result {
            Ok(k) => {
                self.w.sent(k);
                k.max(1)
            }
            Err(e) => {
                self.w.send_failed(e, first);
                1
            }
        }
    }
}
