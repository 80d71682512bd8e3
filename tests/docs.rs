//! The man pages and shell completions under `packaging/` are generated from
//! the clap definition (`dgecho::cli::Cli`) and committed, so that packagers
//! need neither a build script nor a run of the binary to get them. This test
//! regenerates them in memory and fails when the committed files differ.
//!
//! To refresh them after changing the command line:
//!
//! ```text
//! DGECHO_BLESS=1 cargo test docs
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Inline, Roff, bold, italic, roman};

const BLESS_VAR: &str = "DGECHO_BLESS";

/// Every generated file, by path relative to the crate root.
fn generate() -> BTreeMap<PathBuf, String> {
    let mut files = BTreeMap::new();
    let mut cmd = dgecho::cli::Cli::command().disable_help_subcommand(true);
    // Propagates global options and gives subcommands their display names
    // ("dgecho-serve") and bin names ("dgecho serve").
    cmd.build();

    files.insert(man_path("dgecho"), main_page(&cmd));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let man = Man::new(sub.clone());
        let mut out = Vec::new();
        man.render(&mut out).unwrap();
        let mut page = String::from_utf8(out).unwrap();
        page.push_str(&see_also(&cmd, Some(sub.get_name())));
        let name = sub.get_display_name().unwrap_or(sub.get_name()).to_owned();
        files.insert(man_path(&name), page);
    }

    for (shell, file) in [
        (Shell::Bash, "dgecho.bash"),
        (Shell::Zsh, "_dgecho"),
        (Shell::Fish, "dgecho.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "dgecho", &mut out);
        files.insert(
            Path::new("packaging/completions").join(file),
            String::from_utf8(out).unwrap(),
        );
    }
    files
}

fn man_path(name: &str) -> PathBuf {
    Path::new("packaging/man").join(format!("{name}.1"))
}

/// dgecho(1): clap_mangen's sections, then ours. The command's after_help
/// (the address list) is left out here because ADDRESSES below says more.
fn main_page(cmd: &clap::Command) -> String {
    let man = Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    man.render_options_section(&mut out).unwrap();
    man.render_subcommands_section(&mut out).unwrap();
    let mut page = String::from_utf8(out).unwrap();
    page.push_str(&extra_sections());
    page.push_str(&see_also(cmd, None));
    page
}

fn section(r: &mut Roff, title: &str) {
    r.control("SH", [title]);
}

fn para(r: &mut Roff, text: impl Into<Vec<Inline>>) {
    r.control("PP", []);
    r.text(text);
}

fn item(r: &mut Roff, tag: impl Into<Vec<Inline>>, body: impl Into<Vec<Inline>>) {
    r.control("TP", []);
    r.text(tag);
    r.text(body);
}

fn example(r: &mut Roff, what: &str, lines: &[&str]) {
    para(r, [roman(what)]);
    r.control("PP", []);
    r.control("RS", ["4"]);
    r.control("nf", []);
    for line in lines {
        r.text([roman(*line)]);
    }
    r.control("fi", []);
    r.control("RE", []);
}

