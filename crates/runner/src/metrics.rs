//! Per-version invocation metrics measured by the runner itself (counts,
//! errors, cold starts, an HDR histogram of durations), the seed's
//! `RunnerMetrics`, the counts still to be written to the store, and the
//! Prometheus text form. Everything is keyed by the function's id (never
//! its name alone, which another owner or a re-created function may share);
//! Prometheus labels are owner, function and version.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use hotswap_domain::RunnerMetrics;
use serde::Serialize;

/// Durations are recorded in microseconds, up to an hour, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).expect("3 significant digits"))
}

struct VersionStats {
    function_name: String,
    owner_id: String,
    invocations: u64,
    errors: u64,
    cold_starts: u64,
    durations: Histogram<u64>,
    sum_us: u64,
}

impl VersionStats {
    fn new(function_name: &str, owner_id: &str) -> Self {
        Self {
            function_name: function_name.to_owned(),
            owner_id: owner_id.to_owned(),
            invocations: 0,
            errors: 0,
            cold_starts: 0,
            durations: histogram(),
            sum_us: 0,
        }
    }
}

/// One version's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VersionMetrics {
    /// The function's id.
    #[serde(skip)]
    pub function_id: String,
    pub function_name: String,
    pub owner_id: String,
    /// `$LATEST` or the version number.
    pub version: String,
    pub invocations: u64,
    pub errors: u64,
    /// Percent, 0–100.
    pub error_rate: f64,
    pub cold_starts: u64,
    pub avg_duration_ms: f64,
    pub p50_duration_ms: f64,
    pub p99_duration_ms: f64,
}

/// One invocation as the runner saw it.
pub struct Sample<'a> {
    /// The function's id.
    pub function: &'a str,
    pub function_name: &'a str,
    pub owner_id: &'a str,
    pub version_label: &'a str,
    pub version_number: u32,
    pub duration: Duration,
    pub success: bool,
    /// `Some(init time)` for a cold start.
    pub cold_start: Option<Duration>,
    pub at: DateTime<Utc>,
}

/// Invocations per (function id, version number) not yet in the store, with
/// the time of the latest.
type PendingCounts = HashMap<(String, u32), (u64, DateTime<Utc>)>;

#[derive(Default)]
struct Totals {
    invocations: u64,
    successes: u64,
    failures: u64,
    cold_starts: u64,
    duration_us: u64,
    cold_start_us: u64,
}

/// The runner's metrics.
#[derive(Default)]
pub struct Metrics {
    versions: Mutex<BTreeMap<(String, String), VersionStats>>,
    totals: Mutex<Totals>,
    /// Invocations not yet added to the store's counters.
    pending: Mutex<PendingCounts>,
    /// Per-second history for deployment analysis.
    windows: crate::window::Windows,
}

