//! The man pages and shell completions under `packaging/` are generated from
//! the clap definition (`dgecho::cli::Cli`) and the man pages' own text
//! (`dgecho::manual`), and committed, so that packagers
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
use dgecho::manual::{self, Block, Span};

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
        let man = page(sub.clone());
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

/// A page with the footers every page carries: date and source.
fn page(cmd: clap::Command) -> Man {
    Man::new(cmd)
        .date(manual::DATE)
        .source(manual::SOURCE)
        .manual(manual::MANUAL)
}

fn man_path(name: &str) -> PathBuf {
    Path::new("packaging/man").join(format!("{name}.1"))
}

/// dgecho(1): clap_mangen's sections, then ours. The command's after_help
/// (the address list) is left out here because ADDRESSES below says more.
fn main_page(cmd: &clap::Command) -> String {
    let man = page(cmd.clone());
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

fn spans(spans: &[Span]) -> Vec<Inline> {
    spans
        .iter()
        .map(|s| match *s {
            Span::Roman(t) => roman(t),
            Span::Bold(t) => bold(t),
            Span::Italic(t) => italic(t),
        })
        .collect()
}

/// dgecho's own sections (`dgecho::manual`), in roff.
fn extra_sections() -> String {
    let mut r = Roff::default();
    for s in manual::SECTIONS {
        section(&mut r, s.title);
        for block in s.blocks {
            match *block {
                Block::Para(text) => {
                    r.control("PP", []);
                    r.text([roman(text)]);
                }
                Block::Item(tag, body) => {
                    r.control("TP", []);
                    r.text(spans(tag));
                    r.text([roman(body)]);
                }
                Block::Example(what, lines) => {
                    r.control("PP", []);
                    r.text([roman(what)]);
                    r.control("PP", []);
                    r.control("RS", ["4"]);
                    r.control("nf", []);
                    for line in lines {
                        r.text([roman(*line)]);
                    }
                    r.control("fi", []);
                    r.control("RE", []);
                }
            }
        }
    }
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
    refs.extend(manual::SEE_ALSO.iter().map(|s| s.to_string()));
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
        "EXIT_NOTCONFIGURED",
        "2026",
        "dgecho 0.1.0",
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