fn extra_sections() -> String {
    let mut r = Roff::default();

    section(&mut r, "ADDRESSES");
    para(
        &mut r,
        [roman(
            "serve --listen and the client's ADDR use one grammar. Anything else is rejected \
             with an error that lists these forms:",
        )],
    );
    item(
        &mut r,
        [bold("unix:"), italic("/path")],
        [roman(
            "A Unix datagram socket bound to a path in the file system.",
        )],
    );
    item(
        &mut r,
        [bold("unix:@"), italic("name")],
        [roman(
            "A Unix datagram socket in the abstract namespace (Linux): no file, gone with \
             the last socket.",
        )],
    );
    item(
        &mut r,
        [italic("/path")],
        [roman(
            "Any argument containing a slash is a Unix socket path.",
        )],
    );
    item(
        &mut r,
        [bold("udp:"), italic("HOST"), bold(":"), italic("PORT")],
        [roman(
            "UDP. HOST may be a host name, an IPv4 address or an IPv6 address in brackets.",
        )],
    );
    item(
        &mut r,
        [italic("HOST"), bold(":"), italic("PORT")],
        [roman("UDP, the same as udp:HOST:PORT.")],
    );
    item(
        &mut r,
        [bold("["), italic("IPV6"), bold("]:"), italic("PORT")],
        [roman("UDP over IPv6, for example [::1]:7.")],
    );
    para(
        &mut r,
        [roman(
            "Without sockets from systemd and without --listen, dgecho serve binds \
             127.0.0.1:7007 and $XDG_RUNTIME_DIR/dgecho.sock (/tmp/dgecho-UID.sock when \
             XDG_RUNTIME_DIR is unset), for trying it out by hand, and logs where it listens. \
             Without ADDR, dgecho client uses /run/dgecho/dgecho.sock when that socket exists, \
             otherwise the Unix socket that serve binds by default.",
        )],
    );

    section(&mut r, "FILES");
    item(
        &mut r,
        [italic("/run/dgecho/dgecho.sock")],
        [roman(
            "The Unix datagram socket of the packaged dgecho.socket unit (mode 0666: every \
             local user may use it), and the client's default address.",
        )],
    );
    item(
        &mut r,
        [italic("/usr/lib/systemd/system/dgecho.socket")],
        [roman(
            "The sockets systemd holds for the daemon: the Unix socket above and UDP port 7 \
             (echo) on 127.0.0.1 and [::1]. Enabled by the packages; the first datagram starts \
             the service. Debian installs the units in /lib/systemd/system.",
        )],
    );
    item(
        &mut r,
        [italic("/usr/lib/systemd/system/dgecho.service")],
        [roman(
            "The daemon, dgecho serve, as a hardened Type=notify service with a watchdog. It \
             is not enabled by itself: it is socket-activated. Change it with a drop-in \
             (systemctl edit dgecho.service).",
        )],
    );

    section(&mut r, "ENVIRONMENT");
    item(
        &mut r,
        [
            bold("LISTEN_PID"),
            roman(", "),
            bold("LISTEN_FDS"),
            roman(", "),
            bold("LISTEN_FDNAMES"),
        ],
        [roman(
            "Sockets passed in by systemd (sd_listen_fds(3)), from file descriptor 3 on. They \
             are used only when LISTEN_PID is the daemon's own PID. Every one must be a \
             datagram socket of the Unix, IPv4 or IPv6 family; anything else stops start-up \
             with an error naming the descriptor.",
        )],
    );
    item(
        &mut r,
        [bold("NOTIFY_SOCKET")],
        [roman(
            "Where serve sends READY=1, STATUS= with its counters, WATCHDOG=1 and STOPPING=1 \
             (sd_notify(3)). A path or an abstract @name.",
        )],
    );
    item(
        &mut r,
        [bold("WATCHDOG_USEC")],
        [roman(
            "When set (WatchdogSec= in the unit), serve sends WATCHDOG=1 at half this \
             interval, and only while every socket's loop is alive.",
        )],
    );
    item(
        &mut r,
        [bold("JOURNAL_STREAM")],
        [roman(
            "When standard error is the journal, log lines carry syslog priority prefixes \
             instead of time stamps.",
        )],
    );
    item(
        &mut r,
        [bold("RUST_LOG")],
        [roman(
            "Log filter in env_logger syntax (for example debug, or dgecho=trace); it \
             overrides -v and -q. At trace level serve logs one line per datagram.",
        )],
    );
    item(
        &mut r,
        [bold("XDG_RUNTIME_DIR")],
        [roman(
            "Where serve binds its default Unix socket, and where the client looks for it, \
             when neither systemd nor --listen gives a socket.",
        )],
    );

    section(&mut r, "EXIT STATUS");
    item(
        &mut r,
        [bold("0")],
        [roman(
            "Success: every message got its reply, or the daemon stopped cleanly (SIGTERM, \
             SIGINT or the idle timeout).",
        )],
    );
    item(
        &mut r,
        [bold("1")],
        [roman(
            "An error, printed as \"dgecho: error: ...\" with its causes: no reply within \
             --timeout, an unreachable address, a socket from systemd that is not a datagram \
             socket.",
        )],
    );
    item(
        &mut r,
        [bold("2")],
        [roman(
            "A usage error: an unknown option, a malformed address or value.",
        )],
    );

    section(&mut r, "EXAMPLES");
    example(
        &mut r,
        "Enable the packaged sockets, then ask the daemon (started by the first datagram):",
        &[
            "systemctl enable --now dgecho.socket",
            "dgecho client hello",
            "olleh",
        ],
    );
    example(
        &mut r,
        "The same over UDP on the echo port, with size, source and round-trip time:",
        &["dgecho client -v 127.0.0.1:7 hello"],
    );
    example(
        &mut r,
        "Run a daemon by hand on an abstract socket and a UDP port, answering RFC 862 style:",
        &["dgecho serve --listen unix:@dgecho --listen [::1]:7007 --reply echo"],
    );
    example(
        &mut r,
        "Send each line of a file as one datagram, waiting half a second for each reply:",
        &["dgecho client --timeout 0.5 unix:@dgecho < lines.txt"],
    );
    r.to_roff()
}

