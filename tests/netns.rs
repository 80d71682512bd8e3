//! Replies come from the address the request was sent to, on sockets bound
//! to 0.0.0.0 and [::], on a host with several addresses: a network
//! namespace this test creates (and always deletes), with 192.0.2.1,
//! 192.0.2.2, 2001:db8::1 and 2001:db8::2 on its loopback interface. No
//! traffic leaves it.
//!
//! Needs root and `ip` (iproute2). Without them the test says so and
//! passes, except under CI (`CI=true`), where it fails.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;

use nix::sched::{CloneFlags, setns};

use crate::util::{Daemon, WAIT, unique};

/// True when a test that cannot run must fail rather than skip.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (prints why) or, under CI, fails.
pub fn cannot_run(why: &str) {
    assert!(!required(), "CI=true but this test cannot run: {why}");
    eprintln!("skipped: {why}");
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip (install iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace owned by this test, deleted on drop (also when the
/// test panics).
pub struct Netns(String);

impl Netns {
    pub fn create(addrs: &[&str]) -> Result<Netns, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("needs root to create a network namespace".into());
        }
        let name = unique("dgecho-test");
        ip(&["netns", "add", &name])?;
        let ns = Netns(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"])?;
        for a in addrs {
            let mut args = vec!["-n", &ns.0, "addr", "add", a, "dev", "lo"];
            if a.contains(':') {
                args.push("nodad");
            }
            ip(&args)?;
        }
        Ok(ns)
    }

    /// Runs `f` on a thread that has entered the namespace: sockets it
    /// creates and processes it spawns live there. Other threads (and
    /// the test's own) stay where they are.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = std::fs::File::open(&path).unwrap();
                setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns into the test namespace");
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.0]) {
            eprintln!("cannot delete network namespace {}: {e}", self.0);
        }
    }
}

/// A client bound to `from`, connected to `to`: the kernel drops any
/// datagram on it that does not come from `to`.
fn ask(from: IpAddr, to: SocketAddr, msg: &[u8]) -> Result<Vec<u8>, String> {
    let c = UdpSocket::bind(SocketAddr::new(from, 0)).unwrap();
    c.connect(to).unwrap();
    c.set_read_timeout(Some(WAIT / 5)).unwrap();
    c.send(msg).unwrap();
    let mut buf = [0u8; 64];
    match c.recv(&mut buf) {
        Ok(n) => Ok(buf[..n].to_vec()),
        Err(e) => Err(format!("{from} asked {to}, no reply from {to}: {e}")),
    }
}

#[test]
fn wildcard_sockets_reply_from_the_address_asked() {
    let ns = match Netns::create(&[
        "192.0.2.1/24",
        "192.0.2.2/24",
        "2001:db8::1/64",
        "2001:db8::2/64",
    ]) {
        Ok(ns) => ns,
        Err(why) => return cannot_run(&why),
    };
    ns.run(|| {
        // [::] on its own port: it also takes IPv4 (as ::ffff:a.b.c.d)
        // unless bound v6-only, so it cannot share 0.0.0.0's port.
        let v4 = UdpSocket::bind("0.0.0.0:0").unwrap();
        let v6 = UdpSocket::bind("[::]:0").unwrap();
        let (p4, p6) = (
            v4.local_addr().unwrap().port(),
            v6.local_addr().unwrap().port(),
        );
        let mut d = Daemon::builder()
            .socket(v4, "any4")
            .socket(v6, "any6")
            .spawn()
            .wait_ready();
        let a = |s: &str| -> IpAddr { s.parse().unwrap() };
        // Each client is bound to the *other* address, so that a reply
        // from the kernel's own choice of source (the client's address,
        // on this interface) would come from the wrong one.
        let cases = [
            (a("192.0.2.2"), SocketAddr::new(a("192.0.2.1"), p4)),
            (a("192.0.2.1"), SocketAddr::new(a("192.0.2.2"), p4)),
            (a("2001:db8::2"), SocketAddr::new(a("2001:db8::1"), p6)),
            (a("2001:db8::1"), SocketAddr::new(a("2001:db8::2"), p6)),
            // IPv4 reaching the [::] socket.
            (a("192.0.2.2"), SocketAddr::new(a("192.0.2.1"), p6)),
            (a("192.0.2.1"), SocketAddr::new(a("192.0.2.2"), p6)),
        ];
        for (from, to) in cases {
            let reply = ask(from, to, b"where from").unwrap_or_else(|e| {
                panic!("{e}; dgecho's stderr:\n{}", d.stderr());
            });
            assert_eq!(reply, b"morf erehw");
        }
        let n = cases.len();
        d.wait_stats(|s| *s == crate::util::counted(n as u64, n as u64));
    });
    drop(ns);
}

/// Two namespaces joined by a veth pair: `a` has 10.77.0.1/24 and
/// fd00:77::1/64 on `va`, `b` has 10.77.0.2/24 and fd00:77::2/64 on `vb`,
/// each subnet with its broadcast address.
fn veth_pair() -> Result<(Netns, Netns), String> {
    let a = Netns::create(&[])?;
    let b = Netns::create(&[])?;
    ip(&[
        "link", "add", "va", "netns", &a.0, "type", "veth", "peer", "name", "vb", "netns", &b.0,
    ])?;
    for (ns, dev, v4, v6) in [
        (&a, "va", "10.77.0.1/24", "fd00:77::1/64"),
        (&b, "vb", "10.77.0.2/24", "fd00:77::2/64"),
    ] {
        ip(&["-n", &ns.0, "addr", "add", v4, "brd", "+", "dev", dev])?;
        ip(&["-n", &ns.0, "addr", "add", v6, "dev", dev, "nodad"])?;
        ip(&["-n", &ns.0, "link", "set", dev, "up"])?;
        ip(&["-n", &ns.0, "route", "add", "224.0.0.0/4", "dev", dev])?;
    }
    Ok((a, b))
}

