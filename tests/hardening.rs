//! What a hostile local user, a peer or a careless operator tried, and what
//! the daemon must do instead of going silent, blocking, spinning, crashing
//! or lying in its logs.

use std::net::UdpSocket;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::Signal;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, UnixAddr, bind, sendto, setsockopt, socket, sockopt,
};

use dgecho::echo::Reason;

use crate::util::*;

/// A Unix datagram daemon on a fresh path.
fn unix_daemon(dir: &TempDir, builder: DaemonBuilder) -> (Daemon, std::path::PathBuf) {
    let path = dir.join("echo.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    (builder.socket(sock, "unix").spawn(), path)
}

/// Proves the daemon answers: one exchange from a fresh client.
fn answers(path: &std::path::Path) {
    let c = autobound();
    c.send_to(b"ping", path).unwrap();
    let mut buf = [0u8; 8];
    let n = c.recv(&mut buf).expect("the daemon answers");
    assert_eq!(&buf[..n], b"gnip");
}

/// Sends `len` bytes from a client bound to `addr`.
fn send_from(addr: &UnixAddr, to: &std::path::Path, len: usize) {
    let fd = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(fd.as_raw_fd(), addr).unwrap();
    setsockopt(&fd, sockopt::SndBuf, &(1 << 20)).unwrap();
    let dst = UnixAddr::new(to).unwrap();
    sendto(
        fd.as_raw_fd(),
        &vec![b'x'; len],
        &dst,
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    if let Some(p) = addr.path() {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn a_notify_socket_nobody_reads_never_blocks_shutdown() {
    let dir = TempDir::new();
    let (mut d, path) = unix_daemon(&dir, Daemon::builder().fill_notify_queue());
    // No READY=1 can arrive: a reply is the signal that it runs.
    answers(&path);
    d.signal(Signal::SIGTERM);
    let (status, took) = d.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let log = d.stderr();
    assert!(log.contains("cannot notify the service manager"), "{log}");
    assert!(log.contains("stopping (received SIGTERM)"), "{log}");
}

#[test]
fn passed_sockets_are_made_blocking_and_close_on_exec() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let addr = sock.local_addr().unwrap();
    let d = Daemon::builder().socket(sock, "nb").spawn().wait_ready();
    let c = udp("127.0.0.1:0");
    c.send_to(b"ab", addr).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(c.recv(&mut buf).unwrap(), 2);
    // O_NONBLOCK belongs to the open file description, which the test's
    // own copy shares: the daemon must have cleared it, or its idle loop
    // spins (receives return EAGAIN at once instead of waiting).
    let flags = OFlag::from_bits_truncate(fcntl(d.sockets[0].as_fd(), FcntlArg::F_GETFL).unwrap());
    assert!(!flags.contains(OFlag::O_NONBLOCK), "{flags:?}");
    // Close-on-exec is per descriptor: read it from the daemon's fdinfo.
    let info = std::fs::read_to_string(format!("/proc/{}/fdinfo/3", d.child.id())).unwrap();
    let octal = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
        .unwrap();
    assert_ne!(octal & 0o2000000, 0, "fd 3 is close-on-exec: {info}");
}

#[test]
fn peer_chosen_addresses_cannot_forge_journal_lines() {
    use nix::sys::stat::fstat;
    use std::io::Read;
    let dir = TempDir::new();
    let (r, w) = nix::unistd::pipe().unwrap();
    let st = fstat(&w).unwrap();
    // -vv: one trace line per datagram, naming its sender.
    let builder = Daemon::builder()
        .arg("-vv")
        .env("JOURNAL_STREAM", &format!("{}:{}", st.st_dev, st.st_ino))
        .stderr(w);
    let (mut d, path) = unix_daemon(&dir, builder);
    d.wait_notify("READY=1");
    // A warning (too large) from a forged path, traces from both.
    let forged_path = dir.join("x\n<0>dgecho: forged by a path");
    send_from(&UnixAddr::new(&forged_path).unwrap(), &path, 100_000);
    send_from(&UnixAddr::new(&forged_path).unwrap(), &path, 8);
    let forged_name = b"y\n<1>dgecho: forged by a name";
    send_from(&UnixAddr::new_abstract(forged_name).unwrap(), &path, 8);
    d.wait_stats(|s| s.received == 3);
    answers(&path);
    d.signal(Signal::SIGTERM);
    d.wait_exit();
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    for line in out.lines() {
        let prio = line
            .strip_prefix('<')
            .and_then(|l| l.split_once('>'))
            .map(|(p, _)| p);
        assert!(
            matches!(prio, Some("3" | "4" | "6" | "7")),
            "every line starts with dgecho's own priority: {line:?}\n{out}"
        );
    }
    assert!(out.contains("x\\n<0>dgecho: forged by a path"), "{out}");
    assert!(out.contains("@y\\n<1>dgecho: forged by a name"), "{out}");
}

#[test]
fn a_client_on_a_108_byte_path_is_logged_exactly() {
    let dir = TempDir::new();
    let (mut d, path) = unix_daemon(&dir, Daemon::builder());
    d.wait_notify("READY=1");
    let mut long = dir.join("c").display().to_string();
    while long.len() < 108 {
        long.push('p');
    }
    assert_eq!(long.len(), 108);
    // A path that fills sun_path has no terminating NUL. nix and Python
    // refuse to bind one; Perl (perl-base, on every Debian system) does.
    let script = "use Socket; socket(my $s, PF_UNIX, SOCK_DGRAM, 0) or die $!; \
        setsockopt($s, SOL_SOCKET, SO_SNDBUF, 1 << 20); \
        bind($s, pack_sockaddr_un($ARGV[0])) or die \"bind: $!\"; \
        send($s, 'x' x 100000, 0, pack_sockaddr_un($ARGV[1])) or die \"send: $!\";";
    let status = std::process::Command::new("perl")
        .args(["-e", script, &long])
        .arg(&path)
        .status()
        .expect("perl runs");
    assert!(status.success());
    let log = d.wait_log("100000-byte datagram");
    assert!(log.contains(&format!("from {long}: ")), "{log}");
}

#[test]
fn sigusr1_and_sighup_log_the_counters_and_the_daemon_goes_on() {
    let dir = TempDir::new();
    let (d, path) = unix_daemon(&dir, Daemon::builder());
    let mut d = d.wait_ready();
    answers(&path);
    d.signal(Signal::SIGUSR1);
    // The reply can arrive before its counter is published: wait for the
    // count of datagrams, which is published before the reply is sent.
    d.wait_log("received SIGUSR1: received 1, answered ");
    answers(&path);
    d.signal(Signal::SIGHUP);
    d.wait_log("received SIGHUP: received 2, answered ");
    answers(&path);
    d.signal(Signal::SIGTERM);
    d.wait_notify("STOPPING=1");
    let (status, _) = d.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    assert_eq!(d.final_stats("SIGTERM"), counted(3, 3));
}

/// Found by attack: SIGUSR2 and SIGALRM, whose default action ends a
/// process, killed the daemon with no `STOPPING=1` and no final counters.
#[test]
fn no_stray_signal_ends_the_daemon_silently() {
    let dir = TempDir::new();
    let (d, path) = unix_daemon(&dir, Daemon::builder());
    let mut d = d.wait_ready();
    answers(&path);
    d.signal(Signal::SIGUSR2);
    d.wait_log("received SIGUSR2: received 1, answered ");
    answers(&path);
    d.signal(Signal::SIGALRM);
    d.wait_notify("STOPPING=1");
    let (status, _) = d.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    assert_eq!(d.final_stats("SIGALRM"), counted(2, 2));
}

#[test]
fn starts_and_answers_without_proc() {
    if std::process::Command::new("unshare")
        .args(["--mount", "true"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to make a mount namespace (it runs as root)"
        );
        eprintln!("SKIP: cannot make a mount namespace here");
        return;
    }
    let dir = TempDir::new();
    let (d, path) = unix_daemon(&dir, Daemon::builder().without_proc());
    let d = d.wait_ready();
    answers(&path);
    assert!(!d.stderr().contains("not open"), "{}", d.stderr());
}

#[test]
fn a_connected_udp_socket_is_warned_about() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect("127.0.0.1:9").unwrap();
    let d = Daemon::builder().socket(sock, "conn").spawn().wait_ready();
    d.wait_log("connected to 127.0.0.1:9");
}

#[test]
fn serve_refuses_unbounded_or_accidental_settings() {
    for (args, needle) in [
        (&["serve", "--guard-ports", ""][..], "'none' to turn it off"),
        (
            &["serve", "--idle-timeout", "1ms"][..],
            "from 100ms to 365 days",
        ),
        (
            &["serve", "--idle-timeout", "100000000000000000000"][..],
            "longer than a year",
        ),
        (
            &["serve", "--idle-timeout", "9999999h"][..],
            "longer than a year",
        ),
    ] {
        let (code, _, err) = run(args, &[]);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    for fds in ["1000000000", "18446744073709551615"] {
        let d = Daemon::builder().env("LISTEN_FDS", fds).spawn();
        let mut d = d;
        let (status, _) = d.wait_exit();
        assert_eq!(status.code(), Some(6), "LISTEN_FDS={fds}: {}", d.stderr());
        assert!(d.stderr().contains("from 0 to 1024"), "{}", d.stderr());
    }
}

#[test]
fn a_huge_watchdog_usec_is_bounded() {
    let dir = TempDir::new();
    let builder = Daemon::builder().env("WATCHDOG_USEC", "18446744073709551615");
    let (d, path) = unix_daemon(&dir, builder);
    let mut d = d.wait_ready();
    answers(&path);
    d.wait_notify("WATCHDOG=1");
    d.wait_log("using a day");
}

#[test]
fn one_users_unread_replies_never_silence_another_user() {
    unread_replies_of_one_user(1);
}

/// Found by attack: with `--workers 4`, each worker allowed a user half of
/// the whole send buffer by its own estimate, so one user's unread replies,
/// spread over the workers, filled it and nobody else was answered.
#[test]
fn one_users_unread_replies_never_silence_another_user_with_four_workers() {
    unread_replies_of_one_user(4);
}

fn unread_replies_of_one_user(workers: u32) {
    let dir = TempDir::new();
    chmod(&dir.0, 0o755);
    let builder = Daemon::builder().args(&["--workers", &workers.to_string()]);
    let (d, path) = unix_daemon(&dir, builder);
    let mut d = d.wait_ready();
    chmod(&path, 0o666);
    // Root sends full-size datagrams from 40 sockets and never reads the
    // replies: 400 of 65,000 bytes, three times the daemon's send buffer.
    let hogs: Vec<UnixDatagram> = (0..40).map(|_| autobound()).collect();
    let big = vec![b'h'; 65_000];
    for h in &hogs {
        setsockopt(h, sockopt::SndBuf, &(1 << 20)).unwrap();
        for _ in 0..10 {
            h.send_to(&big, &path).unwrap();
        }
    }
    d.wait_stats(|s| s.received == 400);
    nobody_is_answered(&mut d, &path, 400);
    d.wait_log("has left too many replies unread");
    drop(hogs);
}

/// Another user (nobody) is still answered once `hogged` datagrams have
/// left their replies unread, and the hog's excess was refused.
fn nobody_is_answered(d: &mut Daemon, path: &std::path::Path, hogged: u64) {
    let mut client = Command::new(BIN);
    client.args(["client", path.to_str().unwrap(), "hello"]);
    let out = as_nobody(&mut client).output().unwrap();
    assert!(
        out.status.success(),
        "nobody gets no reply while root's replies sit unread: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.stderr()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "olleh\n");
    let s = d.wait_stats(|s| s.received == hogged + 1);
    assert!(s[Reason::Unread] > 0, "the hog's excess was refused: {s}");
}

/// Runs `f` in a network namespace of the test's own where a Unix socket
/// queues 512 datagrams (`net.unix.max_dgram_qlen`, as systemd sets it),
/// so that hundreds of them can wait for a stopped daemon; or skips.
fn with_long_unix_queues(f: impl FnOnce() + Send) {
    let ns = match crate::netns::Netns::create(&[]) {
        Ok(ns) => ns,
        Err(e) => return crate::netns::cannot_run(&e),
    };
    ns.run(|| {
        std::fs::write("/proc/sys/net/unix/max_dgram_qlen", "512").unwrap();
        f();
    });
}

/// Found by attacking credentials on demand: the worst case is a hog that
/// fills the daemon's whole receive queue with full-size datagrams while
/// no credentials are passed (here 512 of them, systemd's
/// `net.unix.max_dgram_qlen`, in a network namespace of the test's own),
/// so that none of its replies can be charged to its uid. The account of
/// unattributed replies is bounded like a user's: another user is still
/// answered.
#[test]
fn a_hog_that_queues_before_credentials_never_silences_another_user() {
    hog_queues_before_credentials(1);
}

/// Found by re-reading the batch of 64: a worker's check of the unread
/// total in the middle of a batch read a `SIOCOUTQ` that did not yet hold
/// the replies it had just allowed (they go out when the batch ends), and
/// took them for replies already read. Its share then let a whole batch
/// of 64 full-size replies through, four workers four batches: 16 MiB
/// into an 8 MiB send buffer, and replies to everyone failed.
#[test]
fn a_hog_that_queues_before_credentials_never_silences_another_user_with_four_workers() {
    hog_queues_before_credentials(4);
}

fn hog_queues_before_credentials(workers: u32) {
    with_long_unix_queues(|| {
        let dir = TempDir::new();
        chmod(&dir.0, 0o755);
        let builder = Daemon::builder().args(&["--workers", &workers.to_string()]);
        let (d, path) = unix_daemon(&dir, builder);
        let mut d = d.wait_ready();
        chmod(&path, 0o666);
        d.freeze();
        let hog = autobound();
        setsockopt(&hog, sockopt::SndBufForce, &(64 << 20)).unwrap();
        hog.set_nonblocking(true).unwrap();
        let big = vec![b'h'; 65_000];
        let mut queued = 0u64;
        while queued < 600 && hog.send_to(&big, &path).is_ok() {
            queued += 1;
        }
        assert!(
            queued >= 500,
            "only {queued} queued: was the queue length set?"
        );
        d.signal(Signal::SIGCONT);
        let s = d.wait_stats(|s| s.received == queued);
        assert_eq!(
            s[Reason::SendFailed],
            0,
            "the share refuses replies before the send buffer is full: {s}"
        );
        nobody_is_answered(&mut d, &path, queued);
        drop(hog);
    });
}

/// The resident size of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Found by attacking the batch of 64: a batch of large datagrams after
/// small ones fills 64 slots of 64 KiB, and those 4 MiB stayed resident
/// for good. The pages they filled in the slots past the first 16 are
/// given back, so large datagrams keep about 1 MiB resident, as with a
/// batch of 16.
#[test]
fn a_batch_of_large_datagrams_leaves_no_more_than_16_slots_resident() {
    with_long_unix_queues(|| {
        let dir = TempDir::new();
        let (d, path) = unix_daemon(&dir, Daemon::builder());
        // Nothing received yet: the loop waits for a whole batch.
        let mut d = d.wait_ready();
        let before = rss_kib(d.child.id());
        d.freeze();
        let c = autobound();
        setsockopt(&c, sockopt::SndBufForce, &(64 << 20)).unwrap();
        let big = vec![b'b'; 65_000];
        for _ in 0..200 {
            c.send_to(&big, &path).unwrap();
        }
        d.signal(Signal::SIGCONT);
        d.wait_stats(|s| s.received == 200);
        let grew = rss_kib(d.child.id()).saturating_sub(before);
        assert!(
            grew < 2048,
            "large datagrams left {grew} KiB more resident (16 slots are 1024)"
        );
        // Once small datagrams have come for a while, a queue of them fills
        // whole batches again, the released slots included, and every one
        // is answered with its own bytes.
        let c = autobound();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 16];
        for _ in 0..100 {
            c.send_to(b"ping", &path).unwrap();
            assert_eq!(c.recv(&mut buf).unwrap(), 4);
        }
        d.freeze();
        for i in 0..200u32 {
            c.send_to(&i.to_be_bytes(), &path).unwrap();
        }
        d.signal(Signal::SIGCONT);
        for i in 0..200u32 {
            let n = c.recv(&mut buf).unwrap();
            let mut want = i.to_be_bytes();
            want.reverse();
            assert_eq!(&buf[..n], &want, "reply {i}");
        }
    });
}

#[test]
fn datagrams_the_kernel_drops_are_counted() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    // A tiny receive queue, so that a burst overflows it.
    setsockopt(&sock, sockopt::RcvBuf, &2048).unwrap();
    let addr = sock.local_addr().unwrap();
    let mut d = Daemon::builder().socket(sock, "u").spawn().wait_ready();
    d.freeze();
    let c = udp("127.0.0.1:0");
    for _ in 0..200 {
        c.send_to(&[0u8; 512], addr).unwrap();
    }
    d.signal(Signal::SIGCONT);
    // A datagram sent after the drops carries their count.
    let probe = udp("127.0.0.1:0");
    let mut buf = [0u8; 8];
    loop {
        probe.send_to(b"ok", addr).unwrap();
        if probe.recv(&mut buf).is_ok() {
            break;
        }
    }
    let s = d.wait_stats(|s| s[Reason::KernelDropped] > 0);
    assert!(s[Reason::KernelDropped] < 200, "{s}");
    d.signal(Signal::SIGTERM);
    d.wait_exit();
    let fin = d.final_stats("SIGTERM");
    assert!(fin[Reason::KernelDropped] > 0, "{fin}");
    assert_eq!(fin.received, fin.answered + fin.dropped(), "{fin}");
}

/// Found by attack as a careless operator: too low a file or thread limit
/// for the sockets and `--workers` asked for failed with a bare "EMFILE"
/// or "Resource temporarily unavailable" and exit status 1. The error now
/// names the limit and the setting that raises it, as a configuration
/// error (exit 6).
#[test]
fn too_low_fd_or_thread_limits_are_named() {
    let mut fds = Command::new("prlimit");
    fds.args(["--nofile=8", BIN, "serve"]);
    for _ in 0..5 {
        fds.args(["--listen", "udp:127.0.0.1:0"]);
    }
    let (code, _, err) = run_with(&mut fds, &[], None);
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("dgecho: error: out of file descriptors: this process may open only 8"),
        "{err}"
    );
    assert!(err.contains("LimitNOFILE="), "{err}");

    let mut threads = Command::new("prlimit");
    threads.args([
        "--nproc=1",
        BIN,
        "serve",
        "--workers",
        "8",
        "--listen",
        "udp:127.0.0.1:0",
    ]);
    let (code, _, err) = run_with(as_nobody(&mut threads), &[], None);
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("dgecho: error: the system refused another thread: lower --workers"),
        "{err}"
    );
}

