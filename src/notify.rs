//! Talking to the service manager (`sd_notify(3)`).
//!
//! The `sd-notify` crate formats the messages and reads the watchdog
//! variables; sending is done here because the crate cannot reach an
//! abstract `NOTIFY_SOCKET=@name`, which systemd uses in some setups
//! (containers, user managers) and test harnesses use freely.
//!
//! Every failure is logged (rate-limited), never fatal: a daemon that cannot
//! report its status must still answer datagrams. The socket is
//! non-blocking, so a service manager (or anyone who set `NOTIFY_SOCKET`)
//! that stops reading can never block the main thread, and with it signal
//! handling and the watchdog: a message that does not fit is dropped and
//! counted in the next warning.

use std::cell::RefCell;
use std::ffi::OsString;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use log::{debug, warn};

use crate::throttle::Throttle;
pub use sd_notify::NotifyState;

/// A connection to `NOTIFY_SOCKET`, or nothing when it is unset.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr, String)>,
    failures: RefCell<Throttle>,
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            failures: RefCell::default(),
        }
    }

    /// Reads `NOTIFY_SOCKET` (`/path` or `@abstract`).
    pub fn from_env() -> Notifier {
        Notifier::new(std::env::var_os("NOTIFY_SOCKET"))
    }

    pub fn new(socket: Option<OsString>) -> Notifier {
        let Some(raw) = socket.filter(|s| !s.is_empty()) else {
            debug!("NOTIFY_SOCKET is not set: not reporting to a service manager");
            return Notifier::disabled();
        };
        let shown = raw.to_string_lossy().into_owned();
        let bytes = raw.as_bytes();
        let addr = match bytes.first() {
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
            Some(b'/') => SocketAddr::from_pathname(&raw),
            _ => {
                warn!(
                    "NOTIFY_SOCKET={shown:?} is neither a path nor an @abstract name; \
                     not reporting readiness"
                );
                return Notifier::disabled();
            }
        };
        let target = addr
            .and_then(|addr| {
                let sock = UnixDatagram::unbound()?;
                sock.set_nonblocking(true)?;
                Ok((sock, addr))
            })
            .map(|(sock, addr)| (sock, addr, shown.clone()));
        match target {
            Ok(t) => Notifier {
                target: Some(t),
                failures: RefCell::default(),
            },
            Err(e) => {
                warn!("cannot use NOTIFY_SOCKET={shown:?}: {e}; not reporting readiness");
                Notifier::disabled()
            }
        }
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends the states without ever waiting; a failure is logged, at most
    /// once per [`REPORT_INTERVAL`](crate::throttle::REPORT_INTERVAL).
    pub fn notify(&self, states: &[NotifyState]) {
        let Some((sock, addr, shown)) = &self.target else {
            return;
        };
        let mut msg = String::new();
        for s in states {
            msg.push_str(&s.to_string());
            msg.push('\n');
        }
        if let Err(e) = sock.send_to_addr(msg.as_bytes(), addr) {
            if let Some(n) = self.failures.borrow_mut().due() {
                let why = if e.kind() == std::io::ErrorKind::WouldBlock {
                    ": nobody reads it; the message was dropped"
                } else {
                    ""
                };
                warn!("cannot notify the service manager at {shown}: {e}{why}{n}");
            }
        }
    }

    pub fn ready(&self, status: &str) {
        self.notify(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.notify(&[NotifyState::Status(status)]);
    }

    pub fn watchdog(&self) {
        self.notify(&[NotifyState::Watchdog]);
    }

    pub fn stopping(&self, status: &str) {
        self.notify(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }
}

/// The longest watchdog interval honoured: a day. systemd never sets more
/// (`WatchdogSec=` is meant for seconds to minutes); a larger
/// `WATCHDOG_USEC` is a mistake, and its deadline would overflow.
pub const MAX_WATCHDOG: Duration = Duration::from_secs(24 * 3600);

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, as
/// `sd_watchdog_enabled(3)` advises, when the watchdog is on for us.
pub fn watchdog_interval() -> Option<Duration> {
    interval_for(sd_notify::watchdog_enabled())
}

fn interval_for(usec: Option<Duration>) -> Option<Duration> {
    let d = usec.filter(|d| !d.is_zero())?;
    if d > MAX_WATCHDOG {
        warn!(
            "WATCHDOG_USEC asks for a watchdog every {} s; using a day (check WatchdogSec= \
             in the unit)",
            d.as_secs()
        );
    }
    Some(d.min(MAX_WATCHDOG) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(name: &str, make: impl Fn(&str) -> (UnixDatagram, String)) {
        let (rx, env) = make(name);
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier::new(Some(env.into()));
        assert!(n.enabled());
        n.ready("ok");
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=ok\n");
    }

    #[test]
    fn sends_to_abstract_socket() {
        roundtrip(
            &format!("dgecho-test-notify-{}", std::process::id()),
            |name| {
                let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
                (UnixDatagram::bind_addr(&addr).unwrap(), format!("@{name}"))
            },
        );
    }

    #[test]
    fn sends_to_path_socket() {
        let path = std::env::temp_dir().join(format!("dgecho-notify-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        roundtrip(path.to_str().unwrap(), |p| {
            (UnixDatagram::bind(p).unwrap(), p.to_string())
        });
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn watchdog_intervals_are_bounded() {
        assert_eq!(interval_for(None), None);
        assert_eq!(interval_for(Some(Duration::ZERO)), None);
        assert_eq!(
            interval_for(Some(Duration::from_secs(30))),
            Some(Duration::from_secs(15))
        );
        let huge = Duration::from_micros(u64::MAX);
        assert_eq!(interval_for(Some(huge)), Some(MAX_WATCHDOG / 2));
    }

    #[test]
    fn a_full_notify_queue_never_blocks() {
        // Fill the receiver's queue, then notify: the call must return.
        let name = format!("dgecho-test-full-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        let filler = UnixDatagram::unbound().unwrap();
        filler.set_nonblocking(true).unwrap();
        while filler.send_to_addr(b"x", &addr).is_ok() {}
        let n = Notifier::new(Some(format!("@{name}").into()));
        n.ready("stuck?");
        n.status("still not stuck");
        drop(rx);
    }

    #[test]
    fn unset_or_odd_values_disable() {
        assert!(!Notifier::new(None).enabled());
        assert!(!Notifier::new(Some("".into())).enabled());
        assert!(!Notifier::new(Some("vsock:2:1".into())).enabled());
        Notifier::disabled().ready("nothing happens");
    }
}
