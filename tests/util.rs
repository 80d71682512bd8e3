//! Spawning `dgecho` like systemd does, and waiting on what it reports.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dgecho::echo::Stats;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub const BIN: &str = env!("CARGO_BIN_EXE_dgecho");

/// Counters with nothing dropped.
pub fn counted(received: u64, answered: u64) -> Stats {
    Stats {
        received,
        answered,
        ..Stats::default()
    }
}

/// Spawns are serialised: while one child is being started, the sockets it
/// must inherit are not close-on-exec, and no other test may fork then.
static SPAWN: Mutex<()> = Mutex::new(());

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    )
}

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let p = std::env::temp_dir().join(unique("dgecho-test"));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where the daemon's `NOTIFY_SOCKET` lives.
pub enum NotifyKind {
    Abstract,
    Path(PathBuf),
}

/// What `LISTEN_PID` is set to.
pub enum ListenPid {
    /// The child's own pid, as systemd sets it.
    Child,
    /// Some other value, or unset (`None`).
    Value(Option<String>),
}

pub struct DaemonBuilder {
    sockets: Vec<(OwnedFd, String)>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    listen_pid: ListenPid,
    names: bool,
    notify: NotifyKind,
    stderr_fd: Option<OwnedFd>,
    fill_notify: bool,
    without_proc: bool,
    user: Option<(u32, u32)>,
    umask: Option<u32>,
    netns: bool,
}

