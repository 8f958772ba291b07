//! `hotswap version …`: get, set-status, delete.

use serde_json::json;

use super::functions::check_name;
use super::Ctx;
use crate::args::VersionCommand;
use crate::error::CliError;
use crate::output::{col, Column, Detail, Fmt};

pub const VERSION_COLUMNS: &[Column] = &[
    col("VERSION", "versionString", Fmt::Text),
    col("STATUS", "status", Fmt::Text),
    col("RUNTIME", "runtime", Fmt::Text),
    col("HANDLER", "handler", Fmt::Text),
    col("SIZE", "codeSize", Fmt::Bytes),
    col("SHA256", "codeSha256", Fmt::Short(12)),
    col("CREATED", "createdAt", Fmt::Time),
    col("DESCRIPTION", "description", Fmt::Text),
];

pub const VERSION_DETAIL: Detail = Detail {
    order: &[
        "functionName",
        "versionString",
        "version",
        "status",
        "description",
        "runtime",
        "handler",
        "memorySize",
        "timeout",
        "codeSha256",
        "codeSize",
        "codeLocation",
    ],
    flatten: &[],
};

pub async fn run(ctx: &mut Ctx<'_>, cmd: VersionCommand) -> Result<(), CliError> {
    match cmd {
        VersionCommand::Get { name, version } => {
            check_name(&name)?;
            let resp = ctx
                .client
                .get(&["functions", &name, "versions", &version], &[])
                .await?;
            ctx.print_object(&resp, &VERSION_DETAIL)
        }
        VersionCommand::SetStatus {
            name,
            version,
            status,
        } => {
            check_name(&name)?;
            let resp = ctx
                .client
                .patch(
                    &["functions", &name, "versions", &version],
                    &json!({ "status": status.as_str() }),
                )
                .await?;
            ctx.print_object(&resp, &VERSION_DETAIL)
        }
        VersionCommand::Delete { name, version } => {
            check_name(&name)?;
            let resp = ctx
                .client
                .delete(&["functions", &name, "versions", &version])
                .await?;
            ctx.print_done(&resp, &format!("Deleted version {version} of '{name}'."))
        }
    }
}
