//! The one address grammar shared by `serve --listen` and `client`.
//!
//! Parsing is pure (no name lookups, no syscalls) so that it can be tested
//! and fuzzed on its own; resolving a host name happens only when a socket is
//! bound or connected.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;

/// The largest Unix socket path the kernel accepts: `sun_path` is 108
/// bytes including the terminating NUL.
pub const MAX_UNIX_PATH: usize = 107;
/// An abstract name fills `sun_path` after its leading NUL byte.
pub const MAX_ABSTRACT_NAME: usize = 107;

/// The forms an address may take, for error messages and help text.
pub const FORMS: &str = "unix:/path, unix:@name (abstract), a path containing '/', \
udp:HOST:PORT, HOST:PORT, or [IPV6]:PORT";

/// A datagram socket address as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    /// A Unix datagram socket bound to a file system path.
    UnixPath(PathBuf),
    /// A Unix datagram socket in Linux's abstract namespace (`@name`).
    UnixAbstract(Vec<u8>),
    /// A UDP socket. `host` is a name or an IP literal without brackets;
    /// it is resolved only when used.
    Udp { host: String, port: u16 },
}

/// Why an address was rejected; the message always lists the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrError {
    input: String,
    reason: String,
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid address '{}': {}; use one of: {}",
            self.input.escape_debug(),
            self.reason,
            FORMS
        )
    }
}

impl std::error::Error for AddrError {}

impl FromStr for Addr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| AddrError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        if s.contains('\0') {
            return Err(err("it contains a NUL byte"));
        }
        // A control character in a socket name is almost always a quoting
        // mistake, and it could not be shown in logs as written.
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(err(&format!(
                "it contains the control character U+{:04X}",
                u32::from(c)
            )));
        }
        if let Some(rest) = s.strip_prefix("unix:") {
            if let Some(name) = rest.strip_prefix('@') {
                if name.is_empty() {
                    return Err(err("an abstract name after '@' must not be empty"));
                }
                if name.len() > MAX_ABSTRACT_NAME {
                    return Err(err("an abstract name can be at most 107 bytes long"));
                }
                return Ok(Addr::UnixAbstract(name.as_bytes().to_vec()));
            }
            return unix_path(rest).map_err(|r| err(&r));
        }
        if let Some(rest) = s.strip_prefix("udp:") {
            return host_port(rest).map_err(|r| err(&r));
        }
        if s.contains('/') {
            return unix_path(s).map_err(|r| err(&r));
        }
        host_port(s).map_err(|r| err(&r))
    }
}

fn unix_path(path: &str) -> Result<Addr, String> {
    if path.is_empty() {
        return Err("the path after 'unix:' must not be empty".into());
    }
    if path.len() > MAX_UNIX_PATH {
        return Err(format!(
            "a Unix socket path can be at most {MAX_UNIX_PATH} bytes long, this one is {}; \
             use a shorter path or an abstract name (unix:@name)",
            path.len()
        ));
    }
    Ok(Addr::UnixPath(PathBuf::from(path)))
}

fn host_port(s: &str) -> Result<Addr, String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| "an IPv6 address opened with '[' needs a closing ']'".to_string())?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| "an IPv6 address in brackets must be followed by :PORT".to_string())?;
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("'{ip}' is not an IPv6 address"));
        }
        (ip, port)
    } else {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| "it is neither a path (no '/') nor HOST:PORT (no ':')".to_string())?;
        let ipv6ish = |c: char| c.is_ascii_hexdigit() || c == ':' || c == '.';
        if host.contains(':') && host.chars().all(ipv6ish) {
            return Err("an IPv6 address needs brackets, as in [::1]:7".into());
        }
        if host.is_empty() {
            return Err("the host before ':' must not be empty (use 127.0.0.1 or [::1])".into());
        }
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_';
        if !host.chars().all(valid) {
            return Err(format!("'{host}' is not a host name or IP address"));
        }
        (host, port)
    };
    // Digits only: u16's parser would also take "+7", which the client's
    // "is the first word an address?" test (digits after ':') does not.
    let port = Some(port)
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(|| format!("'{port}' is not a port number (0-65535)"))?;
    Ok(Addr::Udp {
        host: host.to_string(),
        port,
    })
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A relative path starting with '@' can only have come from the
            // bare form (it contains '/'): "unix:@..." would name an abstract
            // socket, so show it bare.
            Addr::UnixPath(p) if p.as_os_str().as_encoded_bytes().starts_with(b"@") => {
                write!(f, "{}", p.display())
            }
            Addr::UnixPath(p) => write!(f, "unix:{}", p.display()),
            // A name from the parser is UTF-8 without control characters
            // and is shown as written, so that it parses back; any other
            // bytes are escaped.
            Addr::UnixAbstract(name) => match std::str::from_utf8(name) {
                Ok(n) if !n.chars().any(char::is_control) => write!(f, "unix:@{n}"),
                _ => write!(f, "unix:@{}", name.escape_ascii()),
            },
            Addr::Udp { host, port } if host.contains(':') => write!(f, "udp:[{host}]:{port}"),
            Addr::Udp { host, port } => write!(f, "udp:{host}:{port}"),
        }
    }
}

