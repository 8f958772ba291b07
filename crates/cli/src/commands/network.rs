//! `hotswap subnet …` and `hotswap security-group …`.

use hotswap_domain::EgressRule;
use serde_json::{json, Value};

use super::Ctx;
use crate::args::{OutputFormat, SecurityGroupCommand, SubnetCommand};
use crate::client::Response;
use crate::error::CliError;
use crate::output::{col, computed, lookup, render_object, Column, Detail, Fmt};

pub const SUBNET_COLUMNS: &[Column] = &[
    col("ID", "subnetId", Fmt::Text),
    col("NAME", "subnetName", Fmt::Text),
    col("CIDR", "cidr", Fmt::Text),
    col("CREATED BY", "createdBy", Fmt::Text),
    col("CREATED", "createdAt", Fmt::Time),
];

const SUBNET_DETAIL: Detail = Detail {
    order: &["subnetId", "subnetName", "cidr", "createdBy", "createdAt"],
    flatten: &[],
};

pub const GROUP_COLUMNS: &[Column] = &[
    col("ID", "securityGroupId", Fmt::Text),
    col("NAME", "groupName", Fmt::Text),
    col("OWNER", "ownerId", Fmt::Text),
    computed("EGRESS", egress_text),
    col("UPDATED", "updatedAt", Fmt::Time),
];

const GROUP_DETAIL: Detail = Detail {
    order: &[
        "securityGroupId",
        "groupName",
        "ownerId",
        "egress",
        "createdAt",
        "updatedAt",
    ],
    flatten: &[],
};

/// One rule of the server's JSON in the CLI's form (`tcp:5432:host`).
pub fn rule_text(rule: &Value) -> String {
    let field = |k: &str| rule.get(k).and_then(Value::as_str);
    let mut text = field("protocol").unwrap_or("?").to_owned();
    if let Some(p) = field("ports") {
        text.push(':');
        text.push_str(p);
    }
    text.push(':');
    match (field("cidr"), rule.get("host").and_then(Value::as_bool)) {
        (Some(c), _) => text.push_str(c),
        (None, Some(true)) => text.push_str("host"),
        _ => text.push('?'),
    }
    text
}

/// A group's rules in one cell: `tcp:5432:host all:10.0.0.0/8`, `-` for none.
pub fn egress_text(group: &Value) -> String {
    match lookup(group, "egress").and_then(Value::as_array) {
        Some(rules) if !rules.is_empty() => {
            rules.iter().map(rule_text).collect::<Vec<_>>().join(" ")
        }
        _ => "-".to_owned(),
    }
}

/// The body of `POST /v1/security-groups` and `PUT …/{id}`.
pub fn group_body(name: &str, egress: &[EgressRule]) -> Value {
    json!({ "groupName": name, "egress": egress })
}

pub async fn subnets(ctx: &mut Ctx<'_>, cmd: SubnetCommand) -> Result<(), CliError> {
    match cmd {
        SubnetCommand::Create { name, cidr } => {
            let body = json!({ "subnetName": name, "cidr": cidr });
            let resp = ctx.client.post(&["subnets"], &body).await?;
            ctx.print_object(&resp, &SUBNET_DETAIL)
        }
        SubnetCommand::List { page } => {
            let listing = ctx.list(&["subnets"], Vec::new(), &page).await?;
            ctx.print_list(&listing, SUBNET_COLUMNS, "subnets")
        }
        SubnetCommand::Get { id } => {
            let resp = ctx.client.get(&["subnets", &id], &[]).await?;
            ctx.print_object(&resp, &SUBNET_DETAIL)
        }
        SubnetCommand::Delete { id } => {
            let resp = ctx.client.delete(&["subnets", &id]).await?;
            ctx.print_done(&resp, &format!("Deleted subnet {id}."))
        }
    }
}

pub async fn security_groups(ctx: &mut Ctx<'_>, cmd: SecurityGroupCommand) -> Result<(), CliError> {
    match cmd {
        SecurityGroupCommand::Create { name, egress } => {
            let resp = ctx
                .client
                .post(&["security-groups"], &group_body(&name, &egress))
                .await?;
            print_group(ctx, &resp)
        }
        SecurityGroupCommand::List { page } => {
            let listing = ctx.list(&["security-groups"], Vec::new(), &page).await?;
            ctx.print_list(&listing, GROUP_COLUMNS, "security groups")
        }
        SecurityGroupCommand::Get { id } => {
            let resp = ctx.client.get(&["security-groups", &id], &[]).await?;
            print_group(ctx, &resp)
        }
        SecurityGroupCommand::Update {
            id,
            name,
            egress,
            clear_egress,
        } => {
            if name.is_none() && egress.is_empty() && !clear_egress {
                return Err(CliError::usage(
                    "nothing to update: give --name, --egress or --clear-egress",
                ));
            }
            // PUT replaces both fields: what is not given is taken from the
            // group as it is.
            let current = ctx.client.get(&["security-groups", &id], &[]).await?;
            let mut body = json!({
                "groupName": name.map(Value::from).unwrap_or_else(|| current.value["groupName"].clone()),
                "egress": current.value.get("egress").cloned().unwrap_or_else(|| json!([])),
            });
            if clear_egress || !egress.is_empty() {
                body["egress"] = json!(egress);
            }
            let resp = ctx.client.put(&["security-groups", &id], &body).await?;
            print_group(ctx, &resp)
        }
        SecurityGroupCommand::Delete { id } => {
            let resp = ctx.client.delete(&["security-groups", &id]).await?;
            ctx.print_done(&resp, &format!("Deleted security group {id}."))
        }
    }
}

