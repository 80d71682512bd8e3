//! Peer-controlled text, made safe to log.
//!
//! A client chooses its socket path or abstract name, and the payload of its
//! datagrams. Written raw into a log line, a newline followed by `<0>` would
//! start a forged line of emergency priority in the journal. Every such
//! string goes through [`Escaped`]: control characters (newline, carriage
//! return, escape, ...) and the backslash are written as Rust escapes, bytes
//! that are not UTF-8 as `\xNN`, and everything else as it is, so that
//! ordinary paths (UTF-8 ones included) stay readable.

use std::fmt::{self, Write};

/// Displays bytes with every control character and invalid byte escaped.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() || c == '\\' {
                    write!(f, "{}", c.escape_default())?;
                } else {
                    f.write_char(c)?;
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_a_peer_sends_can_start_a_line() {
        let forged = b"/tmp/x\n<0>dgecho: forged\r\x1b[2J\\";
        let shown = Escaped(forged).to_string();
        assert_eq!(shown, "/tmp/x\\n<0>dgecho: forged\\r\\u{1b}[2J\\\\");
        assert!(!shown.contains('\n') && !shown.contains('\r'));
    }

    #[test]
    fn readable_text_stays_readable() {
        assert_eq!(
            Escaped("/run/dgecho/dgecho.sock".as_bytes()).to_string(),
            "/run/dgecho/dgecho.sock"
        );
        assert_eq!(Escaped("/tmp/ü.sock".as_bytes()).to_string(), "/tmp/ü.sock");
        assert_eq!(Escaped(b"\xff\x00a").to_string(), "\\xff\\u{0}a");
        // U+2028 (line separator) is not a control character but some
        // viewers break lines at it; U+0085 (next line) is one.
        assert_eq!(Escaped("a\u{85}b".as_bytes()).to_string(), "a\\u{85}b");
    }
}
