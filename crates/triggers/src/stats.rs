//! What each trigger has done on this server: the `state` of
//! `GET /v1/triggers/{id}`, the per-trigger lines of `/metrics`, and the
//! run counts not yet added to the stored `executionCount` /
//! `failureCount` / `lastExecutedAt` (written once a second by the
//! `trigger-counters` task, never on a request's path).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use hotswap_router::escape_label;
use serde::Serialize;

/// A trigger's live state on this server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerState {
    /// `active`, `idle` (nothing yet), `disabled` or `error` (the last run
    /// failed in the platform: see `lastError`).
    pub status: String,
    /// The last platform error (a missing function, a store failure, …).
    pub last_error: Option<String>,
    /// Requests or ticks received.
    pub received: u64,
    /// Runs whose function succeeded (HTTP: a response mapped from its
    /// result; schedules: a tick queued).
    pub succeeded: u64,
    /// Runs that failed (function error, timeout, platform error).
    pub failed: u64,
    /// Runs refused before reaching the function (rate limit, throttling,
    /// auth, CORS).
    pub rejected: u64,
    /// Ticks skipped because no server saw them in time (schedules).
    pub skipped: u64,
    /// Messages or records failed and left to be delivered again (queues,
    /// streams).
    pub retried: u64,
    /// Messages sent to the dead-letter destination (queues), or records
    /// given up on (streams: sent to `onFailure`).
    pub dead_lettered: u64,
    /// Messages waiting to be received (queues).
    pub backlog: u64,
    /// Messages received and not yet settled (queues).
    pub in_flight: u64,
    /// Age of the oldest waiting message, seconds (queues; when the
    /// source knows it).
    pub oldest_age_seconds: Option<f64>,
    /// Records behind the stream's head (streams).
    pub lag_records: u64,
    /// Batches invoked (queues, streams).
    pub batches: u64,
}

/// What one batch of a Queue or Stream trigger did, for the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// Messages or records in the batch.
    pub received: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    /// Whether the function ran (a throttled batch did not).
    pub invoked: bool,
    /// Whether the invocation counts as a failure.
    pub invocation_failed: bool,
}

/// How a run ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    Rejected,
    Skipped,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Rejected => "rejected",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Default)]
struct Entry {
    kind: &'static str,
    function: String,
    owner: String,
    state: TriggerState,
    /// Runs and failures not yet written to the store, and the newest run.
    pending: (u64, u64, Option<DateTime<Utc>>),
    /// HTTP status classes answered (`2xx` … `5xx`).
    statuses: [u64; 5],
}

/// Counters of every trigger seen on this server.
#[derive(Debug, Default)]
pub struct TriggerStats {
    entries: Mutex<HashMap<String, Entry>>,
}

/// Who a trigger belongs to, for `/metrics` labels.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    pub trigger_id: &'a str,
    /// `http`, `schedule`, …
    pub kind: &'static str,
    pub function: &'a str,
    pub owner: &'a str,
}

impl TriggerStats {
    fn with<R>(&self, l: Labels<'_>, f: impl FnOnce(&mut Entry) -> R) -> R {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let e = entries.entry(l.trigger_id.to_owned()).or_default();
        if e.kind.is_empty() {
            e.kind = l.kind;
            e.function = l.function.to_owned();
        }
        // A run refused before its function was resolved knows no owner yet.
        if e.owner.is_empty() && !l.owner.is_empty() {
            e.owner = l.owner.to_owned();
        }
        f(e)
    }

