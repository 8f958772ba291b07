//! Per-invocation logs: every line an instance prints, tagged with the
//! request it was handling, kept in memory per function and bounded in
//! bytes: each line (`line_max_bytes`, longer ones are cut and marked), each
//! function (`per_function_bytes`, its oldest lines go first) and all
//! functions together (`total_bytes`, the oldest lines of the function
//! holding the most go first, so one noisy function cannot push out the
//! others').

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One captured line.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    pub timestamp: DateTime<Utc>,
    /// The function's id: the store's key (never the name alone, which
    /// another owner, or a re-created function, may share).
    #[serde(skip)]
    pub function_id: String,
    pub function_name: String,
    /// `$LATEST` or the version number.
    pub version: String,
    pub log_stream_name: String,
    pub request_id: Option<String>,
    /// `stdout`, `stderr`, or `platform` (the START / END / REPORT lines).
    pub stream: &'static str,
    pub message: String,
    /// The instance printed more than the line cap without a newline: the
    /// message is the start of the line followed by [`TRUNCATED_MARK`].
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// Appended to the message of a line cut at the line cap.
pub const TRUNCATED_MARK: &str = " …[truncated]";

impl LogLine {
    /// What the line counts against the caps: its text plus its bookkeeping.
    pub fn cost(&self) -> usize {
        std::mem::size_of::<LogLine>()
            + self.function_name.len()
            + self.version.len()
            + self.log_stream_name.len()
            + self.request_id.as_ref().map_or(0, String::len)
            + self.message.len()
    }
}

/// The byte caps of log capture and retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Longest line kept; the rest of a longer line is discarded.
    pub line_max_bytes: usize,
    /// Most bytes kept per function.
    pub per_function_bytes: usize,
    /// Most bytes kept for all functions together.
    pub total_bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            line_max_bytes: 64 * 1024,
            per_function_bytes: 8 * 1024 * 1024,
            total_bytes: 128 * 1024 * 1024,
        }
    }
}

impl LogLimits {
    /// The caps made consistent: a line fits in a function's share, and a
    /// function's share in the total.
    fn normalised(self) -> Self {
        let total_bytes = self.total_bytes.max(1);
        let per_function_bytes = self.per_function_bytes.clamp(1, total_bytes);
        Self {
            line_max_bytes: self.line_max_bytes.clamp(1, per_function_bytes),
            per_function_bytes,
            total_bytes,
        }
    }
}

/// Which lines to return.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub request_id: Option<String>,
    pub version: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: usize,
}

/// What the store holds for one function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogUsage {
    pub lines: usize,
    pub bytes: usize,
}

#[derive(Default)]
struct FunctionLog {
    lines: VecDeque<LogLine>,
    bytes: usize,
}

impl FunctionLog {
    fn pop_oldest(&mut self) -> usize {
        match self.lines.pop_front() {
            Some(l) => {
                let cost = l.cost();
                self.bytes -= cost;
                cost
            }
            None => 0,
        }
    }
}

#[derive(Default)]
struct Inner {
    functions: HashMap<String, FunctionLog>,
    bytes: usize,
    evicted_lines: u64,
}

/// The runner's log lines, bounded by [`LogLimits`].
pub struct LogStore {
    limits: LogLimits,
    inner: Mutex<Inner>,
}

impl LogStore {
    pub fn new(limits: LogLimits) -> Self {
        Self {
            limits: limits.normalised(),
            inner: Mutex::default(),
        }
    }

    pub fn limits(&self) -> LogLimits {
        self.limits
    }

    /// Keeps `line` under its function's key (`function_name`), evicting
    /// the oldest lines past the caps.
    pub fn push(&self, line: LogLine) {
        let cost = line.cost();
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let inner = &mut *inner;
        let log = inner.functions.entry(line.function_id.clone()).or_default();
        log.lines.push_back(line);
        log.bytes += cost;
        inner.bytes += cost;
        let mut evicted = 0;
        while log.bytes > self.limits.per_function_bytes {
            inner.bytes -= log.pop_oldest();
            evicted += 1;
        }
        inner.evicted_lines += evicted;
        if inner.bytes > self.limits.total_bytes {
            Self::shrink_total(inner, self.limits.total_bytes);
        }
    }

