//! `dgecho bench` against an in-process `dgecho::echo::Server`: every
//! reply verified, nothing lost, a wrong `--reply` expectation reported as
//! mismatches, and remote targets refused. No assertion depends on speed.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use dgecho::addr::Addr;
use dgecho::bench::{Options, measure};
use dgecho::echo::ReplyMode;
use dgecho::echo::{self as server, Server};
use dgecho::listener::Listener;

use crate::util;

fn udp_server(reply: ReplyMode) -> (Server, Addr) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let opts = server::Options {
        reply,
        ..server::Options::default()
    };
    let server = Server::start(vec![Listener::from_udp(sock, "bench").unwrap()], &opts).unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    (server, addr)
}

fn options(target: Addr, window: usize, size: usize, reply: ReplyMode) -> Options {
    Options {
        target,
        window,
        size,
        duration: Duration::from_millis(300),
        reply,
        allow_remote: false,
        progress: false,
        json: false,
    }
}

#[test]
fn udp_window_every_reply_verified() {
    let (server, addr) = udp_server(ReplyMode::Reverse);
    let r = measure(&options(addr, 32, 100, ReplyMode::Reverse)).unwrap();
    let stats = server.stop().0;
    assert!(r.sent > 0, "{r:?}");
    assert_eq!(r.replies, r.sent, "every request answered: {r:?}");
    assert_eq!((r.lost, r.late, r.mismatched), (0, 0, 0), "{r:?}");
    assert!(r.rtt_p50_us > 0.0 && r.rtt_p50_us <= r.rtt_p99_us, "{r:?}");
    assert!(r.rtt_p99_us <= r.rtt_p999_us && r.rtt_p999_us <= r.rtt_max_us);
    // The warm-up exchange plus every measured request reached the server.
    assert_eq!(stats.answered, r.sent + 1);
}

#[test]
fn unix_ping_pong_echo_mode() {
    let name = util::unique("dgecho-bench");
    let sa = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&sa).unwrap();
    let opts = server::Options {
        reply: ReplyMode::Echo,
        ..server::Options::default()
    };
    let server = Server::start(vec![Listener::from_unix(sock, "bench")], &opts).unwrap();
    let target = format!("unix:@{name}").parse().unwrap();
    let r = measure(&options(target, 1, 8, ReplyMode::Echo)).unwrap();
    server.stop().1.unwrap();
    assert!(r.replies > 0);
    assert_eq!(r.replies, r.sent);
    assert_eq!((r.lost, r.late, r.mismatched), (0, 0, 0), "{r:?}");
}

#[test]
fn wrong_reply_mode_is_mismatched() {
    let (server, addr) = udp_server(ReplyMode::Echo);
    let r = measure(&options(addr, 8, 64, ReplyMode::Reverse)).unwrap();
    server.stop().1.unwrap();
    assert_eq!(r.replies, 0, "{r:?}");
    assert!(r.mismatched > r.sent / 2, "{r:?}");
    // The warm-up datagram is not counted as sent, so not as mismatched.
    assert!(r.mismatched <= r.sent, "more mismatched than sent: {r:?}");
    assert_eq!(r.lost, 0, "a wrong reply still ends the wait: {r:?}");
}

#[test]
fn binary_prints_json_and_fails_on_mismatch() {
    let (server, addr) = udp_server(ReplyMode::Reverse);
    let a = addr.to_string();
    let (code, out, err) = util::run(&["bench", &a, "-d", "0.2", "-w", "4", "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.is_empty(),
        "no progress line without a terminal: {err:?}"
    );
    let line = out.trim();
    assert!(line.starts_with('{') && line.ends_with('}') && !line.contains('\n'));
    for field in [
        "\"target\":",
        "\"replies_per_s\":",
        "\"lost\":0,",
        "\"late\":0,",
        "\"mismatched\":0,",
        "\"rtt_p50_us\":",
        "\"rtt_p99_us\":",
        "\"rtt_p999_us\":",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    let (code, out, err) = util::run(&["bench", &a, "-d", "0.2", "--reply", "echo"], &[]);
    server.stop().1.unwrap();
    assert_eq!(code, 1);
    assert!(
        out.contains("mismatched"),
        "the report is still printed: {out}"
    );
    assert!(out.contains("RTT: no replies verified"), "{out}");
    assert!(
        !out.contains("p50"),
        "no RTT without a verified reply: {out}"
    );
    assert!(
        err.contains("did not match what --reply echo expects"),
        "{err}"
    );
}

#[test]
fn remote_target_needs_allow_remote() {
    let (code, _, err) = util::run(&["bench", "192.0.2.1:7", "-d", "0.1"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("dgecho: error: refusing to load udp:192.0.2.1:7"),
        "{err}"
    );
    assert!(err.contains("--allow-remote"), "{err}");
}
