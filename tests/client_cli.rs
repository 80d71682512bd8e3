//! `dgecho client` as a command line: words that look like addresses but
//! are not, `--`, durations, stdin mode after a lost reply, a closed
//! stdout, and the help text.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};

use crate::util::*;

/// A socket at `$XDG_RUNTIME_DIR/dgecho.sock` that never answers: it shows
/// whether the client sent anything to its default address.
struct Trap {
    dir: TempDir,
    sock: UnixDatagram,
}

impl Trap {
    fn new() -> Trap {
        let dir = TempDir::new();
        let sock = UnixDatagram::bind(dir.join("dgecho.sock")).unwrap();
        sock.set_nonblocking(true).unwrap();
        Trap { dir, sock }
    }
    fn env(&self) -> [(&str, &str); 1] {
        [("XDG_RUNTIME_DIR", self.dir.0.to_str().unwrap())]
    }
    fn received(&self) -> Option<String> {
        let mut buf = [0u8; 256];
        self.sock
            .recv(&mut buf)
            .ok()
            .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

#[test]
fn address_typos_exit_2_with_did_you_mean_and_send_nothing() {
    let trap = Trap::new();
    for (words, suggestion) in [
        (
            &["127.0.0.1", "ping"][..],
            "did you mean udp:127.0.0.1:7007",
        ),
        (&["localhost", "ping"], "did you mean udp:localhost:7007"),
        (&["::1", "ping"], "did you mean udp:[::1]:7007"),
        (&["host:-1", "ping"], "did you mean udp:host:7007"),
        (&["dgecho.sock", "hello"], "did you mean ./dgecho.sock"),
    ] {
        let mut args = vec!["client", "--timeout", "200ms"];
        args.extend_from_slice(words);
        let (code, out, err) = run(&args, &trap.env());
        assert_eq!((code, out.as_str()), (2, ""), "{words:?}: {err}");
        assert!(err.starts_with("dgecho: error: "), "{words:?}: {err}");
        assert!(err.contains(suggestion), "{words:?}: {err}");
        assert!(err.contains("--"), "{words:?} names the way out: {err}");
        assert_eq!(trap.received(), None, "{words:?}: sent something");
    }
}

/// Found by attack: a new user's `dgecho client 255.255.255.255:7 hi`
/// failed with a bare "Permission denied", `224.0.0.1:7` waited for the
/// timeout and blamed a firewall, and port 0 exited 1 though it is a
/// usage error like `host:-1`. Each is now refused before anything is
/// sent, with exit 2 and a reason.
#[test]
fn broadcast_multicast_and_port_0_targets_are_usage_errors() {
    for (target, reason) in [
        ("255.255.255.255:7", "is the broadcast address"),
        ("udp:224.0.0.1:7", "is a multicast address"),
        ("[ff02::1]:7", "is a multicast address"),
        ("[::ffff:239.1.2.3]:7", "is a multicast address"),
        ("127.0.0.1:0", "cannot send to port 0"),
    ] {
        let (code, out, err) = run(&["client", "--timeout", "5s", target, "hi"], &[]);
        assert_eq!((code, out.as_str()), (2, ""), "{target}: {err}");
        assert!(err.starts_with("dgecho: error: "), "{target}: {err}");
        assert!(err.contains(reason), "{target}: {err}");
    }
}

#[test]
fn double_dash_sends_a_message_that_looks_like_an_address() {
    let dir = TempDir::new();
    let (_d, path) = unix_echo(&dir, "dgecho.sock");
    let env = [("XDG_RUNTIME_DIR", dir.0.to_str().unwrap())];
    if exists(std::path::Path::new(dgecho::defaults::PACKAGED_SOCKET)) {
        eprintln!("the packaged socket exists: testing with an explicit address only");
    } else {
        let (code, out, err) = run(&["client", "--", "127.0.0.1", "ping"], &env);
        assert_eq!((code, out.as_str()), (0, "gnip 1.0.0.721\n"), "{err}");
    }
    let addr = format!("unix:{}", path.display());
    let (code, out, err) = run(&["client", &addr, "--", "-n", "dgecho.sock"], &env);
    assert_eq!((code, out.as_str()), (0, "kcos.ohcegd n-\n"), "{err}");
    let (code, out, err) = run(&["client", &addr, "a", "--", "b"], &env);
    assert_eq!((code, out.as_str()), (0, "b a\n"), "{err}");
}

#[test]
fn every_duration_takes_units_and_nonsense_is_refused_before_sending() {
    let dir = TempDir::new();
    let (_d, path) = unix_echo(&dir, "echo.sock");
    let addr = format!("unix:{}", path.display());
    for t in ["500ms", "2s", "5m", "1.5"] {
        let (code, out, err) = run(&["client", "--timeout", t, &addr, "ab"], &[]);
        assert_eq!((code, out.as_str()), (0, "ba\n"), "--timeout {t}: {err}");
    }
    let trap = Trap::new();
    for bad in [
        "1e-10",
        "0",
        "0ms",
        "-1s",
        "5 parsecs",
        "1d",
        "inf",
        "NaN",
        "0.0001ms",
    ] {
        let (code, _, err) = run(&["client", &format!("--timeout={bad}"), "x"], &trap.env());
        assert_eq!(code, 2, "--timeout {bad}: {err}");
        assert!(err.contains("500ms, 2s, 5m"), "--timeout {bad}: {err}");
        assert_eq!(trap.received(), None, "--timeout {bad} sent something");
        let (code, _, err) = run(&["serve", &format!("--idle-timeout={bad}")], &[]);
        assert_eq!(code, 2, "--idle-timeout {bad}: {err}");
        let (code, _, err) = run(&["bench", &format!("--duration={bad}")], &[]);
        assert_eq!(code, 2, "bench --duration {bad}: {err}");
    }
}

#[test]
fn stdin_mode_keeps_going_after_a_lost_reply() {
    let dir = TempDir::new();
    let path = dir.join("lossy.sock");
    let server = UnixDatagram::bind(&path).unwrap();
    server.set_read_timeout(Some(WAIT)).unwrap();
    // Drops the first datagram, answers the others.
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut seen = Vec::new();
        for i in 0..3 {
            let (n, from) = server.recv_from(&mut buf).unwrap();
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            if i > 0 {
                server
                    .send_to(&buf[..n], from.as_pathname().unwrap())
                    .unwrap();
            }
        }
        seen
    });
    let me = dir.join("me.sock");
    let (code, out, err) = run_with(
        Command::new(BIN).args([
            "client",
            "--timeout",
            "300ms",
            "--bind",
            me.to_str().unwrap(),
            path.to_str().unwrap(),
        ]),
        &[],
        Some("one\ntwo\nthree\n"),
    );
    assert_eq!(t.join().unwrap(), ["one", "two", "three"]);
    assert_eq!(out, "two\nthree\n", "{err}");
    assert_eq!(code, 1, "a lost reply still fails the run: {err}");
    assert!(err.contains("no reply"), "{err}");
    assert!(
        err.contains("1 of 3"),
        "the summary counts the losses: {err}"
    );
}

#[test]
fn closed_stdout_exits_quietly() {
    let dir = TempDir::new();
    let (_d, path) = unix_echo(&dir, "echo.sock");
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let out = Command::new(BIN)
        .args(["client", path.to_str().unwrap(), "into", "the", "void"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err, "", "no error for a closed pipe");
}

#[test]
fn client_help_names_the_arguments_consistently() {
    let (code, out, _) = run(&["client", "--help"], &[]);
    assert_eq!(code, 0);
    assert!(!out.contains("WORDS"), "{out}");
    let usage = out.lines().find(|l| l.starts_with("Usage:")).unwrap();
    for name in ["[ADDR]", "[MESSAGE]..."] {
        assert!(usage.contains(name), "{usage}");
        let listed = out
            .lines()
            .any(|l| l.trim_start().starts_with(name) && !l.starts_with("Usage:"));
        assert!(listed, "{name} is described under Arguments: {out}");
    }
}

#[test]
fn serve_help_points_at_nothing_packages_leave_out() {
    let (code, out, _) = run(&["serve", "--help"], &[]);
    assert_eq!(code, 0);
    assert!(!out.contains("tests/"), "{out}");
    assert!(!out.contains("RESULTS.md"), "{out}");
}