/// Found by attack as a careless operator: the same `--listen` address
/// twice failed as if "another server" held it, when the other one was
/// the same command line. It is now a usage error that says so.
#[test]
fn the_same_listen_address_twice_is_a_usage_error() {
    let dir = TempDir::new();
    let path = dir.join("twice.sock");
    let p = path.display().to_string();
    for (a, b) in [
        ("udp:127.0.0.1:9".to_string(), "127.0.0.1:9".to_string()),
        (format!("unix:{p}"), p.clone()),
        ("unix:@dgecho-twice".into(), "unix:@dgecho-twice".into()),
    ] {
        let (code, _, err) = run(&["serve", "--listen", &a, "--listen", &b], &[]);
        assert_eq!(code, 2, "{a} {b}: {err}");
        assert!(err.contains("names the same address as --listen"), "{err}");
        assert!(!err.contains("another server"), "{err}");
    }
    assert!(!exists(&path), "nothing was bound");
}

#[test]
fn listening_on_a_group_address_is_a_configuration_error() {
    for addr in ["224.0.0.1:7007", "255.255.255.255:7007", "[ff02::1]:7007"] {
        let (code, _, err) = run(&["serve", "--listen", addr], &[]);
        assert_eq!(code, 6, "{addr}: {err}");
        assert!(
            err.contains("never answers datagrams sent to one"),
            "{addr}: {err}"
        );
    }
}

