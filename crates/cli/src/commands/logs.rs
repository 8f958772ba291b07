//! `hotswap fn logs`: a function's log lines, one per line, optionally
//! followed (polled every second until Ctrl-C).

use std::collections::HashMap;
use std::future::Future;
use std::io::ErrorKind;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::functions::check_name;
use super::{Ctx, Listing};
use crate::args::{FnLogsArgs, OutputFormat};
use crate::client::Client;
use crate::error::CliError;

/// How often `--follow` asks for new lines.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Most lines one `--follow` poll asks for: the server's maximum.
const POLL_LIMIT: u32 = 1000;

/// One log line: its JSON text as received, parsed, and its time.
#[derive(Debug, Clone, PartialEq)]
pub struct LogItem {
    pub raw: String,
    pub value: Value,
    pub timestamp: Option<DateTime<Utc>>,
}

impl LogItem {
    pub fn new(raw: String, value: Value) -> Self {
        let timestamp = value
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        Self {
            raw,
            value,
            timestamp,
        }
    }
}

/// The logs query: the filters, `since` and `limit`.
pub fn logs_query(
    a: &FnLogsArgs,
    since: Option<DateTime<Utc>>,
    limit: Option<u32>,
) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(r) = &a.request_id {
        q.push(("requestId", r.clone()));
    }
    if let Some(v) = &a.version {
        q.push(("version", v.clone()));
    }
    if let Some(t) = since {
        // Full precision: a follow poll asks again from the exact time of
        // the newest line already printed.
        q.push(("since", t.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
    }
    if let Some(n) = limit {
        q.push(("limit", n.to_string()));
    }
    q
}

/// `2024-05-01T12:00:00.123Z [$LATEST] 1f0c6a2e stdout: message`.
pub fn format_line(item: &Value) -> String {
    let text = |key: &str| item.get(key).and_then(Value::as_str);
    let time = match text("timestamp") {
        Some(t) => match DateTime::parse_from_rfc3339(t) {
            Ok(t) => t
                .with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Millis, true),
            Err(_) => t.to_owned(),
        },
        None => "-".to_owned(),
    };
    let request: String = match text("requestId") {
        Some(r) if !r.is_empty() => r.chars().take(8).collect(),
        _ => "-".to_owned(),
    };
    format!(
        "{time} [{}] {request} {}: {}",
        text("version").unwrap_or("-"),
        text("stream").unwrap_or("-"),
        text("message").unwrap_or(""),
    )
}

/// The lines as printed: formatted for people, one compact JSON object per
/// line for scripts.
pub fn render(items: &[&LogItem], format: OutputFormat) -> String {
    let mut s = String::new();
    for item in items {
        match format {
            OutputFormat::Table => s.push_str(&format_line(&item.value)),
            OutputFormat::Json if item.raw.contains('\n') => s.push_str(&item.value.to_string()),
            OutputFormat::Json => s.push_str(&item.raw),
        }
        s.push('\n');
    }
    s
}

/// What `--follow` has printed: the time of the newest line, and how many
/// times each line (by its JSON text) at that time was seen. Polls ask again
/// from that time (the server's `since` is inclusive), so the lines at it
/// come back and are skipped, while lines that arrived at the same time
/// since are not.
#[derive(Debug, Default, Clone)]
pub struct FollowState {
    last: Option<DateTime<Utc>>,
    seen_at_last: HashMap<String, usize>,
}

impl FollowState {
    /// The `since` of the next poll.
    pub fn since(&self) -> Option<DateTime<Utc>> {
        self.last
    }

    /// The lines of a poll (oldest first) not printed before; remembers them.
    /// Before any line, everything is new; after, lines older than the
    /// newest printed one (or without a time) are old.
    pub fn take_new<'a>(&mut self, items: &'a [LogItem]) -> Vec<&'a LogItem> {
        let mut new = Vec::new();
        let mut counts_at_last: HashMap<&str, usize> = HashMap::new();
        for item in items {
            let fresh = match (self.last, item.timestamp) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(last), Some(t)) if t > last => true,
                (Some(last), Some(t)) if t == last => {
                    let n = counts_at_last.entry(item.raw.as_str()).or_default();
                    *n += 1;
                    *n > self.seen_at_last.get(&item.raw).copied().unwrap_or(0)
                }
                _ => false,
            };
            if fresh {
                new.push(item);
            }
        }
        let newest = items.iter().filter_map(|i| i.timestamp).max();
        match (self.last, newest) {
            (_, None) => {}
            (Some(last), Some(n)) if n < last => {}
            (Some(last), Some(n)) if n == last => {
                for (raw, count) in counts_at_last {
                    let seen = self.seen_at_last.entry(raw.to_owned()).or_default();
                    *seen = (*seen).max(count);
                }
            }
            (_, Some(n)) => {
                self.last = Some(n);
                self.seen_at_last.clear();
                for item in items.iter().filter(|i| i.timestamp == Some(n)) {
                    *self.seen_at_last.entry(item.raw.clone()).or_default() += 1;
                }
            }
        }
        new
    }
}

