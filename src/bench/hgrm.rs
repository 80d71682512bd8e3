//! The latency histogram as HdrHistogram's text percentile distribution
//! (`.hgrm`), the format of `outputPercentileDistribution` that
//! HdrHistogram's `plotFiles.html`, `hdr-plot` and wrk2 users read.
//!
//! Rows follow HdrHistogram's percentile iterator with 5 ticks per half
//! distance: 0%, 10%, 20%, ... 50%, 55%, ... 75%, 77.5%, ... each halving of
//! the remaining distance to 100% gets ten more rows, and the last row is
//! 100% (without the infinite 1/(1-Percentile) column, as Java prints it).
//! Values are written in microseconds with three decimals (the histogram
//! holds nanoseconds, so the unit-scaling ratio is 1000).

use std::io::{self, Write};

use super::histogram::Histogram;

/// HdrHistogram's default number of rows per halving of the distance to
/// 100%, divided by two.
const TICKS_PER_HALF_DISTANCE: f64 = 5.0;

/// Nanoseconds per microsecond: the unit-scaling ratio of the output.
const SCALE: f64 = 1000.0;

/// Writes `h` (nanoseconds) as a percentile distribution in microseconds.
pub(super) fn write(h: &Histogram, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{:>10} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut level = 0.0f64;
    let mut seen = 0u64;
    let mut last = 0u64;
    for (value, count) in h.buckets() {
        seen += count;
        last = value;
        let reached = 100.0 * seen as f64 / h.total as f64;
        // As HdrHistogram: every level up to this bucket's cumulative
        // percentile gets a row, but the bucket that holds the last sample
        // gets only one before the final 100% row.
        while level <= reached {
            let p = level / 100.0;
            writeln!(
                out,
                "{:12.3} {:2.12} {:10} {:14.2}",
                value as f64 / SCALE,
                p,
                seen,
                1.0 / (1.0 - p)
            )?;
            let next = level + step(level);
            // Past ~1e15 samples the step vanishes in rounding.
            if seen == h.total || next <= level {
                break;
            }
            level = next;
        }
    }
    if h.total > 0 {
        writeln!(
            out,
            "{:12.3} {:2.12} {:10}",
            last as f64 / SCALE,
            1.0,
            h.total
        )?;
    }
    let (mean, sd) = h.mean_stddev();
    writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        mean / SCALE,
        sd / SCALE
    )?;
    writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max as f64 / SCALE,
        h.total
    )?;
    writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        Histogram::HDR_BUCKETS,
        Histogram::HDR_SUB_BUCKETS
    )
}

/// The distance from percentile `level` to the next row: the remaining
/// distance to 100% is halved every ten rows.
fn step(level: f64) -> f64 {
    let halvings = ((100.0 / (100.0 - level)).log2() as i64 + 1).clamp(1, 62);
    100.0 / (TICKS_PER_HALF_DISTANCE * (1u64 << halvings) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<(f64, f64, u64)> {
        text.lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn percentile_rows_follow_hdrhistogram() {
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let mut out = Vec::new();
        write(&h, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("     Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
        let r = rows(&text);
        // Each row shows the highest value its bucket holds (1000 ns lands
        // in 1000..=1007), as HdrHistogram does.
        assert_eq!((r[0].1, r[0].2), (0.0, 1), "{text}");
        assert!((r[0].0 - 1.0).abs() < 0.01, "{text}");
        let levels: Vec<f64> = r.iter().map(|x| x.1).collect();
        for want in [0.1, 0.5, 0.55, 0.75, 0.775, 0.9, 0.990625, 0.9921875, 1.0] {
            assert!(
                levels.iter().any(|l| (l - want).abs() < 1e-9),
                "{want} missing: {text}"
            );
        }
        for w in r.windows(2) {
            assert!(
                w[0].0 <= w[1].0 && w[0].1 < w[1].1 && w[0].2 <= w[1].2,
                "{text}"
            );
        }
        assert_eq!(*r.last().unwrap(), (1000.0, 1.0, 1000));
        assert!(text.contains("#[Max     =     1000.000, Total count    =         1000]"));
        assert!(text.contains("#[Mean    =      500."), "{text}");
        assert!(text.ends_with("#[Buckets =           58, SubBuckets     =          128]\n"));
    }

    #[test]
    fn empty_and_single_sample() {
        let mut h = Histogram::new();
        let mut out = Vec::new();
        write(&h, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(rows(&text).is_empty());
        assert!(text.contains("Total count    =            0]"));
        h.record(2500);
        let mut out = Vec::new();
        write(&h, &mut out).unwrap();
        let r = rows(&String::from_utf8(out).unwrap());
        assert_eq!(r, vec![(2.5, 0.0, 1), (2.5, 1.0, 1)]);
    }
}
