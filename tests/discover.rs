//! `dgecho client` without an address finds a running dgecho whoever
//! started it, or lists the sockets it found, whose they are and why they
//! cannot be used. `TMPDIR` points every process at a directory of the
//! test's own, so that sockets of daemons elsewhere on the machine come
//! after the test's in the search order.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;

use crate::util::*;

/// A daemon run by root on `path`, by hand.
fn root_daemon(path: &Path, extra: &[&str]) -> Daemon {
    Daemon::builder()
        .arg("--listen")
        .arg(format!("unix:{}", path.display()))
        .args(extra)
        .umask(0o022)
        .spawn()
        .wait_ready()
}

/// Whether the packaged socket exists on this machine: it would be found
/// first, and the tests below are about the others.
fn packaged_socket_exists() -> bool {
    let there = exists(Path::new(dgecho::defaults::PACKAGED_SOCKET));
    if there {
        crate::netns::cannot_run("/run/dgecho/dgecho.sock exists on this machine");
    }
    there
}

fn client(tmp: &Path, nobody: bool, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("client")
        .args(args)
        .env("TMPDIR", tmp)
        .env_remove("XDG_RUNTIME_DIR");
    if nobody {
        as_nobody(&mut cmd);
    }
    run_with(&mut cmd, &[], None)
}

#[test]
fn finds_a_daemon_root_started_by_hand() {
    if packaged_socket_exists() || !nix::unistd::Uid::effective().is_root() {
        return;
    }
    let tmp = TempDir::new();
    chmod(&tmp.0, 0o755);
    let _d = root_daemon(&tmp.join("dgecho-0.sock"), &["--socket-mode", "0666"]);
    let (code, out, err) = client(&tmp.0, true, &["-v", "hello"]);
    assert_eq!((code, out.as_str()), (0, "olleh\n"), "{err}");
    assert!(err.contains("dgecho-0.sock (owner root)"), "{err}");
}

#[test]
fn a_different_xdg_runtime_dir_does_not_hide_the_daemon() {
    if packaged_socket_exists() {
        return;
    }
    let tmp = TempDir::new();
    let other = TempDir::new();
    let uid = nix::unistd::getuid();
    // Started from a shell without XDG_RUNTIME_DIR: its default path.
    let _d = root_daemon(&tmp.join(&format!("dgecho-{uid}.sock")), &[]);
    let mut cmd = Command::new(BIN);
    cmd.args(["client", "hi"])
        .env("TMPDIR", &tmp.0)
        .env("XDG_RUNTIME_DIR", &other.0);
    let (code, out, err) = run_with(&mut cmd, &[], None);
    assert_eq!((code, out.as_str()), (0, "ih\n"), "{err}");
}

#[test]
fn lists_each_socket_whose_it_is_and_why_it_cannot_be_used() {
    if packaged_socket_exists() || !nix::unistd::Uid::effective().is_root() {
        return;
    }
    let tmp = TempDir::new();
    chmod(&tmp.0, 0o755);
    let live = tmp.join("dgecho-0.sock");
    let _d = root_daemon(&live, &[]);
    let stale = tmp.join("dgecho-4242.sock");
    drop(UnixDatagram::bind(&stale).unwrap());
    let (code, out, err) = client(&tmp.0, true, &["hello"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("no dgecho socket that you can use"), "{err}");
    assert!(err.contains("you are uid 65534 (nobody)"), "{err}");
    assert!(
        err.contains(&format!(
            "{} (owner root): a daemon is running on it; permission denied",
            live.display()
        )),
        "{err}"
    );
    assert!(err.contains("--socket-mode 0666"), "{err}");
    assert!(
        err.contains(&format!(
            "{} (owner root): stale: nothing listens on it",
            stale.display()
        )),
        "{err}"
    );
    assert!(!err.contains("does not exist"), "{err}");
}

/// Found by attack as a hostile local user: nobody binds `dgecho-0.sock`
/// in the shared temporary directory before root does. Root's `dgecho
/// client` then took nobody's replies for its own daemon's (exit 0), and
/// root's `dgecho serve` failed with "another server is already answering
/// on it", not saying whose. The client now refuses a `dgecho-UID.sock`
/// that belongs to neither that user nor root, and serve names the owner.
#[test]
fn a_socket_squatted_by_another_user_is_not_trusted() {
    if packaged_socket_exists() || !nix::unistd::Uid::effective().is_root() {
        return;
    }
    let tmp = TempDir::new();
    chmod(&tmp.0, 0o1777);
    let path = tmp.join("dgecho-0.sock");
    let _squatter = Daemon::builder()
        .user(NOBODY, NOBODY)
        .args(&["--reply", "echo", "--socket-mode", "0666", "--listen"])
        .arg(format!("unix:{}", path.display()))
        .spawn()
        .wait_ready();
    let (code, out, err) = client(&tmp.0, false, &["hello"]);
    assert_ne!(out, "hello\n", "the client took the squatter's reply");
    if code != 0 {
        assert!(
            err.contains(
                "dgecho-0.sock (owner nobody): not used: it belongs to nobody, not to root"
            ),
            "{err}"
        );
    }
    let mut serve = Command::new(BIN);
    serve
        .args(["serve", "--listen"])
        .arg(format!("unix:{}", path.display()));
    let (code, _, err) = run_with(&mut serve, &[], None);
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("another user's server (nobody) is answering on it, not yours"),
        "{err}"
    );
}
