//! Batched receive with `recvmmsg(2)`, for every address family: the one
//! place where the engine calls libc itself.
//!
//! # Why not nix's `recvmmsg`
//! nix 0.32 prepares its message headers once (`MultiHeaders`) and never
//! restores `msg_namelen` or `msg_controllen`, which the kernel shrinks to
//! what each datagram used. Reused, a slot that once held a short Unix
//! address (8 bytes for an autobind name, 0 for an unbound sender) truncates
//! a longer one later, and its reply goes to the wrong address; a slot that
//! once held no control message drops the next one (`MSG_CTRUNC`).
//! Re-preallocating per call would allocate on the hot path. nix PR #2813
//! proposes the fix; a `[patch]` of nix would mean carrying a fork of the
//! whole crate through every packager's offline build. So this wrapper
//! owns its headers and resets every field before every call: a few dozen
//! stores per batch, no allocation.
//!
//! The two `unsafe` blocks are the system call and reading a peer address
//! out of the kernel-filled storage; control messages are parsed from
//! plain bytes, safely.
//!
//! The headers hold raw pointers into the slots and into this struct; they
//! are set at the start of every call, so moving the struct between calls
//! is harmless.

use std::mem::size_of;
use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{MsgFlags, SockaddrLike};

use super::slots::Slots;
use crate::defaults::{BATCH, BUFFER_SIZE};

/// The room one control message with `len` bytes of data takes
/// (`CMSG_SPACE`).
pub(super) const fn cmsg_space(len: usize) -> usize {
    align(len) + align(size_of::<libc::cmsghdr>())
}

const fn align(len: usize) -> usize {
    let a = size_of::<usize>();
    (len + a - 1) & !(a - 1)
}

/// Headers, addresses and control buffers for [`BATCH`] datagrams,
/// allocated once per worker. The raw pointers make it `!Send`, which is
/// right: a worker's buffers never leave its thread.
pub(super) struct RecvBatch {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    /// One `sockaddr_storage` (128 bytes, 8-aligned) per datagram.
    addrs: Vec<[u64; 16]>,
    /// `BATCH` control buffers of `cmsg_len` bytes. The kernel copies
    /// control messages byte by byte, and they are parsed from bytes.
    cmsgs: Vec<u8>,
    cmsg_len: usize,
}

/// One control message: level, type and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cmsg<'a> {
    pub level: i32,
    pub kind: i32,
    pub data: &'a [u8],
}

impl RecvBatch {
    /// Room for `cmsg_len` bytes of control messages per datagram (the sum
    /// of [`cmsg_space`] of each message the socket may deliver).
    pub fn new(cmsg_len: usize) -> RecvBatch {
        let cmsg_len = align(cmsg_len);
        let iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        RecvBatch {
            hdrs: (0..BATCH).map(|_| empty_mmsghdr()).collect(),
            iovs: vec![iov; BATCH],
            addrs: vec![[0u64; 16]; BATCH],
            cmsgs: vec![0u8; BATCH * cmsg_len],
            cmsg_len,
        }
    }

    /// Receives up to `max` (at most [`BATCH`]) datagrams into `slots`, blocking (unless
    /// `flags` say otherwise) for the first only (`MSG_WAITFORONE` is
    /// added), with `MSG_TRUNC` so that an oversized datagram's real length
    /// shows. Without `control`, no control buffers are given: the
    /// kernel's receive is shorter without them, and a datagram that had
    /// control messages says so ([`RecvBatch::control_cut`]). Returns how
    /// many arrived.
    pub fn recv(
        &mut self,
        fd: RawFd,
        slots: &mut Slots,
        max: usize,
        flags: MsgFlags,
        control: bool,
    ) -> Result<usize, Errno> {
        let max = max.clamp(1, BATCH);
        let cmsg_len = if control { self.cmsg_len } else { 0 };
        let cmsg_base = self.cmsgs.as_mut_ptr();
        for (i, buf) in slots.iovs_raw().take(max).enumerate() {
            self.iovs[i] = libc::iovec {
                iov_base: buf.cast(),
                iov_len: BUFFER_SIZE,
            };
            let h = &mut self.hdrs[i];
            h.msg_len = 0;
            h.msg_hdr.msg_name = (&raw mut self.addrs[i]).cast();
            h.msg_hdr.msg_namelen = size_of::<[u64; 16]>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &raw mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = if cmsg_len == 0 {
                std::ptr::null_mut()
            } else {
                cmsg_base.wrapping_add(i * cmsg_len).cast()
            };
            h.msg_hdr.msg_controllen = cmsg_len as _;
            h.msg_hdr.msg_flags = 0;
        }
        let flags = flags | MsgFlags::MSG_TRUNC | MsgFlags::MSG_WAITFORONE;
        // SAFETY: every header points into buffers this struct or `slots`
        // owns, sized as the header says (`BUFFER_SIZE` per slot, a
        // `sockaddr_storage` per name, `cmsg_len` bytes per control buffer),
        // and all of them outlive the call; `BATCH` headers exist. The
        // kernel writes only within those sizes.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                max as libc::c_uint,
                flags.bits(),
                std::ptr::null_mut(),
            )
        };
        Errno::result(n).map(|n| n as usize)
    }

    /// The real length of datagram `i` (longer than the slot when cut).
    pub fn len(&self, i: usize) -> usize {
        self.hdrs[i].msg_len as usize
    }

    /// Whether datagram `i` was cut to fit its slot.
    pub fn truncated(&self, i: usize) -> bool {
        self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0
    }

    /// Whether datagram `i` had control messages that found no room
    /// (`MSG_CTRUNC`).
    pub fn control_cut(&self, i: usize) -> bool {
        self.hdrs[i].msg_hdr.msg_flags & libc::MSG_CTRUNC != 0
    }

    /// The sender of datagram `i`, as the kernel reported it; `None` when it
    /// has none of family `P` (an unbound Unix sender has length 0).
    pub fn addr<P: SockaddrLike>(&self, i: usize) -> Option<P> {
        let len = self.hdrs[i].msg_hdr.msg_namelen;
        // The kernel reports the length the address needed, which can
        // exceed the storage (a 108-byte Unix path): never read past it.
        let len = len.min(size_of::<[u64; 16]>() as libc::socklen_t);
        // SAFETY: the storage was filled by the kernel for `len` bytes (or
        // is zero), and `from_raw` checks the family and length before it
        // reads any further.
        unsafe { P::from_raw((&raw const self.addrs[i]).cast(), Some(len)) }
    }

    /// The control messages of datagram `i`.
    pub fn cmsgs(&self, i: usize) -> Cmsgs<'_> {
        // socklen_t on some C libraries, size_t on glibc.
        #[allow(clippy::unnecessary_cast)]
        let used = self.hdrs[i].msg_hdr.msg_controllen as usize;
        let start = i * self.cmsg_len;
        Cmsgs {
            buf: &self.cmsgs[start..start + used.min(self.cmsg_len)],
        }
    }
}

