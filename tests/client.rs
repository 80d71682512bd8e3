//! `dgecho client`: replies on stdout, and errors that say what to do.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::process::Command;

use crate::util::*;

fn unix_daemon(dir: &TempDir) -> (Daemon, String) {
    let (d, path) = unix_echo(dir, "echo.sock");
    (d, format!("unix:{}", path.display()))
}

#[test]
fn message_words_are_joined_and_reply_printed() {
    let dir = TempDir::new();
    let (_d, addr) = unix_daemon(&dir);
    let (code, out, err) = run(&["client", &addr, "hello", "unix", "socket"], &[]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "tekcos xinu olleh\n", "")
    );
}

#[test]
fn stdin_lines_are_one_datagram_each() {
    let dir = TempDir::new();
    let (_d, addr) = unix_daemon(&dir);
    let (code, out, err) = run_with(
        Command::new(BIN).args(["client", &addr]),
        &[],
        Some("abc\n\nxyz\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "cba\n\nzyx\n");
    assert!(
        !err.contains(">>"),
        "no prompt when stdin is not a terminal"
    );
}

#[test]
fn verbose_shows_size_source_and_rtt() {
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = u.local_addr().unwrap();
    let _d = Daemon::builder().socket(u, "u").spawn().wait_ready();
    let (code, out, err) = run(&["client", "-v", &addr.to_string(), "ping"], &[]);
    assert_eq!((code, out.as_str()), (0, "gnip\n"), "{err}");
    assert!(
        err.starts_with(&format!("4 bytes from {addr} in ")),
        "{err}"
    );
    assert!(err.trim_end().ends_with(" µs"), "{err}");
}

#[test]
fn bind_path_gets_replies_and_is_cleaned_up() {
    let dir = TempDir::new();
    let (_d, addr) = unix_daemon(&dir);
    let me = dir.join("me.sock");
    let (code, out, err) = run(
        &["client", "--bind", me.to_str().unwrap(), &addr, "path"],
        &[],
    );
    assert_eq!((code, out.as_str()), (0, "htap\n"), "{err}");
    assert!(!exists(&me));
}

#[test]
fn abstract_server_address() {
    let name = unique("dgecho-abs");
    let sa =
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            name.as_bytes(),
        )
        .unwrap();
    let _d = Daemon::builder()
        .socket(UnixDatagram::bind_addr(&sa).unwrap(), "abs")
        .spawn()
        .wait_ready();
    let (code, out, err) = run(&["client", &format!("unix:@{name}"), "abs"], &[]);
    assert_eq!((code, out.as_str()), (0, "sba\n"), "{err}");
}

fn fails_with(args: &[&str], needles: &[&str]) -> String {
    let (code, out, err) = run(args, &[]);
    assert_eq!(code, 1, "stdout {out:?} stderr {err}");
    assert!(err.starts_with("dgecho: error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in: {err}");
    }
    err
}

#[test]
fn missing_socket_says_start_it() {
    let dir = TempDir::new();
    let p = dir.join("nothing.sock");
    fails_with(
        &["client", p.to_str().unwrap(), "x"],
        &["does not exist", "is the daemon running?"],
    );
}

#[test]
fn stale_socket_is_named_stale() {
    let dir = TempDir::new();
    let p = dir.join("stale.sock");
    drop(UnixDatagram::bind(&p).unwrap());
    fails_with(
        &["client", p.to_str().unwrap(), "x"],
        &["exists but nothing listens on it", "stale"],
    );
}

#[test]
fn stream_socket_is_the_wrong_type() {
    let dir = TempDir::new();
    let p = dir.join("stream.sock");
    let _l = UnixListener::bind(&p).unwrap();
    fails_with(
        &["client", p.to_str().unwrap(), "x"],
        &["is not a datagram socket"],
    );
}

#[test]
fn regular_file_is_not_a_socket() {
    let dir = TempDir::new();
    let p = dir.join("file");
    std::fs::write(&p, b"").unwrap();
    fails_with(
        &["client", p.to_str().unwrap(), "x"],
        &["is not a socket but a regular file"],
    );
}

#[test]
fn timeout_points_to_the_journal() {
    let dir = TempDir::new();
    let p = dir.join("silent.sock");
    let _silent = UnixDatagram::bind(&p).unwrap();
    fails_with(
        &["client", "--timeout", "0.2", p.to_str().unwrap(), "x"],
        &["no reply from unix:", "within 0.2s", "journalctl -u dgecho"],
    );
}

#[test]
fn udp_port_unreachable() {
    // Bind then drop: a loopback port that nothing listens on.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    fails_with(
        &["client", &format!("127.0.0.1:{port}"), "x"],
        &[&format!("nothing listens on UDP port {port}")],
    );
}

