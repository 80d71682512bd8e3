//! The one grammar of every time option (`--timeout`, `--interval`,
//! `--duration`, `--idle-timeout`): one parser, so that every option takes
//! the same forms and refuses the same mistakes.

use std::time::Duration;

/// The longest duration any option takes: beyond it a value is a typo.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The one grammar of every time option: a number, optionally with a
/// fraction, and a unit (`500ms`, `2s`, `1.5s`, `5m`, `1h`; a plain number
/// is seconds). No exponents and no signs: `1e-10` or `-1s` are typing
/// mistakes, and a mistake must be refused before anything is sent.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const FORMS: &str = "use a number and a unit such as 500ms, 2s, 5m or 1h";
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit_ns: u128 = match unit.trim_start() {
        "ms" => 1_000_000,
        "" | "s" | "sec" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(format!("'{s}' is not a duration: {FORMS}")),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) || frac.len() > 9 {
        return Err(format!("'{s}' is not a duration: {FORMS}"));
    }
    let int: u128 = match int {
        "" => 0,
        _ if int.len() > 12 => u128::MAX / 2,
        _ => int
            .parse()
            .map_err(|_| format!("'{s}' is not a duration: {FORMS}"))?,
    };
    let frac_ns = match frac {
        "" => 0,
        _ => frac.parse::<u128>().unwrap_or(0) * unit_ns / 10u128.pow(frac.len() as u32),
    };
    let ns = int.saturating_mul(unit_ns).saturating_add(frac_ns);
    if ns < 1_000_000 {
        return Err(format!(
            "'{s}' is shorter than 1ms, which no timer here can honour: {FORMS}"
        ));
    }
    if ns > u128::from(MAX_DURATION.as_secs()) * 1_000_000_000 {
        return Err(format!("'{s}' is longer than a year: {FORMS}"));
    }
    Ok(Duration::from_nanos(ns as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0.5s").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("1.5ms").unwrap(),
            Duration::from_micros(1500)
        );
        for bad in [
            "",
            "s",
            "-1s",
            "+1s",
            "0",
            "0ms",
            "5 parsecs",
            "1d",
            "1e-10",
            "1e3",
            "inf",
            "NaN",
            "0.0001ms",
            ".",
            "1.2.3s",
            "9999999999999h",
            "400d",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("500ms, 2s, 5m or 1h"), "{bad}: {err}");
        }
    }
}
