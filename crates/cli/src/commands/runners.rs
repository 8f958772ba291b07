//! `hotswap runners [list|get]`.

use serde_json::Value;

use super::Ctx;
use crate::args::{PageArgs, RunnersArgs, RunnersCommand};
use crate::error::CliError;
use crate::output::{cell_text, col, computed, lookup, Column, Detail, Fmt};

pub const RUNNER_COLUMNS: &[Column] = &[
    col("NODE", "nodeId", Fmt::Text),
    computed("ADDRESS", |r| {
        format!(
            "{}:{}",
            lookup(r, "hostname").map_or("-".to_owned(), cell_text),
            lookup(r, "port").map_or("-".to_owned(), cell_text)
        )
    }),
    col("HEALTHY", "healthy", Fmt::YesNo),
    col("ACCEPTING", "canAcceptInvocations", Fmt::YesNo),
    col("CPU", "health.cpuUsage", Fmt::Percent),
    col("MEM", "health.memoryUsage", Fmt::Percent),
    computed("CONTAINERS", |r| {
        format!(
            "{}/{}",
            lookup(r, "health.activeContainers").map_or("-".to_owned(), cell_text),
            lookup(r, "resources.maxContainers").map_or("-".to_owned(), cell_text)
        )
    }),
    col("SANDBOX", "sandbox", Fmt::Text),
    computed("RUNTIMES", |r| runtimes_text(lookup(r, "runtimes"))),
    col("HEARTBEAT", "lastHeartbeat", Fmt::Time),
];

pub const RUNNER_DETAIL: Detail = Detail {
    order: &[
        "nodeId",
        "hostname",
        "port",
        "healthy",
        "canAcceptInvocations",
        "sandbox",
        "runtimes",
        "startedAt",
        "lastHeartbeat",
    ],
    flatten: &["health", "resources", "metrics"],
};

/// A runtime list, shortened past four entries so the table stays narrow.
fn runtimes_text(v: Option<&Value>) -> String {
    let Some(list) = v.and_then(Value::as_array).filter(|l| !l.is_empty()) else {
        return "-".to_owned();
    };
    let names: Vec<String> = list.iter().map(cell_text).collect();
    if names.len() <= 4 {
        names.join(",")
    } else {
        format!("{},… ({} in all)", names[..3].join(","), names.len())
    }
}

pub async fn run(ctx: &mut Ctx<'_>, a: RunnersArgs) -> Result<(), CliError> {
    match a.command {
        None => list(ctx, &PageArgs::default()).await,
        Some(RunnersCommand::List { page }) => list(ctx, &page).await,
        Some(RunnersCommand::Get { node_id }) => {
            let resp = ctx.client.get(&["runners", &node_id], &[]).await?;
            ctx.print_object(&resp, &RUNNER_DETAIL)
        }
    }
}

async fn list(ctx: &mut Ctx<'_>, page: &PageArgs) -> Result<(), CliError> {
    let listing = ctx.list(&["runners"], Vec::new(), page).await?;
    ctx.print_list(&listing, RUNNER_COLUMNS, "runners")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::render_list;
    use serde_json::json;

    #[test]
    fn runner_row() {
        let r = json!({
            "nodeId": "local-1", "hostname": "127.0.0.1", "port": 8080,
            "health": {"isHealthy": true, "cpuUsage": 12.5, "memoryUsage": 40.0, "activeContainers": 3, "queuedInvocations": 0},
            "resources": {"totalCpuCores": 2, "totalMemoryMB": 24576, "maxContainers": 100, "cpuUsage": 12.5, "memoryUsage": 40.0},
            "activeContainers": {}, "lastHeartbeat": "2024-05-01T12:00:00Z", "startedAt": "2024-05-01T11:00:00Z",
            "metrics": {}, "runtimes": ["Python311", "Node20", "Provided"], "sandbox": "unisolated",
            "healthy": true, "canAcceptInvocations": false
        });
        let text = render_list(&[r], RUNNER_COLUMNS);
        let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "local-1",
                "127.0.0.1:8080",
                "yes",
                "no",
                "12.5%",
                "40%",
                "3/100",
                "unisolated",
                "Python311,Node20,Provided",
                "2024-05-01",
                "12:00:00"
            ]
        );
        let many = json!(["A", "B", "C", "D", "E"]);
        assert_eq!(runtimes_text(Some(&many)), "A,B,C,… (5 in all)");
    }
}
