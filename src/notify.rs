//! Talking to the service manager (`sd_notify(3)`).
//!
//! The `sd-notify` crate formats the messages and reads the watchdog
//! variables; sending is done here because the crate cannot reach an
//! abstract `NOTIFY_SOCKET=@name`, which systemd uses in some setups
//! (containers, user managers) and test harnesses use freely.
//!
//! Every failure is logged, never fatal: a daemon that cannot report its
//! status must still answer datagrams.

use std::cell::Cell;
use std::ffi::OsString;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use log::{debug, warn};
pub use sd_notify::NotifyState;

/// A connection to `NOTIFY_SOCKET`, or nothing when it is unset.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr, String)>,
    warned: Cell<bool>,
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            warned: Cell::new(false),
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
            .and_then(|addr| Ok((UnixDatagram::unbound()?, addr)))
            .map(|(sock, addr)| (sock, addr, shown.clone()));
        match target {
            Ok(t) => Notifier {
                target: Some(t),
                warned: Cell::new(false),
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

    /// Sends the states; a failure is logged (the first as a warning).
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
            if self.warned.replace(true) {
                debug!("cannot notify {shown}: {e}");
            } else {
                warn!("cannot notify the service manager at {shown}: {e}");
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

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, as
/// `sd_watchdog_enabled(3)` advises, when the watchdog is on for us.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
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
    fn unset_or_odd_values_disable() {
        assert!(!Notifier::new(None).enabled());
        assert!(!Notifier::new(Some("".into())).enabled());
        assert!(!Notifier::new(Some("vsock:2:1".into())).enabled());
        Notifier::disabled().ready("nothing happens");
    }
}