/// One group: the JSON as received with `-o json`; else key/value rows with
/// the rules in the CLI's form.
fn print_group(ctx: &mut Ctx<'_>, resp: &Response) -> Result<(), CliError> {
    match ctx.format {
        OutputFormat::Json => ctx.print_json(resp),
        OutputFormat::Table => {
            let mut shown = resp.value.clone();
            if let Some(rules) = shown.get("egress").and_then(Value::as_array) {
                let texts: Vec<Value> = rules.iter().map(|r| rule_text(r).into()).collect();
                shown["egress"] = Value::Array(texts);
            }
            ctx.out
                .write_all(render_object(&shown, &GROUP_DETAIL).as_bytes())?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{parse_egress_rule, Command};
    use clap::{FromArgMatches, Subcommand};

    fn parse(args: &[&str]) -> Command {
        let cmd = Command::augment_subcommands(clap::Command::new("hotswap"));
        let m = cmd
            .try_get_matches_from(std::iter::once("hotswap").chain(args.iter().copied()))
            .unwrap();
        Command::from_arg_matches(&m).unwrap()
    }

    #[test]
    fn rules_parse_from_the_cli_form() {
        for (text, json) in [
            (
                "tcp:5432:host",
                json!({"protocol": "tcp", "ports": "5432", "host": true}),
            ),
            (
                "tcp:8000-8100:10.0.0.0/8",
                json!({"protocol": "tcp", "ports": "8000-8100", "cidr": "10.0.0.0/8"}),
            ),
            (
                "all:10.1.0.0/16",
                json!({"protocol": "all", "cidr": "10.1.0.0/16"}),
            ),
            (
                "UDP:53:HOST",
                json!({"protocol": "udp", "ports": "53", "host": true}),
            ),
            ("tcp:host", json!({"protocol": "tcp", "host": true})),
        ] {
            let rule = parse_egress_rule(text).unwrap();
            let value = serde_json::to_value(&rule).unwrap();
            assert_eq!(value, json, "{text}");
            assert_eq!(rule_text(&value), text.to_ascii_lowercase());
        }
    }

    #[test]
    fn bad_rules_say_why() {
        let e = parse_egress_rule("tcp").unwrap_err();
        assert!(e.contains("expected PROTO[:PORTS]:DEST"), "{e}");
        let e = parse_egress_rule("a:b:c:d").unwrap_err();
        assert!(e.contains("expected PROTO[:PORTS]:DEST"), "{e}");
        assert_eq!(
            parse_egress_rule("icmp:10.0.0.0/8").unwrap_err(),
            "invalid rule 'icmp:10.0.0.0/8': protocol: must be tcp, udp or all (got 'icmp')"
        );
        assert_eq!(
            parse_egress_rule("tcp:5432:10.0.0.1/8").unwrap_err(),
            "invalid rule 'tcp:5432:10.0.0.1/8': cidr: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8"
        );
        let e = parse_egress_rule("all:80:host").unwrap_err();
        assert!(e.contains("ports: only tcp and udp"), "{e}");
        let e = parse_egress_rule("tcp:0:host").unwrap_err();
        assert!(e.contains("ports: must be a port"), "{e}");
        let e = parse_egress_rule("tcp:99999:host").unwrap_err();
        assert!(e.contains("ports: "), "{e}");
        let e = parse_egress_rule("tcp:80:somewhere").unwrap_err();
        assert!(
            e.contains("cidr: 'somewhere' is not an IPv4 CIDR block"),
            "{e}"
        );
    }

    #[test]
    fn group_commands_parse() {
        let Command::SecurityGroup(SecurityGroupCommand::Create { name, egress }) = parse(&[
            "security-group",
            "create",
            "db",
            "--egress",
            "tcp:5432:host",
            "--egress",
            "all:10.1.0.0/16",
        ]) else {
            panic!()
        };
        assert_eq!(
            group_body(&name, &egress),
            json!({"groupName": "db", "egress": [
                {"protocol": "tcp", "ports": "5432", "host": true},
                {"protocol": "all", "cidr": "10.1.0.0/16"}
            ]})
        );
        assert!(matches!(
            parse(&["sg", "update", "sg-1", "--clear-egress"]),
            Command::SecurityGroup(SecurityGroupCommand::Update {
                clear_egress: true,
                ..
            })
        ));
        let cmd = Command::augment_subcommands(clap::Command::new("hotswap"));
        let err = cmd
            .try_get_matches_from([
                "hotswap",
                "security-group",
                "create",
                "db",
                "--egress",
                "tcp:5432",
            ])
            .unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        assert!(matches!(
            parse(&["subnet", "create", "app", "--cidr", "10.20.0.0/24"]),
            Command::Subnet(SubnetCommand::Create { .. })
        ));
    }

    #[test]
    fn egress_column() {
        let g = json!({"egress": [
            {"protocol": "tcp", "ports": "5432", "host": true},
            {"protocol": "all", "cidr": "10.0.0.0/8"}
        ]});
        assert_eq!(egress_text(&g), "tcp:5432:host all:10.0.0.0/8");
        assert_eq!(egress_text(&json!({"egress": []})), "-");
    }
}