impl DaemonBuilder {
    /// Runs the daemon as `uid`:`gid` (the test runs as root).
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.user = Some((uid, gid));
        self
    }
    /// Starts the daemon with this umask, whatever the test's is.
    pub fn umask(mut self, mask: u32) -> Self {
        self.umask = Some(mask);
        self
    }
    /// Starts the daemon in a network namespace of its own (`unshare
    /// -rn`): its UDP ports are its own, whatever runs on the machine.
    /// Abstract sockets are per namespace too, so the notify socket must be
    /// a path.
    pub fn netns(mut self) -> Self {
        self.netns = true;
        self
    }
    /// Passes `fd` to the daemon (fd 3, 4, ... in the order given).
    pub fn socket(mut self, fd: impl Into<OwnedFd>, name: &str) -> Self {
        self.sockets.push((fd.into(), name.to_string()));
        self
    }
    pub fn arg(mut self, a: impl AsRef<str>) -> Self {
        self.args.push(a.as_ref().to_string());
        self
    }
    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.envs.push((k.into(), v.into()));
        self
    }
    pub fn listen_pid(mut self, p: ListenPid) -> Self {
        self.listen_pid = p;
        self
    }
    pub fn without_fdnames(mut self) -> Self {
        self.names = false;
        self
    }
    pub fn notify(mut self, n: NotifyKind) -> Self {
        self.notify = n;
        self
    }
    /// Fills the notify socket's queue before the daemon starts, as a
    /// service manager that stopped reading would leave it: no notify
    /// message arrives (so wait for a reply, not for READY=1).
    pub fn fill_notify_queue(mut self) -> Self {
        self.fill_notify = true;
        self
    }
    /// Runs the daemon in a mount namespace of its own with /proc
    /// unmounted, as in a sandbox that has none.
    pub fn without_proc(mut self) -> Self {
        self.without_proc = true;
        self
    }
    /// Uses `fd` as the daemon's stderr instead of a pipe the test reads.
    pub fn stderr(mut self, fd: OwnedFd) -> Self {
        self.stderr_fd = Some(fd);
        self
    }

    pub fn spawn(self) -> Daemon {
        let (notify, notify_env) = match &self.notify {
            NotifyKind::Abstract => {
                let name = unique("dgecho-notify");
                let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
                (UnixDatagram::bind_addr(&addr).unwrap(), format!("@{name}"))
            }
            NotifyKind::Path(p) => (UnixDatagram::bind(p).unwrap(), p.display().to_string()),
        };
        if self.fill_notify {
            let filler = UnixDatagram::unbound().unwrap();
            filler.set_nonblocking(true).unwrap();
            let to = notify.local_addr().unwrap();
            while filler.send_to_addr(b"FILLER=1", &to).is_ok() {}
        }
        // Map the sockets to 3, 4, ... with bash (dash cannot name fds
        // above 9) and set LISTEN_PID to the pid that exec keeps. First
        // park them on high fds (a source may itself be fd 3 or 4), then
        // close everything else above 2, then move them into place, so the
        // daemon sees exactly the fds systemd would give it.
        let mut script = String::new();
        for (i, (fd, _)) in self.sockets.iter().enumerate() {
            script.push_str(&format!("exec {}<&{}; ", 500 + i, fd.as_raw_fd()));
        }
        script.push_str(
            "for f in /proc/$$/fd/*; do n=${f##*/}; \
             if [ \"$n\" -gt 2 ] && [ \"$n\" -lt 500 ]; then eval \"exec $n<&-\" 2>/dev/null; fi; done; ",
        );
        for i in 0..self.sockets.len() {
            script.push_str(&format!("exec {}<&{} {}<&-; ", 3 + i, 500 + i, 500 + i));
        }
        match &self.listen_pid {
            ListenPid::Child => script.push_str("export LISTEN_PID=$$; "),
            ListenPid::Value(Some(v)) => script.push_str(&format!("export LISTEN_PID='{v}'; ")),
            ListenPid::Value(None) => {}
        }
        if self.without_proc {
            script.push_str("umount -l /proc || exit 97; ");
        }
        if let Some(mask) = self.umask {
            script.push_str(&format!("umask {mask:03o}; "));
        }
        script.push_str("exec \"$0\" \"$@\"");
        // unshare execs bash in its own process: $$ stays the pid that
        // dgecho gets.
        let mut cmd = if self.without_proc {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "bash"]);
            c
        } else if self.netns {
            let mut c = Command::new("unshare");
            c.args(["-rn", "bash"]);
            c
        } else {
            Command::new("bash")
        };
        cmd.arg("-c").arg(script).arg(BIN).args(&self.args);
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        for k in [
            "LISTEN_PID",
            "LISTEN_FDS",
            "LISTEN_FDNAMES",
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "JOURNAL_STREAM",
            "RUST_LOG",
        ] {
            cmd.env_remove(k);
        }
        cmd.env("NOTIFY_SOCKET", &notify_env);
        if !self.sockets.is_empty() {
            cmd.env("LISTEN_FDS", self.sockets.len().to_string());
            if self.names {
                let names: Vec<&str> = self.sockets.iter().map(|(_, n)| n.as_str()).collect();
                cmd.env("LISTEN_FDNAMES", names.join(":"));
            }
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        let piped = self.stderr_fd.is_none();
        match self.stderr_fd {
            Some(fd) => cmd.stderr(Stdio::from(fd)),
            None => cmd.stderr(Stdio::piped()),
        };

        let mut child = {
            let _guard = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
            for (fd, _) in &self.sockets {
                fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
            }
            let child = cmd.spawn().expect("cannot spawn bash");
            for (fd, _) in &self.sockets {
                fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).unwrap();
            }
            child
        };
        let log = Arc::new(Mutex::new(String::new()));
        let mut reader = None;
        if piped {
            let stderr = child.stderr.take().unwrap();
            let log = log.clone();
            reader = Some(std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            }));
        }
        Daemon {
            child,
            notify,
            log,
            reader,
            messages: Vec::new(),
            sockets: self.sockets.into_iter().map(|(fd, _)| fd).collect(),
        }
    }
}

