//! The load loop: one thread drives every flow, so that flows never
//! compete for the generator's CPU with each other's threads and the
//! buffers are shared. Closed loop (`--window`): each flow keeps up to its
//! window of requests in flight. Open loop (`--rate`): each flow sends its
//! requests when its schedule says, whatever the replies do. Requests go
//! out with `sendmmsg`, replies come back with `recvmmsg`, up to [`BATCH`]
//! per call, into buffers allocated once before the loop starts.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
};
use nix::sys::time::TimeSpec;

use super::interval::Intervals;
use super::pattern::Pattern;
use super::schedule::Schedule;
use super::tally::Tally;
use super::{BATCH, LATE_AFTER, Options, POLL, SENT_BEHIND};
use crate::client::Client;

/// How early the open loop stops sleeping before a request is due and
/// starts polling without sleeping: a sleeping thread wakes up to the
/// kernel's timer slack (50 µs by default) late, and every late wake-up
/// would be charged to the requests' latency.
const SPIN: Duration = Duration::from_micros(100);

/// One flow's own state; its socket is the matching entry of
/// [`Load::fds`].
pub(super) struct Flow {
    pub(super) tally: Tally,
    /// Closed loop: requests kept in flight.
    window: usize,
    /// Open loop: when each request is due.
    schedule: Option<Schedule>,
    /// The last send found the socket full: wait until it takes more.
    blocked: bool,
}

impl Flow {
    pub(super) fn new(tally: Tally, window: usize, schedule: Option<Schedule>) -> Flow {
        Flow {
            tally,
            window,
            schedule,
            blocked: false,
        }
    }

    /// Open loop: whether requests remain to be sent.
    fn unsent(&self) -> bool {
        self.schedule
            .is_some_and(|s| self.tally.count_sent() < s.count)
    }
}

/// The loop's buffers and headers, allocated once before it starts and
/// shared by the flows, which are served one after the other.
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

/// One run over connected sockets, one per flow.
pub(super) struct Load<'a> {
    pub fds: &'a [BorrowedFd<'a>],
    pub clients: &'a [Client],
    pub pattern: &'a Pattern,
    pub opts: &'a Options,
}

/// A run in progress.
struct Run<'r, 'a> {
    load: &'r Load<'a>,
    b: Buffers,
    polls: Vec<PollFd<'a>>,
    start: Instant,
    /// Still in the sending phase: replies count towards replies/s.
    in_time: bool,
}

impl Load<'_> {
    /// Sends and receives until the sending phase is over and every
    /// request is answered or lost. Returns the length of the sending phase
    /// in seconds.
    pub fn run(&self, flows: &mut [Flow], iv: &mut Intervals<'_>) -> Result<f64> {
        let mut r = Run {
            load: self,
            b: Buffers {
                send: self.pattern.request.repeat(BATCH),
                recv: vec![0u8; BATCH * (self.opts.size + 1)],
                slot: self.opts.size + 1,
                send_hdrs: MultiHeaders::preallocate(BATCH, None),
                recv_hdrs: MultiHeaders::preallocate(BATCH, None),
                lens: [0; BATCH],
            },
            polls: self
                .fds
                .iter()
                .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
                .collect(),
            start: Instant::now(),
            in_time: true,
        };
        let duration_ns = self.opts.duration.as_nanos() as u64;
        let open = self.opts.rate.is_some();
        let mut send_end = None;
        loop {
            let now = r.ns();
            flows.iter_mut().for_each(|f| f.tally.expire(now));
            r.in_time = send_end.is_none()
                && match open {
                    true => flows.iter().any(Flow::unsent),
                    false => now < duration_ns,
                };
            if !r.in_time && send_end.is_none() {
                send_end = Some(now);
                iv.finish(now, flows.iter().map(|f| &f.tally))?;
            }
            if let Some(end) = send_end {
                let pending: usize = flows.iter().map(|f| f.tally.in_flight).sum();
                if pending == 0 || now > end + 2 * LATE_AFTER.as_nanos() as u64 {
                    break;
                }
            } else {
                iv.tick(now, flows.iter().map(|f| &f.tally))?;
                for (i, f) in flows.iter_mut().enumerate() {
                    match open {
                        true => r.send_due(i, f, iv)?,
                        false => r.fill_window(i, f)?,
                    }
                }
            }
            r.receive(flows, iv)?;
        }
        // Whatever is still pending now is lost.
        for f in flows.iter_mut() {
            f.tally.lost += f.tally.in_flight as u64;
        }
        Ok(send_end.unwrap_or(duration_ns) as f64 / 1e9)
    }
}

impl Run<'_, '_> {
    fn ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Closed loop: sends requests to fill the flow's window, never
    /// overwriting a request still pending in the ring.
    fn fill_window(&mut self, i: usize, f: &mut Flow) -> Result<()> {
        let n = (f.window - f.tally.in_flight)
            .min(BATCH)
            .min(f.tally.room());
        let sent_at = self.ns();
        match self.send(i, &f.tally, n)? {
            Some(k) => {
                f.tally.sent(k, |_| sent_at);
                f.blocked = false;
            }
            None => f.blocked = true,
        }
        Ok(())
    }