    /// Brings the total back to 15/16 of its cap (so that the search for
    /// the largest function is not repeated on every line), taking the
    /// oldest lines of whichever function holds the most.
    fn shrink_total(inner: &mut Inner, cap: usize) {
        let target = cap - cap / 16;
        while inner.bytes > target {
            let Some(log) = inner.functions.values_mut().max_by_key(|l| l.bytes) else {
                break;
            };
            let freed_at_most = inner.bytes - target;
            let mut freed = 0;
            while freed < freed_at_most && !log.lines.is_empty() {
                freed += log.pop_oldest();
                inner.evicted_lines += 1;
            }
            if freed == 0 {
                break;
            }
            inner.bytes -= freed;
        }
        inner.functions.retain(|_, l| !l.lines.is_empty());
    }

    /// Matching lines of the function with this id, oldest first, at most
    /// `limit` (the newest ones).
    pub fn query(&self, function: &str, q: &LogQuery) -> Vec<LogLine> {
        let Ok(inner) = self.inner.lock() else {
            return Vec::new();
        };
        let Some(log) = inner.functions.get(function) else {
            return Vec::new();
        };
        let mut newest_first: Vec<LogLine> = log
            .lines
            .iter()
            .rev()
            .filter(|l| {
                q.request_id
                    .as_ref()
                    .is_none_or(|r| l.request_id.as_ref() == Some(r))
            })
            .filter(|l| q.version.as_ref().is_none_or(|v| &l.version == v))
            .filter(|l| q.since.is_none_or(|s| l.timestamp >= s))
            .take(q.limit.max(1))
            .cloned()
            .collect();
        newest_first.reverse();
        newest_first
    }

