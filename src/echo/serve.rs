//! The one loop, for every transport: `recvmmsg` takes up to [`BATCH`]
//! datagrams (blocking for the first only, so a lone datagram is answered
//! at once), each goes through the worker's decision, and the replies go
//! out together, in the order received.

use std::os::fd::{AsFd, AsRawFd};

use anyhow::{Context, Result};
use log::debug;
use nix::sys::socket::MsgFlags;

use super::mmsg::RecvBatch;
use super::policy::Datagram;
use super::send::{Sender, send_replies};
use super::slots::{Replies, Slots};
use super::transport::Transport;
use super::worker::{Job, Worker};
use crate::defaults::BATCH;

/// Serves the job's socket until the server stops or the socket fails.
pub(super) fn serve<T: Transport>(job: &Job<'_>) -> Result<()> {
    let listener = job.listener;
    let fd = listener.as_fd().as_raw_fd();
    let mut slots = Slots::new();
    let mut batch = RecvBatch::new(job.cmsg_len);
    let mut sender = Sender::<T::Peer>::new(T::src_space(), T::GSO);
    let mut replies = Replies::<T::Peer, T::Src>::new();
    let mut w = Worker::new(job);
    debug!("loop started on {listener}, up to {BATCH} datagrams per system call");
    while job.running() {
        let n = match batch.recv(fd, &mut slots, MsgFlags::empty()) {
            Ok(n) => n,
            Err(e) => {
                w.recv_error(e).with_context(|| format!("on {listener}"))?;
                continue;
            }
        };
        w.batch_start();
        for i in 0..n {
            let meta = T::meta(batch.cmsgs(i));
            if let Some(total) = meta.dropped {
                w.kernel_dropped(total);
            }
            let d = Datagram {
                len: batch.len(i),
                truncated: batch.truncated(i),
                to_group: meta.to_group,
                uid: meta.uid,
            };
            let peer = batch.addr::<T::Peer>(i);
            if let Some(peer) = w.handle(slots.data_mut(i, d.len), d, peer) {
                replies.push(peer, meta.src, i, d.len);
            }
        }
        send_replies(fd, &mut sender, &slots, &replies, &mut w);
        replies.clear();
    }
    debug!("loop stopped on {listener}");
    Ok(())
}