#[test]
fn permission_denied_shows_mode_owner_and_user() {
    let dir = TempDir::new();
    let p = dir.join("private.sock");
    let _server = UnixDatagram::bind(&p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let root = nix::unistd::Uid::effective().is_root();
    let mut cmd = Command::new(BIN);
    cmd.args(["client", p.to_str().unwrap(), "x"]);
    if root {
        // Root passes every permission check: ask as nobody instead.
        use std::os::unix::process::CommandExt;
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        cmd.uid(65534).gid(65534);
    } else {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let (code, _, err) = run_with(&mut cmd, &[], None);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("permission denied on {}", p.display())),
        "{err}"
    );
    assert!(
        err.contains("you may not write to the socket (mode 0"),
        "{err}"
    );
    assert!(err.contains("you are uid"), "{err}");
    if root {
        assert!(err.contains("owner root:"), "{err}");
        assert!(err.contains("uid 65534"), "{err}");
    }
}

#[test]
fn address_parser_errors_list_the_forms() {
    for bad in ["::1:7", "[::1]7", "host:99999", "unix:", "udp:nonsense"] {
        let (code, _, err) = run(&["client", bad, "x"], &[]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(
            err.contains("use one of: unix:/path, unix:@name (abstract), a path containing '/', udp:HOST:PORT, HOST:PORT, or [IPV6]:PORT"),
            "{bad}: {err}"
        );
    }
    let (code, _, err) = run(&["serve", "--listen", "nonsense"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid address 'nonsense'"), "{err}");
}

#[test]
fn udp_forms_are_accepted_by_the_client() {
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = u.local_addr().unwrap().port();
    let _d = Daemon::builder().socket(u, "u").spawn().wait_ready();
    for addr in [
        format!("udp:127.0.0.1:{port}"),
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
    ] {
        let (code, out, err) = run(&["client", &addr, "form"], &[]);
        if addr.starts_with("localhost") && code != 0 {
            // localhost may resolve to ::1 first, where nothing listens.
            assert!(err.contains("nothing listens"), "{err}");
            continue;
        }
        assert_eq!((code, out.as_str()), (0, "mrof\n"), "{addr}: {err}");
    }
}

#[test]
fn serve_bind_errors_name_the_fix() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run(&["serve", "--listen", &addr], &[]);
    assert_eq!(code, 6, "a configuration error: EXIT_NOTCONFIGURED");
    assert!(
        err.starts_with(&format!("dgecho: error: cannot bind UDP {addr}")),
        "{err}"
    );
    assert!(err.contains("caused by: Address already in use"), "{err}");
}

/// Runs `dgecho client ARGS` with `input` on stdin.
fn client_with_input(args: &[&str], input: &str) -> (i32, String, String) {
    run_with(Command::new(BIN).arg("client").args(args), &[], Some(input))
}

#[test]
fn a_datagram_larger_than_dgecho_accepts_is_named() {
    let dir = TempDir::new();
    let (_d, addr) = unix_daemon(&dir);
    let big = "x".repeat(70_000);
    let (code, out, err) = client_with_input(&["--timeout", "500ms", &addr], &big);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("the datagram was 70000 bytes"), "{err}");
    assert!(err.contains("larger than 65536 bytes"), "{err}");
}

#[test]
fn a_bind_path_the_daemon_cannot_reach_is_named() {
    if !nix::unistd::Uid::effective().is_root() {
        crate::netns::cannot_run("needs root to run the daemon as nobody");
        return;
    }
    let dir = TempDir::new();
    chmod(&dir.0, 0o777);
    let path = dir.join("nobody.sock");
    let _d = Daemon::builder()
        .arg("--listen")
        .arg(format!("unix:{}", path.display()))
        .args(&["--socket-mode", "0666"])
        .user(NOBODY, NOBODY)
        .spawn()
        .wait_ready();
    let private = TempDir::new();
    chmod(&private.0, 0o700);
    let me = private.join("me.sock");
    let (code, _, err) = run(
        &[
            "client",
            "--timeout",
            "500ms",
            "--bind",
            me.to_str().unwrap(),
            path.to_str().unwrap(),
            "x",
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "the daemon's replies cannot reach your --bind socket {}",
            me.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "the daemon runs as nobody and may not search {}",
            private.0.display()
        )),
        "{err}"
    );
    assert!(err.contains("Leave out --bind"), "{err}");
}

#[test]
fn silence_on_a_live_unix_socket_suggests_bind() {
    let dir = TempDir::new();
    let p = dir.join("mute.sock");
    let _mute = UnixDatagram::bind(&p).unwrap();
    let (code, _, err) = run(
        &["client", "--timeout", "200ms", p.to_str().unwrap(), "x"],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("though a socket is bound there"), "{err}");
    assert!(err.contains("automatic abstract one (@"), "{err}");
    assert!(err.contains("--bind"), "{err}");
    assert!(!err.contains("is the daemon running"), "it is bound: {err}");
}
