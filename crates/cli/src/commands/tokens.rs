//! `hotswap token create` and `hotswap whoami`.

use serde_json::json;

use super::Ctx;
use crate::args::{OutputFormat, TokenCommand};
use crate::error::CliError;
use crate::output::Detail;

const TOKEN_DETAIL: Detail = Detail {
    order: &["ownerId", "admin", "token"],
    flatten: &[],
};

pub async fn run(ctx: &mut Ctx<'_>, cmd: TokenCommand) -> Result<(), CliError> {
    match cmd {
        TokenCommand::Create { owner, admin } => {
            if owner.trim().is_empty() {
                return Err(CliError::usage("the owner must not be empty"));
            }
            let mut body = json!({ "ownerId": owner });
            if admin {
                body["admin"] = true.into();
            }
            let resp = ctx.client.post(&["tokens"], &body).await?;
            ctx.print_object(&resp, &TOKEN_DETAIL)?;
            if ctx.format == OutputFormat::Table {
                writeln!(
                    ctx.err,
                    "The token is shown only once: keep it (e.g. export HOTSWAP_TOKEN=…)."
                )?;
            }
            Ok(())
        }
    }
}

pub async fn whoami(ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let resp = ctx.client.get(&["whoami"], &[]).await?;
    ctx.print_object(&resp, &TOKEN_DETAIL)
}
