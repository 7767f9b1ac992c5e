//! A small log-linear latency histogram (the idea of HdrHistogram, in ~100 lines).
//!
//! Values are microseconds. Every power of two is split into 128 equal sub-buckets, so a
//! recorded value is known to better than 1 % (values under 256 µs exactly); the maximum is
//! kept exactly. Recording is one `leading_zeros`, a shift and an increment: cheap enough for
//! the load generator's hot loop, and each worker owns its histogram (no sharing, no locks);
//! they are merged once at the end.
//!
//! Written here rather than taken from the `hdrhistogram` crate because its current release
//! needs a newer Rust than the workspace's `rust-version`, and this is all the bench needs.

/// log2 of the sub-buckets per power of two.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Enough blocks for any `u64`.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// Latency histogram in microseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
            sum: 0,
        }
    }
}

/// The bucket of `v`: values under 256 map to themselves; above, block `shift + 1` holds
/// `[m << shift, (m + 1) << shift)` for `m` in `128..256`.
fn index(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros();
    let shift = exp - SUB_BITS;
    let mantissa = v >> shift;
    ((shift as usize + 1) << SUB_BITS) + (mantissa - SUB) as usize
}

/// The middle of bucket `i` (its exact value under 256).
fn value_of(i: usize) -> u64 {
    let block = (i >> SUB_BITS) as u32;
    if block <= 1 {
        return i as u64;
    }
    let mantissa = (i as u64 & (SUB - 1)) + SUB;
    let shift = block - 1;
    let low = mantissa << shift;
    low + ((1u64 << shift) >> 1)
}

impl Histogram {
    /// Records one latency.
    pub fn record(&mut self, micros: u64) {
        self.counts[index(micros)] += 1;
        self.total += 1;
        self.sum += u128::from(micros);
        self.max = self.max.max(micros);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += *b;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// Number of recorded values.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// The largest recorded value, exactly.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean, in microseconds.
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0.0..=1.0): the smallest bucket holding at least
    /// `ceil(q * len)` values, never above the exact maximum. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return value_of(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact_and_large_ones_within_one_percent() {
        for v in [
            0u64,
            1,
            100,
            255,
            256,
            1000,
            12_345,
            999_999,
            10_000_000,
            u64::MAX / 2,
        ] {
            let shown = value_of(index(v));
            let err = shown.abs_diff(v) as f64 / (v.max(1)) as f64;
            if v < 256 {
                assert_eq!(shown, v);
            } else {
                assert!(err < 0.01, "{v} shown as {shown}");
            }
        }
        assert!(index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_of_a_uniform_run() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.01, "{p50}");
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.01, "{p99}");
        assert_eq!(h.quantile(1.0), 10_000);
        assert_eq!(h.max(), 10_000);
        let mut other = Histogram::default();
        other.record(50_000);
        h.merge(&other);
        assert_eq!(h.len(), 10_001);
        assert_eq!(h.max(), 50_000);
    }
}
