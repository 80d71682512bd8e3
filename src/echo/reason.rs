//! Why a datagram was not answered: the one list of drop reasons.
//!
//! Every reason has one counter, one name in the counter text (`STATUS=`,
//! the final log line) and one explanation in the rate-limited warning.
//! Adding a reason is one variant here plus its arm in [`Reason::text`];
//! the counters, the counter text and its parser, and the log throttling
//! all follow from [`Reason::ALL`].

/// Why a datagram got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A Unix sender that never bound its socket: no address to reply to.
    Unbound,
    /// Larger than the receive buffer ([`crate::defaults::BUFFER_SIZE`]).
    TooLarge,
    /// A UDP source port on the loop guard list, or one of the server's own.
    LoopGuard,
    /// The UDP source is over its `--rate-limit`.
    RateLimited,
    /// The reply was dropped by the kernel (see the warning's errno).
    SendFailed,
    /// Sent to a broadcast or multicast address: answering would multiply
    /// traffic (the Fraggle attack, CERT CA-1996-01).
    Broadcast,
    /// The sender's user has too many replies not read yet
    /// ([`Ledger`](super::Ledger)).
    Unread,
    /// Dropped by the kernel before dgecho saw it: the receive queue was
    /// full (`SO_RXQ_OVFL`).
    KernelDropped,
}

/// How a reason shows in the counter text and in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    /// The counter's name in the counter text ("loop guard 3").
    pub label: &'static str,
    /// Why there was no reply, and the fix where there is one; it follows
    /// "not answering a N-byte datagram on SOCKET from PEER: ".
    pub why: &'static str,
}

impl Reason {
    /// Every reason, in the order the counter text lists them.
    pub const ALL: [Reason; 8] = [
        Reason::Unbound,
        Reason::TooLarge,
        Reason::LoopGuard,
        Reason::RateLimited,
        Reason::SendFailed,
        Reason::Broadcast,
        Reason::Unread,
        Reason::KernelDropped,
    ];

    /// How many reasons there are: the size of the counter arrays.
    pub const COUNT: usize = Reason::ALL.len();

    /// The reason's position in [`Reason::ALL`] and in counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn text(self) -> Text {
        let (label, why) = match self {
            Reason::Unbound => (
                "unbound sender",
                "the client must bind its socket (dgecho client does)",
            ),
            Reason::TooLarge => (
                "too large",
                "larger than the 65536-byte buffer; send at most 65536 bytes",
            ),
            Reason::LoopGuard => (
                "loop guard",
                "its source port is loop-guarded: it could be another echo service, and the \
                 two would answer each other forever (see --guard-ports)",
            ),
            Reason::RateLimited => ("rate limited", "over the --rate-limit per source"),
            Reason::SendFailed => ("send failed", "the reply could not be sent"),
            Reason::Broadcast => (
                "broadcast",
                "it was sent to a broadcast or multicast address, and answering those \
                 multiplies traffic (the Fraggle attack); send to this host's own address",
            ),
            Reason::Unread => (
                "unread replies",
                "its user has left too many replies unread, filling the daemon's send \
                 buffer; the client must read its replies (other users are still answered)",
            ),
            Reason::KernelDropped => (
                "dropped by the kernel",
                "the socket's receive queue was full; raise ReceiveBuffer= in the .socket \
                 unit, or send more slowly",
            ),
        };
        Text { label, why }
    }

    /// The reason whose counter is called `label`.
    pub fn from_label(label: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.text().label == label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_and_labels_are_unique() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
            assert_eq!(Reason::from_label(r.text().label), Some(*r));
        }
        assert_eq!(Reason::from_label("nonsense"), None);
    }
}
