//! `hotswap deploy` (which follows the deployment live until it ends) and
//! `hotswap deployments …`: list, get, watch, promote, rollback, cancel.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};

use super::functions::check_name;
use super::{number, put_opt, Ctx};
use crate::args::{DeployArgs, DeploymentsCommand, OutputFormat};
use crate::client::Response;
use crate::error::CliError;
use crate::output::{cell_text, col, computed, lookup, Column, Detail, Fmt};

pub const DEPLOYMENT_COLUMNS: &[Column] = &[
    col("ID", "deploymentId", Fmt::Text),
    col("ALIAS", "aliasName", Fmt::Text),
    col("STRATEGY", "strategy", Fmt::Text),
    computed("VERSIONS", |d| {
        format!(
            "{} -> {}",
            lookup(d, "sourceVersion").map_or("-".to_owned(), cell_text),
            lookup(d, "targetVersion").map_or("-".to_owned(), cell_text)
        )
    }),
    col("STATUS", "status", Fmt::Text),
    col("PROGRESS", "progress", Fmt::Percent),
    col("PHASE", "currentPhase", Fmt::Text),
    col("STARTED", "startedAt", Fmt::Time),
];

pub const DEPLOYMENT_DETAIL: Detail = Detail {
    order: &[
        "deploymentId",
        "functionName",
        "aliasName",
        "sourceVersion",
        "targetVersion",
        "strategy",
        "status",
        "progress",
        "currentPhase",
        "errorMessage",
        "rollbackReason",
        "deployedBy",
        "startedAt",
        "completedAt",
    ],
    flatten: &["config", "metrics"],
};

/// The deployment `config` for the options given; `None` when none were.
/// Durations are sent as seconds.
pub fn deploy_config(a: &DeployArgs) -> Option<Value> {
    let mut c = Map::new();
    put_opt(&mut c, "canaryPercentage", a.canary_percent.map(number));
    put_opt(&mut c, "canaryDuration", a.canary_duration.map(number));
    if !a.canary_increments.is_empty() {
        let steps: Vec<Value> = a.canary_increments.iter().copied().map(number).collect();
        c.insert("canaryIncrements".into(), Value::Array(steps));
    }
    put_opt(&mut c, "testDuration", a.test_duration.map(number));
    if a.keep_blue {
        c.insert("keepBlue".into(), true.into());
    }
    put_opt(&mut c, "batchSize", a.batch_size.map(number));
    put_opt(&mut c, "batchDuration", a.batch_duration.map(number));
    put_opt(
        &mut c,
        "rollbackOnErrorRate",
        a.rollback_error_rate.map(number),
    );
    put_opt(
        &mut c,
        "rollbackOnLatencyP99",
        a.rollback_latency_p99.map(number),
    );
    put_opt(
        &mut c,
        "rollbackOnSuccessRate",
        a.rollback_success_rate.map(number),
    );
    put_opt(&mut c, "bakeDuration", a.bake_duration.map(number));
    put_opt(&mut c, "minInvocations", a.min_invocations.map(Value::from));
    (!c.is_empty()).then_some(Value::Object(c))
}

/// The `POST /v1/functions/{name}/deployments` body.
pub fn deploy_body(a: &DeployArgs) -> Value {
    let mut body = Map::new();
    body.insert("aliasName".into(), a.alias.clone().into());
    body.insert("targetVersion".into(), a.version.into());
    body.insert("strategy".into(), a.strategy.as_str().into());
    put_opt(&mut body, "config", deploy_config(a));
    Value::Object(body)
}

pub async fn deploy(ctx: &mut Ctx<'_>, a: DeployArgs) -> Result<(), CliError> {
    check_name(&a.name)?;
    hotswap_domain::names::validate_alias_name(&a.alias)
        .map_err(|e| CliError::usage(format!("invalid --alias '{}': {e}", a.alias)))?;
    let resp = ctx
        .client
        .post(&["functions", &a.name, "deployments"], &deploy_body(&a))
        .await?;
    if a.no_wait {
        return print_deployment(ctx, &resp);
    }
    let id = resp.value["deploymentId"]
        .as_str()
        .ok_or_else(|| CliError::BadResponse("the deployment has no deploymentId".into()))?
        .to_owned();
    follow(ctx, &a.name, &id, resp).await
}

/// How often a followed deployment is read again.
const FOLLOW_POLL: Duration = Duration::from_millis(500);
/// Failed reads in a row before following gives up.
const FOLLOW_RETRIES: u32 = 20;