/// The minor page faults of process `pid` so far, all threads (field 10).
fn minor_faults(pid: u32) -> u64 {
    let fields = stat_fields(format!("/proc/{pid}/stat").as_ref());
    fields[7].parse().unwrap()
}

/// Found by attacking the batch of 64: a large datagram in a slot past the
/// 16th gave back the whole of slots 16 to 63, also the first page of
/// each, where small datagrams land; every one of those pages then faulted
/// in again (a zeroed page each, about 1.3 us here) on the next full batch.
/// A client that sends 64 lone datagrams and then 17 with the last one
/// large forces that every 81 datagrams: 48 faults and a 3 MiB madvise,
/// about 95 us, for 81 replies. Only the pages a large datagram touched
/// past a slot's first are given back now.
#[test]
fn small_datagrams_after_a_released_slot_cost_no_page_faults() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let c = udp("127.0.0.1:0");
    // Room for a whole burst on both sides, past net.core.rmem_max.
    let roomy = |s: &UdpSocket| setsockopt(s, sockopt::RcvBufForce, &(16 << 20));
    if let Err(e) = roomy(&sock).and_then(|()| roomy(&c)) {
        return crate::netns::cannot_run(&format!("SO_RCVBUFFORCE needs CAP_NET_ADMIN: {e}"));
    }
    let addr = sock.local_addr().unwrap();
    let d = Daemon::builder().socket(sock, "udp").spawn().wait_ready();
    let pid = d.child.id();
    // 64 datagrams queued at once, the one at `large` (if any) of 65,000
    // bytes: one batch, every slot used; each is answered with its bytes.
    let burst = |large: Option<usize>| {
        d.freeze();
        for i in 0..64usize {
            let len = if Some(i) == large { 65_000 } else { 64 };
            c.send_to(&vec![i as u8; len], addr).unwrap();
        }
        d.signal(Signal::SIGCONT);
        let mut buf = vec![0u8; 65536];
        for i in 0..64usize {
            let n = c.recv(&mut buf).expect("a reply to each datagram");
            assert!(n > 0 && buf[..n].iter().all(|&b| b == i as u8), "reply {i}");
        }
    };
    let ping_pong = |rounds: usize| {
        let mut buf = [0u8; 8];
        for _ in 0..rounds {
            c.send_to(b"ping", addr).unwrap();
            assert_eq!(c.recv(&mut buf).unwrap(), 4);
        }
    };
    burst(None);
    burst(None);
    // Slot 63 takes a large one: slots 16 to 63 are given back.
    burst(Some(63));
    // 64 calls while large ones may come: one datagram each.
    ping_pong(64);
    let before = minor_faults(pid);
    // The first burst is read one at a time until the loop probes for a
    // backlog; the second fills a whole batch again.
    burst(None);
    burst(None);
    let faults = minor_faults(pid) - before;
    assert!(
        faults < 24,
        "{faults} page faults for 128 small datagrams after a release (48 slots' first pages)"
    );
}
