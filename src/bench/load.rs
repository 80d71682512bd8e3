//! The load loop: keeps up to `--window` requests in flight with
//! `sendmmsg`, takes replies with `recvmmsg`, and hands each to the tally.

use std::io::{IoSlice, IoSliceMut, Write};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Instant;

use anyhow::Result;
use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
};

use super::pattern::Pattern;
use super::tally::{Slot, State, Tally};
use super::{BATCH, LATE_AFTER, Options, RING};
use crate::client::Client;

/// The loop's buffers and headers, allocated once before it starts.
struct Buffers {
    /// [`BATCH`] copies of the request, each stamped with its number.
    send: Vec<u8>,
    /// [`BATCH`] reply slots, one byte longer than a request so that a
    /// longer reply shows.
    recv: Vec<u8>,
    slot: usize,
    send_hdrs: MultiHeaders<SockaddrStorage>,
    recv_hdrs: MultiHeaders<SockaddrStorage>,
    lens: [usize; BATCH],
}

/// One run against a connected socket.
pub(super) struct Load<'a> {
    pub fd: BorrowedFd<'a>,
    pub pattern: &'a Pattern,
    pub opts: &'a Options,
    pub target: &'a Client,
}

impl Load<'_> {
    /// Sends and receives until the duration is over and every request is
    /// answered or lost. Returns the length of the sending phase in seconds.
    pub fn run(&self, t: &mut Tally) -> Result<f64> {
        let fd = self.fd.as_raw_fd();
        let mut b = Buffers {
            send: self.pattern.request.repeat(BATCH),
            recv: vec![0u8; BATCH * (self.opts.size + 1)],
            slot: self.opts.size + 1,
            send_hdrs: MultiHeaders::preallocate(BATCH, None),
            recv_hdrs: MultiHeaders::preallocate(BATCH, None),
            lens: [0; BATCH],
        };
        let start = Instant::now();
        let duration_ns = self.opts.duration.as_nanos() as u64;
        let late_ns = LATE_AFTER.as_nanos() as u64;
        let ns = || start.elapsed().as_nanos() as u64;
        let mut next_progress = 1_000_000_000u64;
        let mut send_end = None;
        loop {
            let now = ns();
            t.expire(now);
            let sending = now < duration_ns;
            if !sending && send_end.is_none() {
                send_end = Some(now);
            }
            if !sending && (t.in_flight == 0 || now > duration_ns + 2 * late_ns) {
                break;
            }
            if self.opts.progress && now >= next_progress {
                next_progress += 1_000_000_000;
                progress(t, now);
            }
            if sending {
                self.fill_window(fd, &mut b, t, &ns)?;
            }
            let received = self.take_replies(fd, &mut b)?;
            if received > 0 {
                let now = ns();
                let in_time = now < duration_ns;
                for (i, &len) in b.lens[..received].iter().enumerate() {
                    let data = &b.recv[i * b.slot..i * b.slot + len.min(b.slot)];
                    t.reply(self.pattern, data, now, in_time);
                }
            }
        }
        if self.opts.progress {
            eprintln!();
        }
        // Whatever is still pending now is lost.
        t.lost += t.in_flight as u64;
        Ok(send_end.unwrap_or(duration_ns) as f64 / 1e9)
    }

    /// Sends requests to fill the window, never overwriting a request
    /// still pending in the ring.
    fn fill_window(
        &self,
        fd: RawFd,
        b: &mut Buffers,
        t: &mut Tally,
        ns: &dyn Fn() -> u64,
    ) -> Result<()> {
        let size = self.opts.size;
        let room = (t.next - t.oldest) as usize;
        let n = (self.opts.window - t.in_flight).min(BATCH).min(RING - room);
        if n == 0 {
            return Ok(());
        }
        for (i, chunk) in b.send.chunks_exact_mut(size).take(n).enumerate() {
            self.pattern.fill(chunk, t.next + i as u64);
        }
        let mut chunks = b.send.chunks_exact(size);
        let iovs: [[IoSlice<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSlice::new(chunks.next().unwrap_or(&[]))]);
        let no_addrs = [None::<SockaddrStorage>; BATCH];
        let no_cmsgs: [ControlMessage<'_>; 0] = [];
        let sent_at = ns();
        let sent = sendmmsg(
            fd,
            &mut b.send_hdrs,
            &iovs[..n],
            &no_addrs[..n],
            no_cmsgs,
            MsgFlags::empty(),
        );
        match sent {
            Ok(r) => {
                let k = r.count();
                for seq in t.next..t.next + k as u64 {
                    *t.slot(seq) = Slot {
                        seq,
                        sent_ns: sent_at,
                        state: State::Pending,
                    };
                }
                t.next += k as u64;
                t.in_flight += k;
                Ok(())
            }
            Err(Errno::EAGAIN | Errno::ENOBUFS | Errno::EINTR) => Ok(()),
            Err(e) => Err(self.target.explain_io(std::io::Error::from(e), "send to")),
        }
    }

    /// Waits (up to the receive timeout) for at least one reply, then takes
    /// what is there; returns how many, their lengths in `b.lens`.
    fn take_replies(&self, fd: RawFd, b: &mut Buffers) -> Result<usize> {
        let mut chunks = b.recv.chunks_exact_mut(b.slot);
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or(&mut []))]);
        let got = recvmmsg(
            fd,
            &mut b.recv_hdrs,
            iovs.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        );
        match got {
            Ok(r) => {
                let mut k = 0;
                for (len, m) in b.lens.iter_mut().zip(r) {
                    *len = m.bytes;
                    k += 1;
                }
                Ok(k)
            }
            Err(Errno::EAGAIN | Errno::EINTR) => Ok(0),
            Err(e) => Err(self
                .target
                .explain_io(std::io::Error::from(e), "receive from")),
        }
    }
}

/// The progress line on stderr, rewritten in place once a second.
fn progress(t: &Tally, now_ns: u64) {
    let secs = now_ns as f64 / 1e9;
    eprint!(
        "\r{secs:5.1} s: {} replies ({:.0}/s), lost {}, mismatched {}   ",
        t.replies,
        t.replies_in_time as f64 / secs,
        t.lost,
        t.mismatched
    );
    let _ = std::io::stderr().flush();
}
