//! Which of the client's words is the address and which the message.
//!
//! The first word is the address when it looks like one. A word that
//! *almost* does (`127.0.0.1` without a port, `host:-1`, `dgecho.sock`
//! without a '/') is refused: sending the whole line as text to the default
//! socket and printing a reply would hide the mistake completely.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{Result, anyhow};

use crate::addr::Addr;
use crate::defaults::UDP_PORT;

/// The address, if the words name one, and the message (empty: read
/// standard input).
#[derive(Debug, PartialEq, Eq)]
pub struct Words {
    pub addr: Option<Addr>,
    pub message: Vec<String>,
}

/// Splits `first` and `rest` (the words before `--`) and `literal` (the
/// words after it, always message).
pub fn split(first: Option<&str>, rest: &[String], literal: &[String]) -> Result<Words> {
    let mut message: Vec<String> = Vec::new();
    let mut addr = None;
    if let Some(first) = first {
        let fix = bare_host(first).or_else(|| {
            (!looks_like_addr(first))
                .then(|| near_miss(first))
                .flatten()
        });
        if let Some(fix) = fix {
            let mut all: Vec<&str> = vec![first];
            all.extend(rest.iter().chain(literal).map(String::as_str));
            return Err(crate::exit::usage(anyhow!(
                "'{first}' looks like an address but is not one: did you mean {fix}? \
                 To send it as the message, put `--` before it: dgecho client -- {}",
                all.join(" ")
            )));
        } else if looks_like_addr(first) {
            addr = Some(first.parse::<Addr>()?);
        } else {
            message.push(first.to_string());
        }
    }
    message.extend(rest.iter().cloned());
    message.extend(literal.iter().cloned());
    Ok(Words { addr, message })
}

/// An address form, valid or not: a scheme, a bracket, a '/', or
/// `HOST:DIGITS`.
fn looks_like_addr(w: &str) -> bool {
    w.starts_with("unix:")
        || w.starts_with("udp:")
        || w.starts_with('[')
        || w.contains('/')
        || w.rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// The address with the default port, when `w` is a host without one.
/// (`::1:7` is a valid IPv6 address too: the suggestion then also names
/// the brackets, which tell the address from the port.)
fn bare_host(w: &str) -> Option<String> {
    if w.parse::<Ipv6Addr>().is_ok() {
        return Some(format!(
            "udp:[{w}]:{UDP_PORT} (an IPv6 address needs brackets before a port, as in \
             [::1]:7; use one of: {})",
            crate::addr::FORMS
        ));
    }
    (w.parse::<Ipv4Addr>().is_ok() || matches!(w, "localhost" | "ip6-localhost"))
        .then(|| format!("udp:{w}:{UDP_PORT}"))
}

/// What the user probably meant, when `w` is one step away from an address.
fn near_miss(w: &str) -> Option<String> {
    if let Some((host, port)) = w.rsplit_once(':') {
        let hostish = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        let portish = port
            .trim_start_matches(['-', '+'])
            .starts_with(|c: char| c.is_ascii_digit());
        if hostish && portish {
            return Some(format!("udp:{host}:{UDP_PORT}"));
        }
    }
    if w.ends_with(".sock") && w.len() > ".sock".len() {
        return Some(format!("./{w}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(first: &str, rest: &[&str], literal: &[&str]) -> Result<Words> {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        split(Some(first), &own(rest), &own(literal))
    }

    #[test]
    fn address_then_message() {
        let w = words("127.0.0.1:7", &["hi"], &[]).unwrap();
        assert_eq!(w.addr.unwrap().to_string(), "udp:127.0.0.1:7");
        assert_eq!(w.message, ["hi"]);
        assert!(words("/run/x.sock", &[], &[]).unwrap().addr.is_some());
        let w = words("note:", &["this"], &["-x"]).unwrap();
        assert_eq!(
            (w.addr, w.message),
            (None, vec!["note:".into(), "this".into(), "-x".into()])
        );
        assert_eq!(words("hello", &[], &[]).unwrap().addr, None);
        let empty = split(None, &[], &["127.0.0.1".into()]).unwrap();
        assert_eq!(
            (empty.addr, empty.message),
            (None, vec!["127.0.0.1".into()])
        );
    }

    #[test]
    fn invalid_addresses_are_usage_errors() {
        for bad in ["::1:7", "[::1]7", "host:99999", "unix:", "udp:x"] {
            let err = words(bad, &["x"], &[]).unwrap_err();
            assert_eq!(crate::exit::status(&err), 2, "{bad}");
        }
    }

    #[test]
    fn near_misses_suggest_the_address() {
        for (w, fix) in [
            ("127.0.0.1", "udp:127.0.0.1:7007"),
            ("localhost", "udp:localhost:7007"),
            ("::1", "udp:[::1]:7007 (an IPv6"),
            ("host:-1", "udp:host:7007"),
            ("host:+7", "udp:host:7007"),
            ("10.0.0.1:7x", "udp:10.0.0.1:7007"),
            ("dgecho.sock", "./dgecho.sock"),
        ] {
            let err = words(w, &["ping"], &[]).unwrap_err();
            assert_eq!(crate::exit::status(&err), 2, "{w}");
            let msg = crate::exit::messages(&err).collect::<Vec<_>>().join("\n");
            assert!(msg.contains(&format!("did you mean {fix}")), "{w}: {msg}");
            assert!(msg.contains(&format!("dgecho client -- {w} ping")), "{msg}");
        }
    }
}
