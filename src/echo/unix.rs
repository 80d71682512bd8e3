//! The loop for one Unix socket: `recvmsg` per datagram, and the replies
//! of a burst sent together.
//!
//! The first `recvmsg` blocks and its reply goes out at once, so a lone
//! datagram waits for nothing. Then up to [`BATCH`]` - 1` more datagrams
//! that are already queued are taken with `MSG_DONTWAIT`, and their
//! replies go out with one `sendmmsg`, in arrival order (the first reply
//! left before all of them, so each sender's order holds). A burst of `k`
//! costs `k + 1` receives and 2 sends instead of `2k` calls.
//!
//! Receiving is not batched because nix 0.32's `recvmmsg` never resets
//! `msg_namelen` between calls: a slot that once held a short Unix address
//! (an autobind name is 8 bytes, an unbound sender's 0) would truncate a
//! longer one later, and its reply would go to a wrong address. Fresh
//! headers per call would fix that only by allocating per call
//! (`MultiHeaders::preallocate`); nix PR #2813 proposes the fix. UDP
//! addresses all have one length, so the UDP loop is safe.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use anyhow::{Context, Result};
use log::debug;
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, UnixAddr, recvmsg};

use super::policy::Datagram;
use super::send::{NoSource, Sender, send_replies};
use super::slots::{Replies, Slots};
use super::worker::{Job, Worker};
use crate::defaults::BATCH;

/// Serves `listener` until `stop` is set or the socket fails.
pub(super) fn serve(job: &Job<'_>) -> Result<()> {
    let listener = job.listener;
    let fd = listener.as_fd().as_raw_fd();
    let mut slots = Slots::new();
    let mut sender = Sender::<UnixAddr>::new(None);
    let mut replies = Replies::<UnixAddr, NoSource>::new();
    let mut w = Worker::new(job);
    debug!(
        "loop started on {listener}, one receive per datagram, up to {BATCH} replies per \
         system call"
    );
    while job.running() {
        // Block for the first datagram only; its reply leaves at once.
        match receive(fd, &mut slots, 0, &mut replies, &mut w, MsgFlags::empty()) {
            Ok(()) => send_replies(fd, &mut sender, &slots, &replies, &mut w),
            Err(e) => {
                w.recv_error(e).with_context(|| format!("on {listener}"))?;
                continue;
            }
        }
        replies.clear();
        // Then take what is already queued.
        for i in 1..BATCH {
            match receive(
                fd,
                &mut slots,
                i,
                &mut replies,
                &mut w,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(()) => {}
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    w.recv_error(e).with_context(|| format!("on {listener}"))?;
                    break;
                }
            }
        }
        send_replies(fd, &mut sender, &slots, &replies, &mut w);
        replies.clear();
    }
    debug!("loop stopped on {listener}");
    Ok(())
}

/// Receives one datagram into slot `i`, decides, and queues its reply.
fn receive(
    fd: RawFd,
    slots: &mut Slots,
    i: usize,
    replies: &mut Replies<UnixAddr, NoSource>,
    w: &mut Worker<'_>,
    flags: MsgFlags,
) -> Result<(), Errno> {
    // MSG_TRUNC makes the kernel return the datagram's real length, so an
    // oversized one is seen and never half-answered.
    let flags = flags | MsgFlags::MSG_TRUNC;
    let (d, peer) = {
        let mut iov = [IoSliceMut::new(slots.slot_mut(i))];
        let m = recvmsg::<UnixAddr>(fd, &mut iov, None, flags)?;
        let d = Datagram {
            len: m.bytes,
            truncated: m.flags.contains(MsgFlags::MSG_TRUNC),
        };
        (d, m.address)
    };
    if let Some(peer) = w.handle(slots.data_mut(i, d.len), d, peer) {
        replies.push(peer, None, i, d.len);
    }
    Ok(())
}
