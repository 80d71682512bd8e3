//! `dgecho client --count N --interval DURATION`: ping for datagram
//! sockets. One line per reply, goes on after a loss, a summary at the end
//! or on Ctrl-C, exit 0 only when every reply came back.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::*;

fn unix_daemon(dir: &TempDir) -> (Daemon, String) {
    let (d, path) = unix_echo(dir, "echo.sock");
    (d, path.display().to_string())
}

/// The lines that report a reply, with their sequence numbers.
fn reply_seqs(out: &str) -> Vec<u64> {
    out.lines()
        .filter(|l| l.contains(" bytes from ") && l.contains(" time="))
        .map(|l| {
            let seq = l.split("seq=").nth(1).unwrap().split(' ').next().unwrap();
            seq.parse().unwrap()
        })
        .collect()
}

#[test]
fn count_and_interval_print_a_line_per_reply_and_a_summary() {
    let dir = TempDir::new();
    let (_d, path) = unix_daemon(&dir);
    let (code, out, err) = run(
        &["client", "-c", "3", "-i", "10ms", "-s", "100", &path],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(reply_seqs(&out), [1, 2, 3], "{out}");
    assert!(
        out.contains(&format!("100 bytes from {path}: seq=1 time=")),
        "{out}"
    );
    assert!(
        out.contains(&format!("--- unix:{path} ping statistics ---")),
        "{out}"
    );
    assert!(
        out.contains("3 datagrams sent, 3 received, 0% loss"),
        "{out}"
    );
    assert!(out.contains("rtt min/avg/max/mdev = "), "{out}");
}

#[test]
fn a_lost_reply_is_reported_and_ping_goes_on() {
    let dir = TempDir::new();
    let path = dir.join("lossy.sock");
    let server = UnixDatagram::bind(&path).unwrap();
    server.set_read_timeout(Some(WAIT)).unwrap();
    // Drops the second datagram, answers the others.
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 128];
        for i in 0..3 {
            let (n, from) = server.recv_from(&mut buf).unwrap();
            if i != 1 {
                server.send_to_addr(&buf[..n], &from).unwrap();
            }
        }
    });
    let (code, out, err) = run(
        &[
            "client",
            "-c",
            "3",
            "-i",
            "10ms",
            "-t",
            "300ms",
            path.to_str().unwrap(),
        ],
        &[],
    );
    t.join().unwrap();
    assert_eq!(code, 1, "a loss fails the run: {out}{err}");
    assert_eq!(reply_seqs(&out), [1, 3], "{out}");
    assert!(out.contains("no reply for seq=2 within 0.3s"), "{out}");
    assert!(
        out.contains("3 datagrams sent, 2 received, 33% loss"),
        "{out}"
    );
    assert!(err.contains("1 of 3 datagrams got no reply"), "{err}");
}

#[test]
fn sigint_prints_the_summary_so_far() {
    let dir = TempDir::new();
    let (_d, path) = unix_daemon(&dir);
    let mut child = Command::new(BIN)
        .args(["client", "-i", "100ms", &path])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        while stdout.read_line(&mut line).unwrap_or(0) > 0 {
            let _ = tx.send(std::mem::take(&mut line));
        }
    });
    // The second reply is the signal to interrupt.
    let mut out = String::new();
    while reply_seqs(&out).len() < 2 {
        match rx.recv_timeout(WAIT) {
            Ok(l) => out.push_str(&l),
            Err(e) => {
                let _ = child.kill();
                panic!("no second reply within {WAIT:?} ({e}): {out}");
            }
        }
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = wait_child(&mut child, &out);
    reader.join().unwrap();
    out.extend(rx.try_iter());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "every reply came back: {out}{err}");
    assert!(out.contains("ping statistics"), "{out}");
    let n = reply_seqs(&out).len();
    assert!(
        out.contains(&format!("{n} datagrams sent, {n} received, 0% loss")),
        "{out}"
    );
}

#[test]
fn ping_mode_takes_no_message() {
    let (code, _, err) = run(&["client", "-c", "1", "/tmp/x.sock", "hello"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ping mode"), "{err}");
}
