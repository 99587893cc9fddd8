//! Statistics of a sample: nearest-rank percentiles of a list of values, and a sample kept as
//! fine buckets so that it merges across groups and periods.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Statistics of a sample (nearest-rank percentiles).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    /// First quartile.
    pub p25: f64,
    pub median: f64,
    /// Third quartile.
    pub p75: f64,
    pub p90: f64,
    pub p95: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// The exact statistics of a list of values.
    pub fn of(mut values: Vec<f64>) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let rank = |p: f64| values[nearest_rank(p, n as u64) as usize - 1];
        #[allow(clippy::cast_precision_loss)]
        let mean = values.iter().sum::<f64>() / n as f64;
        Some(Stats {
            n,
            mean,
            p25: rank(0.25),
            median: rank(0.5),
            p75: rank(0.75),
            p90: rank(0.9),
            p95: rank(0.95),
            min: values[0],
            max: values[n - 1],
        })
    }

    pub(crate) fn scaled(self, k: f64) -> Stats {
        Stats {
            mean: self.mean * k,
            p25: self.p25 * k,
            median: self.median * k,
            p75: self.p75 * k,
            p90: self.p90 * k,
            p95: self.p95 * k,
            min: self.min * k,
            max: self.max * k,
            ..self
        }
    }
}

/// The rank (from 1) of the `p` percentile among `n` sorted values, nearest-rank method.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn nearest_rank(p: f64, n: u64) -> u64 {
    ((p * n as f64).ceil() as u64).clamp(1, n)
}

/// `ln` of the ratio between the bounds of a bucket: buckets are 1 % wide.
const BUCKET_LN: f64 = 0.009_950_330_853_168_083; // ln(1.01)
/// Keeps the keys of positive values above zero (the smallest positive f64 is e^-745).
const BUCKET_OFFSET: i32 = 100_000;

/// The bucket of a value: 0 for zero; for others, the sign of the value times a key that grows
/// with the magnitude, so that keys sort as the values do.
#[allow(clippy::cast_possible_truncation)]
fn bucket(v: f64) -> i32 {
    if v == 0.0 {
        return 0;
    }
    let k = (v.abs().ln() / BUCKET_LN).floor() as i32 + BUCKET_OFFSET;
    if v < 0.0 { -k } else { k }
}

/// A distribution kept in buckets 1 % wide: the count, sum, minimum and maximum are exact;
/// a percentile is the mean of the values in its bucket, so it is within 1 % of the exact
/// nearest-rank value, and exact when the values of that bucket are equal. Two samples merge
/// into the sample of all their values (in any order, with the same result), which is what
/// lets indicators be read from monthly rollups as if from every request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    n: u64,
    sum: f64,
    min: f64,
    max: f64,
    /// Bucket -> (count, sum of its values).
    buckets: BTreeMap<i32, (u64, f64)>,
}

impl Sample {
    /// Adds a value (values that are not finite numbers are ignored).
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if self.n == 0 {
            (self.min, self.max) = (v, v);
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.n += 1;
        self.sum += v;
        let b = self.buckets.entry(bucket(v)).or_default();
        b.0 += 1;
        b.1 += v;
    }

    /// Adds every value of another sample.
    pub fn merge(&mut self, other: &Sample) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            (self.min, self.max) = (other.min, other.max);
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        self.n += other.n;
        self.sum += other.sum;
        for (k, (c, s)) in &other.buckets {
            let b = self.buckets.entry(*k).or_default();
            b.0 += c;
            b.1 += s;
        }
    }

    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Count, mean, quartiles, p90, p95, minimum and maximum; `None` for an empty sample.
    pub fn stats(&self) -> Option<Stats> {
        if self.n == 0 {
            return None;
        }
        const PS: [f64; 5] = [0.25, 0.5, 0.75, 0.9, 0.95];
        let ranks = PS.map(|p| nearest_rank(p, self.n));
        let mut at = [0.0; 5];
        let mut next = 0;
        let mut seen = 0;
        for (c, s) in self.buckets.values() {
            seen += c;
            #[allow(clippy::cast_precision_loss)]
            let v = (s / *c as f64).clamp(self.min, self.max);
            while next < ranks.len() && ranks[next] <= seen {
                at[next] = v;
                next += 1;
            }
        }
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        Some(Stats {
            n: self.n as usize,
            mean: self.sum / self.n as f64,
            p25: at[0],
            median: at[1],
            p75: at[2],
            p90: at[3],
            p95: at[4],
            min: self.min,
            max: self.max,
        })
    }
}