    /// The last `max_bytes` of one invocation's output (whole lines).
    pub fn tail(&self, function: &str, request_id: &str, max_bytes: usize) -> String {
        let Ok(inner) = self.inner.lock() else {
            return String::new();
        };
        let Some(log) = inner.functions.get(function) else {
            return String::new();
        };
        let mut out: Vec<&str> = Vec::new();
        let mut size = 0;
        for line in log
            .lines
            .iter()
            .rev()
            .filter(|l| l.request_id.as_deref() == Some(request_id))
        {
            size += line.message.len() + 1;
            if size > max_bytes && !out.is_empty() {
                break;
            }
            out.push(&line.message);
            if size > max_bytes {
                break;
            }
        }
        out.reverse();
        let mut text = out.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        if text.len() > max_bytes {
            let cut = text.len() - max_bytes;
            let cut = (cut..text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(text.len());
            text = text[cut..].to_owned();
        }
        text
    }

    /// What is kept for one function.
    pub fn usage(&self, function: &str) -> LogUsage {
        self.inner
            .lock()
            .ok()
            .and_then(|i| {
                i.functions.get(function).map(|l| LogUsage {
                    lines: l.lines.len(),
                    bytes: l.bytes,
                })
            })
            .unwrap_or_default()
    }

    /// What is kept per function, by key, and in all.
    pub fn usage_all(&self) -> (Vec<(String, LogUsage)>, LogUsage, u64) {
        let (per, total, evicted) = self.usage_labelled();
        (
            per.into_iter().map(|(k, _, u)| (k, u)).collect(),
            total,
            evicted,
        )
    }

    /// [`Self::usage_all`] with each function's name (from its newest
    /// line) beside its key.
    fn usage_labelled(&self) -> (Vec<(String, String, LogUsage)>, LogUsage, u64) {
        let Ok(inner) = self.inner.lock() else {
            return (Vec::new(), LogUsage::default(), 0);
        };
        let mut per: Vec<(String, String, LogUsage)> = inner
            .functions
            .iter()
            .map(|(k, l)| {
                let name = l
                    .lines
                    .back()
                    .map(|line| line.function_name.clone())
                    .unwrap_or_default();
                let usage = LogUsage {
                    lines: l.lines.len(),
                    bytes: l.bytes,
                };
                (k.clone(), name, usage)
            })
            .collect();
        per.sort_by(|a, b| a.0.cmp(&b.0));
        let total = LogUsage {
            lines: per.iter().map(|(_, _, u)| u.lines).sum(),
            bytes: inner.bytes,
        };
        (per, total, inner.evicted_lines)
    }

    /// Prometheus text: bytes and lines kept per function, and lines
    /// evicted to stay within the caps.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write;
        // Functions are keyed by id (names repeat across owners); the
        // name rides along for people.
        let (per, total, evicted) = self.usage_labelled();
        let mut out = String::new();
        let _ = writeln!(out, "# HELP hotswap_log_retained_bytes Log bytes kept in memory, per function (cap {} per function, {} in all).", self.limits.per_function_bytes, self.limits.total_bytes);
        let _ = writeln!(out, "# TYPE hotswap_log_retained_bytes gauge");
        for (key, name, u) in &per {
            let _ = writeln!(
                out,
                "hotswap_log_retained_bytes{{function_id=\"{}\",function=\"{}\"}} {}",
                crate::metrics::escape_label(key),
                crate::metrics::escape_label(name),
                u.bytes
            );
        }
        let _ = writeln!(
            out,
            "# HELP hotswap_log_retained_lines Log lines kept in memory, per function."
        );
        let _ = writeln!(out, "# TYPE hotswap_log_retained_lines gauge");
        for (key, name, u) in &per {
            let _ = writeln!(
                out,
                "hotswap_log_retained_lines{{function_id=\"{}\",function=\"{}\"}} {}",
                crate::metrics::escape_label(key),
                crate::metrics::escape_label(name),
                u.lines
            );
        }
        let _ = writeln!(
            out,
            "# HELP hotswap_log_retained_bytes_all Log bytes kept in memory for all functions."
        );
        let _ = writeln!(out, "# TYPE hotswap_log_retained_bytes_all gauge");
        let _ = writeln!(out, "hotswap_log_retained_bytes_all {}", total.bytes);
        let _ = writeln!(out, "# HELP hotswap_log_evicted_lines_total Log lines dropped to stay within the byte caps.");
        let _ = writeln!(out, "# TYPE hotswap_log_evicted_lines_total counter");
        let _ = writeln!(out, "hotswap_log_evicted_lines_total {evicted}");
        out
    }