fn see_also(cmd: &clap::Command, current: Option<&str>) -> String {
    let mut refs: Vec<String> = Vec::new();
    if current.is_some() {
        refs.push("dgecho(1)".into());
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if Some(sub.get_name()) != current {
            refs.push(format!("dgecho-{}(1)", sub.get_name()));
        }
    }
    refs.extend(
        [
            "systemctl(1)",
            "systemd.socket(5)",
            "systemd.service(5)",
            "sd_listen_fds(3)",
        ]
        .map(String::from),
    );
    let mut r = Roff::default();
    section(&mut r, "SEE ALSO");
    r.text([roman(refs.join(", "))]);
    r.to_roff()
}

#[test]
fn man_pages_and_completions_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = generate();
    let bless = std::env::var_os(BLESS_VAR).is_some_and(|v| v == "1");

    // Man pages of subcommands that no longer exist.
    let stale: Vec<PathBuf> = fs::read_dir(root.join("packaging/man"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| Path::new("packaging/man").join(e.file_name()))
                .filter(|p| p.extension().is_some_and(|e| e == "1") && !files.contains_key(p))
                .collect()
        })
        .unwrap_or_default();

    if bless {
        for (path, text) in &files {
            let path = root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, text).unwrap();
        }
        for path in &stale {
            fs::remove_file(root.join(path)).unwrap();
        }
        return;
    }

    let mut problems = Vec::new();
    for (path, text) in &files {
        match fs::read_to_string(root.join(path)) {
            Ok(committed) if &committed == text => {}
            Ok(_) => problems.push(format!("{} is out of date", path.display())),
            Err(e) => problems.push(format!("{} cannot be read: {e}", path.display())),
        }
    }
    for path in &stale {
        problems.push(format!(
            "{} is not generated any more (no such subcommand)",
            path.display()
        ));
    }
    assert!(
        problems.is_empty(),
        "the man pages and completions differ from the clap definition in src/cli.rs:\n  {}\n\
         Refresh them with `{BLESS_VAR}=1 cargo test docs`, review the diff and commit it.",
        problems.join("\n  ")
    );
}

/// The man page documents what the issue asks for; a cheap guard against a
/// generator change silently dropping our sections.
#[test]
fn man_page_covers_the_contract() {
    let page = &generate()[&man_path("dgecho")];
    for needle in [
        ".SH ADDRESSES",
        ".SH FILES",
        ".SH ENVIRONMENT",
        ".SH \"EXIT STATUS\"",
        ".SH EXAMPLES",
        "/run/dgecho/dgecho.sock",
        "dgecho.socket",
        "LISTEN_FDNAMES",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "JOURNAL_STREAM",
        "RUST_LOG",
        "XDG_RUNTIME_DIR",
        "dgecho\\-serve(1)",
        "dgecho\\-client(1)",
    ] {
        assert!(page.contains(needle), "dgecho.1 lacks {needle:?}");
    }
}
