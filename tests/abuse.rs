//! Abuse and floods, bounded: many clients at once, floods of edge-case
//! datagrams with a well-behaved client alongside, clients that vanish, and
//! SIGTERM in the middle of a flood. The 10-minute soak is
//! `bench/soak.py`.

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::util::*;

const CLIENTS: usize = 1000;
const MAX_UDP4: usize = 65_507;

/// Makes room for `n` more open files in this test process only (the soft
/// limit may be 1,024); the hard limit and the system are left alone.
fn room_for_fds(n: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let want = n + 512;
    if soft < want {
        assert!(
            hard >= want,
            "this test needs {want} open files; the hard limit is {hard} (ulimit -Hn)"
        );
        setrlimit(Resource::RLIMIT_NOFILE, want, hard).unwrap();
    }
}

fn unix_daemon(dir: &TempDir) -> (Daemon, std::path::PathBuf) {
    let path = dir.join("echo.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let d = Daemon::builder().socket(sock, "unix").spawn().wait_ready();
    (d, path)
}

#[test]
fn a_thousand_unix_clients_at_once_are_all_answered() {
    room_for_fds(CLIENTS as u64);
    let dir = TempDir::new();
    let (mut d, path) = unix_daemon(&dir);
    let clients: Vec<UnixDatagram> = (0..CLIENTS).map(|_| autobound()).collect();
    // Every client sends before any reads: all 1,000 replies are in flight
    // at once (and charged to the daemon's send buffer).
    for (i, c) in clients.iter().enumerate() {
        c.set_write_timeout(Some(WAIT)).unwrap();
        c.send_to(format!("client {i}").as_bytes(), &path).unwrap();
    }
    let mut buf = [0u8; 64];
    for (i, c) in clients.iter().enumerate() {
        let n = c
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("client {i} got no reply: {e}\n{}", d.stderr()));
        let want: Vec<u8> = format!("client {i}").bytes().rev().collect();
        assert_eq!(&buf[..n], &want[..], "client {i}");
    }
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit().0.code(), Some(0));
    let s = d.final_stats("SIGTERM");
    assert_eq!(s, counted(CLIENTS as u64, CLIENTS as u64));
}

/// A background sender that keeps going until told to stop (or a bound is
/// reached) and counts what it sent.
struct Flood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    handles: Vec<JoinHandle<()>>,
}

impl Flood {
    fn new() -> Flood {
        Flood {
            stop: Arc::new(AtomicBool::new(false)),
            sent: Arc::new(AtomicU64::new(0)),
            handles: Vec::new(),
        }
    }

    /// Runs `step` until stopped or for at most `max` steps (a bound, so a
    /// failing test cannot flood forever).
    fn spawn(&mut self, max: u64, mut step: impl FnMut() + Send + 'static) {
        let (stop, sent) = (self.stop.clone(), self.sent.clone());
        self.handles.push(std::thread::spawn(move || {
            for _ in 0..max {
                if stop.load(Relaxed) {
                    break;
                }
                step();
                sent.fetch_add(1, Relaxed);
            }
        }));
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Relaxed);
        for h in std::mem::take(&mut self.handles) {
            h.join().unwrap();
        }
        self.sent.load(Relaxed)
    }
}

impl Drop for Flood {
    /// A failing test stops its floods too.
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

/// Starts floods at a UDP and a Unix socket: max-size and zero-length
/// datagrams from clients that never read, and clients that vanish right
/// after sending.
fn start_floods(udp: std::net::SocketAddr, unix: &std::path::Path) -> Flood {
    let mut f = Flood::new();
    let big = UdpSocket::bind("127.0.0.1:0").unwrap();
    f.spawn(200_000, move || {
        let _ = big.send_to(&[0xAB; MAX_UDP4], udp);
    });
    let empty = UdpSocket::bind("127.0.0.1:0").unwrap();
    f.spawn(2_000_000, move || {
        let _ = empty.send_to(&[], udp);
    });
    f.spawn(200_000, move || {
        let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
        let _ = gone.send_to(b"bye", udp);
    });
    // Unix senders block when the daemon's queue is full; a send timeout
    // keeps them stoppable.
    let (p1, p2, p3) = (unix.to_path_buf(), unix.to_path_buf(), unix.to_path_buf());
    let ubig = autobound();
    ubig.set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    f.spawn(200_000, move || {
        let _ = ubig.send_to(&[0xCD; 65_536], &p1);
    });
    let uempty = autobound();
    uempty
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    f.spawn(2_000_000, move || {
        let _ = uempty.send_to(&[], &p2);
    });
    // Named, not autobound: 200,000 autobinds a second would cycle the
    // kernel's five-hex-digit autobind names within seconds, and a late
    // reply to a vanished client would reach whichever socket of another
    // test got its name next.
    let serial = std::sync::atomic::AtomicU64::new(0);
    let prefix = unique("dgecho-gone");
    f.spawn(200_000, move || {
        use std::os::linux::net::SocketAddrExt;
        let n = serial.fetch_add(1, Relaxed);
        let name = format!("{prefix}-{n}");
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let Ok(gone) = UnixDatagram::bind_addr(&addr) else {
            return;
        };
        gone.set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let _ = gone.send_to(b"bye", &p3);
    });
    f
}

/// A UDP request may be lost when a flood fills the daemon's receive queue
/// (that is the kernel's choice, not a stall); retry a few times.
fn udp_exchange(c: &UdpSocket, to: std::net::SocketAddr, msg: &[u8]) {
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let want: Vec<u8> = msg.iter().rev().copied().collect();
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        c.send_to(msg, to).unwrap();
        // Skip late replies to earlier tries.
        while let Ok(n) = c.recv(&mut buf) {
            if buf[..n] == want[..] {
                return;
            }
        }
    }
    panic!("the UDP client got no reply within {WAIT:?} during the flood");
}

