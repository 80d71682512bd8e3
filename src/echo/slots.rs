//! The receive slots and the replies of one batch, allocated once per
//! worker: nothing on the per-datagram path allocates.

use std::io::IoSlice;
use std::ops::Range;
use std::ptr::NonNull;

use nix::sys::mman::{MmapAdvise, madvise};
use nix::unistd::{SysconfVar, sysconf};

use crate::defaults::{BATCH, BUFFER_SIZE, LARGE_BATCH, SMALL};

/// [`BATCH`] receive buffers of [`BUFFER_SIZE`] bytes each. Untouched pages
/// cost no memory, so small datagrams keep the resident size to a few pages
/// per slot; a reply is sent from the slot its request arrived in.
pub(super) struct Slots {
    /// Room for the slots and a page more: they start at `start`, on a
    /// page boundary, so that every slot is whole pages.
    mem: Vec<u8>,
    start: usize,
    /// The memory page size, for [`Slots::release_large`].
    page: usize,
}

impl Slots {
    pub fn new() -> Slots {
        let page = sysconf(SysconfVar::PAGE_SIZE).ok().flatten();
        let page = page.and_then(|p| usize::try_from(p).ok()).unwrap_or(4096);
        let mut mem = vec![0u8; BATCH * BUFFER_SIZE + page];
        let start = mem.as_mut_ptr().align_offset(page).min(page);
        let mut slots = Slots { mem, start, page };
        slots.no_huge_pages();
        slots
    }

    /// Keeps the slots out of transparent huge pages. Where THP is
    /// "always" (the default of some distributions), the kernel backs any
    /// aligned 2 MiB of an anonymous mapping with one huge page on its
    /// first fault: the first small datagram in a slot would make 2 MiB
    /// resident, and khugepaged would collapse the released slots again,
    /// so the slots would keep up to their whole 4 MiB whatever their
    /// datagrams. (The 1 MiB of a batch of 16 never held an aligned 2 MiB.)
    /// A failure (a kernel without THP) changes nothing.
    fn no_huge_pages(&mut self) {
        self.advise(0..BATCH * BUFFER_SIZE, MmapAdvise::MADV_NOHUGEPAGE);
    }

    /// Gives the kernel `advice` for the whole pages within `bufs[range]`;
    /// a failure only leaves the memory as it was.
    fn advise(&mut self, range: Range<usize>, advice: MmapAdvise) {
        let page = self.page;
        let Some(r) = self.bufs_mut().get_mut(range) else {
            return;
        };
        let skip = r.as_mut_ptr().align_offset(page);
        let Some(r) = r.get_mut(skip..) else {
            return;
        };
        let len = r.len() / page * page;
        let Some(start) = NonNull::new(r.as_mut_ptr()) else {
            return;
        };
        if len == 0 {
            return;
        }
        // SAFETY: the `len` bytes from `start` lie within `mem`, which
        // `&mut self` borrows exclusively, and start on a page boundary.
        // The allocator's memory is private and anonymous: MADV_NOHUGEPAGE
        // changes only how the kernel backs it, and after MADV_DONTNEED it
        // reads as zeros, a valid value for `u8`. nix offers madvise only
        // as an unsafe function.
        let _ = unsafe { madvise(start.cast(), len, advice) };
    }

    /// The memory page size.
    pub fn page(&self) -> usize {
        self.page
    }

    /// All the slots, in one piece.
    fn bufs(&self) -> &[u8] {
        &self.mem[self.start..self.start + BATCH * BUFFER_SIZE]
    }

