//! The sd_listen_fds protocol and the checks on inherited fds.

use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixDatagram;

use crate::util::*;

#[test]
fn names_and_addresses_are_logged() {
    let dir = TempDir::new();
    let path = dir.join("named.sock");
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = u.local_addr().unwrap().port();
    let d = Daemon::builder()
        .socket(UnixDatagram::bind(&path).unwrap(), "dgecho.socket")
        .socket(u, "udp-lo")
        .spawn()
        .wait_ready();
    let log = d.wait_log("ready");
    assert!(
        log.contains(&format!(
            "serving {} (AF_UNIX, name \"dgecho.socket\"), from systemd",
            path.display()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "serving 127.0.0.1:{port} (AF_INET, name \"udp-lo\"), from systemd"
        )),
        "{log}"
    );
    assert!(log.contains("answering on 2 sockets"), "{log}");
}

#[test]
fn missing_fdnames_are_unknown() {
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let d = Daemon::builder()
        .socket(u, "x")
        .without_fdnames()
        .spawn()
        .wait_ready();
    assert!(d.wait_log("ready").contains("name \"unknown\""));
}

/// A configuration error: exit status 6 (EXIT_NOTCONFIGURED), so that
/// the unit's RestartPreventExitStatus=6 keeps systemd from retrying.
fn refused(d: &mut Daemon) -> String {
    let (status, _) = d.wait_exit();
    assert_eq!(status.code(), Some(6), "stderr:\n{}", d.stderr());
    assert!(!d.messages.iter().any(|m| m.contains("READY=1")));
    d.stderr()
}

#[test]
fn a_stream_socket_is_refused_with_a_clear_message() {
    let t = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut d = Daemon::builder().socket(t, "web").spawn();
    let err = refused(&mut d);
    assert!(
        err.contains("dgecho: error: fd 3 (name \"web\") from systemd is a stream socket (ListenStream=); expected a datagram socket (AF_UNIX, AF_INET or AF_INET6); use ListenDatagram= in the .socket unit"),
        "{err}"
    );
}

#[test]
fn a_regular_file_is_refused() {
    let dir = TempDir::new();
    let path = dir.join("not-a-socket");
    std::fs::write(&path, b"").unwrap();
    let f = std::fs::File::open(&path).unwrap();
    let mut d = Daemon::builder()
        .socket(UdpSocket::bind("127.0.0.1:0").unwrap(), "ok")
        .socket(f, "oops")
        .spawn();
    let err = refused(&mut d);
    assert!(
        err.contains(&format!(
            "fd 4 (name \"oops\") from systemd is not a socket but {}",
            path.display()
        )),
        "{err}"
    );
    assert!(err.contains("expected a datagram socket"), "{err}");
}

#[test]
fn a_closed_fd_is_refused() {
    // LISTEN_FDS=2 but only fd 3 is passed: fd 4 is not open.
    let mut d = Daemon::builder()
        .socket(UdpSocket::bind("127.0.0.1:0").unwrap(), "a")
        .env("LISTEN_FDS", "2")
        .env("LISTEN_FDNAMES", "a:b")
        .spawn();
    let err = refused(&mut d);
    assert!(
        err.contains("fd 4 (name \"b\") from systemd is not open"),
        "{err}"
    );
}

#[test]
fn a_listen_pid_for_another_process_is_ignored() {
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut d = Daemon::builder()
        .socket(u, "not-mine")
        .listen_pid(ListenPid::Value(Some("1".into())))
        .arg("--listen")
        .arg(format!("unix:@{}", unique("dgecho-pid")))
        .arg("-v")
        .spawn();
    d.wait_notify("READY=1");
    let log = d.wait_log("ready");
    assert!(
        log.contains("ignoring LISTEN_FDS=1: LISTEN_PID is \"1\", not our pid"),
        "{log}"
    );
    assert!(log.contains("answering on 1 socket "), "{log}");
    assert!(!log.contains("not-mine"), "{log}");
}

#[test]
fn a_missing_listen_pid_is_ignored() {
    let mut d = Daemon::builder()
        .socket(UdpSocket::bind("127.0.0.1:0").unwrap(), "not-mine")
        .listen_pid(ListenPid::Value(None))
        .arg("--listen")
        .arg(format!("unix:@{}", unique("dgecho-pid")))
        .arg("-v")
        .spawn();
    d.wait_notify("READY=1");
    assert!(d.wait_log("ready").contains("LISTEN_PID is unset"));
}

