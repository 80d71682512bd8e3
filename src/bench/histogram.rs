//! Round-trip times in a log-linear histogram: about 1.6% resolution, a
//! fixed size, and no allocation per sample.

/// A log-linear histogram of nanoseconds: exact below 128 ns, then 64
/// buckets per power of two.
pub(super) struct Histogram {
    counts: Vec<u64>,
    total: u64,
    pub(super) max: u64,
}

impl Histogram {
    const BUCKETS: usize = 128 + 57 * 64;

    pub(super) fn new() -> Histogram {
        Histogram {
            counts: vec![0; Self::BUCKETS],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < 128 {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() as usize - 6;
        shift * 64 + (v >> shift) as usize
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        if i < 128 {
            return i as u64;
        }
        let shift = i / 64 - 1;
        let m = (i - shift * 64) as u64;
        (m << shift) + (1u64 << shift) / 2
    }

    pub(super) fn record(&mut self, ns: u64) {
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    /// The value below which a fraction `q` of the samples lie, in ns.
    pub(super) fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 5_000_000.0).abs() / 5_000_000.0 < 0.02, "{p50}");
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 - 9_900_000.0).abs() / 9_900_000.0 < 0.02, "{p99}");
        assert_eq!(h.quantile(1.0), 10_000_000);
        for v in [0u64, 1, 127, 128, 129, 1 << 20, u64::MAX / 2] {
            let i = Histogram::index(v);
            assert!(i < Histogram::BUCKETS);
            let back = Histogram::value(i) as f64;
            assert!(
                (back - v as f64).abs() <= v as f64 / 64.0 + 1.0,
                "{v} -> {i} -> {back}"
            );
        }
    }
}