/// The Fraggle attack (CERT CA-1996-01): a datagram to a broadcast or
/// multicast address, with a forged source, makes every echo service on
/// the subnet answer the victim. dgecho answers none of them, counts
/// them, and still answers unicast on the same sockets.
#[test]
fn broadcast_and_multicast_datagrams_are_never_answered() {
    let (a, b) = match veth_pair() {
        Ok(p) => p,
        Err(why) => return cannot_run(&why),
    };
    a.run(|| {
        let v4 = UdpSocket::bind("0.0.0.0:0").unwrap();
        let v6 = UdpSocket::bind("[::]:0").unwrap();
        let (p4, p6) = (
            v4.local_addr().unwrap().port(),
            v6.local_addr().unwrap().port(),
        );
        // Some socket on host a joins the group, so that a accepts it.
        let member = UdpSocket::bind("0.0.0.0:0").unwrap();
        member
            .join_multicast_v4(&"239.7.7.7".parse().unwrap(), &"10.77.0.1".parse().unwrap())
            .unwrap();
        let mut d = Daemon::builder()
            .socket(v4, "any4")
            .socket(v6, "any6")
            .spawn()
            .wait_ready();
        b.run(|| {
            let c = UdpSocket::bind("0.0.0.0:0").unwrap();
            c.set_broadcast(true).unwrap();
            c.set_read_timeout(Some(WAIT)).unwrap();
            c.send_to(b"to all", ("10.77.0.255", p4)).unwrap();
            c.send_to(b"to the group", ("239.7.7.7", p4)).unwrap();
            // Unicast on the same socket is answered, after the others.
            c.send_to(b"to you", ("10.77.0.1", p4)).unwrap();
            let mut buf = [0u8; 16];
            let (n, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"uoy ot");
            assert_eq!(from, SocketAddr::new("10.77.0.1".parse().unwrap(), p4));
            c.set_nonblocking(true).unwrap();
            assert!(c.recv_from(&mut buf).is_err(), "no other reply");
            // IPv6 all-nodes multicast, then unicast.
            let c6 = UdpSocket::bind("[::]:0").unwrap();
            c6.set_read_timeout(Some(WAIT)).unwrap();
            let index = nix::net::if_::if_nametoindex("vb").unwrap();
            let all_nodes = std::net::SocketAddrV6::new("ff02::1".parse().unwrap(), p6, 0, index);
            c6.send_to(b"to all6", all_nodes).unwrap();
            c6.send_to(b"to you6", ("fd00:77::1", p6)).unwrap();
            let n = c6.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"6uoy ot");
            c6.set_nonblocking(true).unwrap();
            assert!(c6.recv(&mut buf).is_err(), "no other IPv6 reply");
        });
        let s = d.wait_stats(|s| s.received == 5);
        assert_eq!(
            s,
            crate::util::counted(5, 2).with(dgecho::echo::Reason::Broadcast, 3),
            "{}",
            d.stderr()
        );
        d.wait_log("broadcast or multicast address");
        drop(member);
    });
}

/// Found by attack: a socket bound to a broadcast or multicast address
/// itself (a subnet's broadcast address, 255.255.255.255, 224.0.0.1),
/// rather than to the wildcard, answered every datagram sent there: the
/// Fraggle attack again, through a careless `ListenDatagram=` or
/// `--listen`. Such sockets now ask for each destination too, drop and
/// count those datagrams, and a warning says why at start-up.
#[test]
fn sockets_bound_to_a_group_address_never_answer() {
    let (a, b) = match veth_pair() {
        Ok(p) => p,
        Err(why) => return cannot_run(&why),
    };
    a.run(|| {
        let subnet = UdpSocket::bind("10.77.0.255:0").unwrap();
        let all = UdpSocket::bind("255.255.255.255:0").unwrap();
        // All hosts: every multicast-capable interface is a member.
        let group = UdpSocket::bind("224.0.0.1:0").unwrap();
        let ports = [&subnet, &all, &group].map(|s| s.local_addr().unwrap().port());
        let mut d = Daemon::builder()
            .socket(subnet, "subnet")
            .socket(all, "all")
            .socket(group, "group")
            .spawn()
            .wait_ready();
        b.run(|| {
            let c = UdpSocket::bind("10.77.0.2:0").unwrap();
            c.set_broadcast(true).unwrap();
            for (to, port) in ["10.77.0.255", "255.255.255.255", "224.0.0.1"]
                .into_iter()
                .zip(ports)
            {
                c.send_to(b"to all", (to, port)).unwrap();
            }
            let s = d.wait_stats(|s| s.received == 3);
            assert_eq!(
                s,
                crate::util::counted(3, 0).with(dgecho::echo::Reason::Broadcast, 3),
                "{}",
                d.stderr()
            );
            c.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 16];
            assert!(c.recv_from(&mut buf).is_err(), "no reply");
        });
        let log = d.wait_log("is bound to a multicast address");
        assert!(log.contains("is bound to the broadcast address"), "{log}");
        assert!(
            log.contains("is bound to a subnet's broadcast address"),
            "{log}"
        );
    });
}
