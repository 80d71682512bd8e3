//! The permission story: a user who may not reach a daemon's socket is
//! told which thing stops them (the socket, or a directory above it) and
//! the fix for that kind of daemon, and `serve --socket-mode/--socket-group`
//! make the by-hand fix possible. The tests run as root (as CI does) and
//! ask as nobody.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;

use crate::util::*;

/// `dgecho client PATH MESSAGE` as nobody.
fn client_as_nobody(path: &Path, msg: &str) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["client", "--timeout", "2s", path.to_str().unwrap(), msg]);
    run_with(as_nobody(&mut cmd), &[], None)
}

fn root() -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    if !root {
        crate::netns::cannot_run("needs root to ask as another user");
    }
    root
}

#[test]
fn a_directory_without_search_permission_is_named_not_the_socket() {
    if !root() {
        return;
    }
    let dir = TempDir::new();
    chmod(&dir.0, 0o755);
    let private = dir.join("private");
    std::fs::create_dir(&private).unwrap();
    chmod(&private, 0o700);
    let path = private.join("s.sock");
    let _server = UnixDatagram::bind(&path).unwrap();
    chmod(&path, 0o666);
    let (code, _, err) = client_as_nobody(&path, "x");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "you may not search its directory {} (mode 0700, owner root:",
            private.display()
        )),
        "{err}"
    );
    assert!(err.contains("search (x) permission"), "{err}");
    assert!(
        err.contains(&format!("chmod o+x {}", private.display())),
        "{err}"
    );
    assert!(
        !err.contains("write"),
        "the socket is not the problem: {err}"
    );
    assert!(!err.contains("SocketMode="), "not a packaged unit: {err}");
}

#[test]
fn a_hand_started_daemon_is_fixed_with_serve_options() {
    if !root() {
        return;
    }
    let dir = TempDir::new();
    chmod(&dir.0, 0o755);
    let path = dir.join("s.sock");
    let listen = format!("unix:{}", path.display());
    // The failure: a daemon started by hand, its socket as the umask left it.
    let d = Daemon::builder()
        .arg("--listen")
        .arg(&listen)
        .umask(0o022)
        .spawn()
        .wait_ready();
    let (code, _, err) = client_as_nobody(&path, "x");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("you may not write to the socket (mode 0755, owner root:root)"),
        "{err}"
    );
    assert!(err.contains("you are uid 65534 (nobody)"), "{err}");
    let fix = format!(
        "dgecho serve --listen {} --socket-mode 0666",
        path.display()
    );
    assert!(err.contains(&fix), "{err}");
    assert!(!err.contains("SocketMode="), "not a packaged unit: {err}");
    drop(d);

    // The fix the message names.
    let _d = Daemon::builder()
        .arg("--listen")
        .arg(&listen)
        .arg("--socket-mode")
        .arg("0666")
        .umask(0o022)
        .spawn()
        .wait_ready();
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o666);
    let (code, out, err) = client_as_nobody(&path, "fixed");
    assert_eq!((code, out.as_str()), (0, "dexif\n"), "{err}");
}

#[test]
fn socket_group_lets_that_group_in() {
    if !root() {
        return;
    }
    let dir = TempDir::new();
    chmod(&dir.0, 0o755);
    let path = dir.join("g.sock");
    let _d = Daemon::builder()
        .arg("--listen")
        .arg(format!("unix:{}", path.display()))
        .args(&[
            "--socket-group",
            &NOBODY.to_string(),
            "--socket-mode",
            "660",
        ])
        .spawn()
        .wait_ready();
    let m = std::fs::metadata(&path).unwrap();
    assert_eq!((m.mode() & 0o777, m.gid()), (0o660, NOBODY));
    let (code, out, err) = client_as_nobody(&path, "group");
    assert_eq!((code, out.as_str()), (0, "puorg\n"), "{err}");
}

#[test]
fn socket_group_needs_membership() {
    if !root() {
        return;
    }
    let dir = TempDir::new();
    chmod(&dir.0, 0o777);
    let path = dir.join("n.sock");
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", path.to_str().unwrap()])
        .args(["--socket-group", "0"]);
    let (code, _, err) = run_with(as_nobody(&mut cmd), &[], None);
    assert_eq!(code, 6, "a configuration error: {err}");
    assert!(err.contains("--socket-group"), "{err}");
    assert!(err.contains("a member of the group"), "{err}");
    assert!(!exists(&path), "the socket is not left behind");
}

#[test]
fn bad_socket_options_are_usage_errors() {
    for args in [
        &["--socket-mode", "999"][..],
        &["--socket-mode", "rw"],
        &["--socket-group", "no-such-group-dgecho"],
    ] {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        let (code, _, err) = run(&all, &[]);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
}