fn is_terminal_status(status: &str) -> bool {
    matches!(status, "Completed" | "Failed" | "RolledBack" | "Cancelled")
}

/// `90% v1 · 10% v2` from the newest timeline entry.
fn traffic_text(d: &Value) -> String {
    let Some(traffic) = d["timeline"]
        .as_array()
        .and_then(|t| t.last())
        .and_then(|e| e["traffic"].as_object())
    else {
        return "-".into();
    };
    traffic
        .iter()
        .map(|(v, p)| format!("{}% v{v}", cell_text(p)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// One line of live status: phase, split, the target's error rate and p99.
pub fn status_line(d: &Value) -> String {
    let m = &d["metrics"];
    let figures = if m.is_object() {
        format!(
            "n={} err {:.2}% p99 {:.1} ms",
            m["invocationCount"].as_u64().unwrap_or(0),
            m["errorRate"].as_f64().unwrap_or(0.0),
            m["p99Duration"].as_f64().unwrap_or(0.0)
        )
    } else {
        "no traffic yet".into()
    };
    format!(
        "{} | {} | {} | {}",
        d["status"].as_str().unwrap_or("?"),
        d["currentPhase"].as_str().unwrap_or("-"),
        traffic_text(d),
        figures
    )
}

/// Shows the deployment's progress until it ends: a progress bar on a
/// terminal, a line per change otherwise. Then prints the deployment; an
/// end other than Completed is an error (exit code 4).
async fn follow(ctx: &mut Ctx<'_>, name: &str, id: &str, first: Response) -> Result<(), CliError> {
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        let bar = ProgressBar::new(100);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos:>3}% {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut resp = first;
    let mut last = String::new();
    if resp.value["strategy"] == "ABTesting" {
        writeln!(
            ctx.err,
            "ABTesting keeps its split until `hotswap deployments promote {name} {id}` (or rollback); Ctrl-C stops watching, not the deployment"
        )?;
    }
    let mut failures = 0;
    loop {
        let d = &resp.value;
        let line = status_line(d);
        if tty {
            bar.set_position(d["progress"].as_f64().unwrap_or(0.0).clamp(0.0, 100.0) as u64);
            bar.set_message(line.clone());
        } else if line != last {
            writeln!(
                ctx.err,
                "{:>5.1}% {line}",
                d["progress"].as_f64().unwrap_or(0.0)
            )?;
        }
        last = line;
        if is_terminal_status(d["status"].as_str().unwrap_or("")) {
            break;
        }
        tokio::time::sleep(FOLLOW_POLL).await;
        // A blip (a restarting server) does not end the watch; the
        // deployment goes on either way.
        match ctx
            .client
            .get(&["functions", name, "deployments", id], &[])
            .await
        {
            Ok(r) => {
                resp = r;
                failures = 0;
            }
            Err(e) if failures < FOLLOW_RETRIES => {
                failures += 1;
                if !tty {
                    writeln!(ctx.err, "cannot read the deployment ({e}); retrying")?;
                }
            }
            Err(e) => return Err(e),
        }
    }
    bar.finish_and_clear();
    print_deployment(ctx, &resp)?;
    let d = &resp.value;
    match d["status"].as_str().unwrap_or("") {
        "Completed" => Ok(()),
        status => Err(CliError::Deployment {
            status: status.to_owned(),
            reason: d["rollbackReason"]
                .as_str()
                .or(d["errorMessage"].as_str())
                .unwrap_or("")
                .to_owned(),
        }),
    }
}

/// The deployment's fields, then its timeline as a table (or the JSON).
fn print_deployment(ctx: &mut Ctx<'_>, resp: &Response) -> Result<(), CliError> {
    if ctx.format == OutputFormat::Json {
        return ctx.print_json(resp);
    }
    let mut fields = resp.value.clone();
    let timeline = fields
        .as_object_mut()
        .and_then(|m| {
            m.remove("versionMetrics");
            m.remove("timeline")
        })
        .unwrap_or(Value::Null);
    ctx.out
        .write_all(crate::output::render_object(&fields, &DEPLOYMENT_DETAIL).as_bytes())?;
    if let Some(events) = timeline.as_array().filter(|e| !e.is_empty()) {
        writeln!(ctx.out, "\ntimeline:")?;
        for e in events {
            let mut wrapper = Map::new();
            wrapper.insert("timeline".into(), Value::Array(vec![e.clone()]));
            writeln!(
                ctx.out,
                "  {}  {:<40}  {:<24}  {}",
                e["at"].as_str().unwrap_or("-"),
                e["phase"].as_str().unwrap_or("-"),
                traffic_text(&Value::Object(wrapper)),
                e["message"].as_str().unwrap_or("")
            )?;
        }
    }
    Ok(())
}

pub async fn run(ctx: &mut Ctx<'_>, cmd: DeploymentsCommand) -> Result<(), CliError> {
    match cmd {
        DeploymentsCommand::List { name, page } => {
            check_name(&name)?;
            let listing = ctx
                .list(&["functions", &name, "deployments"], Vec::new(), &page)
                .await?;
            ctx.print_list(&listing, DEPLOYMENT_COLUMNS, "deployments")
        }
        DeploymentsCommand::Get { name, id } => {
            check_name(&name)?;
            let resp = ctx
                .client
                .get(&["functions", &name, "deployments", &id], &[])
                .await?;
            print_deployment(ctx, &resp)
        }
        DeploymentsCommand::Watch { name, id } => {
            check_name(&name)?;
            let resp = ctx
                .client
                .get(&["functions", &name, "deployments", &id], &[])
                .await?;
            follow(ctx, &name, &id, resp).await
        }
        DeploymentsCommand::Cancel { name, id, reason } => {
            let mut body = Map::new();
            put_opt(&mut body, "reason", reason);
            action(ctx, &name, &id, "cancel", body).await
        }
        DeploymentsCommand::Promote { name, id } => {
            action(ctx, &name, &id, "promote", Map::new()).await
        }
        DeploymentsCommand::Rollback { name, id, reason } => {
            let mut body = Map::new();
            put_opt(&mut body, "reason", reason);
            action(ctx, &name, &id, "rollback", body).await
        }
    }
}

/// `POST …/deployments/{id}/{verb}` with `body`; prints the deployment.
async fn action(
    ctx: &mut Ctx<'_>,
    name: &str,
    id: &str,
    verb: &str,
    body: Map<String, Value>,
) -> Result<(), CliError> {
    check_name(name)?;
    let resp = ctx
        .client
        .post(
            &["functions", name, "deployments", id, verb],
            &Value::Object(body),
        )
        .await?;
    print_deployment(ctx, &resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Command;
    use clap::{FromArgMatches, Subcommand};
    use serde_json::json;

    fn parse(args: &[&str]) -> DeployArgs {
        let cmd = Command::augment_subcommands(clap::Command::new("hotswap"));
        let m = cmd
            .try_get_matches_from(
                [
                    "hotswap",
                    "deploy",
                    "hello",
                    "--alias",
                    "prod",
                    "--version",
                    "6",
                ]
                .into_iter()
                .chain(args.iter().copied()),
            )
            .unwrap();
        match Command::from_arg_matches(&m).unwrap() {
            Command::Deploy(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn canary_body() {
        let a = parse(&[
            "--strategy",
            "canary",
            "--canary-percent",
            "10",
            "--canary-duration",
            "5m",
            "--canary-increments",
            "10,25,50",
            "--rollback-error-rate",
            "5",
            "--rollback-latency-p99",
            "250",
            "--rollback-success-rate",
            "99.5",
        ]);
        assert_eq!(
            deploy_body(&a),
            json!({
                "aliasName": "prod", "targetVersion": 6, "strategy": "Canary",
                "config": {
                    "canaryPercentage": 10, "canaryDuration": 300, "canaryIncrements": [10, 25, 50],
                    "rollbackOnErrorRate": 5, "rollbackOnLatencyP99": 250, "rollbackOnSuccessRate": 99.5
                }
            })
        );
    }

    #[test]
    fn default_strategy_has_no_config() {
        assert_eq!(
            deploy_body(&parse(&[])),
            json!({"aliasName": "prod", "targetVersion": 6, "strategy": "AllAtOnce"})
        );
        let a = parse(&[
            "--strategy",
            "BLUE_GREEN",
            "--test-duration",
            "00:02:00",
            "--keep-blue",
        ]);
        assert_eq!(
            deploy_body(&a)["config"],
            json!({"testDuration": 120, "keepBlue": true})
        );
        let a = parse(&[
            "--strategy",
            "rolling",
            "--batch-size",
            "0.25",
            "--batch-duration",
            "90s",
        ]);
        assert_eq!(
            deploy_body(&a)["config"],
            json!({"batchSize": 0.25, "batchDuration": 90})
        );
    }
}
