//! Socket options the loops rely on, set once when the server starts.

use anyhow::{Context, Result};
use log::{debug, info};
use nix::sys::socket::{getsockopt, setsockopt, sockopt};
use nix::sys::time::TimeVal;

use crate::defaults::{TICK, UNIX_SEND_BUFFER};
use crate::listener::{Family, Listener};

/// Prepares a socket for its loop: a receive timeout, so that an idle
/// worker sees the stop flag (see the module docs), and on Unix sockets a
/// send buffer large enough for the replies clients have not read yet.
pub(super) fn prepare(listener: &Listener) -> Result<()> {
    let timeout = TimeVal::new(TICK.as_secs() as _, TICK.subsec_micros() as _);
    setsockopt(listener, sockopt::ReceiveTimeout, &timeout)
        .with_context(|| format!("cannot set a receive timeout on {listener}"))?;
    if listener.family() == Family::Unix {
        raise_send_buffer(listener);
    }
    Ok(())
}

/// Raises a Unix socket's send buffer to [`UNIX_SEND_BUFFER`], never
/// lowering it (systemd's `SendBuffer=` may have set more). Without
/// `CAP_NET_ADMIN` the kernel caps the request at `net.core.wmem_max`.
fn raise_send_buffer(listener: &Listener) {
    let before = getsockopt(listener, sockopt::SndBuf).unwrap_or(0);
    if before >= 2 * UNIX_SEND_BUFFER {
        return;
    }
    if setsockopt(listener, sockopt::SndBufForce, &UNIX_SEND_BUFFER).is_err() {
        // SO_SNDBUF is capped at wmem_max: ask only for what raises it.
        let cap = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(212_992);
        let want = UNIX_SEND_BUFFER.min(cap);
        if 2 * want > before {
            let _ = setsockopt(listener, sockopt::SndBuf, &want);
        }
    }
    let after = getsockopt(listener, sockopt::SndBuf).unwrap_or(before);
    if after < 2 * UNIX_SEND_BUFFER {
        info!(
            "the send buffer of {listener} is {after} bytes: replies that clients have not read \
             yet are charged to it, so many slow clients can make replies fail; \
             set SendBuffer=4M in the .socket unit (the kernel doubles it) or raise net.core.wmem_max"
        );
    } else {
        debug!("send buffer of {listener}: {after} bytes (was {before})");
    }
}
