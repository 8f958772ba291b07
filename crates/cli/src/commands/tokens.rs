//! `hotswap token create|list|get|revoke` and `hotswap whoami`.

use serde_json::json;

use super::Ctx;
use crate::args::{OutputFormat, TokenCommand};
use crate::error::CliError;
use crate::output::{col, Column, Detail, Fmt};

const TOKEN_DETAIL: Detail = Detail {
    order: &[
        "tokenId",
        "ownerId",
        "role",
        "admin",
        "name",
        "createdAt",
        "expiresAt",
        "lastUsedAt",
        "token",
    ],
    flatten: &[],
};

const TOKEN_COLUMNS: &[Column] = &[
    col("ID", "tokenId", Fmt::Text),
    col("OWNER", "ownerId", Fmt::Text),
    col("ROLE", "role", Fmt::Text),
    col("NAME", "name", Fmt::Text),
    col("CREATED", "createdAt", Fmt::Time),
    col("EXPIRES", "expiresAt", Fmt::Time),
    col("LAST USED", "lastUsedAt", Fmt::Time),
];

pub async fn run(ctx: &mut Ctx<'_>, cmd: TokenCommand) -> Result<(), CliError> {
    match cmd {
        TokenCommand::Create {
            owner,
            admin,
            role,
            name,
            expires_in,
            expires_at,
        } => {
            let mut body = json!({});
            if let Some(owner) = owner {
                if owner.trim().is_empty() {
                    return Err(CliError::usage("the owner must not be empty"));
                }
                body["ownerId"] = owner.into();
            }
            if admin {
                body["admin"] = true.into();
            }
            for (field, value) in [
                ("role", role),
                ("name", name),
                ("expiresIn", expires_in),
                ("expiresAt", expires_at),
            ] {
                if let Some(v) = value {
                    body[field] = v.into();
                }
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
        TokenCommand::List { owner, page } => {
            let query = owner.map(|o| ("ownerId", o)).into_iter().collect();
            let listing = ctx.list(&["tokens"], query, &page).await?;
            ctx.print_list(&listing, TOKEN_COLUMNS, "tokens")
        }
        TokenCommand::Get { id } => {
            let resp = ctx.client.get(&["tokens", &id], &[]).await?;
            ctx.print_object(&resp, &TOKEN_DETAIL)
        }
        TokenCommand::Revoke { id } => {
            let resp = ctx.client.delete(&["tokens", &id]).await?;
            ctx.print_done(&resp, &format!("Revoked token {id}."))
        }
    }
}

pub async fn whoami(ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let resp = ctx.client.get(&["whoami"], &[]).await?;
    ctx.print_object(&resp, &TOKEN_DETAIL)
}
