//! The per-source rate limit of `serve --rate-limit RATE --burst N`.
//!
//! Each source gets a token bucket of `burst` tokens refilled at `rate` per
//! second; a datagram that finds the bucket empty is dropped. The bucket is
//! kept as one timestamp, the "theoretical arrival time" of the generic
//! cell rate algorithm (GCRA), which is the same bucket without a separate
//! token count: a source is within its limit while its timestamp is no
//! more than `(burst - 1) / rate` ahead of now, and each datagram it sends
//! moves the timestamp `1 / rate` forward.
//!
//! # The source table
//! A fixed table of [`TABLE_ENTRIES`] entries, allocated once when a worker
//! starts and never grown: a flood of distinct sources evicts entries, it
//! cannot use more memory. The table is set-associative: a keyed hash (with
//! a key chosen at random per table, so nobody can aim many sources at one
//! set) picks a set of [`WAYS`] entries, and a source not in its set takes
//! the entry with the oldest timestamp. An entry whose timestamp is in the
//! past stands for a full bucket, exactly what a new entry would have, so
//! evicting it forgets nothing; only when every entry of a set is a source
//! over its limit does eviction give one of them a fresh burst.
//!
//! Each worker thread owns its table: no lock and no allocation per
//! datagram, and the caller reads the clock once per batch of datagrams.
//!
//! # What a source is
//! - IPv4: one address. Not address and port: the port is the sender's
//!   free choice, so keying on it would hand any host (and any forger
//!   aiming replies at a victim) 65,535 buckets.
//! - IPv6: one /64 prefix, the unit that a single host or LAN is given;
//!   keying on the full address would let one host use 2^64 buckets.
//!   IPv4-mapped addresses (`::ffff:a.b.c.d`, IPv4 on a dual-stack socket)
//!   count as the IPv4 address.
//! - Unix sockets are not limited: their sender cannot be forged, a local
//!   client can take a fresh autobound address for every datagram anyway,
//!   and who may send at all is decided by the socket file's permissions.

use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

/// Entries in one worker's source table (about 96 KiB).
pub const TABLE_ENTRIES: usize = 4096;

/// Entries per set: a source lives in one of these, chosen by its hash.
pub const WAYS: usize = 8;

const SETS: usize = TABLE_ENTRIES / WAYS;

/// The largest accepted `--rate-limit`, per second.
pub const MAX_RATE: f64 = 1e7;
/// The smallest accepted `--rate-limit`, per second (one a day, roughly).
pub const MIN_RATE: f64 = 1e-5;

/// A per-source limit: `per_sec` datagrams a second, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: u32,
}

impl Rate {
    /// The default burst for a rate: one second's worth, at least 1.
    pub fn default_burst(per_sec: f64) -> u32 {
        per_sec.ceil().clamp(1.0, u32::MAX as f64) as u32
    }

    /// The share of one of `workers` threads serving the same socket: the
    /// kernel hands each datagram to any of them, so each allows
    /// `1/workers` of the rate and of the burst (at least one datagram),
    /// and together they never allow a source more than the whole.
    pub fn per_worker(self, workers: usize) -> Rate {
        let w = workers.max(1);
        Rate {
            per_sec: self.per_sec / w as f64,
            burst: self.burst.div_ceil(w as u32).max(1),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/s, burst {}", self.per_sec, self.burst)
    }
}

/// Parses `--rate-limit`: `RATE` or `RATE/s`, a positive number.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let num = t.strip_suffix("/s").unwrap_or(t).trim();
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && (MIN_RATE..=MAX_RATE).contains(&v) => Ok(v),
        _ => Err(format!(
            "'{s}' is not a rate; give datagrams per second per source, such as 20 or 20/s \
             (between {MIN_RATE} and {MAX_RATE})"
        )),
    }
}

/// Which bucket a source address belongs to (see the module docs).
pub fn key_v4(ip: Ipv4Addr) -> u128 {
    u128::from(ip.to_ipv6_mapped())
}

