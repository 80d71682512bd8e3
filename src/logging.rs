//! Logging set-up: journal-aware, quiet by default on the hot path.
//!
//! When stderr is connected to the journal (systemd sets `JOURNAL_STREAM` to
//! the device and inode of that stream), each line starts with a `<N>`
//! syslog priority and carries no timestamp: journald adds both the
//! priority and the time. Anywhere else the lines carry a timestamp and the
//! level in words.

use std::io::Write;

use log::{Level, LevelFilter};
use nix::sys::stat::fstat;

/// True when stderr is the stream that `JOURNAL_STREAM` names.
pub fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(st) = fstat(std::io::stderr()) else {
        return false;
    };
    journal_stream_matches(&value, st.st_dev, st.st_ino)
}

fn journal_stream_matches(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.split_once(':') else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// The syslog priority of a log level, as `sd-daemon(3)` prefixes use.
pub fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// The level that `-v` and `-q` ask for; info by default.
pub fn level(verbose: u8, quiet: u8) -> LevelFilter {
    match (verbose, quiet) {
        (0, 0) => LevelFilter::Info,
        (1, _) => LevelFilter::Debug,
        (v, _) if v >= 2 => LevelFilter::Trace,
        (_, 1) => LevelFilter::Warn,
        _ => LevelFilter::Error,
    }
}

/// Installs the logger. `RUST_LOG`, when set, overrides `-v`/`-q`.
pub fn init(verbose: u8, quiet: u8) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level(verbose, quiet));
    if let Ok(filters) = std::env::var("RUST_LOG") {
        builder.parse_filters(&filters);
    }
    if stderr_is_journal() {
        builder
            .format(|buf, record| writeln!(buf, "<{}>{}", priority(record.level()), record.args()));
    } else {
        builder.format(|buf, record| {
            let style = buf.default_level_style(record.level());
            writeln!(
                buf,
                "{} {style}{:<5}{style:#} {}",
                buf.timestamp_millis(),
                record.level(),
                record.args()
            )
        });
    }
    // A second init (only possible in tests) keeps the first logger.
    let _ = builder.try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_parsing() {
        assert!(journal_stream_matches("8:12345", 8, 12345));
        assert!(!journal_stream_matches("8:12345", 8, 1));
        assert!(!journal_stream_matches("8", 8, 12345));
        assert!(!journal_stream_matches("x:y", 8, 12345));
    }

    #[test]
    fn levels() {
        assert_eq!(level(0, 0), LevelFilter::Info);
        assert_eq!(level(1, 0), LevelFilter::Debug);
        assert_eq!(level(3, 0), LevelFilter::Trace);
        assert_eq!(level(0, 1), LevelFilter::Warn);
        assert_eq!(level(0, 2), LevelFilter::Error);
        assert_eq!(priority(Level::Error), 3);
        assert_eq!(priority(Level::Info), 6);
    }
}
