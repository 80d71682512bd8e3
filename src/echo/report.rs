//! Warnings about datagrams that were not answered, rate-limited so that a
//! flood of bad datagrams cannot flood the journal, and formatted only when
//! one is due: nothing here runs per datagram unless a drop is reported.

use std::fmt;

use log::warn;
use nix::errno::Errno;

use super::policy::{Peer, Policy};
use super::reason::Reason;
use crate::listener::Listener;
use crate::throttle::Throttle;

/// One worker's throttles: one per drop reason, one for receive errors.
#[derive(Debug, Default)]
pub(super) struct Reports {
    drops: [Throttle; Reason::COUNT],
    recv: Throttle,
}

impl Reports {
    /// Warns about a datagram dropped for `reason`, when a report is due.
    pub(super) fn dropped<P: Peer>(
        &mut self,
        reason: Reason,
        len: usize,
        peer: Option<&P>,
        listener: &Listener,
        policy: &Policy,
    ) {
        let Some(n) = self.drops[reason.index()].due() else {
            return;
        };
        // An unbound sender's address has no text (nix asserts on it).
        let from = match peer.filter(|p| !p.is_unbound()) {
            Some(p) => p.describe(),
            None => "a sender with no address".to_string(),
        };
        let why = match (reason, peer.and_then(|p| p.port()), policy.rate) {
            (Reason::LoopGuard, Some(port), _) if policy.own.contains(&port) => format!(
                "source port {port} is one of dgecho's own listening ports (it could be another \
                 dgecho or echo service on that port, and the two would answer each other forever)"
            ),
            (Reason::LoopGuard, Some(port), _) => format!(
                "source port {port} is loop-guarded (it could be another echo service; see \
                 --guard-ports)"
            ),
            (Reason::RateLimited, _, Some(rate)) => {
                format!("over the --rate-limit of {rate} per source")
            }
            _ => reason.text().why.to_string(),
        };
        warn!(
            "not answering a {len}-byte datagram on {listener} from {from}: {why}{}",
            n
        );
    }

    /// Warns about a reply the kernel refused, when a report is due.
    pub(super) fn send_failed<P: Peer>(&mut self, e: Errno, peer: &P, listener: &Listener) {
        if let Some(n) = self.drops[Reason::SendFailed.index()].due() {
            warn!(
                "cannot reply to {} on {listener}: {e}: {}{}",
                peer.describe(),
                send_hint(e),
                n
            );
        }
    }

    /// Warns about a receive error that the loop survives.
    pub(super) fn recv_failed(&mut self, e: Errno, listener: &Listener) {
        if let Some(n) = self.recv.due() {
            warn!("receiving on {listener} failed: {e}; continuing{}", n);
        }
    }
}

/// Why a reply could not be sent, and what to do about it.
fn send_hint(e: Errno) -> &'static str {
    match e {
        Errno::EACCES | Errno::EPERM => {
            "the client's socket file must be writable by the daemon's user; \
             bind the client to an abstract address (dgecho client does by default) \
             or make its socket file writable"
        }
        Errno::ENOENT => {
            "the client's socket file does not exist for the daemon: it was removed, \
             or it lives in a /tmp that the daemon cannot see (PrivateTmp=); \
             bind clients to an abstract address or under /run"
        }
        Errno::ECONNREFUSED => "the client closed its socket before the reply arrived",
        Errno::EAGAIN => {
            "the client's receive queue is full: it is not reading its replies; \
             or, on a Unix socket, the daemon's send buffer is full of replies that \
             clients have not read yet (see SendBuffer= in the .socket unit)"
        }
        Errno::ENOBUFS | Errno::ENOMEM => {
            "the kernel ran out of socket buffer space; the sender is faster than the replies"
        }
        Errno::EMSGSIZE => "the reply is larger than the socket's send buffer allows",
        Errno::ENETUNREACH | Errno::EHOSTUNREACH => "there is no route back to the sender",
        _ => "the reply was dropped",
    }
}

/// Shows at most the first 32 bytes of a datagram, escaped, for trace logs.
pub(super) struct Preview<'a>(pub &'a [u8]);

impl fmt::Display for Preview<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(32)];
        write!(f, "\"{}\"", shown.escape_ascii())?;
        if self.0.len() > shown.len() {
            f.write_str("...")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_escaped_and_short() {
        assert_eq!(Preview(b"a\nb").to_string(), "\"a\\nb\"");
        assert_eq!(
            Preview(&[b'x'; 40]).to_string(),
            format!("\"{}\"...", "x".repeat(32))
        );
    }
}