/// A running `dgecho serve`.
pub struct Daemon {
    pub child: Child,
    notify: UnixDatagram,
    log: Arc<Mutex<String>>,
    /// Collects stderr until EOF; joined once the daemon has exited, so that
    /// its last words are in `log`.
    reader: Option<std::thread::JoinHandle<()>>,
    /// Every notify message received so far.
    pub messages: Vec<String>,
    /// The test's own copies of the passed sockets: they outlive the
    /// daemon, as systemd's do.
    pub sockets: Vec<OwnedFd>,
}

impl Daemon {
    pub fn builder() -> DaemonBuilder {
        DaemonBuilder {
            sockets: Vec::new(),
            args: vec!["serve".into()],
            envs: Vec::new(),
            listen_pid: ListenPid::Child,
            names: true,
            notify: NotifyKind::Abstract,
            stderr_fd: None,
            fill_notify: false,
            without_proc: false,
            user: None,
            umask: None,
            netns: false,
        }
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits for a notify message containing `needle`; returns it.
    pub fn wait_notify(&mut self, needle: &str) -> String {
        self.wait_notify_count(needle, 1)
    }

    /// Waits until `count` notify messages contained `needle`; returns the
    /// last of them.
    pub fn wait_notify_count(&mut self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + WAIT;
        let seen = |msgs: &[String]| msgs.iter().filter(|m| m.contains(needle)).count();
        if seen(&self.messages) >= count {
            return self
                .messages
                .iter()
                .rev()
                .find(|m| m.contains(needle))
                .unwrap()
                .clone();
        }
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no notify message with {needle:?} within {WAIT:?}; got {:?}; stderr:\n{}",
                self.messages,
                self.stderr()
            );
            self.notify.set_read_timeout(Some(left)).unwrap();
            if let Ok(n) = self.notify.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.messages.push(m.clone());
                if m.contains(needle) && seen(&self.messages) >= count {
                    return m;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "dgecho exited ({status}) before sending {needle:?}; stderr:\n{}",
                    self.stderr()
                );
            }
        }
    }

    pub fn wait_ready(mut self) -> Daemon {
        self.wait_notify("READY=1");
        self
    }

    /// Waits for a `STATUS=` line that satisfies `pred`.
    pub fn wait_status(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no matching STATUS= within {WAIT:?}; got {:?}",
                self.messages
            );
            self.notify.set_read_timeout(Some(left)).unwrap();
            if let Ok(n) = self.notify.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.messages.push(m.clone());
                if let Some(s) = m.lines().find_map(|l| l.strip_prefix("STATUS=")) {
                    if pred(s) {
                        return s.to_string();
                    }
                }
            }
        }
    }

    /// Waits for a `STATUS=` whose counters satisfy `pred`, read with the
    /// daemon's own parser.
    pub fn wait_stats(&mut self, pred: impl Fn(&Stats) -> bool) -> Stats {
        let s = self.wait_status(|s| s.parse::<Stats>().is_ok_and(|st| pred(&st)));
        s.parse().unwrap()
    }

    /// The counters of the final log line, "stopping (received SIG): ...",
    /// read with the daemon's own parser (which checks that the dropped
    /// total is the sum of its reasons); also checks that every datagram
    /// received was either answered or dropped.
    pub fn final_stats(&self, signal: &str) -> Stats {
        let log = self.stderr();
        let needle = format!("stopping (received {signal}): ");
        let line = log
            .lines()
            .find_map(|l| l.split_once(&needle).map(|(_, r)| r.to_string()))
            .unwrap_or_else(|| panic!("no final counters in the log:\n{log}"));
        let stats: Stats = line.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            stats.received,
            stats.answered + stats.dropped(),
            "received = answered + dropped: {line}"
        );
        stats
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Stops the daemon and waits until every thread of it has stopped, so
    /// that what is sent next queues whole. `kill` returns before the
    /// threads stop: one already woken in its receive call would take the
    /// next datagram first.
    pub fn freeze(&self) {
        self.signal(Signal::SIGSTOP);
        let pid = self.child.id();
        let deadline = Instant::now() + WAIT;
        loop {
            let stopped = std::fs::read_dir(format!("/proc/{pid}/task"))
                .unwrap()
                .flatten()
                .all(|t| {
                    stat_fields(&t.path().join("stat"))
                        .first()
                        .is_some_and(|s| s == "T")
                });
            if stopped {
                return;
            }
            assert!(Instant::now() < deadline, "the daemon never stopped");
            std::thread::yield_now();
        }
    }

    /// Waits for the daemon to exit; returns its status and the time taken.
    pub fn wait_exit(&mut self) -> (ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let took = start.elapsed();
                if let Some(r) = self.reader.take() {
                    r.join().unwrap();
                }
                return (status, took);
            }
            assert!(
                start.elapsed() < WAIT,
                "dgecho did not exit within {WAIT:?}; stderr:\n{}",
                self.stderr()
            );
            // The child's exit is the signal; this only paces the check.
            std::thread::park_timeout(Duration::from_millis(5));
        }
    }

    /// Waits until stderr contains `needle` (the log is the signal).
    pub fn wait_log(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let log = self.stderr();
            if log.contains(needle) {
                return log;
            }
            assert!(
                start.elapsed() < WAIT,
                "stderr never contained {needle:?}:\n{log}"
            );
            std::thread::park_timeout(Duration::from_millis(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `dgecho ARGS` to completion with a bounded wait; returns exit
/// code, stdout and stderr.
pub fn run(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    run_with(Command::new(BIN).args(args), envs, None)
}

pub fn run_with(
    cmd: &mut Command,
    envs: &[(&str, &str)],
    input: Option<&str>,
) -> (i32, String, String) {
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.env_remove("RUST_LOG").env_remove("JOURNAL_STREAM");
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = {
        let _guard = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        cmd.spawn().expect("cannot spawn dgecho")
    };
    if let Some(input) = input {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let te = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    // Bounded: a child that never exits is killed and the test fails,
    // instead of the read of its output waiting forever.
    let status = wait_child(&mut child, "the command's output follows its exit");
    let e = te.join().unwrap();
    (status.code().unwrap_or(-1), t.join().unwrap(), e)
}

/// Waits for `child` to exit, at most [`WAIT`]; kills it and fails the
/// test (showing `context`) if it does not.
pub fn wait_child(child: &mut Child, context: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > WAIT {
            let _ = child.kill();
            panic!("the child did not exit within {WAIT:?}: {context}");
        }
        // The exit is the signal; this only paces the check.
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// A UDP socket on an ephemeral loopback port.
pub fn udp(addr: &str) -> std::net::UdpSocket {
    let s = std::net::UdpSocket::bind(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// A Unix datagram client bound to an automatic abstract address.
pub fn autobound() -> UnixDatagram {
    let s = dgecho::autobind::autobound().unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// The user and group `nobody`, for tests that need someone other than
/// root.
pub const NOBODY: u32 = 65534;

/// `cmd`, run as nobody with no supplementary groups.
pub fn as_nobody(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    cmd.uid(NOBODY).gid(NOBODY)
}

/// Makes `path` mode `mode`.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Whether `program` can be run (it is installed).
pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A daemon serving a Unix socket at `DIR/NAME`, passed in as systemd
/// would, ready; and the socket's path.
pub fn unix_echo(dir: &TempDir, name: &str) -> (Daemon, PathBuf) {
    let path = dir.join(name);
    let d = Daemon::builder()
        .socket(UnixDatagram::bind(&path).unwrap(), "unix")
        .spawn()
        .wait_ready();
    (d, path)
}

/// The fields of a `/proc/.../stat` file after the command's closing
/// parenthesis (the command may hold spaces): field 3 (state) first.
pub fn stat_fields(path: &std::path::Path) -> Vec<String> {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    rest.split_whitespace().map(str::to_owned).collect()
}