fn unix_exchange(c: &UnixDatagram, to: &std::path::Path, msg: &[u8]) {
    let want: Vec<u8> = msg.iter().rev().copied().collect();
    let mut buf = [0u8; 64];
    c.set_write_timeout(Some(WAIT)).unwrap();
    c.send_to(msg, to).unwrap();
    let n = c
        .recv(&mut buf)
        .expect("the Unix client got no reply during the flood");
    assert_eq!(&buf[..n], &want[..]);
}

#[test]
fn floods_of_edge_cases_do_not_stall_a_good_client() {
    let dir = TempDir::new();
    let path = dir.join("echo.sock");
    let unix = UnixDatagram::bind(&path).unwrap();
    let udp_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let uaddr = udp_sock.local_addr().unwrap();
    let mut d = Daemon::builder()
        .socket(udp_sock, "udp")
        .socket(unix, "unix")
        .spawn()
        .wait_ready();

    let flood = start_floods(uaddr, &path);
    let good_udp = udp("127.0.0.1:0");
    let good_unix = autobound();
    for i in 0..50 {
        udp_exchange(&good_udp, uaddr, format!("udp {i}").as_bytes());
        unix_exchange(&good_unix, &path, format!("unix {i}").as_bytes());
    }
    // The daemon really was flooded while the good clients were served.
    let sent = flood.finish();
    assert!(sent > 1_000, "the floods sent only {sent} datagrams");

    d.signal(Signal::SIGTERM);
    let (status, took) = d.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let s = d.final_stats("SIGTERM");
    assert!(s.received >= 100 && s.answered >= 100, "{}", d.stderr());
}

#[test]
fn sigterm_mid_flood_stops_within_a_second_and_keeps_the_sockets() {
    let dir = TempDir::new();
    let path = dir.join("echo.sock");
    let unix = UnixDatagram::bind(&path).unwrap();
    let udp_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let uaddr = udp_sock.local_addr().unwrap();
    let mut d = Daemon::builder()
        .socket(udp_sock, "udp")
        .socket(unix, "unix")
        .spawn()
        .wait_ready();
    let flood = start_floods(uaddr, &path);
    // The flood is being served: a good client's exchange gets through.
    unix_exchange(&autobound(), &path, b"before");

    d.signal(Signal::SIGTERM);
    d.wait_notify("STOPPING=1");
    let (status, took) = d.wait_exit();
    let sent = flood.finish();
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    assert!(took < Duration::from_secs(1), "exit took {took:?}");
    d.final_stats("SIGTERM");
    assert!(sent > 0);

    // Both sockets are intact: what is sent now (behind whatever the flood
    // left queued) is answered by the next instance given the same fds.
    assert!(exists(&path));
    let c_unix = Arc::new(autobound());
    c_unix.set_write_timeout(Some(WAIT)).unwrap();
    // The flood may have left the Unix queue full: then this send waits
    // until the next instance starts reading, so it runs on its own thread.
    let sender = {
        let (c, p) = (c_unix.clone(), path.clone());
        std::thread::spawn(move || c.send_to(b"after", &p).map(drop))
    };
    let c_udp = udp("127.0.0.1:0");
    c_udp.send_to(b"after", uaddr).unwrap();
    let mut b = Daemon::builder();
    for (fd, name) in d.sockets.drain(..).zip(["udp", "unix"]) {
        b = b.socket(fd, name);
    }
    let mut next = b.spawn().wait_ready();
    sender.join().unwrap().expect("send to the next instance");
    let mut buf = [0u8; 16];
    let n = c_unix.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"retfa");
    // The UDP datagram may have been dropped by the kernel if the flood
    // filled the queue before it; then a retry must be answered.
    udp_exchange(&c_udp, uaddr, b"after");
    next.signal(Signal::SIGTERM);
    assert_eq!(next.wait_exit().0.code(), Some(0));
}