#[test]
fn path_notify_socket_works_too() {
    let dir = TempDir::new();
    let d = Daemon::builder()
        .socket(UdpSocket::bind("127.0.0.1:0").unwrap(), "u")
        .notify(NotifyKind::Path(dir.join("notify")))
        .spawn()
        .wait_ready();
    let ready = d
        .messages
        .iter()
        .find(|m| m.contains("READY=1"))
        .expect("a READY=1 message");
    let status = ready
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .expect("READY=1 comes with a STATUS=");
    assert_eq!(
        status.parse::<dgecho::echo::Stats>().unwrap(),
        counted(0, 0)
    );
}

#[test]
fn journal_stream_gives_priority_prefixes() {
    use nix::sys::stat::fstat;
    use std::io::Read;
    let (r, w) = nix::unistd::pipe().unwrap();
    let st = fstat(&w).unwrap();
    let mut d = Daemon::builder()
        .socket(UdpSocket::bind("127.0.0.1:0").unwrap(), "u")
        .env("JOURNAL_STREAM", &format!("{}:{}", st.st_dev, st.st_ino))
        .stderr(w)
        .spawn()
        .wait_ready();
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait_exit();
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    assert!(
        out.lines().any(|l| l.starts_with("<6>serving 127.0.0.1:")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("<6>ready: ")), "{out}");
    assert!(
        !out.contains(" INFO "),
        "no timestamps or level words: {out}"
    );
}

#[test]
fn smoke_under_systemd_socket_activate() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let Ok(tool) = which("systemd-socket-activate") else {
        if std::env::var_os("CI").is_some() {
            panic!("systemd-socket-activate is missing: apt-get install systemd");
        }
        eprintln!("SKIP: systemd-socket-activate not installed (Debian package systemd)");
        return;
    };
    let dir = TempDir::new();
    let path = dir.join("activated.sock");
    let mut child = Command::new(tool)
        .arg("--datagram")
        .arg("-l")
        .arg(&path)
        .arg("--fdname=activated")
        .arg(BIN)
        .arg("serve")
        .env_remove("NOTIFY_SOCKET")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut child = Kill(child);
    // The tool says "Listening on ..." once the socket is bound.
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("Listening on"), "{line}");
    let (code, out, err) = run(
        &[
            "client",
            "--timeout",
            "5",
            &format!("unix:{}", path.display()),
            "activated",
        ],
        &[],
    );
    assert_eq!((code, out.as_str()), (0, "detavitca\n"), "{err}");
    let _ = child.0.kill();
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|c| c.is_file())
        })
        .ok_or(())
}

/// Found by attack as a careless operator: a passed socket that nobody can
/// send to (an unbound UDP or Unix datagram socket) was served without a
/// word, and the daemon answered nothing there; a netlink socket was
/// refused with Rust's debug text "family Some(Netlink)".
#[test]
fn unreachable_sockets_are_warned_about_and_odd_families_named() {
    use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
    let udp = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    let unix = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    let (a, _b) = UnixDatagram::pair().unwrap();
    let d = Daemon::builder()
        .socket(udp, "lost4")
        .socket(unix, "lostunix")
        .socket(a, "pair")
        .spawn()
        .wait_ready();
    // The warnings come before the "ready" line, which the log shows last.
    let log = d.wait_log("ready: answering on 3 sockets");
    for name in ["lost4", "lostunix"] {
        assert!(
            log.contains(&format!(
                "(name \"{name}\") from systemd is not bound to any address: no client can send to it"
            )),
            "{log}"
        );
    }
    assert!(
        !log.contains("(name \"pair\") from systemd is not bound"),
        "{log}"
    );

    let netlink = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::empty(),
        SockProtocol::NetlinkRoute,
    )
    .unwrap();
    let mut d = Daemon::builder().socket(netlink, "nl").spawn();
    let err = refused(&mut d);
    assert!(
        err.contains("from systemd is a datagram socket of family Netlink; expected"),
        "{err}"
    );
}