    pub fn forget(&self, function: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            if let Some(log) = inner.functions.remove(function) {
                inner.bytes -= log.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_of(function: &str, req: &str, msg: &str) -> LogLine {
        LogLine {
            timestamp: Utc::now(),
            function_id: function.into(),
            function_name: function.into(),
            version: "1".into(),
            log_stream_name: "s".into(),
            request_id: Some(req.into()),
            stream: "stdout",
            message: msg.into(),
            truncated: false,
        }
    }

    fn line(req: &str, msg: &str) -> LogLine {
        line_of("f", req, msg)
    }

    fn limits(per_function: usize, total: usize) -> LogLimits {
        LogLimits {
            line_max_bytes: 1024,
            per_function_bytes: per_function,
            total_bytes: total,
        }
    }

    fn all(s: &LogStore, f: &str) -> Vec<String> {
        s.query(
            f,
            &LogQuery {
                limit: usize::MAX,
                ..Default::default()
            },
        )
        .into_iter()
        .map(|l| l.message)
        .collect()
    }

    #[test]
    fn a_function_keeps_its_newest_lines_within_its_bytes() {
        let cost = line("a", "0").cost();
        let s = LogStore::new(limits(3 * cost, 100 * cost));
        for i in 0..5 {
            s.push(line(if i % 2 == 0 { "a" } else { "b" }, &i.to_string()));
        }
        assert_eq!(all(&s, "f"), ["2", "3", "4"]);
        assert_eq!(
            s.usage("f"),
            LogUsage {
                lines: 3,
                bytes: 3 * cost
            }
        );
        let a = s.query(
            "f",
            &LogQuery {
                request_id: Some("a".into()),
                limit: 10,
                ..Default::default()
            },
        );
        assert_eq!(a.len(), 2);
        assert!(all(&s, "g").is_empty());

        // Bytes, not lines: one long line pushes out several short ones.
        let long = "x".repeat(cost);
        s.push(line("c", &long));
        assert_eq!(all(&s, "f"), ["4".to_owned(), long]);
        assert!(s.usage("f").bytes <= 3 * cost);
    }

    #[test]
    fn the_total_is_kept_by_evicting_the_largest_function_first() {
        let cost = line_of("quiet", "r", "0000").cost();
        // Room for 7 lines in all, 6 per function.
        let s = LogStore::new(limits(6 * cost, 7 * cost));
        s.push(line_of("quiet", "r", "q000"));
        s.push(line_of("quiet", "r", "q001"));
        for i in 0..100 {
            s.push(line_of("noisy", "r", &format!("n{i:03}")));
        }
        let (per, total, evicted) = s.usage_all();
        assert!(total.bytes <= 7 * cost, "{total:?}");
        assert_eq!(total.bytes, per.iter().map(|(_, u)| u.bytes).sum::<usize>());
        assert_eq!(
            all(&s, "quiet"),
            ["q000", "q001"],
            "the quiet function keeps its lines"
        );
        let noisy = all(&s, "noisy");
        assert!(
            noisy.len() <= 6 && noisy.last().unwrap() == "n099",
            "{noisy:?}"
        );
        assert_eq!(evicted as usize, 100 - noisy.len());
        let text = s.prometheus();
        assert!(
            text.contains(&format!(
                "hotswap_log_retained_bytes{{function_id=\"quiet\",function=\"quiet\"}} {}\n",
                2 * cost
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("hotswap_log_evicted_lines_total {evicted}\n")),
            "{text}"
        );
        s.forget("noisy");
        assert_eq!(s.usage_all().1.bytes, 2 * cost);
        assert_eq!(s.usage("noisy"), LogUsage::default());
    }

    #[test]
    fn caps_are_made_consistent() {
        let l = LogLimits {
            line_max_bytes: 1 << 30,
            per_function_bytes: 1 << 20,
            total_bytes: 1 << 10,
        }
        .normalised();
        assert_eq!(
            (l.line_max_bytes, l.per_function_bytes, l.total_bytes),
            (1 << 10, 1 << 10, 1 << 10)
        );
    }

    #[test]
    fn query_takes_the_newest_matching_lines_since_a_time() {
        let s = LogStore::new(LogLimits::default());
        let start = Utc::now();
        for i in 0..10 {
            let mut l = line(if i < 5 { "a" } else { "b" }, &i.to_string());
            l.timestamp = start + chrono::Duration::seconds(i);
            l.version = if i % 2 == 0 { "1" } else { "2" }.into();
            s.push(l);
        }
        let q = |limit, since: Option<i64>, version: Option<&str>| {
            s.query(
                "f",
                &LogQuery {
                    limit,
                    since: since.map(|t| start + chrono::Duration::seconds(t)),
                    version: version.map(str::to_owned),
                    request_id: None,
                },
            )
            .into_iter()
            .map(|l| l.message)
            .collect::<Vec<_>>()
        };
        assert_eq!(q(3, None, None), ["7", "8", "9"]);
        assert_eq!(q(100, Some(6), None), ["6", "7", "8", "9"]);
        assert_eq!(q(2, Some(2), Some("1")), ["6", "8"]);
        assert_eq!(q(0, None, None), ["9"], "at least one line");
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        let s = LogStore::new(LogLimits::default());
        for i in 0..10 {
            s.push(line("r", &format!("line-{i}")));
        }
        assert_eq!(s.tail("f", "r", 14), "line-8\nline-9\n");
        assert_eq!(s.tail("f", "other", 100), "");
        let t = s.tail("f", "r", 4);
        assert!(t.len() <= 4 && "line-9\n".ends_with(&t), "{t:?}");
    }
}