    /// Counts one run. `stored` runs also move the stored counters (an
    /// HTTP request; a schedule's tick is counted by its claim instead).
    pub fn record(
        &self,
        l: Labels<'_>,
        outcome: Outcome,
        http_status: Option<u16>,
        at: DateTime<Utc>,
        stored: bool,
    ) {
        self.with(l, |e| {
            let s = &mut e.state;
            s.received += 1;
            match outcome {
                Outcome::Succeeded => s.succeeded += 1,
                Outcome::Failed => s.failed += 1,
                Outcome::Rejected => s.rejected += 1,
                Outcome::Skipped => s.skipped += 1,
            }
            s.status = "active".into();
            if let Some(code) = http_status {
                let class = usize::from(code / 100).clamp(1, 5) - 1;
                e.statuses[class] += 1;
            }
            if stored && matches!(outcome, Outcome::Succeeded | Outcome::Failed) {
                e.pending.0 += 1;
                e.pending.1 += u64::from(outcome == Outcome::Failed);
                e.pending.2 = Some(e.pending.2.map_or(at, |p| p.max(at)));
            }
        });
    }

    /// Counts one batch of a Queue or Stream trigger: its messages, and
    /// one run (a failed one when the function failed) in the stored
    /// counters.
    pub fn record_batch(&self, l: Labels<'_>, c: BatchCounts, at: DateTime<Utc>) {
        self.with(l, |e| {
            let s = &mut e.state;
            s.received += c.received;
            s.succeeded += c.succeeded;
            s.failed += c.failed;
            s.retried += c.retried;
            s.dead_lettered += c.dead_lettered;
            if c.invoked {
                s.batches += 1;
                e.pending.0 += 1;
                e.pending.1 += u64::from(c.invocation_failed);
                e.pending.2 = Some(e.pending.2.map_or(at, |p| p.max(at)));
            } else {
                s.rejected += c.received;
            }
            if s.status.is_empty() || s.status == "idle" {
                s.status = "active".into();
            }
        });
    }

    /// A consumer started for the trigger on this server: it is active
    /// before its first batch.
    pub fn started(&self, l: Labels<'_>) {
        self.with(l, |e| {
            if e.state.status.is_empty() || e.state.status == "idle" {
                e.state.status = "active".into();
            }
        });
    }

    /// A queue's backlog as last read from its source.
    pub fn set_backlog(
        &self,
        l: Labels<'_>,
        waiting: u64,
        in_flight: u64,
        oldest_age_s: Option<f64>,
    ) {
        self.with(l, |e| {
            e.state.backlog = waiting;
            e.state.in_flight = in_flight;
            e.state.oldest_age_seconds = oldest_age_s;
        });
    }

    /// A stream's lag as last read from its source.
    pub fn set_lag(&self, l: Labels<'_>, records: u64) {
        self.with(l, |e| e.state.lag_records = records);
    }

    /// Keeps a platform error as the trigger's `lastError`.
    pub fn error(&self, l: Labels<'_>, message: impl Into<String>) {
        self.with(l, |e| {
            e.state.status = "error".into();
            e.state.last_error = Some(message.into());
        });
    }

    /// Clears the error once the trigger works again.
    pub fn clear_error(&self, trigger_id: &str) {
        if let Some(e) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(trigger_id)
        {
            e.state.last_error = None;
            if e.state.status == "error" {
                e.state.status = "active".into();
            }
        }
    }

    /// The trigger's state here (`idle` when it has done nothing yet).
    pub fn state(&self, trigger_id: &str, enabled: bool) -> TriggerState {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = entries
            .get(trigger_id)
            .map(|e| e.state.clone())
            .unwrap_or_default();
        if !enabled {
            s.status = "disabled".into();
        } else if s.status.is_empty() {
            s.status = "idle".into();
        }
        s
    }

