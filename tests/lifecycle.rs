//! Readiness, status, watchdog, stopping, idle exit.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::util::*;

#[test]
fn sigterm_sends_stopping_and_exits_zero_within_a_second() {
    let dir = TempDir::new();
    let path = dir.join("echo.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut d = Daemon::builder().socket(sock, "unix").spawn().wait_ready();
    let c = autobound();
    c.send_to(b"one", &path).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(c.recv(&mut buf).unwrap(), 3);

    d.signal(Signal::SIGTERM);
    d.wait_notify("STOPPING=1");
    let (status, took) = d.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(d.final_stats("SIGTERM"), counted(1, 1));

    // The socket systemd passed in is left alone: its file is still there,
    // and a datagram sent now waits for the next instance.
    assert!(exists(&path));
    c.send_to(b"queued", &path).unwrap();
    let sock = d.sockets.pop().unwrap();
    let _next = Daemon::builder().socket(sock, "unix").spawn().wait_ready();
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"deueuq");
}

#[test]
fn sigint_stops_too() {
    let mut d = Daemon::builder()
        .socket(std::net::UdpSocket::bind("127.0.0.1:0").unwrap(), "u")
        .spawn()
        .wait_ready();
    d.signal(Signal::SIGINT);
    assert_eq!(d.wait_exit().0.code(), Some(0));
    assert!(d.stderr().contains("received SIGINT"));
}

#[test]
fn status_counts_datagrams() {
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = u.local_addr().unwrap();
    let mut d = Daemon::builder().socket(u, "u").spawn().wait_ready();
    let c = udp("127.0.0.1:0");
    let mut buf = [0u8; 8];
    for _ in 0..3 {
        c.send_to(b"x", addr).unwrap();
        c.recv(&mut buf).unwrap();
    }
    d.wait_stats(|s| *s == counted(3, 3));
}

#[test]
fn watchdog_is_petted_at_half_the_interval() {
    let mut d = Daemon::builder()
        .socket(std::net::UdpSocket::bind("127.0.0.1:0").unwrap(), "u")
        .env("WATCHDOG_USEC", "1000000")
        .spawn()
        .wait_ready();
    // Two pings prove it repeats; a dead loop would withhold them.
    d.wait_notify_count("WATCHDOG=1", 2);
}

#[test]
fn watchdog_for_another_pid_is_ignored() {
    let mut d = Daemon::builder()
        .socket(std::net::UdpSocket::bind("127.0.0.1:0").unwrap(), "u")
        .env("WATCHDOG_USEC", "200000")
        .env("WATCHDOG_PID", "1")
        .arg("-v")
        .spawn()
        .wait_ready();
    let log = d.wait_log("ready");
    assert!(!log.contains("watchdog on"), "{log}");
    d.signal(Signal::SIGTERM);
    d.wait_exit();
    assert!(!d.messages.iter().any(|m| m.contains("WATCHDOG=1")));
}

#[test]
fn idle_timeout_exits_cleanly_and_leaves_datagrams_queued() {
    let dir = TempDir::new();
    let path = dir.join("idle.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut d = Daemon::builder()
        .socket(sock, "unix")
        .arg("--idle-timeout")
        .arg("300ms")
        .spawn()
        .wait_ready();
    let c = autobound();
    c.send_to(b"a", &path).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(c.recv(&mut buf).unwrap(), 1);
    d.wait_notify("STOPPING=1");
    let (status, _) = d.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert!(
        d.stderr().contains("stopping (no datagram for 300ms)"),
        "{}",
        d.stderr()
    );
    // Re-activation: the next datagram waits in the socket for the next start.
    c.send_to(b"next", &path).unwrap();
    let _next = Daemon::builder()
        .socket(d.sockets.pop().unwrap(), "unix")
        .spawn()
        .wait_ready();
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"txen");
}

/// The defaults include UDP port 7007 on loopback, which another dgecho
/// (the README's quick start) may hold: the daemon runs in a network
/// namespace of its own, so the test never depends on the port being free.
/// The Unix socket is a path, reachable across namespaces, and so is the
/// notify socket.
#[test]
fn without_sockets_it_binds_the_documented_defaults() {
    if !have("unshare") {
        crate::netns::cannot_run("unshare (util-linux) is not installed");
        return;
    }
    let dir = TempDir::new();
    let mut d = Daemon::builder()
        .env("XDG_RUNTIME_DIR", dir.0.to_str().unwrap())
        .notify(NotifyKind::Path(dir.join("notify")))
        .netns()
        .spawn();
    d.wait_notify("READY=1");
    let log = d.wait_log("ready");
    let sock = dir.join("dgecho.sock");
    assert!(
        log.contains("serving 127.0.0.1:7007 (AF_INET), bound by dgecho"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "serving {} (AF_UNIX), bound by dgecho",
            sock.display()
        )),
        "{log}"
    );
    // The client's default is the same socket (unless a packaged one exists).
    // Abstract addresses are per network namespace: the daemon could not
    // reply to an autobound client out here, so the client binds a path.
    if !exists(std::path::Path::new("/run/dgecho/dgecho.sock")) {
        let me = dir.join("client.sock");
        let (code, out, err) = run(
            &["client", "--bind", me.to_str().unwrap(), "hello"],
            &[("XDG_RUNTIME_DIR", dir.0.to_str().unwrap())],
        );
        assert_eq!((code, out.as_str()), (0, "olleh\n"), "{err}");
    }
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit().0.code(), Some(0));
    assert!(
        !exists(&sock),
        "a socket dgecho bound itself is removed on exit"
    );
}
