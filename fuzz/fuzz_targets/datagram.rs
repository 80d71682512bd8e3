//! Fuzzes the datagram path through a real, in-process `dgecho` server.
//!
//! Each input is a short scenario: a few datagrams of arbitrary bytes and
//! sizes, each from an arbitrary source (a UDP socket bound to any
//! 127.x.y.z address and a chosen, guarded or ephemeral port; `[::1]`; a
//! Unix client that is autobound, bound to an abstract name or a path, or not
//! bound at all), to a reverse-mode or echo-mode server over UDP or Unix,
//! and optionally closing its socket before the reply comes back.
//!
//! The oracle is the daemon's contract: a datagram is answered with exactly
//! its bytes reversed (or unchanged in echo mode), from the address it was
//! sent to, unless it must be dropped (unbound sender, larger than the
//! buffer, loop-guarded source port); a dropped datagram gets no reply; a
//! vanished Unix client is a counted send failure; the counters move by
//! exactly what was sent; and the server keeps answering a well-behaved
//! probe client after every scenario (no crash, no stall).
//!
//! Going through real sockets rather than a pure decision function exercises
//! the actual `recvmsg(MSG_TRUNC)`/`sendto` calls and address decoding, and
//! does not depend on how `server.rs` structures its loop internally.
#![no_main]

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixSocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use dgecho::defaults::{BUFFER_SIZE, GUARD_PORT_LIST, MAX_UDP_PAYLOAD};
use dgecho::echo::{Options, Reason, ReplyMode, Server, Stats};
use dgecho::listener::Listener;
use libfuzzer_sys::fuzz_target;

/// Source ports the servers' loop guard refuses (privileged ports are
/// bindable: fuzzing runs as root; where it does not, such a bind fails and
/// the datagram is sent from an ephemeral port instead).
const GUARDED: [u16; 5] = GUARD_PORT_LIST;
const WAIT: Duration = Duration::from_secs(5);
const MAX_UDP4: usize = MAX_UDP_PAYLOAD;
const MAX_UDP6: usize = 65_527;

struct Target {
    server: usize,
    reverse: bool,
    kind: TargetKind,
    /// A client that always behaves, to prove the socket is still served.
    probe: Client,
}

enum TargetKind {
    Udp(SocketAddr),
    Unix(UnixSocketAddr),
}

