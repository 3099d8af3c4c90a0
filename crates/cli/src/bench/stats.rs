//! Bounded-memory bookkeeping for the benchmark: a latency histogram and a
//! per-publisher record of which sequence numbers arrived.
//!
//! Both are plain data merged by the coordinator once clients stop, so the
//! hot path touches only memory owned by its own task.

/// Sub-buckets per power of two: values are kept with a relative error
/// below 1/128 (0.8 %), like an HDR histogram with two significant digits.
const SUB_BITS: u32 = 7;
const SUB_COUNT: usize = 1 << SUB_BITS;
/// Group 0 holds 0..128 exactly; groups 1..=57 cover every other u64.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB_COUNT;

/// Log-linear histogram of nanosecond latencies. It records every sample in
/// 58 KiB, so no sampling is needed however long the run.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, value: u64) {
        self.counts[bucket_of(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn len(&self) -> u64 {
        self.total
    }

    /// p50, p90, p99 and max in microseconds (samples in nanoseconds);
    /// `None` without samples.
    pub fn summary_us(&self) -> Option<[f64; 4]> {
        (self.total > 0).then(|| {
            [
                self.quantile(0.50),
                self.quantile(0.90),
                self.quantile(0.99),
                self.max,
            ]
            .map(|ns| ns as f64 / 1000.0)
        })
    }

    /// The value below which a fraction `q` (0..=1) of the samples fall,
    /// reported as the middle of its bucket and never above the maximum.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        if rank == self.total {
            return self.max;
        }
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, high) = bucket_bounds(index);
                return (low + (high - low) / 2).min(self.max);
            }
        }
        self.max
    }
}

fn bucket_of(value: u64) -> usize {
    if value < SUB_COUNT as u64 {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros();
    let shift = msb - SUB_BITS;
    let sub = (value >> shift) as usize & (SUB_COUNT - 1);
    ((shift as usize + 1) << SUB_BITS) | sub
}

/// Inclusive lower and upper value of a bucket.
fn bucket_bounds(index: usize) -> (u64, u64) {
    let group = index >> SUB_BITS;
    let sub = (index & (SUB_COUNT - 1)) as u64;
    if group == 0 {
        return (sub, sub);
    }
    let shift = group as u32 - 1;
    let low = (SUB_COUNT as u64 + sub) << shift;
    (low, low + ((1u64 << shift) - 1))
}

/// Which sequence numbers of one publisher a subscriber has seen: a bitset
/// that grows with the highest sequence number (1 bit per message sent).
#[derive(Default)]
pub struct SeqSet {
    words: Vec<u64>,
}

impl SeqSet {
    /// Marks `seq` as seen; false if it already was (a duplicate).
    pub fn insert(&mut self, seq: u32) -> bool {
        let word = (seq >> 6) as usize;
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let bit = 1u64 << (seq & 63);
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_a_bucket_that_contains_it() {
        let mut value = 1u64;
        while value < u64::MAX / 3 {
            for v in [value - 1, value, value + 1, value * 3 / 2] {
                let (low, high) = bucket_bounds(bucket_of(v));
                assert!(low <= v && v <= high, "{v} not in [{low}, {high}]");
                assert!((high - low) as f64 <= v as f64 / 100.0 + 1.0);
            }
            value *= 2;
        }
        assert!(bucket_of(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_of_a_uniform_distribution_are_within_one_percent() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for (q, expect) in [
            (0.5, 50_000_000.0),
            (0.9, 90_000_000.0),
            (0.99, 99_000_000.0),
        ] {
            let got = h.quantile(q) as f64;
            assert!((got - expect).abs() / expect < 0.01, "q{q}: {got}");
        }
        assert_eq!(h.max, 100_000_000);
        assert_eq!(h.quantile(1.0), 100_000_000);
    }

    #[test]
    fn seq_set_reports_duplicates() {
        let mut s = SeqSet::default();
        assert!(s.insert(0));
        assert!(s.insert(1000));
        assert!(!s.insert(1000));
        assert!(s.insert(999));
        assert!(!s.insert(0));
    }
}