    fn bufs_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.start + BATCH * BUFFER_SIZE]
    }

    /// Gives back to the kernel the pages that only a large datagram
    /// touches (all but those of a slot's first [`SMALL`] bytes, where small
    /// datagrams land) in each slot of `large` (one bit per slot) past the
    /// first [`LARGE_BATCH`]. They read as zeros afterwards and take no
    /// memory until written again. Large datagrams that landed there would
    /// otherwise keep up to `BATCH - LARGE_BATCH` times [`BUFFER_SIZE`]
    /// resident for good; giving back the first pages too would make every
    /// small datagram that lands there next fault a zeroed page in again.
    /// The first [`LARGE_BATCH`] slots keep theirs: they are what large
    /// datagrams may keep. A failure only leaves the memory resident.
    pub fn release_large(&mut self, large: u64) {
        let keep = (SMALL.div_ceil(self.page) * self.page).min(BUFFER_SIZE);
        let mut past = large & !((1u64 << LARGE_BATCH) - 1);
        while past != 0 {
            let i = past.trailing_zeros() as usize;
            past &= past - 1;
            let start = i * BUFFER_SIZE + keep;
            self.advise(start..(i + 1) * BUFFER_SIZE, MmapAdvise::MADV_DONTNEED);
        }
    }

    /// Slot `i`, whole, to receive into.
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.bufs_mut()[i * BUFFER_SIZE..(i + 1) * BUFFER_SIZE]
    }

    /// The first `len` bytes of slot `i` (at most the slot), mutable so the
    /// request can be turned into its reply in place.
    pub fn data_mut(&mut self, i: usize, len: usize) -> &mut [u8] {
        &mut self.slot_mut(i)[..len.min(BUFFER_SIZE)]
    }

    /// A raw pointer to each slot, for [`RecvBatch`](super::mmsg::RecvBatch),
    /// which hands them to the kernel.
    pub fn iovs_raw(&mut self) -> impl Iterator<Item = *mut u8> + '_ {
        self.bufs_mut()
            .chunks_exact_mut(BUFFER_SIZE)
            .map(|c| c.as_mut_ptr())
    }

    /// The send vectors of `replies[from..to]`, for `sendmmsg`: one per
    /// reply, in the first `to - from` entries; the rest are empty and
    /// never sent. As the vectors of a single message, they carry a GSO
    /// run.
    pub fn reply_iovs<P, S>(
        &self,
        replies: &Replies<P, S>,
        from: usize,
        to: usize,
    ) -> [[IoSlice<'_>; 1]; BATCH] {
        let mut iovs = [[IoSlice::new(&[])]; BATCH];
        for (iov, k) in iovs.iter_mut().zip(from..to) {
            iov[0] = IoSlice::new(self.reply(replies, k));
        }
        iovs
    }

    /// The bytes of reply `k`.
    pub fn reply<P, S>(&self, replies: &Replies<P, S>, k: usize) -> &[u8] {
        let (i, len) = (replies.slot[k], replies.len[k]);
        &self.bufs()[i * BUFFER_SIZE..i * BUFFER_SIZE + len]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A released slot keeps the pages of its first [`SMALL`] bytes and
    /// reads as zeros past them (the kernel took those pages back); the
    /// first [`LARGE_BATCH`] slots keep their data even when large
    /// datagrams filled them, and so do the slots without one.
    #[test]
    fn release_gives_back_the_large_slots_past_their_small_part() {
        let mut s = Slots::new();
        let filled = [0, LARGE_BATCH - 1, LARGE_BATCH, LARGE_BATCH + 1, BATCH - 1];
        for i in filled {
            s.slot_mut(i).fill(0xa5);
        }
        let large = [0, LARGE_BATCH - 1, LARGE_BATCH, BATCH - 1];
        s.release_large(large.iter().fold(0, |m, &i| m | 1 << i));
        let keep = SMALL.div_ceil(s.page) * s.page;
        for i in [LARGE_BATCH, BATCH - 1] {
            assert!(s.slot_mut(i)[..keep].iter().all(|&b| b == 0xa5));
            assert!(s.slot_mut(i)[keep..].iter().all(|&b| b == 0), "slot {i}");
        }
        for i in [0, LARGE_BATCH - 1, LARGE_BATCH + 1] {
            assert!(s.slot_mut(i).iter().all(|&b| b == 0xa5), "slot {i}");
        }
        s.release_large(0);
    }

    /// The VmFlags of the mapping that holds `addr`, from /proc/self/smaps.
    fn vm_flags(addr: usize) -> Option<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            let range = line.split_whitespace().next().unwrap_or("");
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    inside = a <= addr && addr < b;
                    continue;
                }
            }
            if inside {
                if let Some(flags) = line.strip_prefix("VmFlags:") {
                    return Some(flags.to_string());
                }
            }
        }
        None
    }

    /// Found by attacking the batch of 64: its 4 MiB of slots hold aligned
    /// 2 MiB ranges, which THP "always" backs with huge pages, so one
    /// 64-byte datagram in a slot made 2 MiB resident (2268 KiB for one
    /// small datagram per slot, against 260) and released slots came back
    /// whole. The slots are marked MADV_NOHUGEPAGE ("nh").
    #[test]
    fn the_slots_are_never_huge_pages() {
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            eprintln!("skipped: no transparent huge pages");
            return;
        }
        let mut s = Slots::new();
        let first = s.slot_mut(0).as_ptr() as usize;
        let last = s.slot_mut(BATCH - 1).as_ptr() as usize + BUFFER_SIZE - 1;
        for addr in [first, last] {
            let Some(flags) = vm_flags(addr) else {
                eprintln!("skipped: no /proc/self/smaps");
                return;
            };
            assert!(
                flags.split_whitespace().any(|f| f == "nh"),
                "slots at {addr:#x} may become huge pages: VmFlags{flags}"
            );
        }
    }
}