enum Client {
    Udp(UdpSocket),
    Unix(UnixDatagram, Option<PathBuf>),
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Client::Unix(_, Some(p)) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Client {
    // libFuzzer's timer signal (SIGALRM, for -timeout) interrupts blocking
    // calls: retry them.
    fn send(&self, data: &[u8], to: &TargetKind) -> std::io::Result<usize> {
        loop {
            match self.send_once(data, to) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    fn recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, String)> {
        loop {
            match self.recv_once(buf) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    fn send_once(&self, data: &[u8], to: &TargetKind) -> std::io::Result<usize> {
        match (self, to) {
            (Client::Udp(s), TargetKind::Udp(a)) => s.send_to(data, a),
            (Client::Unix(s, _), TargetKind::Unix(a)) => s.send_to_addr(data, a),
            _ => unreachable!("client and target families always match"),
        }
    }

    fn recv_once(&self, buf: &mut [u8]) -> std::io::Result<(usize, String)> {
        match self {
            Client::Udp(s) => s.recv_from(buf).map(|(n, a)| (n, a.to_string())),
            Client::Unix(s, _) => s.recv_from(buf).map(|(n, a)| (n, format!("{a:?}"))),
        }
    }

    fn set_nonblocking(&self, on: bool) {
        match self {
            Client::Udp(s) => s.set_nonblocking(on).unwrap(),
            Client::Unix(s, _) => s.set_nonblocking(on).unwrap(),
        }
    }

    fn set_timeouts(&self) {
        match self {
            Client::Udp(s) => {
                s.set_read_timeout(Some(WAIT)).unwrap();
                s.set_write_timeout(Some(WAIT)).unwrap();
            }
            Client::Unix(s, _) => {
                s.set_read_timeout(Some(WAIT)).unwrap();
                s.set_write_timeout(Some(WAIT)).unwrap();
            }
        }
    }
}

fn autobound_unix() -> UnixDatagram {
    dgecho::autobind::autobound().unwrap()
}

struct World {
    servers: Vec<Server>,
    targets: Vec<Target>,
    dir: PathBuf,
    /// Each server's own UDP ports: its loop guard refuses them as source
    /// ports (any address), so two instances on one port cannot bounce.
    own: Vec<Vec<u16>>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("dgecho-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut servers = Vec::new();
    let mut targets = Vec::new();
    let mut own = Vec::new();
    let mut pending = Vec::new();
    for (i, reverse) in [true, false].into_iter().enumerate() {
        let mut listeners = Vec::new();
        let mut kinds = Vec::new();
        let u4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        kinds.push(TargetKind::Udp(u4.local_addr().unwrap()));
        listeners.push(Listener::from_udp(u4, "fuzz-udp4").unwrap());
        if let Ok(u6) = UdpSocket::bind("[::1]:0") {
            kinds.push(TargetKind::Udp(u6.local_addr().unwrap()));
            listeners.push(Listener::from_udp(u6, "fuzz-udp6").unwrap());
        }
        let ux = autobound_unix();
        kinds.push(TargetKind::Unix(ux.local_addr().unwrap()));
        listeners.push(Listener::from_unix(ux, "fuzz-unix"));
        let opts = Options {
            reply: if reverse {
                ReplyMode::Reverse
            } else {
                ReplyMode::Echo
            },
            guard_ports: GUARDED.to_vec(),
            ..Options::default()
        };
        servers.push(Server::start(listeners, &opts).unwrap());
        own.push(
            kinds
                .iter()
                .filter_map(|k| match k {
                    TargetKind::Udp(a) => Some(a.port()),
                    TargetKind::Unix(_) => None,
                })
                .collect::<Vec<u16>>(),
        );
        pending.push((i, reverse, kinds));
    }
    // Probes must never have a server's port as theirs.
    let every: Vec<u16> = own.iter().flatten().copied().collect();
    for (i, reverse, kinds) in pending {
        for kind in kinds {
            let probe = match &kind {
                TargetKind::Udp(a) => Client::Udp(loop {
                    let s = UdpSocket::bind(SocketAddr::new(a.ip(), 0)).unwrap();
                    if !every.contains(&s.local_addr().unwrap().port()) {
                        break s;
                    }
                }),
                TargetKind::Unix(_) => Client::Unix(autobound_unix(), None),
            };
            probe.set_timeouts();
            targets.push(Target {
                server: i,
                reverse,
                kind,
                probe,
            });
        }
    }
    World {
        servers,
        targets,
        dir,
        own,
    }
});

#[derive(Arbitrary, Debug)]
enum Port {
    Ephemeral,
    Guarded(u8),
    /// One of the target server's own UDP ports (on another address).
    Own(u8),
    Fixed(u16),
}

#[derive(Arbitrary, Debug)]
enum Source {
    /// 127.1.b.c (127.0.0.0/8 is all loopback on Linux).
    Udp4 {
        b: u8,
        c: u8,
        port: Port,
    },
    Udp6 {
        port: Port,
    },
    UnixAutobound,
    UnixAbstract,
    UnixPath,
    UnixUnbound,
}

#[derive(Arbitrary, Debug)]
enum Size {
    /// The payload bytes as given.
    Exact,
    /// The payload repeated (or a counter pattern) up to this many bytes.
    Len(u32),
    /// A boundary length.
    Edge(u8),
}

const EDGES: [usize; 10] = [
    0,
    1,
    MAX_UDP4,
    MAX_UDP4 + 1,
    MAX_UDP6,
    BUFFER_SIZE - 1,
    BUFFER_SIZE,
    BUFFER_SIZE + 1,
    100_000,
    200_000,
];

#[derive(Arbitrary, Debug)]
struct Datagram {
    target: u8,
    source: Source,
    size: Size,
    payload: Vec<u8>,
    /// Close the client's socket before the reply can be read.
    vanish: bool,
}

#[derive(Arbitrary, Debug)]
struct Scenario {
    datagrams: Vec<Datagram>,
}

enum Expect {
    Reply(Vec<u8>),
    Unbound,
    TooLarge,
    Guarded,
    /// A vanished Unix client: the reply cannot be delivered, or it was
    /// sent before the client closed its socket (a race the test does not
    /// control), so it is either a send failure or an answer.
    SendFails,
    /// A vanished UDP client: the reply is sent into the void.
    Lost,
}

struct Sent {
    target: usize,
    client: Option<Client>,
    expect: Expect,
    len: usize,
}

fn build_payload(d: &Datagram) -> Vec<u8> {
    let len = match d.size {
        Size::Exact => return d.payload.clone(),
        Size::Len(n) => n as usize % 210_000,
        Size::Edge(i) => EDGES[i as usize % EDGES.len()],
    };
    if d.payload.is_empty() {
        (0..len).map(|i| (i % 251) as u8).collect()
    } else {
        d.payload.iter().copied().cycle().take(len).collect()
    }
}

/// Binds a UDP client to `ip` and the chosen port; to an ephemeral one if
/// that is taken or was used earlier in this scenario (a late reply to a
/// vanished client would reach its successor).
fn bind_udp(
    ip: std::net::IpAddr,
    port: &Port,
    own: &[u16],
    used: &mut Vec<SocketAddr>,
) -> UdpSocket {
    let wanted = match port {
        Port::Ephemeral => 0,
        Port::Guarded(i) => GUARDED[*i as usize % GUARDED.len()],
        Port::Own(i) => own[*i as usize % own.len()],
        Port::Fixed(p) => *p,
    };
    let sa = SocketAddr::new(ip, wanted);
    let s = match UdpSocket::bind(sa) {
        Ok(s) if wanted != 0 && !used.contains(&sa) => s,
        _ => loop {
            let s = UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap();
            if !used.contains(&s.local_addr().unwrap()) {
                break s;
            }
        },
    };
    used.push(s.local_addr().unwrap());
    s
}

fn make_client(
    world: &World,
    target: &Target,
    source: &Source,
    used: &mut Vec<SocketAddr>,
) -> (Client, bool) {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    match (&target.kind, source) {
        (TargetKind::Udp(a), Source::Udp4 { b, c, port }) if a.is_ipv4() => {
            let ip = Ipv4Addr::new(127, 1, *b, *c).into();
            (
                Client::Udp(bind_udp(ip, port, &world.own[target.server], used)),
                false,
            )
        }
        (TargetKind::Udp(a), Source::Udp6 { port }) if a.is_ipv6() => (
            Client::Udp(bind_udp(a.ip(), port, &world.own[target.server], used)),
            false,
        ),
        (TargetKind::Udp(a), Source::Udp4 { port, .. } | Source::Udp6 { port }) => {
            // The other family's source on this target: same port choice.
            (
                Client::Udp(bind_udp(a.ip(), port, &world.own[target.server], used)),
                false,
            )
        }
        (TargetKind::Udp(a), _) => (
            Client::Udp(bind_udp(
                a.ip(),
                &Port::Ephemeral,
                &world.own[target.server],
                used,
            )),
            false,
        ),
        (TargetKind::Unix(_), Source::UnixUnbound) => {
            (Client::Unix(UnixDatagram::unbound().unwrap(), None), true)
        }
        (TargetKind::Unix(_), Source::UnixAbstract) => {
            let name = format!("dgecho-fuzz-{}-{seq}", std::process::id());
            let sa = UnixSocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            (
                Client::Unix(UnixDatagram::bind_addr(&sa).unwrap(), None),
                false,
            )
        }
        (TargetKind::Unix(_), Source::UnixPath) => {
            let p = world.dir.join(format!("c{seq}"));
            let s = UnixDatagram::bind(&p).unwrap();
            (Client::Unix(s, Some(p)), false)
        }
        (TargetKind::Unix(_), _) => (Client::Unix(autobound_unix(), None), false),
    }
}

fn transform(reverse: bool, data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    if reverse {
        v.reverse();
    }
    v
}

fn probe(t: &Target, tag: u64) {
    let msg = format!("probe-{tag}");
    t.probe.send(msg.as_bytes(), &t.kind).unwrap();
    let mut buf = [0u8; 64];
    let want = transform(t.reverse, msg.as_bytes());
    // Drain stale probe replies from an earlier, failed run of this input.
    loop {
        let (n, _) = t
            .probe
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("the server stalled: no reply to the probe: {e}"));
        if buf[..n] == want[..] {
            return;
        }
    }
}

fn stats(world: &World) -> Vec<Stats> {
    world.servers.iter().map(|s| s.stats()).collect()
}

fn delta(a: &Stats, b: &Stats) -> Stats {
    *b - *a
}

fuzz_target!(|sc: Scenario| {
    let world = &*WORLD;
    let before = stats(world);
    let mut sent: Vec<Sent> = Vec::new();
    let mut used = Vec::new();
    // Bytes in flight per target. Loopback UDP drops datagrams beyond the
    // server's receive buffer (about 208 KiB), which would look like a
    // missing reply. On a Unix socket, replies not read yet are charged to
    // the daemon's send buffer: this target found that with the default
    // 208 KiB a few unread full-size replies made every other client's
    // replies fail (EAGAIN); the daemon now raises it (server.rs,
    // UNIX_SEND_BUFFER), but where the kernel refuses it is still 208 KiB,
    // and that is a limit, not a bug. So stay well below both.
    let mut budget = vec![0usize; world.targets.len()];
    for d in sc.datagrams.iter().take(8) {
        let ti = d.target as usize % world.targets.len();
        let t = &world.targets[ti];
        let data = build_payload(d);
        let cost = data.len() + 2048;
        if budget[ti] + cost > 140_000 {
            continue;
        }
        budget[ti] += cost;
        let (client, unbound) = make_client(world, t, &d.source, &mut used);
        client.set_timeouts();
        let max = match &t.kind {
            TargetKind::Udp(a) if a.is_ipv4() => MAX_UDP4,
            TargetKind::Udp(_) => MAX_UDP6,
            TargetKind::Unix(_) => usize::MAX,
        };
        match client.send(&data, &t.kind) {
            Ok(n) => assert_eq!(n, data.len(), "a datagram is sent whole"),
            Err(e) if e.raw_os_error() == Some(nix::libc::EMSGSIZE) => {
                assert!(
                    data.len() > max || matches!(t.kind, TargetKind::Unix(_)),
                    "a {}-byte UDP datagram must be sendable",
                    data.len()
                );
                continue;
            }
            Err(e) => panic!("cannot send {} bytes to the server: {e}", data.len()),
        }
        let port = match &client {
            Client::Udp(s) => Some(s.local_addr().unwrap().port()),
            Client::Unix(..) => None,
        };
        let expect = if unbound {
            Expect::Unbound
        } else if data.len() > BUFFER_SIZE {
            Expect::TooLarge
        } else if port.is_some_and(|p| GUARDED.contains(&p) || world.own[t.server].contains(&p)) {
            Expect::Guarded
        } else if d.vanish && port.is_none() {
            Expect::SendFails
        } else if d.vanish {
            Expect::Lost
        } else {
            Expect::Reply(transform(t.reverse, &data))
        };
        let client = if d.vanish { None } else { Some(client) };
        sent.push(Sent {
            target: ti,
            client,
            expect,
            len: data.len(),
        });
    }

    // Every socket that got a datagram must still answer a good client; its
    // reply also proves the datagrams sent before it were handled.
    let tag = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut probes = vec![0u64; world.servers.len()];
    for (ti, t) in world.targets.iter().enumerate() {
        if sent.iter().any(|s| s.target == ti) {
            probe(t, tag);
            probes[t.server] += 1;
        }
    }

    let mut buf = vec![0u8; BUFFER_SIZE + 1];
    let mut want = vec![Stats::default(); world.servers.len()];
    let mut either = vec![0u64; world.servers.len()];
    for s in &sent {
        let t = &world.targets[s.target];
        let w = &mut want[t.server];
        w.received += 1;
        match &s.expect {
            Expect::Reply(data) => {
                w.answered += 1;
                let c = s.client.as_ref().unwrap();
                let (n, from) = c
                    .recv(&mut buf)
                    .unwrap_or_else(|e| panic!("no reply to a {}-byte datagram: {e}", s.len));
                assert_eq!(n, data.len(), "reply length");
                assert!(
                    buf[..n] == data[..],
                    "the reply is not the expected transform"
                );
                let want_from = match &t.kind {
                    TargetKind::Udp(a) => a.to_string(),
                    TargetKind::Unix(a) => format!("{a:?}"),
                };
                assert_eq!(from, want_from, "the reply comes from the server's address");
            }
            Expect::Lost => w.answered += 1,
            Expect::SendFails => either[t.server] += 1,
            Expect::Unbound => w.drop_one(Reason::Unbound),
            Expect::TooLarge => w.drop_one(Reason::TooLarge),
            Expect::Guarded => w.drop_one(Reason::LoopGuard),
        }
        if let Some(c) = &s.client {
            c.set_nonblocking(true);
            match c.recv(&mut buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Ok((n, _)) => panic!("an unexpected or second reply of {n} bytes"),
                Err(e) => panic!("recv: {e}"),
            }
        }
    }
    for (i, w) in want.iter_mut().enumerate() {
        w.received += probes[i];
        w.answered += probes[i];
    }

    // Counters are published after the reply is sent: wait (bounded) for
    // them to settle, then they must match exactly.
    let deadline = Instant::now() + WAIT;
    loop {
        let now = stats(world);
        let got: Vec<Stats> = before.iter().zip(&now).map(|(a, b)| delta(a, b)).collect();
        let matches = got.iter().zip(&want).zip(&either).all(|((g, w), &e)| {
            // The vanished Unix clients' replies: failed or (raced) sent.
            let failed = g[Reason::SendFailed];
            failed <= e
                && Stats {
                    answered: w.answered + (e - failed),
                    ..*w
                }
                .with(Reason::SendFailed, failed)
                    == *g
        });
        if matches {
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "counters moved by {got:?}, expected {want:?} with {either:?} either answered or failed"
            );
        }
        std::thread::yield_now();
    }
});
