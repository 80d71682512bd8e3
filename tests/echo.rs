//! The echo loop as seen from outside: replies, sizes, families, drops.

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;

use dgecho::echo::Reason;

use crate::util::*;

fn udp_daemon(bind: &str, extra: &[&str]) -> (Daemon, std::net::SocketAddr) {
    let sock = UdpSocket::bind(bind).unwrap();
    let addr = sock.local_addr().unwrap();
    let mut b = Daemon::builder().socket(sock, "udp");
    for a in extra {
        b = b.arg(a);
    }
    (b.spawn().wait_ready(), addr)
}

#[test]
fn udp_reverse_is_the_default() {
    let (_d, addr) = udp_daemon("127.0.0.1:0", &[]);
    let c = udp("127.0.0.1:0");
    c.send_to(b"Hello World!", addr).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"!dlroW olleH");
    assert_eq!(from, addr, "the reply comes from the address asked");
}

#[test]
fn echo_mode_returns_bytes_unchanged() {
    let (_d, addr) = udp_daemon("127.0.0.1:0", &["--reply", "echo"]);
    let c = udp("127.0.0.1:0");
    let msg = [0u8, 1, 2, 255, b'\n', 7];
    c.send_to(&msg, addr).unwrap();
    let mut buf = [0u8; 64];
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &msg);
}

#[test]
fn zero_length_gets_zero_length_reply() {
    let (_d, addr) = udp_daemon("127.0.0.1:0", &[]);
    let c = udp("127.0.0.1:0");
    c.send_to(b"", addr).unwrap();
    let mut buf = [0u8; 8];
    let (n, from) = c.recv_from(&mut buf).unwrap();
    assert_eq!((n, from), (0, addr));
}

#[test]
fn largest_ipv4_udp_datagram_is_answered_whole() {
    let (_d, addr) = udp_daemon("127.0.0.1:0", &[]);
    let c = udp("127.0.0.1:0");
    let msg: Vec<u8> = (0..65_507u32).map(|i| (i % 251) as u8).collect();
    c.send_to(&msg, addr).unwrap();
    let mut buf = vec![0u8; 70_000];
    let n = c.recv(&mut buf).unwrap();
    let mut expected = msg.clone();
    expected.reverse();
    assert_eq!(n, 65_507);
    assert!(buf[..n] == expected[..]);
}

#[test]
fn ipv6() {
    let Ok(sock) = UdpSocket::bind("[::1]:0") else {
        eprintln!("SKIP: no IPv6 loopback on this machine");
        return;
    };
    let addr = sock.local_addr().unwrap();
    let _d = Daemon::builder().socket(sock, "udp6").spawn().wait_ready();
    let c = udp("[::1]:0");
    c.send_to(b"six", addr).unwrap();
    let mut buf = [0u8; 8];
    let (n, from) = c.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"xis"[..], addr));
}

#[test]
fn unix_clients_bound_to_abstract_and_to_path() {
    let dir = TempDir::new();
    let path = dir.join("echo.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let _d = Daemon::builder().socket(sock, "unix").spawn().wait_ready();
    let mut buf = [0u8; 64];

    let c = autobound();
    c.send_to(b"abstract", &path).unwrap();
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"tcartsba");

    let c = UnixDatagram::bind(dir.join("client.sock")).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.send_to(b"path", &path).unwrap();
    let (n, from) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"htap");
    assert_eq!(from.as_pathname(), Some(path.as_path()));
}

#[test]
fn unbound_unix_sender_is_counted_not_answered() {
    let dir = TempDir::new();
    let path = dir.join("echo.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut d = Daemon::builder().socket(sock, "unix").spawn().wait_ready();
    let unbound = UnixDatagram::unbound().unwrap();
    unbound.send_to(b"nobody", &path).unwrap();
    // The daemon keeps answering others...
    let c = autobound();
    c.send_to(b"ab", &path).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(c.recv(&mut buf).unwrap(), 2);
    // ...and reports the drop in its status and log.
    let s = d.wait_stats(|s| s.dropped() == 1);
    assert_eq!(s, counted(2, 1).with(Reason::Unbound, 1));
    d.wait_log("from a sender with no address");
}

#[test]
fn oversized_unix_datagram_is_dropped_not_truncated() {
    let dir = TempDir::new();
    let path = dir.join("echo.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut d = Daemon::builder().socket(sock, "unix").spawn().wait_ready();
    let c = autobound();
    nix::sys::socket::setsockopt(&c, nix::sys::socket::sockopt::SndBuf, &(1 << 20)).unwrap();
    c.send_to(&vec![b'x'; 100_000], &path).unwrap();
    c.send_to(b"ok", &path).unwrap();
    let mut buf = vec![0u8; 200_000];
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ko", "the first reply is to the small datagram");
    let s = d.wait_stats(|s| s.dropped() == 1);
    assert_eq!(s, counted(2, 1).with(Reason::TooLarge, 1));
    d.wait_log("100000-byte datagram");
}

#[test]
fn a_client_that_vanished_does_not_stop_the_daemon() {
    let dir = TempDir::new();
    let path = dir.join("echo.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut d = Daemon::builder().socket(sock, "unix").spawn().wait_ready();
    {
        let gone = dir.join("gone.sock");
        let c = UnixDatagram::bind(&gone).unwrap();
        c.send_to(b"bye", &path).unwrap();
        drop(c);
        std::fs::remove_file(&gone).unwrap();
    }
    let c = autobound();
    c.send_to(b"still", &path).unwrap();
    let mut buf = [0u8; 8];
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"llits");
    // Whether the client left before or after the reply is a race; either
    // way nothing is lost from the count.
    let s = d.wait_stats(|s| s.received == 2);
    assert!(
        s == counted(2, 1).with(Reason::SendFailed, 1) || s == counted(2, 2),
        "{s}"
    );
}

#[test]
fn loop_guard_refuses_listed_source_ports() {
    let guarded = udp("127.0.0.1:0");
    let port = guarded.local_addr().unwrap().port();
    let (mut d, addr) = udp_daemon("127.0.0.1:0", &["--guard-ports", &format!("0,7,{port}")]);
    guarded.send_to(b"loop?", addr).unwrap();
    let other = udp("127.0.0.1:0");
    other.send_to(b"ok", addr).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(other.recv(&mut buf).unwrap(), 2);
    guarded.set_nonblocking(true).unwrap();
    assert!(
        guarded.recv(&mut buf).is_err(),
        "no reply to a guarded port"
    );
    let s = d.wait_stats(|s| s.dropped() == 1);
    assert_eq!(s, counted(2, 1).with(Reason::LoopGuard, 1));
    d.wait_log(&format!("source port {port} is loop-guarded"));
}

#[test]
fn several_sockets_are_served_at_once() {
    let dir = TempDir::new();
    let path = dir.join("echo.sock");
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = u.local_addr().unwrap();
    let _d = Daemon::builder()
        .socket(UnixDatagram::bind(&path).unwrap(), "unix")
        .socket(u, "udp")
        .spawn()
        .wait_ready();
    let c = udp("127.0.0.1:0");
    c.send_to(b"12", addr).unwrap();
    let uc = autobound();
    uc.send_to(b"34", &path).unwrap();
    let mut buf = [0u8; 8];
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"21");
    let n = uc.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"43");
}
