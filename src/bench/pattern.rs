//! What each request carries and how a reply is checked against it: its
//! sequence number in the first 8 bytes (little-endian), then a fixed,
//! asymmetric pattern, so that a reply is checked for both which request it
//! answers and that its content is what `--reply` promises.

use crate::echo::ReplyMode;

/// The request pattern and how to check a reply against it.
pub(super) struct Pattern {
    size: usize,
    reply: ReplyMode,
    /// A request with sequence number 0.
    pub(super) request: Vec<u8>,
    /// What the bytes after (echo) or before (reverse) the sequence number
    /// must be.
    expected_rest: Vec<u8>,
}

impl Pattern {
    pub(super) fn new(size: usize, reply: ReplyMode) -> Pattern {
        // Asymmetric, so that a reversed reply never passes for an echo.
        let request: Vec<u8> = (0..size)
            .map(|i| if i < 8 { 0 } else { (i * 131 + 7) as u8 ^ 0x5a })
            .collect();
        let expected_rest = match reply {
            ReplyMode::Echo => request[8..].to_vec(),
            ReplyMode::Reverse => request[8..].iter().rev().copied().collect(),
        };
        Pattern {
            size,
            reply,
            request,
            expected_rest,
        }
    }

    pub(super) fn fill(&self, buf: &mut [u8], seq: u64) {
        buf[..8].copy_from_slice(&seq.to_le_bytes());
    }

    /// The sequence number a reply answers, if its length and content are
    /// right.
    pub(super) fn check(&self, reply: &[u8]) -> Option<u64> {
        if reply.len() != self.size {
            return None;
        }
        let mut seq = [0u8; 8];
        match self.reply {
            ReplyMode::Echo => {
                seq.copy_from_slice(&reply[..8]);
                (reply[8..] == self.expected_rest[..]).then_some(())?;
            }
            ReplyMode::Reverse => {
                let n = reply.len();
                for (i, b) in seq.iter_mut().enumerate() {
                    *b = reply[n - 1 - i];
                }
                (reply[..n - 8] == self.expected_rest[..]).then_some(())?;
            }
        }
        Some(u64::from_le_bytes(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_checks_sequence_and_content() {
        for mode in [ReplyMode::Echo, ReplyMode::Reverse] {
            let p = Pattern::new(64, mode);
            let mut req = p.request.clone();
            p.fill(&mut req, 0x0102_0304_0506_0708);
            let mut reply = req.clone();
            if mode == ReplyMode::Reverse {
                reply.reverse();
            }
            assert_eq!(p.check(&reply), Some(0x0102_0304_0506_0708));
            let mut bad = reply.clone();
            bad[30] ^= 1;
            assert_eq!(p.check(&bad), None);
            assert_eq!(p.check(&reply[..63]), None);
            let other = Pattern::new(
                64,
                match mode {
                    ReplyMode::Echo => ReplyMode::Reverse,
                    ReplyMode::Reverse => ReplyMode::Echo,
                },
            );
            assert_eq!(other.check(&reply), None, "the wrong mode never passes");
        }
    }
}
