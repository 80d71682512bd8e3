//! Every default in one place: ports, paths, the loop-guard list and buffer
//! sizes. `serve`, `client`, `bench`, the fuzz targets and the tests all
//! read them from here, so that changing one never leaves a stale copy.

use std::path::PathBuf;
use std::time::Duration;

use crate::addr::Addr;

/// The UDP port `serve` binds on 127.0.0.1 when nothing else is given. The
/// echo port 7 needs privileges; socket activation is how dgecho gets it.
pub const UDP_PORT: u16 = 7007;

/// The socket of the packaged `dgecho.socket` unit.
pub const PACKAGED_SOCKET: &str = "/run/dgecho/dgecho.sock";

/// The UDP source ports that `serve` never answers by default: source port 0
/// (no real sender uses it) and the classic datagram services that answer
/// anything (echo 7, daytime 13, chargen 19, time 37). Two such services
/// pointed at each other would otherwise bounce a datagram forever; BSD
/// inetd refuses the same list.
pub const GUARD_PORTS: &str = "0,7,13,19,37";

/// [`GUARD_PORTS`] as numbers, for code that needs no parsing.
pub const GUARD_PORT_LIST: [u16; 5] = [0, 7, 13, 19, 37];

/// The receive buffer of one slot: larger than the largest UDP payload
/// (65,507 bytes on IPv4, 65,527 on IPv6). A Unix datagram that does not fit
/// is detected with `MSG_TRUNC` and dropped, never answered with a partial
/// copy.
pub const BUFFER_SIZE: usize = 65536;

/// The most datagrams one receive or send call of the server handles, as
/// the batched C loop does. Against 16, a full batch of small datagrams
/// pays a quarter of the system calls' fixed cost: measured on Unix 64-byte
/// datagrams, 4% less CPU per reply. Large datagrams get fewer
/// ([`LARGE_BATCH`]), to keep the resident size down.
pub const BATCH: usize = 64;

/// The most datagrams per call while large ones (over [`SMALL`] bytes)
/// arrive: when a large datagram lands in a slot past these anyway, the
/// pages it touched past the slot's first [`SMALL`] bytes are given back
/// to the kernel, so 16 slots of [`BUFFER_SIZE`], about 1 MiB per worker,
/// is what large datagrams keep resident.
pub const LARGE_BATCH: usize = 16;

/// A datagram up to this size touches only the first page of its slot (on
/// 4 KiB pages; see `Pace` in `echo::serve` for larger ones).
pub const SMALL: usize = 4096;

/// The send buffer asked for on Unix sockets (the kernel doubles it).
///
/// A Unix datagram stays charged to its sender's send buffer until the
/// receiver reads it, so every reply that a client has not read yet uses
/// the daemon's buffer, about 768 bytes for a short reply and 66 KiB for a
/// full one. With the default 208 KiB, 1,000 clients that send at once get
/// only about 270 replies (the rest fail with `EAGAIN`), and one client
/// that leaves four full-size replies unread stops every other client's
/// replies. 4 MiB (8 MiB charged) holds over 10,000 short replies.
pub const UNIX_SEND_BUFFER: usize = 4 << 20;

/// How often an idle worker wakes up to check whether it should stop; also
/// the worst-case delay between a stop request and a worker's exit.
pub const TICK: Duration = Duration::from_millis(250);

/// The per-source limit `serve` applies to UDP sources other than loopback
/// when `--rate-limit` is not given. An echo loop between two services
/// (started by one forged datagram, sent with the other's address and
/// port) runs at tens of thousands of datagrams a second; the first
/// datagram over the limit ends it, after about `burst` bounces. A client
/// checking a path sends far less.
pub const RATE_LIMIT: crate::ratelimit::Rate = crate::ratelimit::Rate {
    per_sec: 1000.0,
    burst: 2000,
};

/// The most sockets dgecho takes from systemd. Each gets a thread and 4 MiB
/// of buffer address space (small datagrams keep about 256 KiB of it
/// resident, large ones about 1 MiB), and a socket unit with more than a
/// few is a mistake; the bound also keeps a wild `LISTEN_FDS` from costing
/// memory.
pub const MAX_LISTEN_FDS: usize = 1024;

/// The largest `bench --window`.
pub const BENCH_MAX_WINDOW: usize = 4096;

/// The smallest `bench --size`: each request carries its sequence number.
pub const BENCH_MIN_SIZE: usize = 8;

/// The most `bench --flows`: each is a socket with its own ring of
/// requests and histogram, about 230 KiB, served by one thread.
pub const BENCH_MAX_FLOWS: usize = 64;

/// The highest `bench --rate`, in requests per second: beyond what one
/// generator thread can send, where the schedule means nothing.
pub const BENCH_MAX_RATE: f64 = 10_000_000.0;

/// How often `bench` prints an interval line when its output is a
/// terminal and `--interval` is not given (ping's and iperf's second).
pub const BENCH_INTERVAL: Duration = Duration::from_secs(1);

/// The largest UDP payload over IPv4, and so the largest `bench --size`.
pub const MAX_UDP_PAYLOAD: usize = 65507;

/// The size of a `client --count` datagram unless `--size` says otherwise
/// (ping's 56 bytes of data and 8 of header).
pub const PING_SIZE: usize = 64;

/// The smallest `client --size`: each datagram carries its sequence number
/// as 16 hexadecimal digits.
pub const PING_MIN_SIZE: usize = 16;

/// The time between `client --count` datagrams, as with ping.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);

/// The file name of the default socket in a runtime directory.
pub const SOCKET_NAME: &str = "dgecho.sock";

/// Where systemd puts each user's `XDG_RUNTIME_DIR`: `/run/user/UID`.
pub const RUNTIME_DIRS: &str = "/run/user";

/// The Unix socket `serve` binds when nothing else is given:
/// `$XDG_RUNTIME_DIR/dgecho.sock`, or `dgecho-UID.sock` in the temporary
/// directory (`$TMPDIR`, normally /tmp).
pub fn unix_path() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join(SOCKET_NAME),
        None => tmp_path(nix::unistd::getuid().as_raw()),
    }
}

/// `dgecho-UID.sock` in the temporary directory: the default socket of a
/// daemon that user started by hand without `XDG_RUNTIME_DIR`.
pub fn tmp_path(uid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("dgecho-{uid}.sock"))
}

/// The addresses `serve` binds when there is neither a socket from systemd
/// nor a `--listen` option.
pub fn serve_addrs() -> Vec<Addr> {
    vec![
        Addr::Udp {
            host: "127.0.0.1".into(),
            port: UDP_PORT,
        },
        Addr::UnixPath(unix_path()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_port_forms_agree() {
        let parsed: Vec<u16> = GUARD_PORTS.split(',').map(|p| p.parse().unwrap()).collect();
        assert_eq!(parsed, GUARD_PORT_LIST);
    }
}
