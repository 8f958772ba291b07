//! Sliding-window metrics per watched (function id, version): one bucket per
//! [`BUCKET_SECS`] seconds for the last [`RETENTION_SECS`] seconds, each with
//! counts and an HDR histogram, so that a deployment controller can ask "how
//! did version 7 do since its step began" and get invocations, errors,
//! average and p99 from the router's own measurements. Only versions a
//! deployment watches are kept: for any other invocation, recording costs a
//! read lock and a hash lookup.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use hotswap_domain::DeploymentMetrics;

/// Seconds of history kept per version.
pub const RETENTION_SECS: i64 = 600;
/// Width of one bucket; a window starts at the bucket holding its start.
pub const BUCKET_SECS: i64 = 5;

fn bucket_of(second: i64) -> i64 {
    second.div_euclid(BUCKET_SECS) * BUCKET_SECS
}

struct Bucket {
    second: i64,
    invocations: u64,
    errors: u64,
    sum_us: u64,
    durations: Histogram<u32>,
}

impl Bucket {
    fn new(second: i64) -> Self {
        Self {
            second,
            invocations: 0,
            errors: 0,
            sum_us: 0,
            // 1 µs to 15 min at 2 significant digits: about 12 KiB a bucket.
            durations: Histogram::new_with_bounds(1, 900_000_000, 2)
                .unwrap_or_else(|_| Histogram::new(2).expect("2 significant digits")),
        }
    }
}

/// The windows of the watched versions.
#[derive(Default)]
pub struct Windows {
    watched: RwLock<HashMap<String, HashSet<u32>>>,
    versions: Mutex<HashMap<(String, u32), VecDeque<Bucket>>>,
}

impl Windows {
    /// Starts keeping the version's window (idempotent).
    pub fn watch(&self, function: &str, version: u32) {
        let known = self
            .watched
            .read()
            .is_ok_and(|w| w.get(function).is_some_and(|v| v.contains(&version)));
        if !known {
            if let Ok(mut w) = self.watched.write() {
                w.entry(function.to_owned()).or_default().insert(version);
            }
        }
    }

    /// Stops keeping the version's window and drops it.
    pub fn unwatch(&self, function: &str, version: u32) {
        if let Ok(mut w) = self.watched.write() {
            if let Some(v) = w.get_mut(function) {
                v.remove(&version);
                if v.is_empty() {
                    w.remove(function);
                }
            }
        }
        if let Ok(mut map) = self.versions.lock() {
            map.remove(&(function.to_owned(), version));
        }
    }

    fn is_watched(&self, function: &str, version: u32) -> bool {
        self.watched
            .read()
            .is_ok_and(|w| w.get(function).is_some_and(|v| v.contains(&version)))
    }