    /// Open loop: sends every request that is due, each measured from when
    /// it was due, however late it leaves.
    fn send_due(&mut self, i: usize, f: &mut Flow, iv: &mut Intervals<'_>) -> Result<()> {
        let Some(s) = f.schedule else { return Ok(()) };
        let first = f.tally.count_sent();
        let sent_at = self.ns();
        let n = s.due_from(first, sent_at, BATCH.min(f.tally.room()));
        let Some(k) = self.send(i, &f.tally, n)? else {
            f.blocked = true;
            return Ok(());
        };
        if k > 0 {
            // The batch's first request is its most overdue one.
            let lag = sent_at.saturating_sub(s.due_ns(first));
            f.tally.max_lag_ns = f.tally.max_lag_ns.max(lag);
            iv.lag(lag);
        }
        let behind = SENT_BEHIND.as_nanos() as u64;
        f.tally.behind += (first..first + k as u64)
            .filter(|&j| sent_at.saturating_sub(s.due_ns(j)) >= behind)
            .count() as u64;
        // Request `j` (from 0) has sequence number `j + 1`.
        f.tally.sent(k, |seq| s.due_ns(seq - 1));
        f.blocked = false;
        Ok(())
    }

    /// Sends the next `n` requests of flow `i`; returns how many left, or
    /// `None` when its socket takes no more for now.
    fn send(&mut self, i: usize, t: &Tally, n: usize) -> Result<Option<usize>> {
        if n == 0 {
            return Ok(Some(0));
        }
        let (size, b) = (self.load.opts.size, &mut self.b);
        for (j, chunk) in b.send.chunks_exact_mut(size).take(n).enumerate() {
            self.load.pattern.fill(chunk, t.next + j as u64);
        }
        let mut chunks = b.send.chunks_exact(size);
        let iovs: [[IoSlice<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSlice::new(chunks.next().unwrap_or(&[]))]);
        let no_addrs = [None::<SockaddrStorage>; BATCH];
        let no_cmsgs: [ControlMessage<'_>; 0] = [];
        let sent = sendmmsg(
            self.load.fds[i].as_raw_fd(),
            &mut b.send_hdrs,
            &iovs[..n],
            &no_addrs[..n],
            no_cmsgs,
            MsgFlags::MSG_DONTWAIT,
        );
        match sent {
            Ok(r) => Ok(Some(r.count())),
            Err(Errno::EAGAIN | Errno::ENOBUFS | Errno::EINTR) => Ok(None),
            Err(e) => Err(self.load.clients[i].explain_io(std::io::Error::from(e), "send to")),
        }
    }

    /// Waits for replies, but not past the next due request (less
    /// [`SPIN`]) nor longer than [`POLL`], then takes what has come.
    fn receive(&mut self, flows: &mut [Flow], iv: &mut Intervals<'_>) -> Result<()> {
        if flows.len() == 1 && self.load.opts.rate.is_none() {
            // Closed loop, one flow: block in recvmmsg itself (the socket's
            // receive timeout is POLL), one system call per round trip.
            flows[0].blocked = false;
            return self.take(0, &mut flows[0], iv, MsgFlags::MSG_WAITFORONE);
        }
        let next_due = flows
            .iter()
            .filter(|f| self.in_time && f.unsent() && !f.blocked)
            .filter_map(|f| f.schedule.map(|s| s.due_ns(f.tally.count_sent())))
            .min();
        let poll_ns = POLL.as_nanos() as u64;
        let wait = next_due.map_or(poll_ns, |due| {
            due.saturating_sub(self.ns() + SPIN.as_nanos() as u64)
                .min(poll_ns)
        });
        if wait > 0 {
            for (p, f) in self.polls.iter_mut().zip(flows.iter()) {
                let out = match f.blocked {
                    true => PollFlags::POLLOUT,
                    false => PollFlags::empty(),
                };
                p.set_events(PollFlags::POLLIN | out);
            }
            let timeout = TimeSpec::from_duration(Duration::from_nanos(wait));
            match ppoll(&mut self.polls, Some(timeout), None) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(anyhow::Error::new(e).context("cannot wait for replies")),
            }
        }
        for (i, f) in flows.iter_mut().enumerate() {
            // Without a wait, the last poll's events are stale: take from
            // every flow.
            let revents = match wait {
                0 => PollFlags::empty(),
                _ => self.polls[i].revents().unwrap_or(PollFlags::empty()),
            };
            if revents.contains(PollFlags::POLLOUT) {
                f.blocked = false;
            }
            if wait == 0 || revents.intersects(PollFlags::POLLIN | PollFlags::POLLERR) {
                self.take(i, f, iv, MsgFlags::MSG_DONTWAIT)?;
            }
        }
        Ok(())
    }

    /// Takes the replies waiting on flow `i`'s socket and accounts for them.
    fn take(
        &mut self,
        i: usize,
        f: &mut Flow,
        iv: &mut Intervals<'_>,
        flags: MsgFlags,
    ) -> Result<()> {
        let b = &mut self.b;
        let mut chunks = b.recv.chunks_exact_mut(b.slot);
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or(&mut []))]);
        let got = recvmmsg(
            self.load.fds[i].as_raw_fd(),
            &mut b.recv_hdrs,
            iovs.iter_mut(),
            flags,
            None,
        );
        let received = match got {
            Ok(r) => {
                let mut k = 0;
                for (len, m) in b.lens.iter_mut().zip(r) {
                    *len = m.bytes;
                    k += 1;
                }
                k
            }
            Err(Errno::EAGAIN | Errno::EINTR) => 0,
            Err(e) => {
                let e = std::io::Error::from(e);
                return Err(self.load.clients[i].explain_io(e, "receive from"));
            }
        };
        if received > 0 {
            let now = self.ns();
            let b = &self.b;
            for (j, &len) in b.lens[..received].iter().enumerate() {
                let data = &b.recv[j * b.slot..j * b.slot + len.min(b.slot)];
                if let Some(rtt) = f.tally.reply(self.load.pattern, data, now, self.in_time) {
                    iv.record(rtt);
                }
            }
        }
        Ok(())
    }
}
