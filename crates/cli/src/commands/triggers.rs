//! `hotswap trigger …`: create, list, get, enable, disable, delete.

use serde_json::{json, Map, Value};

use super::functions::check_name;
use super::{put_opt, Ctx};
use crate::args::{OutputFormat, TriggerCommand, TriggerCreateArgs};
use crate::client::Response;
use crate::error::CliError;
use crate::output::{
    cell_text, col, computed, format_time, lookup, render_object, Column, Detail, Fmt,
};

pub const TRIGGER_COLUMNS: &[Column] = &[
    col("ID", "triggerId", Fmt::Text),
    col("FUNCTION", "functionName", Fmt::Text),
    col("TYPE", "type", Fmt::Text),
    col("TARGET", "targetVersion", Fmt::Text),
    col("ENABLED", "isEnabled", Fmt::YesNo),
    computed("SOURCE", source_text),
    computed("URL / NEXT RUN", reach_text),
    col("RUNS", "executionCount", Fmt::Text),
    col("FAILURES", "failureCount", Fmt::Text),
    col("LAST RUN", "lastExecutedAt", Fmt::Time),
];

/// One trigger: its URL (HTTP) or next run (Scheduled) right after what it
/// is; then the rest, with `config` and `state` one row per field.
pub const TRIGGER_DETAIL: Detail = Detail {
    order: &[
        "triggerId",
        "functionName",
        "targetVersion",
        "type",
        "isEnabled",
        "url",
        "nextRunAt",
    ],
    flatten: &["config", "state"],
};

/// What a schedule with no next run shows.
const NEVER: &str = "never";
/// What a disabled schedule shows as its next run.
const DISABLED: &str = "- (disabled)";

/// How to reach the trigger, in one cell: an HTTP trigger's URL, a
/// schedule's next run (`never` when it will not fire again), else `-`.
pub fn reach_text(t: &Value) -> String {
    if let Some(url) = lookup(t, "url").and_then(Value::as_str) {
        return url.to_owned();
    }
    match lookup(t, "nextRunAt") {
        Some(Value::String(s)) => format_time(s),
        Some(Value::Null) if is_scheduled(t) => no_next_run(t).to_owned(),
        _ => "-".to_owned(),
    }
}

fn is_scheduled(t: &Value) -> bool {
    lookup(t, "type").and_then(Value::as_str) == Some("Scheduled")
}

/// Why a schedule has no next run: it is disabled, or it never fires again.
fn no_next_run(t: &Value) -> &'static str {
    if lookup(t, "isEnabled").and_then(Value::as_bool) == Some(false) {
        DISABLED
    } else {
        NEVER
    }
}

/// The trigger as shown by `get`, `create`, `enable` and `disable`: a
/// schedule's null `nextRunAt` says why there is none.
pub fn for_display(t: &Value) -> Value {
    let mut t = t.clone();
    if is_scheduled(&t) && t.get("nextRunAt").is_some_and(Value::is_null) {
        let why = no_next_run(&t);
        t["nextRunAt"] = why.into();
    }
    t
}

