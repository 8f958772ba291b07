//! `hotswap deploy` and `hotswap deployments …`: list, get, cancel.

use serde_json::{Map, Value};

use super::functions::check_name;
use super::{number, put_opt, Ctx};
use crate::args::{DeployArgs, DeploymentsCommand};
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
    ctx.print_object(&resp, &DEPLOYMENT_DETAIL)
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
            ctx.print_object(&resp, &DEPLOYMENT_DETAIL)
        }
        DeploymentsCommand::Cancel { name, id, reason } => {
            let mut body = Map::new();
            put_opt(&mut body, "reason", reason);
            action(ctx, &name, &id, "cancel", body).await
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
    ctx.print_object(&resp, &DEPLOYMENT_DETAIL)
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