    pub fn record(
        &self,
        function: &str,
        version: u32,
        at: DateTime<Utc>,
        duration: Duration,
        success: bool,
    ) {
        if !self.is_watched(function, version) {
            return;
        }
        let second = bucket_of(at.timestamp());
        let us = u64::try_from(duration.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let Ok(mut map) = self.versions.lock() else {
            return;
        };
        let buckets = map.entry((function.to_owned(), version)).or_default();
        while buckets
            .front()
            .is_some_and(|b| b.second <= second - RETENTION_SECS)
        {
            buckets.pop_front();
        }
        // Samples arrive nearly in order; a late one joins its own bucket.
        let idx = match buckets.iter().rposition(|b| b.second <= second) {
            Some(i) if buckets[i].second == second => i,
            Some(i) => {
                buckets.insert(i + 1, Bucket::new(second));
                i + 1
            }
            None => {
                buckets.push_front(Bucket::new(second));
                0
            }
        };
        let b = &mut buckets[idx];
        b.invocations += 1;
        b.errors += u64::from(!success);
        b.sum_us = b.sum_us.saturating_add(us);
        let _ = b.durations.record(us.min(b.durations.high()));
    }

    /// The version's figures from the bucket holding `since` until now;
    /// durations in milliseconds, rates in percent.
    pub fn since(&self, function: &str, version: u32, since: DateTime<Utc>) -> DeploymentMetrics {
        let mut m = DeploymentMetrics::default();
        let from = bucket_of(since.timestamp());
        let Ok(map) = self.versions.lock() else {
            return m;
        };
        let Some(buckets) = map.get(&(function.to_owned(), version)) else {
            return m;
        };
        let mut merged: Option<Histogram<u32>> = None;
        let mut sum_us = 0u64;
        for b in buckets.iter().filter(|b| b.second >= from) {
            m.invocation_count += b.invocations;
            m.error_count += b.errors;
            sum_us = sum_us.saturating_add(b.sum_us);
            match &mut merged {
                Some(h) => {
                    let _ = h.add(&b.durations);
                }
                None => merged = Some(b.durations.clone()),
            }
        }
        if m.invocation_count > 0 {
            m.error_rate = 100.0 * m.error_count as f64 / m.invocation_count as f64;
            m.success_rate = 100.0 - m.error_rate;
            m.avg_duration = sum_us as f64 / m.invocation_count as f64 / 1000.0;
        }
        if let Some(h) = merged {
            m.p99_duration = h.value_at_quantile(0.99) as f64 / 1000.0;
        }
        m
    }

    /// Stops keeping every window of the function with this id (it was
    /// deleted).
    pub fn forget(&self, function: &str) {
        if let Ok(mut w) = self.watched.write() {
            w.remove(function);
        }
        if let Ok(mut map) = self.versions.lock() {
            map.retain(|(f, _), _| f != function);
        }
    }

    /// Drops versions without traffic in the retention period.
    pub fn prune(&self, now: DateTime<Utc>) {
        let oldest = now.timestamp() - RETENTION_SECS;
        if let Ok(mut map) = self.versions.lock() {
            map.retain(|_, b| b.back().is_some_and(|b| b.second > oldest));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_window_counts_only_its_buckets_of_watched_versions() {
        let w = Windows::default();
        w.watch("f", 2);
        w.watch("f", 1);
        w.watch("f", 2);
        for i in 0..100 {
            // Seconds 0..9, ten samples each; every tenth fails.
            w.record(
                "f",
                2,
                t(i / 10),
                Duration::from_millis(1 + i as u64),
                i % 10 != 0,
            );
        }
        w.record("f", 1, t(5), Duration::from_millis(1), true);
        w.record("f", 3, t(5), Duration::from_millis(1), true);
        let all = w.since("f", 2, t(0));
        assert_eq!((all.invocation_count, all.error_count), (100, 10));
        assert_eq!((all.error_rate, all.success_rate), (10.0, 90.0));
        assert!((all.avg_duration - 50.5).abs() < 0.01, "{all:?}");
        assert!((all.p99_duration - 99.0).abs() < 1.0, "{all:?}");
        let tail = w.since("f", 2, t(7));
        assert_eq!(
            tail.invocation_count, 50,
            "from the bucket holding second 7"
        );
        assert!(tail.p99_duration >= 99.0);
        assert_eq!(w.since("f", 1, t(0)).invocation_count, 1);
        assert_eq!(w.since("f", 3, t(0)).invocation_count, 0, "not watched");
        assert_eq!(w.since("g", 2, t(0)).invocation_count, 0);
        assert_eq!(w.since("f", 2, t(100)).invocation_count, 0);
        w.unwatch("f", 2);
        assert_eq!(w.since("f", 2, t(0)).invocation_count, 0);
        w.record("f", 2, t(5), Duration::from_millis(1), true);
        assert_eq!(w.since("f", 2, t(0)).invocation_count, 0);
    }

    #[test]
    fn late_samples_and_retention() {
        let w = Windows::default();
        w.watch("f", 1);
        w.record("f", 1, t(20), Duration::from_millis(1), true);
        w.record("f", 1, t(10), Duration::from_millis(1), false);
        w.record("f", 1, t(15), Duration::from_millis(1), true);
        assert_eq!(w.since("f", 1, t(15)).invocation_count, 2);
        assert_eq!(w.since("f", 1, t(10)).error_count, 1);
        w.record(
            "f",
            1,
            t(20 + RETENTION_SECS),
            Duration::from_millis(1),
            true,
        );
        assert_eq!(
            w.since("f", 1, t(0)).invocation_count,
            1,
            "old buckets dropped"
        );
        w.prune(t(30 + 2 * RETENTION_SECS));
        assert_eq!(w.since("f", 1, t(0)).invocation_count, 0);
    }
}
