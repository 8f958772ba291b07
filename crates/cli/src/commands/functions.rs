//! `hotswap fn …`: create, list, get, update, update-code, delete, publish,
//! versions; invoke and logs live in their own modules.

use std::path::Path;

use base64::Engine;
use hotswap_domain::names::is_valid_function_name;
use serde_json::{json, Map, Value};

use super::versions::{VERSION_COLUMNS, VERSION_DETAIL};
use super::{pairs_to_object, put_opt, Ctx};
use crate::args::{FnCommand, FnCreateArgs, FnListArgs, FnUpdateArgs};
use crate::error::CliError;
use crate::output::{col, Column, Detail, Fmt};
use crate::package;

pub const FUNCTION_COLUMNS: &[Column] = &[
    col("NAME", "name", Fmt::Text),
    col("RUNTIME", "runtime", Fmt::Text),
    col("MEMORY", "memorySize", Fmt::Unit("MB")),
    col("TIMEOUT", "timeout", Fmt::Unit("s")),
    col("PUBLISHED", "publishedVersion", Fmt::Text),
    col("OWNER", "ownerId", Fmt::Text),
    col("UPDATED", "updatedAt", Fmt::Time),
];

pub const FUNCTION_DETAIL: Detail = Detail {
    order: &[
        "name",
        "description",
        "runtime",
        "handler",
        "memorySize",
        "timeout",
        "publishedVersion",
        "ownerId",
        "environment",
        "layers",
        "tags",
        "deadLetterTarget",
    ],
    flatten: &["scalingConfig", "vpcConfig"],
};

pub const INVOCATION_COLUMNS: &[Column] = &[
    col("REQUEST ID", "requestId", Fmt::Text),
    col("STATUS", "status", Fmt::Text),
    col("ATTEMPTS", "attempts", Fmt::Text),
    col("VERSION", "executedVersion", Fmt::Text),
    col("ERROR", "result.errorType", Fmt::Text),
    col("DEAD LETTER", "deadLetterRequestId", Fmt::Text),
    col("CREATED", "createdAt", Fmt::Time),
];

pub async fn run(ctx: &mut Ctx<'_>, cmd: FnCommand) -> Result<(), CliError> {
    match cmd {
        FnCommand::Create(a) => create(ctx, a).await,
        FnCommand::List(a) => list(ctx, a).await,
        FnCommand::Get { name } => {
            check_name(&name)?;
            let resp = ctx.client.get(&["functions", &name], &[]).await?;
            ctx.print_object(&resp, &FUNCTION_DETAIL)
        }
        FnCommand::Update(a) => update(ctx, a).await,
        FnCommand::UpdateCode { name, path } => {
            check_name(&name)?;
            let body = json!({ "zipFile": encode_code(&path)? });
            let resp = ctx.client.put(&["functions", &name, "code"], &body).await?;
            ctx.print_object(&resp, &VERSION_DETAIL)
        }
        FnCommand::Delete { name } => {
            check_name(&name)?;
            let resp = ctx.client.delete(&["functions", &name]).await?;
            ctx.print_done(&resp, &format!("Deleted function '{name}'."))
        }
        FnCommand::Publish { name, description } => {
            check_name(&name)?;
            let mut body = Map::new();
            put_opt(&mut body, "description", description);
            let resp = ctx
                .client
                .post(&["functions", &name, "versions"], &Value::Object(body))
                .await?;
            ctx.print_object(&resp, &VERSION_DETAIL)
        }
        FnCommand::Versions { name, page } => {
            check_name(&name)?;
            let listing = ctx
                .list(&["functions", &name, "versions"], Vec::new(), &page)
                .await?;
            ctx.print_list(&listing, VERSION_COLUMNS, "versions")
        }
        FnCommand::Invoke(a) => super::invoke::run(ctx, a).await,
        FnCommand::Logs(a) => super::logs::run(ctx, a).await,
        FnCommand::Invocations { name, status, page } => {
            check_name(&name)?;
            let query = status.map(|s| ("status", s)).into_iter().collect();
            let listing = ctx
                .list(&["functions", &name, "invocations"], query, &page)
                .await?;
            ctx.print_list(&listing, INVOCATION_COLUMNS, "invocations")
        }
    }
}

/// Function names follow the seed's rule: `[a-zA-Z0-9-]{1,64}`.
pub fn check_name(name: &str) -> Result<(), CliError> {
    if is_valid_function_name(name) {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "invalid function name '{name}': use 1-64 letters, digits or '-'"
        )))
    }
}

/// The code package at `path` (directory or .zip), base64-encoded.
fn encode_code(path: &Path) -> Result<String, CliError> {
    let zip = package::load(path)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(zip))
}

