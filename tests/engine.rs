//! The engine in-process, on real sockets: `Server::start` with sockets the
//! test binds itself (`127.0.0.1:0`, autobound Unix sockets), no binary and
//! no systemd. Each test checks replies, their order and addresses, and the
//! counters.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use dgecho::defaults::BATCH;
use dgecho::echo::{Options, Reason, ReplyMode, Server};
use dgecho::listener::Listener;
use dgecho::ratelimit::Rate;
use nix::sys::socket::{setsockopt, sockopt};

use crate::util::autobound;

fn udp_server(opts: Options) -> (Server, std::net::SocketAddr) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let server = Server::start(vec![Listener::from_udp(sock, "test").unwrap()], &opts).unwrap();
    (server, addr)
}

fn client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

#[test]
fn reverses_and_counts() {
    let (server, addr) = udp_server(Options::default());
    let c = client();
    c.send_to(b"hello", addr).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"olleh");
    assert_eq!(from, addr);
    let (stats, result) = server.stop();
    result.unwrap();
    assert_eq!(stats.received, 1);
    assert_eq!(stats.answered, 1);
    assert_eq!(stats.dropped(), 0);
}

#[test]
fn echo_mode_and_zero_length() {
    let (server, addr) = udp_server(Options {
        reply: ReplyMode::Echo,
        guard_ports: vec![],
        workers: 1,
        ..Options::default()
    });
    let c = client();
    let mut buf = [0u8; 64];
    c.send_to(b"abc", addr).unwrap();
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"abc");
    c.send_to(b"", addr).unwrap();
    assert_eq!(c.recv(&mut buf).unwrap(), 0);
    assert_eq!(server.stop().0.answered, 2);
}

#[test]
fn loop_guard_refuses_listed_ports() {
    let c = client();
    let port = c.local_addr().unwrap().port();
    let (server, addr) = udp_server(Options {
        reply: ReplyMode::Reverse,
        guard_ports: vec![port],
        workers: 1,
        ..Options::default()
    });
    c.send_to(b"x", addr).unwrap();
    // A second, unguarded client proves the first datagram was handled
    // (datagrams from one socket are processed in order) without a sleep.
    let other = client();
    other.send_to(b"ok", addr).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(other.recv(&mut buf).unwrap(), 2);
    // Any reply to `c` would have been sent before the one to `other`.
    c.set_nonblocking(true).unwrap();
    let err = c.recv(&mut buf).unwrap_err();
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::WouldBlock,
        "a guarded port gets no reply"
    );
    let (stats, _) = server.stop();
    assert_eq!(stats[Reason::LoopGuard], 1);
    assert_eq!(stats.received, 2);
}

/// No reply reaches `c` (checked once a later datagram has been
/// answered, which proves the earlier ones were handled).
fn assert_no_reply(c: &UdpSocket) {
    c.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 8];
    let err = c.recv(&mut buf).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock, "no reply");
    c.set_nonblocking(false).unwrap();
}

