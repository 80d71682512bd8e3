//! dgecho with programs it did not write: socat and a plain Python client
//! against `dgecho serve`, and `dgecho client` against a server that reads
//! a client's address as a C string (tests/interop/cstring_server.py) and
//! one that replies from another address.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::util::*;

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");

/// Whether `program` is installed; CI installs both, so there it must be.
fn needs(program: &str) -> bool {
    let ok = have(program);
    if !ok {
        crate::netns::cannot_run(&format!("{program} is not installed"));
    }
    ok
}

#[test]
fn socat_talks_to_dgecho_over_unix_and_udp() {
    if !needs("socat") {
        return;
    }
    let dir = TempDir::new();
    let (_d, path) = unix_echo(&dir, "echo.sock");
    let unix = format!(
        "UNIX-SENDTO:{},bind={}",
        path.display(),
        dir.join("socat.sock").display()
    );
    let (code, out, err) = run_with(
        Command::new("socat").args(["-t", "1", "-", &unix]),
        &[],
        Some("hello socat"),
    );
    assert_eq!((code, out.as_str()), (0, "tacos olleh"), "{err}");

    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = u.local_addr().unwrap().port();
    let _d = Daemon::builder().socket(u, "udp").spawn().wait_ready();
    let (code, out, err) = run_with(
        Command::new("socat").args(["-t", "1", "-", &format!("UDP:127.0.0.1:{port}")]),
        &[],
        Some("over udp"),
    );
    assert_eq!((code, out.as_str()), (0, "pdu revo"), "{err}");
}

#[test]
fn a_plain_python_client_gets_replies() {
    if !needs("python3") {
        return;
    }
    let dir = TempDir::new();
    let (_d, path) = unix_echo(&dir, "echo.sock");
    let script = format!("{SCRIPTS}/plain_client.py");
    let (code, out, err) = run_with(
        Command::new("python3").args([&script, "unix", path.to_str().unwrap(), "from python"]),
        &[],
        None,
    );
    assert_eq!((code, out.as_str()), (0, "nohtyp morf\n"), "{err}");
    assert!(err.contains(&format!("from '{}'", path.display())), "{err}");

    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = u.local_addr().unwrap().port().to_string();
    let _d = Daemon::builder().socket(u, "udp").spawn().wait_ready();
    let (code, out, err) = run_with(
        Command::new("python3").args([&script, "udp", "127.0.0.1", &port, "datagram"]),
        &[],
        None,
    );
    assert_eq!((code, out.as_str()), (0, "margatad\n"), "{err}");
    assert!(
        err.contains(&format!("from ('127.0.0.1', {port})")),
        "{err}"
    );
}

/// The C-string server, running until dropped.
struct CServer(Child);

impl CServer {
    fn start(path: &Path) -> CServer {
        let mut child = Command::new("python3")
            .arg(format!("{SCRIPTS}/cstring_server.py"))
            .arg(path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        CServer(child)
    }
}

impl Drop for CServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_c_string_server_cannot_answer_an_abstract_address_and_bind_fixes_it() {
    if !needs("python3") {
        return;
    }
    let dir = TempDir::new();
    let path = dir.join("c.sock");
    let _server = CServer::start(&path);
    let p = path.to_str().unwrap();
    let (code, out, err) = run(&["client", "--timeout", "500ms", p, "abstract"], &[]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(
        err.contains("read a client's address as a C string"),
        "{err}"
    );
    assert!(err.contains("try again with --bind"), "{err}");
    let me = dir.join("me.sock");
    let (code, out, err) = run(&["client", "--bind", me.to_str().unwrap(), p, "named"], &[]);
    assert_eq!((code, out.as_str()), (0, "deman\n"), "{err}");
}

#[test]
fn a_reply_from_another_address_is_named() {
    let listen = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let speak = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (port, other) = (
        listen.local_addr().unwrap().port(),
        speak.local_addr().unwrap(),
    );
    listen.set_read_timeout(Some(WAIT)).unwrap();
    // Answers from a socket other than the one the request went to.
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let (n, from) = listen.recv_from(&mut buf).unwrap();
        speak.send_to(&buf[..n], from).unwrap();
    });
    let (code, out, err) = run(
        &[
            "client",
            "--timeout",
            "500ms",
            &format!("127.0.0.1:{port}"),
            "x",
        ],
        &[],
    );
    t.join().unwrap();
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(
        err.contains(&format!(
            "a reply came from {other}, not from udp:127.0.0.1:{port}"
        )),
        "{err}"
    );
}