/// The `POST /v1/functions` body for `fn create`.
pub fn create_body(a: &FnCreateArgs, name: &str, zip_base64: String) -> Value {
    let mut body = Map::new();
    body.insert("name".into(), name.into());
    body.insert("runtime".into(), a.runtime.as_str().into());
    body.insert("handler".into(), a.handler.clone().into());
    put_opt(&mut body, "memorySize", a.memory);
    put_opt(&mut body, "timeout", a.timeout);
    if !a.env.is_empty() {
        body.insert("environment".into(), pairs_to_object(&a.env));
    }
    if !a.layers.is_empty() {
        body.insert("layers".into(), a.layers.clone().into());
    }
    if !a.tags.is_empty() {
        body.insert("tags".into(), pairs_to_object(&a.tags));
    }
    put_opt(&mut body, "description", a.description.clone());
    put_opt(&mut body, "deadLetterTarget", a.dead_letter.clone());
    put_opt(
        &mut body,
        "vpcConfig",
        vpc_config(&a.subnet_ids, &a.security_group_ids),
    );
    body.insert("code".into(), json!({ "zipFile": zip_base64 }));
    Value::Object(body)
}

async fn create(ctx: &mut Ctx<'_>, a: FnCreateArgs) -> Result<(), CliError> {
    let name = match &a.name {
        Some(n) => n.clone(),
        None => {
            let n = package::default_name(&a.path)?;
            if !is_valid_function_name(&n) {
                return Err(CliError::usage(format!(
                    "'{n}' (from {}) is not a valid function name: use 1-64 letters, digits or '-', or pass --name",
                    a.path.display()
                )));
            }
            n
        }
    };
    check_name(&name)?;
    let body = create_body(&a, &name, encode_code(&a.path)?);
    let resp = ctx.client.post(&["functions"], &body).await?;
    ctx.print_object(&resp, &FUNCTION_DETAIL)
}

/// The query of `fn list`.
pub fn list_query(a: &FnListArgs) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(o) = &a.owner {
        q.push(("owner", o.clone()));
    }
    if let Some(t) = &a.tag {
        q.push(("tag", t.clone()));
    }
    q
}

async fn list(ctx: &mut Ctx<'_>, a: FnListArgs) -> Result<(), CliError> {
    let listing = ctx.list(&["functions"], list_query(&a), &a.page).await?;
    ctx.print_list(&listing, FUNCTION_COLUMNS, "functions")
}

/// The `PATCH /v1/functions/{name}` body for `fn update`: only what was given.
pub fn update_body(a: &FnUpdateArgs) -> Result<Value, CliError> {
    let mut body = Map::new();
    put_opt(&mut body, "runtime", a.runtime.map(|r| r.as_str()));
    put_opt(&mut body, "handler", a.handler.clone());
    put_opt(&mut body, "memorySize", a.memory);
    put_opt(&mut body, "timeout", a.timeout);
    if a.clear_env {
        body.insert("environment".into(), json!({}));
    } else if !a.env.is_empty() {
        body.insert("environment".into(), pairs_to_object(&a.env));
    }
    if !a.layers.is_empty() {
        body.insert("layers".into(), a.layers.clone().into());
    }
    put_opt(&mut body, "description", a.description.clone());
    if !a.tags.is_empty() {
        body.insert("tags".into(), pairs_to_object(&a.tags));
    }
    if a.clear_dead_letter {
        body.insert("deadLetterTarget".into(), Value::Null);
    } else {
        put_opt(&mut body, "deadLetterTarget", a.dead_letter.clone());
    }
    if a.clear_vpc {
        body.insert("vpcConfig".into(), Value::Null);
    } else {
        put_opt(
            &mut body,
            "vpcConfig",
            vpc_config(&a.subnet_ids, &a.security_group_ids),
        );
    }
    if body.is_empty() {
        return Err(CliError::usage(
            "nothing to update: give at least one of --runtime, --handler, --memory, --timeout, --env, --clear-env, --layer, --description, --tag, --dead-letter, --clear-dead-letter, --subnet-id, --security-group-id, --clear-vpc",
        ));
    }
    Ok(Value::Object(body))
}

/// `vpcConfig` from `--subnet-id` and `--security-group-id`; `None` when
/// neither is given.
pub fn vpc_config(subnet_ids: &[String], security_group_ids: &[String]) -> Option<Value> {
    if subnet_ids.is_empty() && security_group_ids.is_empty() {
        return None;
    }
    Some(json!({ "subnetIds": subnet_ids, "securityGroupIds": security_group_ids }))
}