#[test]
fn loop_guard_refuses_own_ports() {
    // Two sockets; a datagram from either one's port (at another
    // address, as another dgecho on another host would send it) is
    // refused by both, even with --guard-ports none.
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (pa, pb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let listeners = vec![
        Listener::from_udp(a, "a").unwrap(),
        Listener::from_udp(b, "b").unwrap(),
    ];
    let server = Server::start(listeners, &Options::default()).unwrap();
    let Ok(twin_a) = UdpSocket::bind(("127.0.0.2", pa.port())) else {
        eprintln!("skipped: 127.0.0.2:{} is taken", pa.port());
        return;
    };
    let Ok(twin_b) = UdpSocket::bind(("127.0.0.2", pb.port())) else {
        eprintln!("skipped: 127.0.0.2:{} is taken", pb.port());
        return;
    };
    twin_a.send_to(b"loop?", pb).unwrap();
    twin_b.send_to(b"loop?", pa).unwrap();
    let other = client();
    let mut buf = [0u8; 8];
    other.send_to(b"ok", pa).unwrap();
    assert_eq!(other.recv(&mut buf).unwrap(), 2);
    other.send_to(b"ok", pb).unwrap();
    assert_eq!(other.recv(&mut buf).unwrap(), 2);
    assert_no_reply(&twin_a);
    assert_no_reply(&twin_b);
    let (stats, result) = server.stop();
    result.unwrap();
    assert_eq!((stats.received, stats[Reason::LoopGuard]), (4, 2));
}

#[test]
fn rate_limit_drops_and_counts() {
    let (server, addr) = udp_server(Options {
        rate_limit: Some(Rate {
            per_sec: 0.01,
            burst: 3,
        }),
        ..Options::default()
    });
    let c = client();
    for i in 0..10u8 {
        c.send_to(&[i], addr).unwrap();
    }
    let mut buf = [0u8; 8];
    for i in 0..3u8 {
        assert_eq!(c.recv(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], i, "the burst is the first datagrams");
    }
    // Another source has its own bucket; its reply proves the ten
    // were handled.
    let other = UdpSocket::bind("127.0.0.2:0").unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    other.send_to(b"ok", addr).unwrap();
    assert_eq!(other.recv(&mut buf).unwrap(), 2);
    assert_no_reply(&c);
    let (stats, result) = server.stop();
    result.unwrap();
    assert_eq!(
        (stats.received, stats.answered, stats[Reason::RateLimited]),
        (11, 4, 7)
    );
    assert_eq!(stats.dropped(), 7);
}

#[test]
fn rate_limit_is_shared_by_workers() {
    // 3 workers, burst 6: each allows 2, so never more than 6 in all.
    let (server, addr) = udp_server(Options {
        workers: 3,
        rate_limit: Some(Rate {
            per_sec: 0.01,
            burst: 6,
        }),
        ..Options::default()
    });
    let c = client();
    for i in 0..30u8 {
        c.send_to(&[i], addr).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.stats().received < 30 {
        assert!(Instant::now() < deadline, "{:?}", server.stats());
        std::thread::park_timeout(Duration::from_millis(5));
    }
    let (stats, _) = server.stop();
    assert!(stats.answered <= 6, "{stats:?}");
    assert_eq!(stats.answered + stats[Reason::RateLimited], 30);
}

/// A socket bound to 0.0.0.0 replies from the address each request
/// was sent to: a connected client, which drops datagrams from any
/// other address, gets its reply. (tests/netns.rs does the same with
/// two addresses on an interface, for IPv4 and IPv6.)
#[test]
fn wildcard_socket_replies_from_the_destination() {
    for (bind, dsts) in [
        ("0.0.0.0:0", &["127.0.0.1", "127.0.0.2", "127.0.0.3"][..]),
        (
            "[::]:0",
            &["::1", "::ffff:127.0.0.2", "::ffff:127.0.0.3"][..],
        ),
    ] {
        let Ok(sock) = UdpSocket::bind(bind) else {
            eprintln!("skipped {bind}: cannot bind");
            continue;
        };
        let port = sock.local_addr().unwrap().port();
        let listener = Listener::from_udp(sock, "any").unwrap();
        let server = Server::start(vec![listener], &Options::default()).unwrap();
        for (i, dst) in dsts.iter().enumerate() {
            let ip: std::net::IpAddr = dst.parse().unwrap();
            let to = std::net::SocketAddr::new(ip, port);
            let local = if ip.is_ipv4() {
                "127.0.0.1:0"
            } else {
                "[::]:0"
            };
            let c = UdpSocket::bind(local).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c.connect(to).unwrap();
            // Several at once, so they share a batch too.
            for _ in 0..3 {
                c.send(&[i as u8, 9]).unwrap();
            }
            let mut buf = [0u8; 8];
            for _ in 0..3 {
                let n = c.recv(&mut buf).unwrap_or_else(|e| {
                    panic!("no reply from {to} on a socket bound to {bind}: {e}")
                });
                assert_eq!(&buf[..n], &[9, i as u8]);
            }
        }
        let (stats, result) = server.stop();
        result.unwrap();
        assert_eq!(stats.answered, 3 * dsts.len() as u64, "{bind}");
    }
}

/// A datagram queued on a wildcard socket before the server turned on
/// IP_PKTINFO (the datagram that made systemd start it) arrives without a
/// valid destination: it must still be answered, not taken for a
/// broadcast.
#[test]
fn a_datagram_queued_before_start_on_a_wildcard_socket_is_answered() {
    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let c = client();
    c.connect(("127.0.0.1", port)).unwrap();
    c.send(b"early").unwrap();
    let server = Server::start(
        vec![Listener::from_udp(sock, "any").unwrap()],
        &Options::default(),
    )
    .unwrap();
    let mut buf = [0u8; 8];
    let n = c.recv(&mut buf).expect("the early datagram is answered");
    assert_eq!(&buf[..n], b"ylrae");
    let (stats, result) = server.stop();
    result.unwrap();
    assert_eq!(stats, crate::util::counted(1, 1));
}

/// serve's default limit spares loopback sources and limits the rest.
#[test]
fn a_limit_that_spares_loopback_spares_only_loopback() {
    let (server, addr) = udp_server(Options {
        rate_limit: Some(Rate {
            per_sec: 0.01,
            burst: 1,
        }),
        spare_loopback: true,
        ..Options::default()
    });
    let c = client();
    let mut buf = [0u8; 8];
    for _ in 0..5 {
        c.send_to(b"lo", addr).unwrap();
        assert_eq!(c.recv(&mut buf).unwrap(), 2, "loopback is never limited");
    }
    let (stats, result) = server.stop();
    result.unwrap();
    assert_eq!(stats, crate::util::counted(5, 5));
}

#[test]
fn stop_is_prompt_and_heartbeats_advance() {
    let (server, _) = udp_server(Options::default());
    let before = server.heartbeats();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.heartbeats() == before {
        assert!(Instant::now() < deadline, "an idle loop must keep ticking");
        std::thread::park_timeout(Duration::from_millis(20));
    }
    assert!(server.failed().is_none());
    let t = Instant::now();
    server.stop().1.unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_burst_is_answered_whole_and_in_order() {
    // More datagrams than one batch, with a jumbo one in the middle:
    // every reply arrives, in order. The replies queue at the client until
    // it reads, within its receive buffer (208 KiB unless raised).
    let (server, addr) = udp_server(Options::default());
    let c = client();
    let _ = setsockopt(&c, sockopt::RcvBufForce, &(4 << 20));
    let big = vec![7u8; 65507];
    let (n, jumbo) = (BATCH as u32 + 8, BATCH as u32 / 2);
    for i in 0..n {
        if i == jumbo {
            c.send_to(&big, addr).unwrap();
        }
        c.send_to(&i.to_be_bytes(), addr).unwrap();
    }
    let mut buf = vec![0u8; 65536];
    for i in 0..n {
        if i == jumbo {
            assert_eq!(c.recv(&mut buf).unwrap(), 65507);
        }
        let n = c.recv(&mut buf).unwrap();
        let mut want = i.to_be_bytes();
        want.reverse();
        assert_eq!(&buf[..n], &want, "reply {i} in order");
    }
    assert_eq!(server.stop().0.answered, u64::from(n) + 1);
}

#[test]
fn workers_share_a_socket() {
    let (server, addr) = udp_server(Options {
        workers: 3,
        ..Options::default()
    });
    assert_eq!(server.heartbeats().len(), 3);
    let c = client();
    let mut buf = [0u8; 16];
    for i in 0..50u8 {
        c.send_to(&[i, 1], addr).unwrap();
        assert_eq!(c.recv(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], &[1, i]);
    }
    let (stats, result) = server.stop();
    result.unwrap();
    assert_eq!(stats.answered, 50);
}

/// Unix clients whose addresses differ in length (autobind, short and
/// long abstract names, short and long paths) and an unbound sender,
/// interleaved in bursts: each client gets its own reply, in order.
/// The first burst is queued before the loop starts, so it is one
/// batch; later bursts put long addresses where short ones were. A
/// receive buffer whose address length is not reset between calls
/// (nix 0.32's `recvmmsg`) truncates a long address after a short one,
/// and its reply goes astray: this test then fails.
#[test]
fn unix_clients_of_every_address_length_each_get_their_replies() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let server_sock = autobound();
    let addr = server_sock.local_addr().unwrap();
    let dir = std::env::temp_dir().join(format!("dgecho-ut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bind = |a: SocketAddr| {
        let s = UnixDatagram::bind_addr(&a).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    let abstract_name = |i: usize, len: usize| {
        let mut n = format!("dgecho-ut-{}-{i}-", std::process::id()).into_bytes();
        n.resize(len, b'x');
        bind(SocketAddr::from_abstract_name(&n).unwrap())
    };
    let path = |i: usize, len: usize| {
        let mut p = dir
            .join(format!("{i}-"))
            .into_os_string()
            .into_string()
            .unwrap();
        while p.len() < len {
            p.push('p');
        }
        bind(SocketAddr::from_pathname(&p).unwrap())
    };
    // Short and long alternate; 107 bytes is the longest abstract name.
    let clients = [
        autobound(),
        abstract_name(1, 107),
        path(2, 20),
        abstract_name(3, 30),
        autobound(),
        path(5, 100),
        abstract_name(6, 20),
        path(7, 60),
    ];
    let unbound = UnixDatagram::unbound().unwrap();
    let payload = |i: usize, round: usize| format!("client {i} round {round}").into_bytes();
    // Fewer than net.unix.max_dgram_qlen (10) datagrams, so the burst
    // queues without a reader.
    let send_burst = |round: usize, order: &mut dyn Iterator<Item = usize>| {
        for i in order {
            clients[i].send_to_addr(&payload(i, round), &addr).unwrap();
            if i == 4 {
                unbound.send_to_addr(b"nobody", &addr).unwrap();
            }
        }
    };
    let check_replies = |round: usize| {
        for (i, c) in clients.iter().enumerate() {
            let mut buf = [0u8; 64];
            let (n, from) = c
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("client {i}, round {round}: no reply: {e}"));
            let mut want = payload(i, round);
            want.reverse();
            assert_eq!(&buf[..n], &want[..], "client {i}, round {round}");
            assert_eq!(from.as_abstract_name(), addr.as_abstract_name());
        }
    };
    send_burst(0, &mut (0..clients.len()));
    let server = Server::start(
        vec![Listener::from_unix(server_sock, "test")],
        &Options::default(),
    )
    .unwrap();
    check_replies(0);
    for round in 1..4 {
        // Longest addresses first, then rotated.
        let mut order = (0..clients.len())
            .rev()
            .map(|i| (i + round) % clients.len());
        send_burst(round, &mut order);
        check_replies(round);
    }
    let (stats, result) = server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    result.unwrap();
    assert_eq!(stats.answered, 4 * clients.len() as u64);
    assert_eq!(stats[Reason::Unbound], 4);
    assert_eq!(stats.dropped(), 4);
}

/// Replies a client has not read yet are charged to the daemon's send
/// buffer: with the kernel's default, one client that leaves five
/// full-size replies unread made every other client's reply fail with
/// EAGAIN (found by the datagram fuzz target; tests/abuse.rs has the
/// 1,000-client case).
#[test]
fn unread_unix_replies_do_not_starve_other_clients() {
    let sock = autobound();
    let addr = sock.local_addr().unwrap();
    let server =
        Server::start(vec![Listener::from_unix(sock, "test")], &Options::default()).unwrap();
    let hog = autobound();
    let big = vec![7u8; 65_000];
    for _ in 0..5 {
        hog.send_to_addr(&big, &addr).unwrap();
    }
    let good = autobound();
    let mut buf = [0u8; 16];
    for _ in 0..3 {
        good.send_to_addr(b"ping", &addr).unwrap();
        let n = good.recv(&mut buf).expect("the good client is answered");
        assert_eq!(&buf[..n], b"gnip");
    }
    // The hog's replies were all sent too, and are still queued.
    for _ in 0..5 {
        let mut b = vec![0u8; 65_536];
        assert_eq!(hog.recv(&mut b).unwrap(), 65_000);
    }
    let (stats, result) = server.stop();
    result.unwrap();
    assert_eq!((stats.answered, stats[Reason::SendFailed]), (8, 0));
}

/// Credentials cost CPU on every datagram, so a Unix socket passes them
/// only while unread replies fill more than an eighth of its send buffer:
/// off for ordinary traffic, on once a client leaves replies unread, off
/// again once they have been read.
#[test]
fn credentials_are_asked_for_only_while_replies_sit_unread() {
    use nix::sys::socket::{getsockopt, sockopt};
    let sock = autobound();
    let probe = sock.try_clone().unwrap();
    let addr = sock.local_addr().unwrap();
    let server =
        Server::start(vec![Listener::from_unix(sock, "test")], &Options::default()).unwrap();
    let passcred = || getsockopt(&probe, sockopt::PassCred).unwrap();
    let good = autobound();
    let ping = vec![b'p'; 1400];
    let pong = || {
        let mut buf = [0u8; 2048];
        good.send_to_addr(&ping, &addr).unwrap();
        assert_eq!(
            good.recv(&mut buf).expect("the good client is answered"),
            1400
        );
    };
    for _ in 0..100 {
        pong();
    }
    assert!(!passcred(), "no credentials for ordinary traffic");

    // Hogs leave replies unread: 8 each (under any queue length), a quarter
    // of the daemon's send buffer in all.
    let sndbuf = getsockopt(&probe, sockopt::SndBuf).unwrap();
    let big = vec![b'h'; 65_000];
    let hogs: Vec<_> = (0..sndbuf / 4 / (8 * 65_000) + 2)
        .map(|_| autobound())
        .collect();
    for h in &hogs {
        for _ in 0..8 {
            h.send_to_addr(&big, &addr).unwrap();
        }
    }
    let sent = 100 + 8 * hogs.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    let done = |s: &dgecho::echo::Stats| s.received == sent && s.answered + s.dropped() == sent;
    while !done(&server.stats()) {
        assert!(Instant::now() < deadline, "{:?}", server.stats());
        std::thread::yield_now();
    }
    assert!(passcred(), "credentials on: {:?}", server.stats());
    pong();

    // The hogs read their replies; ordinary traffic turns them off again.
    let mut buf = vec![0u8; 65_536];
    for h in &hogs {
        h.set_nonblocking(true).unwrap();
        while h.recv(&mut buf).is_ok() {}
    }
    let mut n = 0;
    while passcred() {
        assert!(
            n < 10_000,
            "still on after {n} replies: {:?}",
            server.stats()
        );
        pong();
        n += 1;
    }
    let (stats, result) = server.stop();
    result.unwrap();
    assert_eq!(stats[Reason::SendFailed], 0, "{stats:?}");
}

/// Queues `plan` (client index, size) on `server_addr` before the server
/// starts, so that one receive takes the whole burst, then checks that
/// each client gets exactly its replies, in its order, from the address
/// it asked. Runs of same-size replies to one client leave as GSO sends;
/// a size change, another client or another source ends a run.
fn burst_of_runs(bind: &str, client_addrs: &[&str], plan: &[(usize, usize)]) {
    burst_with(bind, client_addrs, plan, &Options::default());
}

fn burst_with(bind: &str, client_addrs: &[&str], plan: &[(usize, usize)], opts: &Options) {
    let Ok(sock) = UdpSocket::bind(bind) else {
        eprintln!("skipped {bind}: cannot bind");
        return;
    };
    let local = sock.local_addr().unwrap();
    let port = local.port();
    if local.ip().is_unspecified() {
        // Datagrams queued before the server turns IP_PKTINFO on carry no
        // destination: turn it on first, as the burst is queued early.
        use nix::sys::socket::{setsockopt, sockopt};
        if local.is_ipv4() {
            setsockopt(&sock, sockopt::Ipv4PacketInfo, &true).unwrap();
        } else {
            setsockopt(&sock, sockopt::Ipv6RecvPacketInfo, &true).unwrap();
        }
    }
    let clients: Vec<UdpSocket> = client_addrs
        .iter()
        .map(|ip| {
            let to = std::net::SocketAddr::new(ip.parse().unwrap(), port);
            let local = if to.is_ipv4() {
                "127.0.0.1:0"
            } else {
                "[::]:0"
            };
            let c = UdpSocket::bind(local).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c.connect(to).unwrap();
            c
        })
        .collect();
    let payload = |seq: usize, size: usize| -> Vec<u8> {
        let mut p = vec![b'a' + (seq % 26) as u8; size];
        if let Some(first) = p.first_mut() {
            *first = seq as u8;
        }
        p
    };
    for (seq, &(c, size)) in plan.iter().enumerate() {
        clients[c].send(&payload(seq, size)).unwrap();
    }
    let server = Server::start(vec![Listener::from_udp(sock, "runs").unwrap()], opts).unwrap();
    let mut buf = vec![0u8; 65536];
    for (seq, &(c, size)) in plan.iter().enumerate() {
        let n = clients[c]
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("{bind}: client {c} got no reply {seq}: {e}"));
        let mut want = payload(seq, size);
        want.reverse();
        assert_eq!(&buf[..n], &want[..], "{bind}: client {c}, reply {seq}");
    }
    for c in &clients {
        c.set_nonblocking(true).unwrap();
        assert!(c.recv(&mut buf).is_err(), "{bind}: no extra reply");
    }
    let (stats, result) = server.stop();
    result.unwrap();
    let n = plan.len() as u64;
    assert_eq!(stats, crate::util::counted(n, n), "{bind}");
}

/// Runs broken by a size change and by a peer change, a mix of peers.
const PLAN: &[(usize, usize)] = &[
    (0, 64),
    (0, 64),
    (0, 64),
    (0, 100),
    (0, 100),
    (1, 100),
    (1, 100),
    (0, 100),
    (1, 1400),
    (1, 1400),
    (1, 1400),
    (1, 1400),
    (0, 1),
    (0, 0),
    (0, 0),
];

#[test]
fn gso_runs_give_each_client_its_replies_in_order_ipv4() {
    burst_of_runs("127.0.0.1:0", &["127.0.0.1", "127.0.0.1"], PLAN);
}

#[test]
fn gso_runs_give_each_client_its_replies_in_order_ipv6() {
    burst_of_runs("[::1]:0", &["::1", "::1"], PLAN);
}

/// On a wildcard socket each reply carries its source (IP_PKTINFO): runs
/// end where the source changes, and every reply comes from the address
/// its client asked (a connected client drops any other).
#[test]
fn gso_runs_keep_their_source_on_wildcard_sockets() {
    burst_of_runs("0.0.0.0:0", &["127.0.0.1", "127.0.0.2"], PLAN);
    burst_of_runs("[::]:0", &["::1", "::ffff:127.0.0.2"], PLAN);
}

/// Large segments: two 30,000-byte replies fit one GSO send, three do not.
#[test]
fn gso_runs_of_large_replies_stay_within_one_datagram() {
    burst_of_runs(
        "127.0.0.1:0",
        &["127.0.0.1"],
        &[(0, 30_000), (0, 30_000), (0, 30_000), (0, 65_507)],
    );
}

/// With `--gso off` the same burst gives the same replies.
#[test]
fn without_gso_the_same_burst_gives_the_same_replies() {
    let opts = Options {
        gso: false,
        ..Options::default()
    };
    burst_with("127.0.0.1:0", &["127.0.0.1", "127.0.0.1"], PLAN, &opts);
}
