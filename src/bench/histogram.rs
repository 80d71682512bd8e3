//! Round-trip times in a log-linear histogram: about 0.8 to 1.6% resolution,
//! a fixed size, and no allocation per sample.
//!
//! The layout is HdrHistogram's with a unit of 1 ns and 128 sub-buckets
//! (exact below 128 ns, then 64 sub-buckets per power of two), so that the
//! `.hgrm` export (see `hgrm.rs`) describes exactly this histogram and not
//! an approximation of it. The `hdrhistogram` crate would add a dependency
//! tree (serialisation, compression) for what is a hundred lines here.

/// A log-linear histogram of nanoseconds: exact below 128 ns, then 64
/// buckets per power of two.
#[derive(Clone)]
pub(super) struct Histogram {
    counts: Vec<u64>,
    pub(super) total: u64,
    pub(super) max: u64,
}

impl Histogram {
    /// HdrHistogram's counts-array length for 128 sub-buckets and values up
    /// to `u64::MAX`: (58 buckets + 1) × 64.
    const BUCKETS: usize = 128 + 57 * 64;
    /// HdrHistogram's "Buckets" of this layout (one per power of two above
    /// 128 ns, plus the first).
    pub(super) const HDR_BUCKETS: usize = 58;
    /// HdrHistogram's "SubBuckets" of this layout.
    pub(super) const HDR_SUB_BUCKETS: usize = 128;

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

    /// The lowest value of bucket `i`, and its width.
    fn range(i: usize) -> (u64, u64) {
        if i < 128 {
            return (i as u64, 1);
        }
        let shift = i / 64 - 1;
        let m = (i - shift * 64) as u64;
        (m << shift, 1u64 << shift)
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        let (low, width) = Self::range(i);
        low + width / 2
    }

    /// The highest value that lands in bucket `i` (HdrHistogram's "highest
    /// equivalent value"), never above the largest sample.
    fn highest(&self, i: usize) -> u64 {
        let (low, width) = Self::range(i);
        (low + (width - 1)).min(self.max)
    }

    pub(super) fn record(&mut self, ns: u64) {
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    /// Adds every sample of `other`, e.g. one flow's to the total.
    pub(super) fn add(&mut self, other: &Histogram) {
        for (c, o) in self.counts.iter_mut().zip(&other.counts) {
            *c += o;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Forgets every sample, keeping the memory (one report interval ends).
    pub(super) fn clear(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.max = 0;
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

    /// The non-empty buckets in order: (highest value in the bucket, count).
    pub(super) fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(i, &c)| (self.highest(i), c))
    }

    /// Mean and standard deviation in ns, from each bucket's middle as
    /// HdrHistogram computes them.
    pub(super) fn mean_stddev(&self) -> (f64, f64) {
        if self.total == 0 {
            return (0.0, 0.0);
        }
        let n = self.total as f64;
        let middles = || {
            self.counts
                .iter()
                .enumerate()
                .filter(|&(_, &c)| c > 0)
                .map(|(i, &c)| (Self::value(i).min(self.max) as f64, c as f64))
        };
        let mean = middles().map(|(v, c)| v * c).sum::<f64>() / n;
        let var = middles().map(|(v, c)| (v - mean).powi(2) * c).sum::<f64>() / n;
        (mean, var.sqrt())
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
        for v in [0u64, 1, 127, 128, 129, 1 << 20, u64::MAX / 2, u64::MAX] {
            let i = Histogram::index(v);
            assert!(i < Histogram::BUCKETS);
            let back = Histogram::value(i) as f64;
            assert!(
                (back - v as f64).abs() <= v as f64 / 64.0 + 1.0,
                "{v} -> {i} -> {back}"
            );
            let (low, width) = Histogram::range(i);
            assert!(low <= v && v - low < width, "{v} in bucket {i}");
        }
        assert_eq!(
            Histogram::index(u64::MAX),
            Histogram::BUCKETS - 1,
            "the layout's last bucket holds the largest value"
        );
    }

    #[test]
    fn add_clear_and_moments() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for v in [100u64, 100, 100, 100] {
            a.record(v);
        }
        b.record(50);
        b.record(150);
        a.add(&b);
        assert_eq!((a.total, a.max), (6, 150));
        let (mean, sd) = a.mean_stddev();
        assert!((mean - 100.0).abs() < 1.0, "{mean}");
        assert!((sd - (5000.0f64 / 6.0).sqrt()).abs() < 1.0, "{sd}");
        let buckets: Vec<_> = a.buckets().collect();
        assert_eq!(buckets, vec![(50, 1), (100, 4), (150, 1)]);
        a.clear();
        assert_eq!((a.total, a.max, a.buckets().count()), (0, 0, 0));
    }
}