impl Metrics {
    pub fn record(&self, s: Sample<'_>) {
        self.windows
            .record(s.function, s.version_number, s.at, s.duration, s.success);
        let us = u64::try_from(s.duration.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        if let Ok(mut v) = self.versions.lock() {
            let st = v
                .entry((s.function.to_owned(), s.version_label.to_owned()))
                .or_insert_with(|| VersionStats::new(s.function_name, s.owner_id));
            st.invocations += 1;
            st.errors += u64::from(!s.success);
            st.cold_starts += u64::from(s.cold_start.is_some());
            st.sum_us = st.sum_us.saturating_add(us);
            let _ = st.durations.record(us.min(st.durations.high()));
        }
        if let Ok(mut t) = self.totals.lock() {
            t.invocations += 1;
            if s.success {
                t.successes += 1;
            } else {
                t.failures += 1;
            }
            t.duration_us = t.duration_us.saturating_add(us);
            if let Some(init) = s.cold_start {
                t.cold_starts += 1;
                t.cold_start_us = t
                    .cold_start_us
                    .saturating_add(u64::try_from(init.as_micros()).unwrap_or(u64::MAX));
            }
        }
        if let Ok(mut p) = self.pending.lock() {
            let e = p
                .entry((s.function.to_owned(), s.version_number))
                .or_insert((0, s.at));
            e.0 += 1;
            e.1 = e.1.max(s.at);
        }
    }

    /// The version's sliding-window figures since `since` (see [`crate::window`]).
    pub fn window(
        &self,
        function: &str,
        version: u32,
        since: DateTime<Utc>,
    ) -> hotswap_domain::DeploymentMetrics {
        self.windows.since(function, version, since)
    }

    /// Starts keeping the version's sliding window (deployments watch their
    /// source and target).
    pub fn watch(&self, function: &str, version: u32) {
        self.windows.watch(function, version);
    }

    /// Stops keeping the version's sliding window.
    pub fn unwatch(&self, function: &str, version: u32) {
        self.windows.unwatch(function, version);
    }

    /// Forgets versions without recent traffic.
    pub fn prune_windows(&self, now: DateTime<Utc>) {
        self.windows.prune(now);
    }

    /// Forgets everything about the function with this id (it was deleted):
    /// its figures, its windows and its counts not yet written.
    pub fn forget(&self, function: &str) {
        self.windows.forget(function);
        if let Ok(mut v) = self.versions.lock() {
            v.retain(|(f, _), _| f != function);
        }
        if let Ok(mut p) = self.pending.lock() {
            p.retain(|(f, _), _| f != function);
        }
    }

    /// Takes the counts not yet written to the store (by function id).
    pub fn take_pending(&self) -> Vec<(String, u32, u64, DateTime<Utc>)> {
        let Ok(mut p) = self.pending.lock() else {
            return Vec::new();
        };
        p.drain().map(|((f, v), (n, at))| (f, v, n, at)).collect()
    }

    /// Puts counts back after a failed write.
    pub fn restore_pending(&self, items: Vec<(String, u32, u64, DateTime<Utc>)>) {
        if let Ok(mut p) = self.pending.lock() {
            for (f, v, n, at) in items {
                let e = p.entry((f, v)).or_insert((0, at));
                e.0 += n;
                e.1 = e.1.max(at);
            }
        }
    }

    /// Every version's figures, or those of the function with this id.
    pub fn versions(&self, function: Option<&str>) -> Vec<VersionMetrics> {
        let Ok(v) = self.versions.lock() else {
            return Vec::new();
        };
        v.iter()
            .filter(|((f, _), _)| function.is_none_or(|want| want == f))
            .map(|((f, ver), st)| VersionMetrics {
                function_id: f.clone(),
                function_name: st.function_name.clone(),
                owner_id: st.owner_id.clone(),
                version: ver.clone(),
                invocations: st.invocations,
                errors: st.errors,
                error_rate: if st.invocations == 0 {
                    0.0
                } else {
                    st.errors as f64 * 100.0 / st.invocations as f64
                },
                cold_starts: st.cold_starts,
                avg_duration_ms: if st.invocations == 0 {
                    0.0
                } else {
                    st.sum_us as f64 / st.invocations as f64 / 1000.0
                },
                p50_duration_ms: st.durations.value_at_quantile(0.5) as f64 / 1000.0,
                p99_duration_ms: st.durations.value_at_quantile(0.99) as f64 / 1000.0,
            })
            .collect()
    }

    /// The seed's `RunnerMetrics` (durations in milliseconds).
    pub fn runner_metrics(&self) -> RunnerMetrics {
        let Ok(t) = self.totals.lock() else {
            return RunnerMetrics::default();
        };
        RunnerMetrics {
            total_invocations: t.invocations,
            successful_invocations: t.successes,
            failed_invocations: t.failures,
            cold_starts: t.cold_starts,
            avg_invocation_duration: if t.invocations == 0 {
                0.0
            } else {
                t.duration_us as f64 / t.invocations as f64 / 1000.0
            },
            avg_cold_start_duration: if t.cold_starts == 0 {
                0.0
            } else {
                t.cold_start_us as f64 / t.cold_starts as f64 / 1000.0
            },
        }
    }

    /// Prometheus text exposition.
    pub fn prometheus(&self, warm_instances: usize, isolated: bool) -> String {
        let mut out = String::new();
        let versions = self.versions(None);
        let label = |m: &VersionMetrics| {
            format!(
                "owner=\"{}\",function=\"{}\",version=\"{}\"",
                escape_label(&m.owner_id),
                escape_label(&m.function_name),
                escape_label(&m.version)
            )
        };
        let mut family =
            |name: &str, kind: &str, help: &str, value: &dyn Fn(&VersionMetrics) -> String| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for m in &versions {
                    let _ = writeln!(out, "{name}{{{}}} {}", label(m), value(m));
                }
            };
        family(
            "hotswap_invocations_total",
            "counter",
            "Invocations, by owner, function and version.",
            &|m| m.invocations.to_string(),
        );
        family(
            "hotswap_invocation_errors_total",
            "counter",
            "Failed invocations (function errors, timeouts, crashes, OOM).",
            &|m| m.errors.to_string(),
        );
        family(
            "hotswap_cold_starts_total",
            "counter",
            "Invocations that started a new instance.",
            &|m| m.cold_starts.to_string(),
        );
        let _ = writeln!(out, "# HELP hotswap_invocation_duration_ms Execution time of invocations.\n# TYPE hotswap_invocation_duration_ms summary");
        for m in &versions {
            let l = label(m);
            let _ = writeln!(
                out,
                "hotswap_invocation_duration_ms{{{l},quantile=\"0.5\"}} {}",
                m.p50_duration_ms
            );
            let _ = writeln!(
                out,
                "hotswap_invocation_duration_ms{{{l},quantile=\"0.99\"}} {}",
                m.p99_duration_ms
            );
            let _ = writeln!(
                out,
                "hotswap_invocation_duration_ms_sum{{{l}}} {}",
                m.avg_duration_ms * m.invocations as f64
            );
            let _ = writeln!(
                out,
                "hotswap_invocation_duration_ms_count{{{l}}} {}",
                m.invocations
            );
        }
        let _ = writeln!(out, "# HELP hotswap_warm_instances Idle warm instances.\n# TYPE hotswap_warm_instances gauge\nhotswap_warm_instances {warm_instances}");
        let _ = writeln!(out, "# HELP hotswap_sandbox_isolated 1 when instances are isolated.\n# TYPE hotswap_sandbox_isolated gauge\nhotswap_sandbox_isolated {}", u8::from(isolated));
        out
    }
}