    /// Takes the runs not yet written: (trigger, runs, failures, newest).
    pub fn take_pending(&self) -> Vec<(String, u64, u64, Option<DateTime<Utc>>)> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .iter_mut()
            .filter(|(_, e)| e.pending.0 > 0 || e.pending.1 > 0)
            .map(|(id, e)| {
                let (runs, failures, at) = std::mem::take(&mut e.pending);
                (id.clone(), runs, failures, at)
            })
            .collect()
    }

    /// Puts back runs whose write failed, to be retried.
    pub fn restore_pending(&self, failed: Vec<(String, u64, u64, Option<DateTime<Utc>>)>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for (id, runs, failures, at) in failed {
            let e = entries.entry(id).or_default();
            e.pending.0 += runs;
            e.pending.1 += failures;
            e.pending.2 = match (e.pending.2, at) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }

    /// Keeps only the triggers that still exist (a function's deletion
    /// takes its triggers with it, without a call to [`Self::forget`]).
    pub fn retain(&self, exists: impl Fn(&str) -> bool) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| exists(id));
    }

    /// Forgets a deleted trigger.
    pub fn forget(&self, trigger_id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(trigger_id);
    }

    /// Prometheus text: `hotswap_trigger_runs_total` by outcome and
    /// `hotswap_trigger_http_responses_total` by status class.
    pub fn prometheus(&self) -> String {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<&String> = entries.keys().collect();
        ids.sort();
        let mut out = String::new();
        out.push_str(
            "# HELP hotswap_trigger_runs_total Trigger runs (requests, ticks) by outcome.\n",
        );
        out.push_str("# TYPE hotswap_trigger_runs_total counter\n");
        for id in &ids {
            let e = &entries[*id];
            for (outcome, n) in [
                (Outcome::Succeeded, e.state.succeeded),
                (Outcome::Failed, e.state.failed),
                (Outcome::Rejected, e.state.rejected),
                (Outcome::Skipped, e.state.skipped),
            ] {
                let _ = writeln!(
                    out,
                    "hotswap_trigger_runs_total{{trigger=\"{}\",type=\"{}\",owner=\"{}\",function=\"{}\",outcome=\"{}\"}} {n}",
                    escape_label(id),
                    e.kind,
                    escape_label(&e.owner),
                    escape_label(&e.function),
                    outcome.label()
                );
            }
        }
        out.push_str("# HELP hotswap_trigger_messages_total Queue messages and stream records by what became of them.\n");
        out.push_str("# TYPE hotswap_trigger_messages_total counter\n");
        for id in &ids {
            let e = &entries[*id];
            if e.kind != "queue" && e.kind != "stream" {
                continue;
            }
            let s = &e.state;
            for (outcome, n) in [
                ("received", s.received),
                ("succeeded", s.succeeded),
                ("failed", s.failed),
                ("retried", s.retried),
                ("dead_lettered", s.dead_lettered),
                ("throttled", s.rejected),
            ] {
                let _ = writeln!(
                    out,
                    "hotswap_trigger_messages_total{{trigger=\"{}\",type=\"{}\",owner=\"{}\",function=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape_label(id),
                    e.kind,
                    escape_label(&e.owner),
                    escape_label(&e.function),
                );
            }
        }
        for (name, help, kind) in [
            (
                "hotswap_trigger_backlog_messages",
                "Messages waiting in a queue trigger's queue.",
                "queue",
            ),
            (
                "hotswap_trigger_in_flight_messages",
                "Messages of a queue trigger received and not yet settled.",
                "queue",
            ),
            (
                "hotswap_trigger_backlog_oldest_age_seconds",
                "Age of the oldest message waiting in a queue trigger's queue.",
                "queue",
            ),
            (
                "hotswap_trigger_stream_lag_records",
                "Records of a stream trigger's stream not yet processed.",
                "stream",
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for id in &ids {
                let e = &entries[*id];
                if e.kind != kind {
                    continue;
                }
                let value = match name {
                    "hotswap_trigger_backlog_messages" => e.state.backlog as f64,
                    "hotswap_trigger_in_flight_messages" => e.state.in_flight as f64,
                    "hotswap_trigger_backlog_oldest_age_seconds" => {
                        e.state.oldest_age_seconds.unwrap_or(0.0)
                    }
                    _ => e.state.lag_records as f64,
                };
                let _ = writeln!(
                    out,
                    "{name}{{trigger=\"{}\",owner=\"{}\",function=\"{}\"}} {value}",
                    escape_label(id),
                    escape_label(&e.owner),
                    escape_label(&e.function),
                );
            }
        }
        out.push_str(
            "# HELP hotswap_trigger_http_responses_total HTTP trigger responses by status class.\n",
        );
        out.push_str("# TYPE hotswap_trigger_http_responses_total counter\n");
        for id in &ids {
            let e = &entries[*id];
            if e.kind != "http" {
                continue;
            }
            for (i, n) in e.statuses.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "hotswap_trigger_http_responses_total{{trigger=\"{}\",owner=\"{}\",function=\"{}\",code=\"{}xx\"}} {n}",
                    escape_label(id),
                    escape_label(&e.owner),
                    escape_label(&e.function),
                    i + 1
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(id: &str) -> Labels<'_> {
        Labels {
            trigger_id: id,
            kind: "http",
            function: "f",
            owner: "o",
        }
    }

    #[test]
    fn counts_states_and_pending_runs() {
        let s = TriggerStats::default();
        let t0 = Utc::now();
        s.record(l("a"), Outcome::Succeeded, Some(200), t0, true);
        s.record(l("a"), Outcome::Failed, Some(502), t0, true);
        s.record(l("a"), Outcome::Rejected, Some(429), t0, true);
        let st = s.state("a", true);
        assert_eq!(
            (st.received, st.succeeded, st.failed, st.rejected),
            (3, 1, 1, 1)
        );
        assert_eq!(st.status, "active");
        assert_eq!(s.state("a", false).status, "disabled");
        assert_eq!(s.state("b", true).status, "idle");
        let pending = s.take_pending();
        assert_eq!(pending, vec![("a".to_owned(), 2, 1, Some(t0))]);
        assert!(s.take_pending().is_empty(), "taken once");
        s.restore_pending(pending);
        assert_eq!(s.take_pending().len(), 1);
        s.error(l("a"), "function 'f' not found");
        assert_eq!(s.state("a", true).status, "error");
        s.clear_error("a");
        assert_eq!(s.state("a", true).last_error, None);
        s.retain(|id| id != "gone");
        s.record(l("gone"), Outcome::Succeeded, None, t0, false);
        s.retain(|id| id != "gone");
        assert_eq!(s.state("gone", true).received, 0, "forgotten");
        let text = s.prometheus();
        assert!(text.contains(
            "hotswap_trigger_runs_total{trigger=\"a\",type=\"http\",owner=\"o\",function=\"f\",outcome=\"failed\"} 1"
        ));
        assert!(text.contains("code=\"5xx\"} 1"));
        let q = Labels {
            trigger_id: "q",
            kind: "queue",
            function: "f",
            owner: "o",
        };
        s.record_batch(
            q,
            BatchCounts {
                received: 10,
                succeeded: 8,
                failed: 2,
                retried: 1,
                dead_lettered: 1,
                invoked: true,
                invocation_failed: true,
            },
            t0,
        );
        s.record_batch(
            q,
            BatchCounts {
                received: 3,
                ..BatchCounts::default()
            },
            t0,
        );
        s.set_backlog(q, 42, 3, Some(1.5));
        let st = s.state("q", true);
        assert_eq!(
            (
                st.received,
                st.succeeded,
                st.failed,
                st.retried,
                st.dead_lettered
            ),
            (13, 8, 2, 1, 1)
        );
        assert_eq!(
            (st.batches, st.rejected, st.backlog, st.in_flight),
            (1, 3, 42, 3)
        );
        assert_eq!(s.take_pending(), vec![("q".to_owned(), 1, 1, Some(t0))]);
        let text = s.prometheus();
        assert!(text.contains("hotswap_trigger_messages_total{trigger=\"q\",type=\"queue\",owner=\"o\",function=\"f\",outcome=\"dead_lettered\"} 1"), "{text}");
        assert!(text.contains(
            "hotswap_trigger_backlog_messages{trigger=\"q\",owner=\"o\",function=\"f\"} 42"
        ));
        assert!(text.contains("code=\"4xx\"} 1"));
    }
}