impl Addr {
    /// Resolves a UDP address to every socket address its host names.
    /// Returns an empty list for Unix addresses.
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        match self {
            Addr::Udp { host, port } => {
                let mut out: Vec<SocketAddr> = (host.as_str(), *port).to_socket_addrs()?.collect();
                out.dedup();
                Ok(out)
            }
            _ => Ok(Vec::new()),
        }
    }
}

/// What kind of group address `ip` is, when it is not a unicast one: a
/// socket bound to it receives only datagrams sent to many hosts at once.
pub fn group_kind(ip: std::net::IpAddr) -> Option<&'static str> {
    let v4 = match ip {
        std::net::IpAddr::V4(a) => a,
        std::net::IpAddr::V6(a) if a.is_multicast() => return Some("a multicast"),
        std::net::IpAddr::V6(a) => a.to_ipv4_mapped()?,
    };
    if v4.is_multicast() {
        return Some("a multicast");
    }
    if v4.is_broadcast() {
        return Some("the broadcast");
    }
    let subnet_broadcast = nix::ifaddrs::getifaddrs().is_ok_and(|mut ifs| {
        ifs.any(|i| {
            i.broadcast
                .as_ref()
                .and_then(|b| b.as_sockaddr_in())
                .is_some_and(|b| b.ip() == v4)
        })
    });
    subnet_broadcast.then_some("a subnet's broadcast")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Addr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn bad(s: &str) -> String {
        let e = s.parse::<Addr>().expect_err(s).to_string();
        assert!(
            e.contains(FORMS),
            "error for {s:?} must list the forms: {e}"
        );
        e
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(ok("unix:/run/x.sock"), Addr::UnixPath("/run/x.sock".into()));
        assert_eq!(ok("unix:rel.sock"), Addr::UnixPath("rel.sock".into()));
        assert_eq!(ok("unix:@dgecho"), Addr::UnixAbstract(b"dgecho".to_vec()));
        assert_eq!(ok("/tmp/x"), Addr::UnixPath("/tmp/x".into()));
        assert_eq!(ok("./x"), Addr::UnixPath("./x".into()));
        let udp = |h: &str, p| Addr::Udp {
            host: h.into(),
            port: p,
        };
        assert_eq!(ok("udp:127.0.0.1:7"), udp("127.0.0.1", 7));
        assert_eq!(ok("localhost:7007"), udp("localhost", 7007));
        assert_eq!(ok("[::1]:7"), udp("::1", 7));
        assert_eq!(ok("udp:[fe80::1]:65535"), udp("fe80::1", 65535));
        assert_eq!(ok("127.0.0.1:0"), udp("127.0.0.1", 0));
    }

    #[test]
    fn rejected_forms() {
        assert!(bad("").contains("empty"));
        assert!(bad("dgecho").contains("neither a path"));
        assert!(bad("::1:7").contains("needs brackets"));
        assert!(bad("[::1]7").contains(":PORT"));
        assert!(bad("[::1:7").contains("closing ']'"));
        assert!(bad("[localhost]:7").contains("not an IPv6 address"));
        assert!(bad("127.0.0.1:70000").contains("not a port number"));
        assert!(bad("127.0.0.1:").contains("not a port number"));
        assert!(bad("localhost:+7").contains("not a port number"));
        assert!(bad("[::1]:+7").contains("not a port number"));
        assert!(bad(":7").contains("must not be empty"));
        assert!(bad("unix:").contains("must not be empty"));
        assert!(bad("unix:@").contains("must not be empty"));
        assert!(bad("tcp:host:7").contains("not a host name"));
        assert!(bad(&format!("/{}", "a".repeat(200))).contains("at most 107 bytes"));
        assert!(bad("a\0b").contains("NUL"));
        assert!(bad("unix:@a\x04b").contains("control character"));
        assert!(bad("/tmp/a\nb").contains("control character"));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "unix:/run/x",
            "unix:@n",
            "udp:127.0.0.1:7",
            "udp:[::1]:7",
            // Found by fuzz/fuzz_targets/addr.rs: a bare relative path that
            // starts with '@' was shown as "unix:@...", an abstract name;
            // non-ASCII, '\\' and quotes in abstract names were escaped.
            "@x/y",
            "unix:@caf\u{e9}",
            "unix:@a\\b\"c'd",
        ] {
            assert_eq!(ok(s).to_string(), s);
            assert_eq!(ok(&ok(s).to_string()), ok(s));
        }
        assert_eq!(ok("@x/y"), Addr::UnixPath("@x/y".into()));
        // Bytes the parser cannot produce (from elsewhere) are escaped.
        assert_eq!(
            Addr::UnixAbstract(b"a\xff\n".to_vec()).to_string(),
            "unix:@a\\xff\\n"
        );
    }

    #[test]
    fn resolves_literals() {
        assert_eq!(
            ok("[::1]:9").resolve().unwrap(),
            vec!["[::1]:9".parse().unwrap()]
        );
        assert!(ok("unix:@x").resolve().unwrap().is_empty());
    }
}