async fn update(ctx: &mut Ctx<'_>, a: FnUpdateArgs) -> Result<(), CliError> {
    check_name(&a.name)?;
    let body = update_body(&a)?;
    let resp = ctx.client.patch(&["functions", &a.name], &body).await?;
    ctx.print_object(&resp, &FUNCTION_DETAIL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Command, FnCommand};
    use clap::{FromArgMatches, Subcommand};

    fn parse(args: &[&str]) -> FnCommand {
        let cmd = Command::augment_subcommands(clap::Command::new("hotswap"));
        let m = cmd
            .try_get_matches_from(std::iter::once("hotswap").chain(args.iter().copied()))
            .unwrap();
        match Command::from_arg_matches(&m).unwrap() {
            Command::Function(f) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_body_has_only_given_fields() {
        let FnCommand::Create(a) = parse(&[
            "fn",
            "create",
            "./x",
            "--runtime",
            "node20",
            "--handler",
            "index.handler",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
            "--tag",
            "team=web",
            "--memory",
            "512",
            "--dead-letter",
            "on-failure",
        ]) else {
            panic!()
        };
        assert_eq!(
            create_body(&a, "x", "UEsFBg==".into()),
            json!({
                "name": "x", "runtime": "Node20", "handler": "index.handler", "memorySize": 512,
                "environment": {"A": "1", "B": "x=y"}, "tags": {"team": "web"},
                "deadLetterTarget": "on-failure",
                "code": {"zipFile": "UEsFBg=="}
            })
        );
    }

    #[test]
    fn update_body_replaces_or_clears() {
        let FnCommand::Update(a) = parse(&["fn", "update", "f", "--timeout", "60", "--env", "A=1"])
        else {
            panic!()
        };
        assert_eq!(
            update_body(&a).unwrap(),
            json!({"timeout": 60, "environment": {"A": "1"}})
        );
        let FnCommand::Update(a) =
            parse(&["fn", "update", "f", "--clear-env", "--runtime", "PROVIDED"])
        else {
            panic!()
        };
        assert_eq!(
            update_body(&a).unwrap(),
            json!({"runtime": "Provided", "environment": {}})
        );
        let FnCommand::Update(a) = parse(&["fn", "update", "f"]) else {
            panic!()
        };
        assert_eq!(update_body(&a).unwrap_err().exit_code(), 2);
        let FnCommand::Update(a) = parse(&["fn", "update", "f", "--dead-letter", "dlq:prod"])
        else {
            panic!()
        };
        assert_eq!(
            update_body(&a).unwrap(),
            json!({"deadLetterTarget": "dlq:prod"})
        );
        let FnCommand::Update(a) = parse(&["fn", "update", "f", "--clear-dead-letter"]) else {
            panic!()
        };
        assert_eq!(update_body(&a).unwrap(), json!({"deadLetterTarget": null}));
    }

    #[test]
    fn vpc_config_flags() {
        let FnCommand::Create(a) = parse(&[
            "fn",
            "create",
            "./x",
            "--runtime",
            "python311",
            "--handler",
            "app.handler",
            "--subnet-id",
            "subnet-a",
            "--subnet-id",
            "subnet-b",
            "--security-group-id",
            "sg-1",
        ]) else {
            panic!()
        };
        assert_eq!(
            create_body(&a, "x", "UEsFBg==".into())["vpcConfig"],
            json!({"subnetIds": ["subnet-a", "subnet-b"], "securityGroupIds": ["sg-1"]})
        );
        let FnCommand::Update(a) = parse(&["fn", "update", "f", "--subnet-id", "subnet-a"]) else {
            panic!()
        };
        assert_eq!(
            update_body(&a).unwrap(),
            json!({"vpcConfig": {"subnetIds": ["subnet-a"], "securityGroupIds": []}})
        );
        let FnCommand::Update(a) = parse(&["fn", "update", "f", "--clear-vpc"]) else {
            panic!()
        };
        assert_eq!(update_body(&a).unwrap(), json!({"vpcConfig": null}));
        let cmd = Command::augment_subcommands(clap::Command::new("hotswap"));
        assert!(cmd
            .try_get_matches_from([
                "hotswap",
                "fn",
                "update",
                "f",
                "--clear-vpc",
                "--subnet-id",
                "s"
            ])
            .is_err());
    }

    #[test]
    fn list_query_and_names() {
        let FnCommand::List(a) = parse(&["fn", "list", "--owner", "bob", "--tag", "team=web"])
        else {
            panic!()
        };
        assert_eq!(
            list_query(&a),
            vec![("owner", "bob".to_owned()), ("tag", "team=web".to_owned())]
        );
        let FnCommand::Invocations { name, status, .. } =
            parse(&["fn", "invocations", "f", "--status", "failed"])
        else {
            panic!()
        };
        assert_eq!((name.as_str(), status.as_deref()), ("f", Some("Failed")));
        assert!(crate::args::parse_invocation_status("done").is_err());
        assert!(crate::args::parse_dead_letter("bad_name").is_err());
        assert!(check_name("image-resizer").is_ok());
        assert_eq!(check_name("my_fn").unwrap_err().exit_code(), 2);
    }
}