/// Which bucket an IPv6 source belongs to: its /64, or the IPv4 address
/// it maps.
pub fn key_v6(ip: Ipv6Addr) -> u128 {
    match ip.to_ipv4_mapped() {
        Some(v4) => key_v4(v4),
        None => u128::from(ip) & !u128::from(u64::MAX),
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    key: u128,
    /// When the bucket is full again, in nanoseconds since the table's
    /// start; at or before now means full. 0 (a never-used entry) is full.
    tat: u64,
}

/// One worker's source table and limit.
pub struct Limiter {
    /// Nanoseconds per token (1 / rate).
    interval: u64,
    /// How far ahead of now a source's timestamp may be: (burst - 1) / rate.
    tolerance: u64,
    table: Box<[Entry]>,
    hasher: RandomState,
    start: Instant,
}

impl Limiter {
    /// Allocates the table: the only allocation the limiter ever makes.
    pub fn new(rate: Rate) -> Limiter {
        let interval = (1e9 / rate.per_sec).round().clamp(1.0, u64::MAX as f64) as u64;
        Limiter {
            interval,
            tolerance: interval.saturating_mul(u64::from(rate.burst.max(1) - 1)),
            table: vec![Entry::default(); TABLE_ENTRIES].into_boxed_slice(),
            hasher: RandomState::new(),
            start: Instant::now(),
        }
    }

    /// The time to pass to [`Limiter::allow`]: one clock read, once per
    /// batch of datagrams. Never 0, so that it is after every unused entry.
    pub fn now(&self) -> u64 {
        self.at(Instant::now())
    }

    /// [`Limiter::now`] for a given instant (for tests).
    pub fn at(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.start).as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// Takes a token from `key`'s bucket at time `now`; false when it is
    /// empty and the datagram must be dropped.
    pub fn allow(&mut self, key: u128, now: u64) -> bool {
        let set = (self.hasher.hash_one(key) as usize % SETS) * WAYS;
        let ways = &mut self.table[set..set + WAYS];
        let mut pick = 0;
        for (i, e) in ways.iter().enumerate() {
            if e.key == key {
                pick = i;
                break;
            }
            if e.tat < ways[pick].tat {
                pick = i;
            }
        }
        let e = &mut ways[pick];
        if e.key != key {
            *e = Entry { key, tat: 0 };
        }
        let tat = e.tat.max(now);
        if tat - now > self.tolerance {
            return false;
        }
        e.tat = tat.saturating_add(self.interval);
        true
    }

    /// How many sources the table holds now (with a bucket not yet full).
    #[cfg(test)]
    fn tracked(&self, now: u64) -> usize {
        self.table.iter().filter(|e| e.tat > now).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SEC: u64 = 1_000_000_000;

    fn limiter(per_sec: f64, burst: u32) -> Limiter {
        Limiter::new(Rate { per_sec, burst })
    }

    #[test]
    fn burst_then_one_per_interval() {
        let mut l = limiter(10.0, 5);
        let k = key_v4(Ipv4Addr::new(192, 0, 2, 1));
        let t0 = 1;
        let allowed = (0..20).filter(|_| l.allow(k, t0)).count();
        assert_eq!(allowed, 5, "a full bucket allows exactly the burst");
        // 10/s: one token every 100 ms.
        assert!(!l.allow(k, t0 + SEC / 10 - 1));
        assert!(l.allow(k, t0 + SEC / 10));
        assert!(!l.allow(k, t0 + SEC / 10));
        // After long enough the bucket is full again, never fuller.
        let later = t0 + 100 * SEC;
        assert_eq!((0..20).filter(|_| l.allow(k, later)).count(), 5);
    }

    #[test]
    fn sustained_rate_is_capped() {
        // A source sending every millisecond for 10 s at 50/s, burst 10,
        // gets burst + rate * time datagrams through.
        let mut l = limiter(50.0, 10);
        let k = key_v4(Ipv4Addr::new(192, 0, 2, 7));
        let ms = SEC / 1000;
        let allowed = (0..10_000).filter(|i| l.allow(k, 1 + i * ms)).count();
        assert!((509..=511).contains(&allowed), "{allowed}");
    }

    #[test]
    fn sources_are_independent() {
        let mut l = limiter(1.0, 1);
        let a = key_v4(Ipv4Addr::new(192, 0, 2, 1));
        let b = key_v4(Ipv4Addr::new(192, 0, 2, 2));
        assert!(l.allow(a, 1));
        assert!(!l.allow(a, 1));
        assert!(l.allow(b, 1), "another source has its own bucket");
    }

    #[test]
    fn keys() {
        let v4 = Ipv4Addr::new(198, 51, 100, 3);
        assert_eq!(key_v4(v4), key_v6(v4.to_ipv6_mapped()));
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(key_v6(a), key_v6(b), "one /64, one bucket");
        assert_ne!(key_v6(a), key_v6(c));
        assert_ne!(key_v6(a), key_v4(v4));
    }

    #[test]
    fn table_is_bounded_and_evicts_the_oldest() {
        let mut l = limiter(1.0, 1);
        let victim = key_v4(Ipv4Addr::new(203, 0, 113, 1));
        assert!(l.allow(victim, 1));
        assert!(!l.allow(victim, 2));
        let before = l.table.len();
        // A flood of a million distinct sources within one second.
        for i in 0..1_000_000u32 {
            l.allow(u128::from(i) << 64, 3 + u64::from(i));
        }
        assert_eq!(l.table.len(), before, "the table never grows");
        assert_eq!(l.table.len(), TABLE_ENTRIES);
        assert!(l.tracked(1_000_003) <= TABLE_ENTRIES);
        // The flood evicted the victim's entry (its timestamp was the
        // oldest): it starts over with a full bucket, which is the bound
        // on what such a flood can gain.
        assert!(l.allow(victim, 1_000_004));
    }

    #[test]
    fn eviction_prefers_full_buckets() {
        // Fill one set: WAYS sources, all limited (timestamps in the
        // future) except one whose bucket is full again.
        let mut l = limiter(1.0, 1);
        let now = 10 * SEC;
        let mut same_set = Vec::new();
        let target = l.hasher.hash_one(0u128) as usize % SETS;
        let mut i = 0u128;
        while same_set.len() < WAYS + 1 {
            if l.hasher.hash_one(i) as usize % SETS == target {
                same_set.push(i);
            }
            i += 1;
        }
        // The first one sent long ago (its bucket is full again).
        assert!(l.allow(same_set[0], 1));
        for &k in &same_set[1..WAYS] {
            assert!(l.allow(k, now));
        }
        // A newcomer takes the entry of the full bucket, so every limited
        // source stays limited.
        assert!(l.allow(same_set[WAYS], now));
        for &k in &same_set[1..WAYS] {
            assert!(!l.allow(k, now), "a limited source kept its entry");
        }
    }

    #[test]
    fn per_worker_share() {
        let r = Rate {
            per_sec: 100.0,
            burst: 10,
        };
        assert_eq!(
            r.per_worker(4),
            Rate {
                per_sec: 25.0,
                burst: 3
            }
        );
        assert_eq!(r.per_worker(0), r);
        assert_eq!(r.per_worker(20).burst, 1);
    }

    #[test]
    fn clock() {
        let l = limiter(1.0, 1);
        assert!(l.now() >= 1);
        let t = l.start + Duration::from_secs(2);
        assert_eq!(l.at(t), 2 * SEC + 1);
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_rate("20").unwrap(), 20.0);
        assert_eq!(parse_rate("20/s").unwrap(), 20.0);
        assert_eq!(parse_rate("0.5/s").unwrap(), 0.5);
        for bad in ["", "0", "-1", "fast", "20/m", "1e9", "NaN", "inf"] {
            let e = parse_rate(bad).unwrap_err();
            assert!(e.contains("such as 20 or 20/s"), "{bad}: {e}");
        }
        assert_eq!(Rate::default_burst(0.5), 1);
        assert_eq!(Rate::default_burst(20.0), 20);
    }
}
