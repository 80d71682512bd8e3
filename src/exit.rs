//! Exit statuses, and the marker that chooses status 6.
//!
//! systemd gives some exit statuses a meaning (`systemd.exec(5)`, "Process
//! Exit Codes"): 2 is a usage error, 6 (`EXIT_NOTCONFIGURED`) a
//! configuration error. `dgecho.service` has `RestartPreventExitStatus=6`,
//! so a daemon that can never start with its configuration (a wrong fd from
//! the socket unit, an address it cannot bind) fails once, visibly, instead
//! of being restarted until the start limit.

use std::fmt;

/// A bad command line or address: exit status 2, as when clap refuses one.
pub const USAGE: u8 = 2;
/// The configuration cannot work: `EXIT_NOTCONFIGURED`.
pub const NOT_CONFIGURED: u8 = 6;

/// Marks an error chain with the exit status it asks for. It adds no text:
/// `main` leaves it out when it prints the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A configuration error (how dgecho was set up: the socket unit,
    /// `--listen`, the environment) rather than one that happened while
    /// running: exit status 6.
    NotConfigured,
    /// A usage error found after parsing (a first word that looks like an
    /// address but is not one): exit status 2, as for an error clap finds.
    Usage,
}

impl fmt::Display for Marker {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

impl std::error::Error for Marker {}

/// Marks `err` as a usage error: `main` then exits with status 2.
pub fn usage(err: anyhow::Error) -> anyhow::Error {
    err.context(Marker::Usage)
}

/// Marks `err` as a configuration error: `main` then exits with status 6.
pub fn not_configured(err: anyhow::Error) -> anyhow::Error {
    err.context(Marker::NotConfigured)
}

/// The messages of an error chain, outermost first, without markers.
pub fn messages(err: &anyhow::Error) -> impl Iterator<Item = String> + '_ {
    // The marker shows as an empty message in the chain.
    err.chain().map(|e| e.to_string()).filter(|m| !m.is_empty())
}

/// The exit status for an error: 2 for usage, 6 for configuration, 1 for
/// anything else.
pub fn status(err: &anyhow::Error) -> u8 {
    // anyhow's downcast sees through every layer of context.
    if err.downcast_ref::<crate::addr::AddrError>().is_some() {
        return USAGE;
    }
    match err.downcast_ref::<Marker>() {
        Some(Marker::Usage) => USAGE,
        Some(Marker::NotConfigured) => NOT_CONFIGURED,
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{Context, anyhow};

    #[test]
    fn statuses_and_messages() {
        let plain = anyhow!("boom");
        assert_eq!(status(&plain), 1);
        let conf = not_configured(
            Err::<(), _>(anyhow!("root cause"))
                .context("outer")
                .unwrap_err(),
        );
        assert_eq!(status(&conf), NOT_CONFIGURED);
        assert_eq!(messages(&conf).collect::<Vec<_>>(), ["outer", "root cause"]);
        let usage = anyhow::Error::new("x:y:z".parse::<crate::addr::Addr>().unwrap_err());
        assert_eq!(status(&usage), USAGE);
        let late = super::usage(anyhow!("did you mean"));
        assert_eq!(status(&late), USAGE);
        assert_eq!(messages(&late).collect::<Vec<_>>(), ["did you mean"]);
    }
}
