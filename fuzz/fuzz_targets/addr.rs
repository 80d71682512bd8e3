//! Fuzzes the one address grammar (`dgecho::addr::Addr: FromStr`).
//!
//! For any string: parsing never panics; a rejection always lists the
//! accepted forms; an accepted address prints (`Display`, as used in logs,
//! `Listener` names and `dgecho bench --json`) as a string that parses back
//! to the same address.
#![no_main]

use dgecho::addr::{Addr, FORMS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Addresses come from the command line as UTF-8 strings.
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match s.parse::<Addr>() {
        Ok(a) => {
            let shown = a.to_string();
            let again = shown.parse::<Addr>().unwrap_or_else(|e| {
                panic!("{s:?} parsed as {a:?}, whose display {shown:?} does not parse: {e}")
            });
            assert_eq!(
                again, a,
                "{s:?} parsed as {a:?}, displayed as {shown:?}, re-parsed as {again:?}"
            );
            // Display is a fixed point after one round.
            assert_eq!(again.to_string(), shown);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(FORMS),
                "error for {s:?} does not list the forms: {msg}"
            );
        }
    }
});