/// Iterates over the control messages in one datagram's buffer.
pub(super) struct Cmsgs<'a> {
    buf: &'a [u8],
}

impl<'a> Iterator for Cmsgs<'a> {
    type Item = Cmsg<'a>;
    fn next(&mut self) -> Option<Cmsg<'a>> {
        let hdr = align(size_of::<libc::cmsghdr>());
        if self.buf.len() < hdr {
            return None;
        }
        let (len_bytes, rest) = self.buf.split_at(size_of::<usize>());
        let len = usize::from_ne_bytes(len_bytes.try_into().ok()?);
        let level = i32::from_ne_bytes(rest[..4].try_into().ok()?);
        let kind = i32::from_ne_bytes(rest[4..8].try_into().ok()?);
        if len < hdr || len > self.buf.len() {
            self.buf = &[];
            return None;
        }
        let data = &self.buf[hdr..len];
        self.buf = &self.buf[align(len).min(self.buf.len())..];
        Some(Cmsg { level, kind, data })
    }
}

/// A header with nothing in it yet; [`RecvBatch::recv`] fills every field
/// before each call.
fn empty_mmsghdr() -> libc::mmsghdr {
    libc::mmsghdr {
        msg_hdr: libc::msghdr {
            msg_name: std::ptr::null_mut(),
            msg_namelen: 0,
            msg_iov: std::ptr::null_mut(),
            msg_iovlen: 0,
            msg_control: std::ptr::null_mut(),
            msg_controllen: 0,
            msg_flags: 0,
        },
        msg_len: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{setsockopt, sockopt};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;

    /// Without control buffers, a datagram that carries credentials says
    /// so (`MSG_CTRUNC`), which is how a worker learns that another one
    /// turned them on; with buffers, they arrive.
    #[test]
    fn credentials_without_control_buffers_show_as_cut() {
        let (a, b) = UnixDatagram::pair().unwrap();
        let fd = a.as_raw_fd();
        let mut slots = Slots::new();
        let mut batch = RecvBatch::new(cmsg_space(size_of::<libc::ucred>()));
        let mut recv = |control| batch_recv(&mut batch, fd, &mut slots, control);

        setsockopt(&a, sockopt::PassCred, &true).unwrap();
        b.send(b"one").unwrap();
        assert_eq!(recv(false), (true, 0));
        b.send(b"two").unwrap();
        assert_eq!(recv(true), (false, 1), "credentials, whole");

        setsockopt(&a, sockopt::PassCred, &false).unwrap();
        b.send(b"three").unwrap();
        assert_eq!(recv(false), (false, 0), "nothing to cut");
    }

    /// Receives one datagram: whether its control messages were cut, and
    /// how many arrived.
    fn batch_recv(b: &mut RecvBatch, fd: RawFd, slots: &mut Slots, control: bool) -> (bool, usize) {
        assert_eq!(b.recv(fd, slots, 1, MsgFlags::empty(), control), Ok(1));
        let creds = b
            .cmsgs(0)
            .filter(|c| (c.level, c.kind) == (libc::SOL_SOCKET, libc::SCM_CREDENTIALS))
            .count();
        (b.control_cut(0), creds)
    }
}