/// A Prometheus label value, escaped (`\`, `"`, newline): the one rule for
/// every `/metrics` writer (runner metrics, the log store, triggers).
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(f: &str, v: u32, ms: u64, ok: bool, cold: bool) -> Sample<'static> {
        Sample {
            function: Box::leak(f.to_owned().into_boxed_str()),
            function_name: Box::leak(f.to_owned().into_boxed_str()),
            owner_id: "o",
            version_label: Box::leak(v.to_string().into_boxed_str()),
            version_number: v,
            duration: Duration::from_millis(ms),
            success: ok,
            cold_start: cold.then_some(Duration::from_millis(10)),
            at: Utc::now(),
        }
    }

    #[test]
    fn per_version_figures() {
        let m = Metrics::default();
        for i in 1..=100 {
            m.record(sample("f", 1, i, i % 10 != 0, i == 1));
        }
        m.record(sample("f", 2, 500, true, true));
        let v = m.versions(Some("f"));
        assert_eq!(v.len(), 2);
        let v1 = &v[0];
        assert_eq!((v1.invocations, v1.errors, v1.cold_starts), (100, 10, 1));
        assert_eq!(v1.error_rate, 10.0);
        assert!((v1.p50_duration_ms - 50.0).abs() < 0.1, "{v1:?}");
        assert!((v1.p99_duration_ms - 99.0).abs() < 0.1, "{v1:?}");
        assert!((v1.avg_duration_ms - 50.5).abs() < 0.01);
        assert!(m.versions(Some("g")).is_empty());
        let r = m.runner_metrics();
        assert_eq!(
            (
                r.total_invocations,
                r.successful_invocations,
                r.failed_invocations,
                r.cold_starts
            ),
            (101, 91, 10, 2)
        );
        assert!((r.avg_cold_start_duration - 10.0).abs() < 0.01);
    }

    #[test]
    fn pending_counts_drain_and_restore() {
        let m = Metrics::default();
        m.record(sample("f", 1, 1, true, false));
        m.record(sample("f", 1, 1, true, false));
        m.record(sample("g", 0, 1, true, false));
        let mut p = m.take_pending();
        p.sort();
        assert_eq!(
            p.iter()
                .map(|(f, v, n, _)| (f.as_str(), *v, *n))
                .collect::<Vec<_>>(),
            [("f", 1, 2), ("g", 0, 1)]
        );
        assert!(m.take_pending().is_empty());
        m.restore_pending(p);
        assert_eq!(m.take_pending().len(), 2);
    }

    #[test]
    fn prometheus_text() {
        let m = Metrics::default();
        m.record(sample("f\"x", 3, 5, false, true));
        let text = m.prometheus(2, true);
        assert!(
            text.contains(
                "hotswap_invocations_total{owner=\"o\",function=\"f\\\"x\",version=\"3\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains(
            "hotswap_invocation_errors_total{owner=\"o\",function=\"f\\\"x\",version=\"3\"} 1"
        ));
        assert!(text.contains("hotswap_warm_instances 2"));
        assert!(text.contains("hotswap_sandbox_isolated 1"));
        assert!(text.contains("quantile=\"0.99\""));
    }
}
