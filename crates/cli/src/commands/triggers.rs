//! `hotswap trigger …`: create, list, get, enable, disable, delete.

use serde_json::{json, Map, Value};

use super::functions::check_name;
use super::{put_opt, Ctx};
use crate::args::{TriggerCommand, TriggerCreateArgs};
use crate::error::CliError;
use crate::output::{cell_text, col, computed, lookup, Column, Detail, Fmt};

pub const TRIGGER_COLUMNS: &[Column] = &[
    col("ID", "triggerId", Fmt::Text),
    col("FUNCTION", "functionName", Fmt::Text),
    col("TYPE", "type", Fmt::Text),
    col("TARGET", "targetVersion", Fmt::Text),
    col("ENABLED", "isEnabled", Fmt::YesNo),
    computed("SOURCE", source_text),
    col("RUNS", "executionCount", Fmt::Text),
    col("FAILURES", "failureCount", Fmt::Text),
    col("LAST RUN", "lastExecutedAt", Fmt::Time),
];

pub const TRIGGER_DETAIL: Detail = Detail {
    order: &[
        "triggerId",
        "functionName",
        "targetVersion",
        "type",
        "isEnabled",
    ],
    flatten: &["config"],
};

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

/// The `POST /v1/triggers` body: the config holds only the options given.
pub fn create_body(a: &TriggerCreateArgs) -> Value {
    let mut config = Map::new();
    put_opt(&mut config, "httpPath", a.path.clone());
    if !a.methods.is_empty() {
        let methods: Vec<String> = a.methods.iter().map(|m| m.to_ascii_uppercase()).collect();
        config.insert("httpMethods".into(), methods.into());
    }
    if a.cors {
        config.insert("corsEnabled".into(), true.into());
    }
    put_opt(&mut config, "scheduleExpression", a.schedule.clone());
    put_opt(&mut config, "timezone", a.timezone.clone());
    put_opt(&mut config, "queueName", a.queue.clone());
    put_opt(&mut config, "batchSize", a.batch_size);
    put_opt(&mut config, "visibilityTimeout", a.visibility_timeout);
    put_opt(&mut config, "streamArn", a.stream.clone());
    put_opt(
        &mut config,
        "startingPosition",
        a.starting_position.as_ref().map(|p| p.to_ascii_uppercase()),
    );
    put_opt(&mut config, "parallelizationFactor", a.parallelization);

    let mut body = Map::new();
    body.insert("functionName".into(), a.name.clone().into());
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
            let resp = ctx.client.post(&["triggers"], &create_body(&a)).await?;
            ctx.print_object(&resp, &TRIGGER_DETAIL)
        }
        TriggerCommand::List { function, page } => {
            let mut query = Vec::new();
            if let Some(f) = function {
                check_name(&f)?;
                query.push(("functionName", f));
            }
            let listing = ctx.list(&["triggers"], query, &page).await?;
            ctx.print_list(&listing, TRIGGER_COLUMNS, "triggers")
        }
        TriggerCommand::Get { id } => {
            let resp = ctx.client.get(&["triggers", &id], &[]).await?;
            ctx.print_object(&resp, &TRIGGER_DETAIL)
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
    ctx.print_object(&resp, &TRIGGER_DETAIL)
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
            Command::Trigger(TriggerCommand::Create(a)) => a,
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
            create_body(&a),
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
            create_body(&a),
            json!({
                "functionName": "worker", "targetVersion": "prod", "type": "Queue", "isEnabled": false,
                "config": {"queueName": "jobs", "batchSize": 10, "visibilityTimeout": 60}
            })
        );
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
