//! The receive slots and the replies of one batch, allocated once per
//! worker: nothing on the per-datagram path allocates.

use std::io::IoSlice;

use crate::defaults::{BATCH, BUFFER_SIZE};

/// [`BATCH`] receive buffers of [`BUFFER_SIZE`] bytes each. Untouched pages
/// cost no memory, so small datagrams keep the resident size to a few pages
/// per slot; a reply is sent from the slot its request arrived in.
pub(super) struct Slots {
    bufs: Vec<u8>,
}

impl Slots {
    pub fn new() -> Slots {
        Slots {
            bufs: vec![0u8; BATCH * BUFFER_SIZE],
        }
    }

    /// Slot `i`, whole, to receive into.
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.bufs[i * BUFFER_SIZE..(i + 1) * BUFFER_SIZE]
    }

    /// The first `len` bytes of slot `i` (at most the slot), mutable so the
    /// request can be turned into its reply in place.
    pub fn data_mut(&mut self, i: usize, len: usize) -> &mut [u8] {
        &mut self.slot_mut(i)[..len.min(BUFFER_SIZE)]
    }

    /// A raw pointer to each slot, for [`RecvBatch`](super::mmsg::RecvBatch),
    /// which hands them to the kernel.
    pub fn iovs_raw(&mut self) -> impl Iterator<Item = *mut u8> + '_ {
        self.bufs
            .chunks_exact_mut(BUFFER_SIZE)
            .map(|c| c.as_mut_ptr())
    }

    /// The send vectors of `replies[from..to]`, for `sendmmsg`: one per
    /// reply. Entries past `to - from` repeat the last one and are never
    /// sent. As the vectors of a single message, they carry a GSO run. Entries
    /// past `to - from` repeat the last one and are never sent.
    pub fn reply_iovs<P, S>(
        &self,
        replies: &Replies<P, S>,
        from: usize,
        to: usize,
    ) -> [[IoSlice<'_>; 1]; BATCH] {
        std::array::from_fn(|j| {
            let k = (from + j).min(to - 1);
            let (i, len) = (replies.slot[k], replies.len[k]);
            [IoSlice::new(
                &self.bufs[i * BUFFER_SIZE..i * BUFFER_SIZE + len],
            )]
        })
    }
}

/// The replies of one batch, in arrival order: the slot and length of each,
/// where it goes and, on wildcard UDP sockets, the address it leaves from.
pub(super) struct Replies<P, S> {
    pub to: [Option<P>; BATCH],
    pub src: [Option<S>; BATCH],
    slot: [usize; BATCH],
    pub len: [usize; BATCH],
    pub n: usize,
}

impl<P: Copy, S: Copy> Replies<P, S> {
    pub fn new() -> Replies<P, S> {
        Replies {
            to: [None; BATCH],
            src: [None; BATCH],
            slot: [0; BATCH],
            len: [0; BATCH],
            n: 0,
        }
    }

    /// Queues the reply in slot `slot`, of `len` bytes, to `to`.
    #[cfg(test)]
    pub fn push(&mut self, to: P, src: Option<S>, slot: usize, len: usize) {
        *self.next_peer() = Some(to);
        self.commit(src, slot, len);
    }

    /// Where the next reply's peer goes: the loop reads each sender's
    /// address straight into it, and [`Replies::commit`] keeps it if the
    /// datagram is answered. A peer is never copied after the kernel's
    /// storage: on Unix sockets the copies cost more than the decision.
    pub fn next_peer(&mut self) -> &mut Option<P> {
        &mut self.to[self.n]
    }

    /// Queues the reply in slot `slot`, of `len` bytes, to the peer put in
    /// [`Replies::next_peer`].
    pub fn commit(&mut self, src: Option<S>, slot: usize, len: usize) {
        let k = self.n;
        self.src[k] = src;
        self.slot[k] = slot;
        self.len[k] = len.min(BUFFER_SIZE);
        self.n += 1;
    }

    pub fn clear(&mut self) {
        self.n = 0;
    }
}
