//! Per-invocation logs: every line an instance prints, tagged with the
//! request it was handling, kept in a bounded in-memory store per function.

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
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    pub message: String,
}

/// Which lines to return.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub request_id: Option<String>,
    pub version: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: usize,
}

/// Bounded per-function ring buffers.
pub struct LogStore {
    per_function: usize,
    lines: Mutex<HashMap<String, VecDeque<LogLine>>>,
}

impl LogStore {
    pub fn new(per_function: usize) -> Self {
        Self {
            per_function: per_function.max(1),
            lines: Mutex::default(),
        }
    }

    pub fn push(&self, line: LogLine) {
        if let Ok(mut all) = self.lines.lock() {
            let buf = all.entry(line.function_id.clone()).or_default();
            if buf.len() == self.per_function {
                buf.pop_front();
            }
            buf.push_back(line);
        }
    }

    /// Matching lines of the function with this id, oldest first, at most
    /// `limit` (the newest ones).
    pub fn query(&self, function: &str, q: &LogQuery) -> Vec<LogLine> {
        let Ok(all) = self.lines.lock() else {
            return Vec::new();
        };
        let Some(buf) = all.get(function) else {
            return Vec::new();
        };
        let matching: Vec<&LogLine> = buf
            .iter()
            .filter(|l| {
                q.request_id
                    .as_ref()
                    .is_none_or(|r| l.request_id.as_ref() == Some(r))
            })
            .filter(|l| q.version.as_ref().is_none_or(|v| &l.version == v))
            .filter(|l| q.since.is_none_or(|s| l.timestamp >= s))
            .collect();
        let skip = matching.len().saturating_sub(q.limit.max(1));
        matching.into_iter().skip(skip).cloned().collect()
    }

    /// The last `max_bytes` of one invocation's output (whole lines).
    pub fn tail(&self, function: &str, request_id: &str, max_bytes: usize) -> String {
        let q = LogQuery {
            request_id: Some(request_id.to_owned()),
            limit: usize::MAX,
            ..Default::default()
        };
        let mut out: Vec<String> = Vec::new();
        let mut size = 0;
        for line in self.query(function, &q).into_iter().rev() {
            size += line.message.len() + 1;
            if size > max_bytes && !out.is_empty() {
                break;
            }
            out.push(line.message);
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

    pub fn forget(&self, function: &str) {
        if let Ok(mut all) = self.lines.lock() {
            all.remove(function);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(req: &str, msg: &str) -> LogLine {
        LogLine {
            timestamp: Utc::now(),
            function_id: "f".into(),
            function_name: "f".into(),
            version: "1".into(),
            log_stream_name: "s".into(),
            request_id: Some(req.into()),
            stream: "stdout",
            message: msg.into(),
        }
    }

    #[test]
    fn ring_buffer_and_filters() {
        let s = LogStore::new(3);
        for i in 0..5 {
            s.push(line(if i % 2 == 0 { "a" } else { "b" }, &i.to_string()));
        }
        let all = s.query(
            "f",
            &LogQuery {
                limit: 10,
                ..Default::default()
            },
        );
        assert_eq!(
            all.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(),
            ["2", "3", "4"]
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
        assert!(s
            .query(
                "g",
                &LogQuery {
                    limit: 10,
                    ..Default::default()
                }
            )
            .is_empty());
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        let s = LogStore::new(100);
        for i in 0..10 {
            s.push(line("r", &format!("line-{i}")));
        }
        assert_eq!(s.tail("f", "r", 14), "line-8\nline-9\n");
        assert_eq!(s.tail("f", "other", 100), "");
        let t = s.tail("f", "r", 4);
        assert!(t.len() <= 4 && "line-9\n".ends_with(&t), "{t:?}");
    }
}
