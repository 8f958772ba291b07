//! `hotswap alias …`: create, get, list, update, delete.

use serde_json::{Map, Value};

use super::functions::check_name;
use super::{number, put_opt, Ctx};
use crate::args::AliasCommand;
use crate::error::CliError;
use crate::output::{col, computed, lookup, Column, Detail, Fmt};

pub const ALIAS_COLUMNS: &[Column] = &[
    col("ALIAS", "aliasName", Fmt::Text),
    col("VERSION", "version", Fmt::Text),
    computed("ROUTING", |a| routing_text(lookup(a, "routingConfig"))),
    col("DESCRIPTION", "description", Fmt::Text),
    col("UPDATED", "updatedAt", Fmt::Time),
];

pub const ALIAS_DETAIL: Detail = Detail {
    order: &[
        "functionName",
        "aliasName",
        "version",
        "routingConfig",
        "description",
    ],
    flatten: &[],
};

/// `{"6": 10}` → `v6=10%`; `-` when all traffic goes to the primary version.
pub fn routing_text(routing: Option<&Value>) -> String {
    match routing.and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(v, p)| format!("v{v}={}%", crate::output::cell_text(p)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "-".to_owned(),
    }
}

/// The `routingConfig` object for `--weight` pairs: `{ "VERSION": PERCENT }`.
/// A version given twice, or weights adding up to more than 100, are usage
/// errors.
pub fn routing_config(weights: &[(u32, f64)]) -> Result<Value, CliError> {
    let mut m = Map::new();
    let mut total = 0.0;
    for (version, percent) in weights {
        if m.insert(version.to_string(), number(*percent)).is_some() {
            return Err(CliError::usage(format!(
                "version {version} is given more than once in --weight"
            )));
        }
        total += percent;
    }
    if total > 100.0 + 1e-9 {
        return Err(CliError::usage(format!(
            "the --weight percentages add up to {total}, more than 100"
        )));
    }
    Ok(Value::Object(m))
}

pub async fn run(ctx: &mut Ctx<'_>, cmd: AliasCommand) -> Result<(), CliError> {
    match cmd {
        AliasCommand::Create {
            name,
            alias,
            version,
            weights,
            description,
        } => {
            check_name(&name)?;
            let mut body = Map::new();
            body.insert("aliasName".into(), alias.into());
            body.insert("version".into(), version.into());
            if !weights.is_empty() {
                body.insert("routingConfig".into(), routing_config(&weights)?);
            }
            put_opt(&mut body, "description", description);
            let resp = ctx
                .client
                .post(&["functions", &name, "aliases"], &Value::Object(body))
                .await?;
            ctx.print_object(&resp, &ALIAS_DETAIL)
        }
        AliasCommand::Get { name, alias } => {
            check_name(&name)?;
            let resp = ctx
                .client
                .get(&["functions", &name, "aliases", &alias], &[])
                .await?;
            ctx.print_object(&resp, &ALIAS_DETAIL)
        }
        AliasCommand::List { name, page } => {
            check_name(&name)?;
            let listing = ctx
                .list(&["functions", &name, "aliases"], Vec::new(), &page)
                .await?;
            ctx.print_list(&listing, ALIAS_COLUMNS, "aliases")
        }
        AliasCommand::Update {
            name,
            alias,
            version,
            weights,
            clear_weights,
            description,
        } => {
            check_name(&name)?;
            let mut body = Map::new();
            put_opt(&mut body, "version", version);
            if clear_weights {
                body.insert("routingConfig".into(), Value::Object(Map::new()));
            } else if !weights.is_empty() {
                body.insert("routingConfig".into(), routing_config(&weights)?);
            }
            put_opt(&mut body, "description", description);
            if body.is_empty() {
                return Err(CliError::usage(
                    "nothing to update: give at least one of --version, --weight, --clear-weights, --description",
                ));
            }
            let resp = ctx
                .client
                .put(
                    &["functions", &name, "aliases", &alias],
                    &Value::Object(body),
                )
                .await?;
            ctx.print_object(&resp, &ALIAS_DETAIL)
        }
        AliasCommand::Delete { name, alias } => {
            check_name(&name)?;
            let resp = ctx
                .client
                .delete(&["functions", &name, "aliases", &alias])
                .await?;
            ctx.print_done(&resp, &format!("Deleted alias '{alias}' of '{name}'."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn weights_become_routing_config() {
        assert_eq!(
            routing_config(&[(6, 10.0), (7, 12.5)]).unwrap(),
            json!({"6": 10, "7": 12.5})
        );
        assert!(routing_config(&[(6, 10.0), (6, 20.0)])
            .unwrap_err()
            .to_string()
            .contains("more than once"));
        assert_eq!(
            routing_config(&[(6, 60.0), (7, 50.0)])
                .unwrap_err()
                .exit_code(),
            2
        );
        assert_eq!(routing_config(&[]).unwrap(), json!({}));
    }

    #[test]
    fn routing_is_shown_compactly() {
        assert_eq!(
            routing_text(Some(&json!({"5": 90, "6": 10.0}))),
            "v5=90%, v6=10%"
        );
        assert_eq!(routing_text(Some(&json!({}))), "-");
        assert_eq!(routing_text(None), "-");
    }
}