/// One page of log lines.
async fn fetch(
    client: &Client,
    name: &str,
    query: &[(&'static str, String)],
) -> Result<Vec<LogItem>, CliError> {
    let resp = client.get(&["functions", name, "logs"], query).await?;
    let mut listing = Listing::default();
    listing.add_page(&resp)?;
    Ok(listing
        .raw_items
        .into_iter()
        .zip(listing.items)
        .map(|(raw, value)| LogItem::new(raw, value))
        .collect())
}

pub async fn run(ctx: &mut Ctx<'_>, a: FnLogsArgs) -> Result<(), CliError> {
    check_name(&a.name)?;
    let since = a.since.map(|s| s.resolve(Utc::now()));
    if a.follow {
        return follow(ctx, &a, since, interrupted()).await;
    }
    let items = fetch(&ctx.client, &a.name, &logs_query(&a, since, a.limit)).await?;
    if items.is_empty() && ctx.format == OutputFormat::Table {
        writeln!(ctx.err, "No log lines found.")?;
    }
    let all: Vec<&LogItem> = items.iter().collect();
    ctx.out.write_all(render(&all, ctx.format).as_bytes())?;
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT); never, if that cannot be listened for.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Prints the matching lines, then polls for new ones until `stop` resolves
/// (Ctrl-C) or stdout is closed; both end the command successfully. The
/// first page honours `--limit`; an unreachable server is retried.
async fn follow(
    ctx: &mut Ctx<'_>,
    a: &FnLogsArgs,
    since: Option<DateTime<Utc>>,
    stop: impl Future<Output = ()>,
) -> Result<(), CliError> {
    tokio::pin!(stop);
    let mut state = FollowState::default();
    let mut first = true;
    let mut warned = false;
    loop {
        let limit = if first { a.limit } else { Some(POLL_LIMIT) };
        let query = logs_query(a, state.since().or(since), limit);
        let fetched = tokio::select! {
            r = fetch(&ctx.client, &a.name, &query) => r,
            () = &mut stop => return Ok(()),
        };
        match fetched {
            Ok(items) => {
                first = false;
                warned = false;
                let text = render(&state.take_new(&items), ctx.format);
                if !text.is_empty() {
                    match ctx
                        .out
                        .write_all(text.as_bytes())
                        .and_then(|()| ctx.out.flush())
                    {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(()),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Err(e @ CliError::Unreachable { .. }) if !first => {
                if !warned {
                    writeln!(ctx.err, "warning: {e}; retrying")?;
                    warned = true;
                }
            }
            Err(e) => return Err(e),
        }
        tokio::select! {
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            () = &mut stop => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Since;
    use serde_json::json;

    fn line(ts: &str, request: &str, message: &str) -> LogItem {
        let v = json!({
            "timestamp": ts,
            "functionName": "hello",
            "version": "$LATEST",
            "logStreamName": "2024/05/01/[$LATEST]abc",
            "requestId": request,
            "stream": "stdout",
            "message": message,
        });
        LogItem::new(v.to_string(), v)
    }

    fn messages(items: &[&LogItem]) -> Vec<String> {
        items
            .iter()
            .map(|i| i.value["message"].as_str().unwrap().to_owned())
            .collect()
    }

    fn args(extra: &[&str]) -> FnLogsArgs {
        use crate::args::{Command, FnCommand};
        use clap::{FromArgMatches, Subcommand};
        let cmd = Command::augment_subcommands(clap::Command::new("hotswap"));
        let m = cmd
            .try_get_matches_from(
                ["hotswap", "fn", "logs", "hello"]
                    .into_iter()
                    .chain(extra.iter().copied()),
            )
            .unwrap();
        match Command::from_arg_matches(&m).unwrap() {
            Command::Function(FnCommand::Logs(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn log_lines_are_formatted() {
        let item = line(
            "2024-05-01T12:00:00.123456789Z",
            "1f0c6a2e-5d4b-4c1e-9a8f-2b7c3d4e5f60",
            "handling it",
        );
        assert_eq!(
            format_line(&item.value),
            "2024-05-01T12:00:00.123Z [$LATEST] 1f0c6a2e stdout: handling it"
        );
        let v = json!({"timestamp": "2024-05-01T14:00:00+02:00", "version": "3", "requestId": null, "stream": "stderr", "message": "boot"});
        assert_eq!(
            format_line(&v),
            "2024-05-01T12:00:00.000Z [3] - stderr: boot"
        );
        assert_eq!(format_line(&json!({})), "- [-] - -: ");

        let other = line("2024-05-01T12:00:01Z", "r2", "two");
        assert_eq!(
            render(&[&item, &other], OutputFormat::Table),
            format!(
                "{}\n{}\n",
                format_line(&item.value),
                format_line(&other.value)
            )
        );
        // JSON lines: each item as received, one per line.
        let raw = r#"{"timestamp":"2024-05-01T12:00:00Z","message":"a"}"#;
        let item = LogItem::new(raw.to_owned(), serde_json::from_str(raw).unwrap());
        assert_eq!(
            render(&[&item, &item], OutputFormat::Json),
            format!("{raw}\n{raw}\n")
        );
        assert_eq!(render(&[], OutputFormat::Json), "");
    }

    #[test]
    fn query_has_the_filters() {
        let a = args(&["--request-id", "r1", "--version", "v3", "--since", "10m"]);
        assert_eq!(a.since, Some(Since::Ago(Duration::from_secs(600))));
        let t = DateTime::parse_from_rfc3339("2024-05-01T12:00:00.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            logs_query(&a, Some(t), Some(5)),
            vec![
                ("requestId", "r1".to_owned()),
                ("version", "3".to_owned()),
                ("since", "2024-05-01T12:00:00.123456789Z".to_owned()),
                ("limit", "5".to_owned()),
            ]
        );
        assert!(logs_query(&args(&[]), None, None).is_empty());
    }

    #[test]
    fn follow_prints_each_line_once() {
        let mut s = FollowState::default();
        assert_eq!(s.since(), None);
        // Nothing yet: nothing printed, still no `since`.
        assert!(s.take_new(&[]).is_empty());
        assert_eq!(s.since(), None);

        // First page: everything is new.
        let a = line("2024-05-01T12:00:00Z", "r1", "a");
        let b = line("2024-05-01T12:00:01Z", "r1", "b");
        let c = line("2024-05-01T12:00:01Z", "r2", "c");
        let first = [a.clone(), b.clone(), c.clone()];
        assert_eq!(messages(&s.take_new(&first)), ["a", "b", "c"]);
        assert_eq!(s.since(), b.timestamp);

        // The next poll (since the newest time, inclusive) repeats b and c:
        // skipped. d arrived at the same time and e later: printed.
        let d = line("2024-05-01T12:00:01Z", "r3", "d");
        let e = line("2024-05-01T12:00:02Z", "r3", "e");
        let poll = [b.clone(), c.clone(), d.clone(), e.clone()];
        assert_eq!(messages(&s.take_new(&poll)), ["d", "e"]);
        assert_eq!(s.since(), e.timestamp);

        // A quiet poll: only the repeat of e.
        assert!(s.take_new(std::slice::from_ref(&e)).is_empty());
        assert_eq!(s.since(), e.timestamp);

        // The same line twice at the same time (a loop printing it): the
        // second copy is new once.
        let poll = [e.clone(), e.clone()];
        assert_eq!(messages(&s.take_new(&poll)), ["e"]);
        assert!(s.take_new(&poll).is_empty());

        // More at the last time, after a quiet poll: still printed once.
        let f = line("2024-05-01T12:00:02Z", "r4", "f");
        let poll = [e.clone(), e.clone(), f.clone()];
        assert_eq!(messages(&s.take_new(&poll)), ["f"]);
        assert!(s.take_new(&poll).is_empty());

        // Older lines (a server without `since`) and lines without a time
        // are not printed again.
        let untimed = LogItem::new("{}".into(), json!({}));
        assert!(s.take_new(&[a, b, untimed]).is_empty());
        assert_eq!(s.since(), e.timestamp);
    }

    #[test]
    fn follow_starts_from_an_empty_first_page() {
        let mut s = FollowState::default();
        assert!(s.take_new(&[]).is_empty());
        let a = line("2024-05-01T12:00:00Z", "r1", "a");
        assert_eq!(messages(&s.take_new(std::slice::from_ref(&a))), ["a"]);
        assert!(s.take_new(&[a]).is_empty());
    }
}