/// What fires the trigger, in one cell: `GET,POST /hello`, the schedule,
/// the queue or the stream.
pub fn source_text(t: &Value) -> String {
    let field = |k: &str| lookup(t, &format!("config.{k}")).filter(|v| !v.is_null());
    let ty = lookup(t, "type").and_then(Value::as_str).unwrap_or("");
    let text = match ty {
        "Http" => {
            let methods = field("httpMethods")
                .and_then(Value::as_array)
                .map(|m| {
                    m.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|m| !m.is_empty());
            let path = field("httpPath").map(cell_text);
            match (methods, path) {
                (Some(m), Some(p)) => Some(format!("{m} {p}")),
                (None, p) => p,
                (m, None) => m,
            }
        }
        "Scheduled" => field("scheduleExpression").map(|e| match field("timezone") {
            Some(tz) => format!("{} ({})", cell_text(e), cell_text(tz)),
            None => cell_text(e),
        }),
        "Queue" => field("queueName").map(cell_text),
        "Stream" => field("streamArn").map(cell_text),
        _ => None,
    };
    text.unwrap_or_else(|| "-".to_owned())
}

/// The `POST /v1/triggers` body: the config holds only the options given;
/// `owner` (the global `--owner`) binds another owner's function.
pub fn create_body(a: &TriggerCreateArgs, owner: Option<&str>) -> Value {
    let mut config = Map::new();
    put_opt(&mut config, "httpPath", a.path.clone());
    if !a.methods.is_empty() {
        let methods: Vec<String> = a.methods.iter().map(|m| m.to_ascii_uppercase()).collect();
        config.insert("httpMethods".into(), methods.into());
    }
    if a.cors || !a.cors_origins.is_empty() {
        config.insert("corsEnabled".into(), true.into());
    }
    if !a.cors_origins.is_empty() {
        config.insert("corsAllowOrigins".into(), a.cors_origins.clone().into());
    }
    put_opt(&mut config, "authType", a.auth.map(|x| x.as_api()));
    put_opt(&mut config, "rateLimit", a.rate_limit);
    put_opt(&mut config, "scheduleExpression", a.schedule.clone());
    put_opt(&mut config, "timezone", a.timezone.clone());
    put_opt(
        &mut config,
        "source",
        a.source.as_ref().map(|s| s.to_ascii_lowercase()),
    );
    put_opt(&mut config, "batchSize", a.batch_size);
    if a.report_batch_item_failures {
        config.insert("reportBatchItemFailures".into(), true.into());
    }
    put_opt(&mut config, "queueName", a.queue.clone());
    put_opt(&mut config, "visibilityTimeout", a.visibility_timeout);
    put_opt(&mut config, "maximumBatchingWindow", a.batching_window);
    put_opt(&mut config, "maxReceiveCount", a.max_receive_count);
    put_opt(&mut config, "maximumConcurrency", a.maximum_concurrency);
    put_opt(
        &mut config,
        "deadLetterTarget",
        a.dead_letter_target.clone(),
    );
    put_opt(&mut config, "streamArn", a.stream.clone());
    put_opt(
        &mut config,
        "startingPosition",
        a.starting_position.as_ref().map(|p| p.to_ascii_uppercase()),
    );
    put_opt(
        &mut config,
        "startingPositionTimestamp",
        a.starting_position_timestamp.clone(),
    );
    put_opt(&mut config, "parallelizationFactor", a.parallelization);
    if a.bisect_on_error {
        config.insert("bisectBatchOnFunctionError".into(), true.into());
    }
    put_opt(
        &mut config,
        "maximumRetryAttempts",
        a.maximum_retry_attempts,
    );
    put_opt(
        &mut config,
        "maximumRecordAgeInSeconds",
        a.maximum_record_age,
    );
    put_opt(&mut config, "onFailure", a.on_failure.clone());

    let mut body = Map::new();
    body.insert("functionName".into(), a.name.clone().into());
    put_opt(&mut body, "ownerId", owner);
    put_opt(&mut body, "targetVersion", a.target_version.clone());
    body.insert("type".into(), a.trigger_type.as_str().into());
    if a.disabled {
        body.insert("isEnabled".into(), false.into());
    }
    body.insert("config".into(), Value::Object(config));
    Value::Object(body)
}

pub async fn run(ctx: &mut Ctx<'_>, cmd: TriggerCommand) -> Result<(), CliError> {
    match cmd {
        TriggerCommand::Create(a) => {
            check_name(&a.name)?;
            let body = create_body(&a, ctx.client.owner());
            let resp = ctx.client.post(&["triggers"], &body).await?;
            print_trigger(ctx, &resp)
        }
        TriggerCommand::List { function, page } => {
            let mut query = Vec::new();
            if let Some(f) = function {
                check_name(&f)?;
                query.push(("functionName", f));
                // Function names are unique per owner.
                if let Some(owner) = ctx.client.owner() {
                    query.push(("owner", owner.to_owned()));
                }
            }
            let listing = ctx.list(&["triggers"], query, &page).await?;
            ctx.print_list(&listing, TRIGGER_COLUMNS, "triggers")
        }
        TriggerCommand::Get { id } => {
            let resp = ctx.client.get(&["triggers", &id], &[]).await?;
            print_trigger(ctx, &resp)
        }
        TriggerCommand::Enable { id } => set_enabled(ctx, &id, true).await,
        TriggerCommand::Disable { id } => set_enabled(ctx, &id, false).await,
        TriggerCommand::Delete { id } => {
            let resp = ctx.client.delete(&["triggers", &id]).await?;
            ctx.print_done(&resp, &format!("Deleted trigger {id}."))
        }
    }
}

async fn set_enabled(ctx: &mut Ctx<'_>, id: &str, enabled: bool) -> Result<(), CliError> {
    let resp = ctx
        .client
        .patch(&["triggers", id], &json!({ "isEnabled": enabled }))
        .await?;
    print_trigger(ctx, &resp)
}

/// One trigger: the server's JSON as is with `-o json`, else key/value rows
/// (see [`for_display`]).
fn print_trigger(ctx: &mut Ctx<'_>, resp: &Response) -> Result<(), CliError> {
    match ctx.format {
        OutputFormat::Json => ctx.print_json(resp),
        OutputFormat::Table => {
            let text = render_object(&for_display(&resp.value), &TRIGGER_DETAIL);
            ctx.out.write_all(text.as_bytes())?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Command;
    use clap::{FromArgMatches, Subcommand};

    fn parse_create(args: &[&str]) -> TriggerCreateArgs {
        let cmd = Command::augment_subcommands(clap::Command::new("hotswap"));
        let m = cmd
            .try_get_matches_from(
                ["hotswap", "trigger", "create"]
                    .into_iter()
                    .chain(args.iter().copied()),
            )
            .unwrap();
        match Command::from_arg_matches(&m).unwrap() {
            Command::Trigger(TriggerCommand::Create(a)) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn http_trigger_body() {
        let a = parse_create(&[
            "hello", "--type", "http", "--path", "/hello", "--method", "get", "--method", "POST",
            "--cors",
        ]);
        assert_eq!(
            create_body(&a, None),
            json!({
                "functionName": "hello", "type": "Http",
                "config": {"httpPath": "/hello", "httpMethods": ["GET", "POST"], "corsEnabled": true}
            })
        );
    }

    #[test]
    fn queue_trigger_body() {
        let a = parse_create(&[
            "worker",
            "--type",
            "QUEUE",
            "--queue",
            "jobs",
            "--batch-size",
            "10",
            "--visibility-timeout",
            "60",
            "--target-version",
            "prod",
            "--disabled",
        ]);
        assert_eq!(
            create_body(&a, None),
            json!({
                "functionName": "worker", "targetVersion": "prod", "type": "Queue", "isEnabled": false,
                "config": {"queueName": "jobs", "batchSize": 10, "visibilityTimeout": 60}
            })
        );
    }

    #[test]
    fn broker_queue_and_stream_bodies() {
        let a = parse_create(&[
            "worker",
            "--type",
            "queue",
            "--queue",
            "jobs",
            "--source",
            "RabbitMQ",
            "--batching-window",
            "2",
            "--max-receive-count",
            "5",
            "--maximum-concurrency",
            "8",
            "--dead-letter-target",
            "queue:jobs-dlq",
            "--report-batch-item-failures",
        ]);
        assert_eq!(
            create_body(&a, None)["config"],
            json!({"queueName": "jobs", "source": "rabbitmq", "maximumBatchingWindow": 2,
                   "maxReceiveCount": 5, "maximumConcurrency": 8,
                   "deadLetterTarget": "queue:jobs-dlq", "reportBatchItemFailures": true})
        );
        let a = parse_create(&[
            "clicks",
            "--type",
            "stream",
            "--stream",
            "clicks",
            "--source",
            "nats",
            "--starting-position",
            "at_timestamp",
            "--starting-position-timestamp",
            "2031-01-01T00:00:00Z",
            "--parallelization",
            "4",
            "--bisect-on-error",
            "--maximum-retry-attempts",
            "-1",
            "--maximum-record-age",
            "3600",
            "--on-failure",
            "fn:failed",
        ]);
        assert_eq!(
            create_body(&a, None)["config"],
            json!({"streamArn": "clicks", "source": "nats", "startingPosition": "AT_TIMESTAMP",
                   "startingPositionTimestamp": "2031-01-01T00:00:00Z",
                   "parallelizationFactor": 4, "bisectBatchOnFunctionError": true,
                   "maximumRetryAttempts": -1, "maximumRecordAgeInSeconds": 3600,
                   "onFailure": "fn:failed"})
        );
    }

    #[test]
    fn http_options_body() {
        let a = parse_create(&[
            "orders",
            "--type",
            "http",
            "--path",
            "/orders/{id}",
            "--cors-origin",
            "https://a.example",
            "--cors-origin",
            "https://b.example",
            "--auth",
            "token",
            "--rate-limit",
            "100",
        ]);
        assert_eq!(
            create_body(&a, Some("alice")),
            json!({
                "functionName": "orders", "ownerId": "alice", "type": "Http",
                "config": {
                    "httpPath": "/orders/{id}", "corsEnabled": true,
                    "corsAllowOrigins": ["https://a.example", "https://b.example"],
                    "authType": "Token", "rateLimit": 100
                }
            })
        );
        let a = parse_create(&["f", "--type", "http", "--path", "/", "--auth", "none"]);
        assert_eq!(create_body(&a, None)["config"]["authType"], "None");
    }

    #[test]
    fn scheduled_trigger_body() {
        let a = parse_create(&[
            "report",
            "--type",
            "scheduled",
            "--schedule",
            "rate(30 seconds)",
            "--timezone",
            "Europe/Paris",
        ]);
        assert_eq!(
            create_body(&a, None),
            json!({
                "functionName": "report", "type": "Scheduled",
                "config": {"scheduleExpression": "rate(30 seconds)", "timezone": "Europe/Paris"}
            })
        );
    }

    #[test]
    fn bad_http_options_are_usage_errors() {
        let cmd = || Command::augment_subcommands(clap::Command::new("hotswap"));
        for bad in [
            &["--auth", "iam"][..],
            &["--rate-limit", "0"],
            &["--rate-limit", "1000001"],
            &["--rate-limit", "lots"],
        ] {
            let args = ["hotswap", "trigger", "create", "f", "--type", "http"]
                .into_iter()
                .chain(bad.iter().copied());
            let err = cmd().try_get_matches_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}: {err}");
        }
    }

    #[test]
    fn url_or_next_run_column() {
        let http = json!({"type": "Http", "isEnabled": true,
            "url": "http://127.0.0.1:8080/fn/orders/{id}", "config": {"httpPath": "/orders/{id}"}});
        assert_eq!(reach_text(&http), "http://127.0.0.1:8080/fn/orders/{id}");
        let sched = json!({"type": "Scheduled", "isEnabled": true,
            "nextRunAt": "2031-03-30T01:00:00.123456Z"});
        assert_eq!(reach_text(&sched), "2031-03-30 01:00:00");
        let done = json!({"type": "Scheduled", "isEnabled": true, "nextRunAt": null});
        assert_eq!(reach_text(&done), "never");
        let off = json!({"type": "Scheduled", "isEnabled": false, "nextRunAt": null});
        assert_eq!(reach_text(&off), "- (disabled)");
        // An older server sends neither field.
        assert_eq!(reach_text(&json!({"type": "Queue"})), "-");
        assert_eq!(reach_text(&json!({"type": "Scheduled"})), "-");
    }

    /// The rows of a rendered object, as (key, value).
    fn rows(text: &str) -> Vec<(String, String)> {
        text.lines()
            .map(|l| match l.split_once(char::is_whitespace) {
                Some((k, v)) => (k.to_owned(), v.trim().to_owned()),
                None => (l.to_owned(), String::new()),
            })
            .collect()
    }

    #[test]
    fn detail_shows_url_next_run_and_state() {
        let t = json!({
            "triggerId": "t1", "functionName": "report", "targetVersion": "$LATEST",
            "type": "Scheduled", "isEnabled": true,
            "config": {"scheduleExpression": "cron(0 8 * * ? *)", "timezone": "Europe/Paris"},
            "createdAt": "2031-01-01T00:00:00Z", "lastExecutedAt": null,
            "executionCount": 3, "failureCount": 0,
            "nextRunAt": "2031-03-30T06:00:00.000001Z",
            "state": {"status": "Scheduled", "lastError": null, "missed": 0}
        });
        let r = rows(&render_object(&for_display(&t), &TRIGGER_DETAIL));
        let keys: Vec<&str> = r.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys[..6],
            [
                "triggerId",
                "functionName",
                "targetVersion",
                "type",
                "isEnabled",
                "nextRunAt"
            ]
        );
        let find = |k: &str| r.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(find("nextRunAt"), Some("2031-03-30T06:00:00Z"));
        assert_eq!(find("state.status"), Some("Scheduled"));
        assert_eq!(find("state.missed"), Some("0"));
        assert_eq!(find("state.lastError"), None);
        assert_eq!(find("config.timezone"), Some("Europe/Paris"));

        let mut off = t.clone();
        off["isEnabled"] = false.into();
        off["nextRunAt"] = Value::Null;
        let r = rows(&render_object(&for_display(&off), &TRIGGER_DETAIL));
        assert!(
            r.contains(&("nextRunAt".into(), "- (disabled)".into())),
            "{r:?}"
        );

        let http = json!({
            "triggerId": "t2", "functionName": "orders", "targetVersion": "$LATEST",
            "type": "Http", "isEnabled": true,
            "url": "http://127.0.0.1:8080/fn/orders/{id}",
            "config": {"httpPath": "/orders/{id}"},
            "state": {"status": "Active", "lastError": "boom"}
        });
        let r = rows(&render_object(&for_display(&http), &TRIGGER_DETAIL));
        assert_eq!(
            r[5],
            ("url".into(), "http://127.0.0.1:8080/fn/orders/{id}".into())
        );
        assert!(r.contains(&("state.lastError".into(), "boom".into())));
        assert!(!r.iter().any(|(k, _)| k == "nextRunAt"));
    }

    #[test]
    fn source_column() {
        let t = json!({"type": "Http", "config": {"httpPath": "/x", "httpMethods": ["GET"]}});
        assert_eq!(source_text(&t), "GET /x");
        let t = json!({"type": "Scheduled", "config": {"scheduleExpression": "rate(5 minutes)", "timezone": "Europe/Paris"}});
        assert_eq!(source_text(&t), "rate(5 minutes) (Europe/Paris)");
        let t = json!({"type": "Stream", "config": {"streamArn": null}});
        assert_eq!(source_text(&t), "-");
    }
}
