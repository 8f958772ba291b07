//! Subnets and security groups through the API and the CLI, against the
//! real binary: who may do what, the validation messages (each naming its
//! field), "in use" conflicts, and functions' `vpcConfig` (checked on
//! write, kept by published versions). No instance is started.

mod common;

use common::*;
use serde_json::{json, Value};

fn create_subnet(s: &Server, name: &str, cidr: &str) -> Value {
    let (st, b) = s.admin(
        "POST",
        "/v1/subnets",
        Some(json!({ "subnetName": name, "cidr": cidr })),
    );
    assert_eq!(st, 201, "{b}");
    b
}

fn create_group(s: &Server, token: &str, name: &str, egress: Value) -> Value {
    let (st, b) = s.call(
        "POST",
        "/v1/security-groups",
        Some(token),
        Some(json!({ "groupName": name, "egress": egress })),
    );
    assert_eq!(st, 201, "{b}");
    b
}

fn id(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap().to_owned()
}

#[test]
fn subnets_and_security_groups_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");

    let subnet = create_subnet(&s, "app", "10.20.0.0/24");
    let subnet_id = id(&subnet, "subnetId");
    assert!(subnet_id.starts_with("subnet-"), "{subnet}");
    assert_eq!(subnet["cidr"], "10.20.0.0/24");
    assert_eq!(subnet["subnetName"], "app");
    // Every caller reads subnets; only admins create or delete them.
    let (st, list) = s.call("GET", "/v1/subnets", Some(&alice), None);
    assert_eq!((st, list["items"].as_array().unwrap().len()), (200, 1));
    assert_eq!(list["items"][0], subnet);
    let (st, got) = s.call(
        "GET",
        &format!("/v1/subnets/{subnet_id}"),
        Some(&alice),
        None,
    );
    assert_eq!((st, &got), (200, &subnet));
    let (st, b) = s.call(
        "POST",
        "/v1/subnets",
        Some(&alice),
        Some(json!({ "subnetName": "mine", "cidr": "10.30.0.0/24" })),
    );
    assert_eq!(st, 403, "{b}");
    assert!(is_error(&b, "Forbidden"), "{b}");
    let (st, b) = s.call(
        "DELETE",
        &format!("/v1/subnets/{subnet_id}"),
        Some(&alice),
        None,
    );
    assert_eq!(st, 403, "{b}");
    let (st, b) = s.admin("GET", "/v1/subnets/subnet-nope", None);
    assert_eq!(st, 404, "{b}");
    assert!(is_error(&b, "NotFound"), "{b}");
    // A second subnet of the same name is a conflict.
    let (st, b) = s.admin(
        "POST",
        "/v1/subnets",
        Some(json!({ "subnetName": "app", "cidr": "10.21.0.0/24" })),
    );
    assert_eq!(st, 409, "{b}");

    let group = create_group(
        &s,
        &alice,
        "db",
        json!([
            { "protocol": "tcp", "ports": "5432", "host": true },
            { "protocol": "tcp", "ports": "8000-8100", "cidr": "10.0.0.0/8" },
            { "protocol": "all", "cidr": "10.1.0.0/16", "host": false },
        ]),
    );
    let group_id = id(&group, "securityGroupId");
    assert!(group_id.starts_with("sg-"), "{group}");
    assert_eq!(group["ownerId"], "alice");
    assert_eq!(
        group["egress"],
        json!([
            { "protocol": "tcp", "ports": "5432", "host": true },
            { "protocol": "tcp", "ports": "8000-8100", "cidr": "10.0.0.0/8" },
            { "protocol": "all", "cidr": "10.1.0.0/16" },
        ])
    );
    let path = format!("/v1/security-groups/{group_id}");
    let (st, got) = s.call("GET", &path, Some(&alice), None);
    assert_eq!((st, &got), (200, &group));
    let (st, list) = s.call("GET", "/v1/security-groups", Some(&alice), None);
    assert_eq!((st, &list["items"]), (200, &json!([group.clone()])));

    // PUT replaces the name and the rules.
    let (st, put) = s.call(
        "PUT",
        &path,
        Some(&alice),
        Some(json!({ "groupName": "db-2", "egress": [{ "protocol": "udp", "ports": 53, "cidr": "10.0.0.2/32" }] })),
    );
    assert_eq!(st, 200, "{put}");
    assert_eq!(put["groupName"], "db-2");
    assert_eq!(
        put["egress"],
        json!([{ "protocol": "udp", "ports": "53", "cidr": "10.0.0.2/32" }])
    );
    assert_eq!(put["createdAt"], group["createdAt"]);
    let (_, got) = s.call("GET", &path, Some(&alice), None);
    assert_eq!(got, put);

    let (st, _) = s.call("DELETE", &path, Some(&alice), None);
    assert_eq!(st, 204);
    let (st, b) = s.call("GET", &path, Some(&alice), None);
    assert_eq!(st, 404, "{b}");
    let (st, _) = s.admin("DELETE", &format!("/v1/subnets/{subnet_id}"), None);
    assert_eq!(st, 204);
    let (st, _) = s.admin("DELETE", &format!("/v1/subnets/{subnet_id}"), None);
    assert_eq!(st, 404);
}

#[test]
fn tenants_cannot_see_use_or_change_each_others_groups() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let (alice, bob) = (s.token_for("alice"), s.token_for("bob"));
    let subnet = id(&create_subnet(&s, "shared", "192.168.10.0/24"), "subnetId");
    let group = create_group(
        &s,
        &alice,
        "private",
        json!([{ "protocol": "all", "host": true }]),
    );
    let group_id = id(&group, "securityGroupId");
    let path = format!("/v1/security-groups/{group_id}");

    let (st, b) = s.call("GET", &path, Some(&bob), None);
    assert_eq!(st, 404, "{b}");
    let (st, list) = s.call("GET", "/v1/security-groups", Some(&bob), None);
    assert_eq!((st, &list["items"]), (200, &json!([])));
    let (st, list) = s.call("GET", "/v1/security-groups?owner=alice", Some(&bob), None);
    assert_eq!((st, &list["items"]), (200, &json!([])));
    let (st, b) = s.call(
        "PUT",
        &path,
        Some(&bob),
        Some(json!({ "groupName": "mine", "egress": [] })),
    );
    assert_eq!(st, 403, "{b}");
    let (st, b) = s.call("DELETE", &path, Some(&bob), None);
    assert_eq!(st, 403, "{b}");
    let (st, b) = s.call(
        "POST",
        "/v1/security-groups?owner=alice",
        Some(&bob),
        Some(json!({ "groupName": "planted" })),
    );
    assert_eq!(st, 403, "{b}");

    // Naming alice's group reads as an unknown id, for bob and for an admin
    // creating bob's function.
    let mut body = function_body("bobs");
    body["vpcConfig"] = json!({ "subnetIds": [subnet], "securityGroupIds": [group_id] });
    let (st, b) = s.call("POST", "/v1/functions", Some(&bob), Some(body.clone()));
    assert_eq!(
        field_errors(st, &b),
        vec![format!(
            "vpcConfig.securityGroupIds[0]: security group '{group_id}' does not exist"
        )]
    );
    let (st, b) = s.admin("POST", "/v1/functions?owner=bob", Some(body.clone()));
    assert_eq!(field_errors(st, &b).len(), 1, "{b}");
    let bare = function_body("bobs");
    let (st, b) = s.call("POST", "/v1/functions", Some(&bob), Some(bare));
    assert_eq!(st, 201, "{b}");
    let (st, b) = s.call(
        "PATCH",
        "/v1/functions/bobs",
        Some(&bob),
        Some(json!({ "vpcConfig": body["vpcConfig"] })),
    );
    assert!(field_errors(st, &b)[0].starts_with("vpcConfig.securityGroupIds[0]: "));

    // Alice may; so may an admin for alice, and an admin sees every owner's.
    let mut mine = function_body("alices");
    mine["vpcConfig"] = body["vpcConfig"].clone();
    let (st, f) = s.call("POST", "/v1/functions", Some(&alice), Some(mine));
    assert_eq!(st, 201, "{f}");
    assert_eq!(f["vpcConfig"]["securityGroupIds"], json!([group_id]));
    let (st, g) = s.admin(
        "POST",
        "/v1/security-groups?owner=bob",
        Some(json!({ "groupName": "bobs-own" })),
    );
    assert_eq!((st, &g["ownerId"]), (201, &json!("bob")), "{g}");
    let (_, all) = s.admin("GET", "/v1/security-groups", None);
    assert_eq!(all["items"].as_array().unwrap().len(), 2, "{all}");
    let (_, alices) = s.admin("GET", "/v1/security-groups?owner=alice", None);
    assert_eq!(alices["items"], json!([group]));
    let (st, _) = s.admin("GET", &path, None);
    assert_eq!(st, 200);
}

#[test]
fn invalid_networks_and_rules_are_refused_with_field_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    let post_subnet = |name: &str, cidr: &str| {
        s.admin(
            "POST",
            "/v1/subnets",
            Some(json!({ "subnetName": name, "cidr": cidr })),
        )
    };
    for (cidr, message) in [
        (
            "10.0.0.1/24",
            "cidr: 10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24",
        ),
        (
            "8.8.8.0/24",
            "cidr: 8.8.8.0/24 is not a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10)",
        ),
        ("10.0.0.0/8", "cidr: the prefix must be /16 to /28 (got /8)"),
        ("10.0.0.0/29", "cidr: the prefix must be /16 to /28 (got /29)"),
        (
            "10.0.0/24",
            "cidr: '10.0.0/24' is not an IPv4 CIDR block such as 10.0.0.0/16",
        ),
    ] {
        let (st, b) = post_subnet("net", cidr);
        assert_eq!(field_errors(st, &b), vec![message], "{cidr}");
    }
    let (st, b) = post_subnet("bad name", "10.0.0.0/16");
    assert!(field_errors(st, &b)[0].starts_with("subnetName: "));

    let first = create_subnet(&s, "first", "10.5.0.0/16");
    let (st, b) = post_subnet("second", "10.5.3.0/24");
    assert_eq!(
        field_errors(st, &b),
        vec![format!(
            "cidr: 10.5.3.0/24 overlaps subnet 'first' ({}, 10.5.0.0/16)",
            first["subnetId"].as_str().unwrap()
        )]
    );
    create_subnet(&s, "second", "10.6.0.0/24");

    let (st, b) = s.call(
        "POST",
        "/v1/security-groups",
        Some(&alice),
        Some(json!({ "groupName": "bad", "egress": [
            { "protocol": "icmp", "cidr": "10.0.0.0/8" },
            { "protocol": "tcp", "ports": "0-70000", "cidr": "10.0.0.1/8" },
            { "protocol": "all", "ports": "80", "host": true },
            { "protocol": "udp", "cidr": "10.0.0.0/8", "host": true },
            { "protocol": "tcp", "ports": "9000-8000" },
        ] })),
    );
    let errors = field_errors(st, &b);
    let fields: Vec<&str> = errors
        .iter()
        .map(|e| e.split_once(':').unwrap().0)
        .collect();
    assert_eq!(
        fields,
        vec![
            "egress[0].protocol",
            "egress[1].ports",
            "egress[1].cidr",
            "egress[2].ports",
            "egress[3]",
            "egress[4].ports",
        ],
        "{errors:?}"
    );
    let (st, b) = s.call(
        "POST",
        "/v1/security-groups",
        Some(&alice),
        Some(json!({ "groupName": "g", "egress": vec![json!({ "protocol": "tcp", "host": true }); 61] })),
    );
    assert_eq!(
        field_errors(st, &b),
        vec!["egress: at most 60 rules (got 61)"]
    );

    // The body's shape and the query are checked as everywhere.
    let (st, b) = s.call(
        "POST",
        "/v1/security-groups",
        Some(&alice),
        Some(json!({ "groupName": "g", "rules": [] })),
    );
    assert_eq!(st, 400, "{b}");
    let (st, b) = s.call("GET", "/v1/subnets?owner=alice", Some(&alice), None);
    assert_eq!(st, 400, "{b}");
    let (st, b) = s.call(
        "GET",
        "/v1/security-groups/sg-1?owner=alice",
        Some(&alice),
        None,
    );
    assert_eq!(st, 400, "{b}");

    // vpcConfig: unknown subnets, groups without a subnet.
    let mut body = function_body("f");
    body["vpcConfig"] = json!({ "subnetIds": ["subnet-nope"] });
    let (st, b) = s.call("POST", "/v1/functions", Some(&alice), Some(body.clone()));
    assert_eq!(
        field_errors(st, &b),
        vec!["vpcConfig.subnetIds[0]: subnet 'subnet-nope' does not exist"]
    );
    let group = create_group(&s, &alice, "g", json!([]));
    body["vpcConfig"] = json!({ "securityGroupIds": [group["securityGroupId"]] });
    let (st, b) = s.call("POST", "/v1/functions", Some(&alice), Some(body));
    assert_eq!(
        field_errors(st, &b),
        vec!["VpcConfig.SubnetIds is required when SecurityGroupIds are set"]
    );
}

#[test]
fn resources_in_use_are_kept_and_published_versions_keep_their_vpc_config() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    let net_a = id(&create_subnet(&s, "a", "172.16.1.0/24"), "subnetId");
    let net_b = id(&create_subnet(&s, "b", "172.16.2.0/24"), "subnetId");
    let group = id(
        &create_group(
            &s,
            &alice,
            "db",
            json!([{ "protocol": "tcp", "ports": "5432", "host": true }]),
        ),
        "securityGroupId",
    );
    let vpc_a = json!({ "subnetIds": [net_a], "securityGroupIds": [group], "vpcId": "vpc-1" });
    let mut body = function_body("api");
    body["vpcConfig"] = vpc_a.clone();
    let (st, f) = s.call("POST", "/v1/functions", Some(&alice), Some(body));
    assert_eq!(st, 201, "{f}");
    assert_eq!(f["vpcConfig"], vpc_a);

    let (st, b) = s.admin("DELETE", &format!("/v1/subnets/{net_a}"), None);
    assert_eq!(st, 409, "{b}");
    assert!(is_error(&b, "Conflict"), "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .ends_with("alice/api ($LATEST)"),
        "{b}"
    );
    let group_path = format!("/v1/security-groups/{group}");
    let (st, b) = s.call("DELETE", &group_path, Some(&alice), None);
    assert_eq!(st, 409, "{b}");

    let (st, v1) = s.call(
        "POST",
        "/v1/functions/api/versions",
        Some(&alice),
        Some(json!({})),
    );
    assert_eq!(st, 201, "{v1}");
    assert_eq!(v1["vpcConfig"], vpc_a);

    // The function moves to subnet b without groups: $LATEST follows, v1
    // keeps what it was published with.
    let vpc_b = json!({ "subnetIds": [net_b], "securityGroupIds": [], "vpcId": null });
    let (st, f) = s.call(
        "PATCH",
        "/v1/functions/api",
        Some(&alice),
        Some(json!({ "vpcConfig": vpc_b })),
    );
    assert_eq!((st, &f["vpcConfig"]), (200, &vpc_b), "{f}");
    let (_, latest) = s.call(
        "GET",
        "/v1/functions/api/versions/%24LATEST",
        Some(&alice),
        None,
    );
    assert_eq!(latest["vpcConfig"], vpc_b, "{latest}");
    let (_, got) = s.call("GET", "/v1/functions/api/versions/1", Some(&alice), None);
    assert_eq!(got["vpcConfig"], vpc_a, "{got}");

    // v1 still uses subnet a and the group.
    let (st, b) = s.admin("DELETE", &format!("/v1/subnets/{net_a}"), None);
    assert_eq!(st, 409, "{b}");
    assert!(
        b["message"].as_str().unwrap().ends_with("alice/api (v1)"),
        "{b}"
    );
    let (st, _) = s.call("DELETE", &group_path, Some(&alice), None);
    assert_eq!(st, 409);
    // Group rules may still change while in use.
    let (st, b) = s.call(
        "PUT",
        &group_path,
        Some(&alice),
        Some(json!({ "groupName": "db", "egress": [] })),
    );
    assert_eq!(st, 200, "{b}");

    let (st, b) = s.call("DELETE", "/v1/functions/api/versions/1", Some(&alice), None);
    assert_eq!(st, 204, "{b}");
    let (st, b) = s.admin("DELETE", &format!("/v1/subnets/{net_a}"), None);
    assert_eq!(st, 204, "{b}");
    let (st, b) = s.call("DELETE", &group_path, Some(&alice), None);
    assert_eq!(st, 204, "{b}");
    // Subnet b goes once the function leaves it.
    let (st, _) = s.admin("DELETE", &format!("/v1/subnets/{net_b}"), None);
    assert_eq!(st, 409);
    let (st, f) = s.call(
        "PATCH",
        "/v1/functions/api",
        Some(&alice),
        Some(json!({ "vpcConfig": null })),
    );
    assert_eq!((st, &f["vpcConfig"]), (200, &Value::Null), "{f}");
    let (st, _) = s.admin("DELETE", &format!("/v1/subnets/{net_b}"), None);
    assert_eq!(st, 204);
}

#[test]
fn cli_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");

    let subnet = cli_json(
        &s,
        ADMIN_TOKEN,
        &["subnet", "create", "app", "--cidr", "10.40.0.0/24"],
    );
    let subnet_id = id(&subnet, "subnetId");
    let r = cli_as(
        &s,
        &alice,
        &["subnet", "create", "x", "--cidr", "10.41.0.0/24"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let r = cli_as(&s, &alice, &["subnet", "list"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("ID"), "{r:?}");
    assert!(
        r.stdout.contains(&subnet_id) && r.stdout.contains("10.40.0.0/24"),
        "{r:?}"
    );

    let group = cli_json(
        &s,
        &alice,
        &[
            "security-group",
            "create",
            "db",
            "--egress",
            "tcp:5432:host",
            "--egress",
            "all:10.1.0.0/16",
        ],
    );
    let group_id = id(&group, "securityGroupId");
    assert_eq!(
        group["egress"],
        json!([
            { "protocol": "tcp", "ports": "5432", "host": true },
            { "protocol": "all", "cidr": "10.1.0.0/16" },
        ])
    );
    let r = cli_as(&s, &alice, &["sg", "list"]);
    assert!(r.stdout.contains("tcp:5432:host all:10.1.0.0/16"), "{r:?}");
    let r = cli_as(&s, &alice, &["sg", "get", &group_id]);
    assert!(r.stdout.contains("tcp:5432:host"), "{r:?}");
    // A malformed rule is a usage error, found before any request.
    let r = cli_as(
        &s,
        &alice,
        &["sg", "create", "x", "--egress", "tcp:5432:10.0.0.1/8"],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("did you mean 10.0.0.0/8"), "{r:?}");

    let updated = cli_json(&s, &alice, &["sg", "update", &group_id, "--name", "db-2"]);
    assert_eq!(updated["groupName"], "db-2");
    assert_eq!(updated["egress"], group["egress"], "rules kept");
    let updated = cli_json(
        &s,
        &alice,
        &["sg", "update", &group_id, "--egress", "udp:53:10.0.0.2/32"],
    );
    assert_eq!(updated["groupName"], "db-2");
    assert_eq!(
        updated["egress"],
        json!([{ "protocol": "udp", "ports": "53", "cidr": "10.0.0.2/32" }])
    );

    let code = tempfile::tempdir().unwrap();
    std::fs::write(
        code.path().join("app.py"),
        "def handler(event, context):\n    return 1\n",
    )
    .unwrap();
    let path = code.path().to_str().unwrap();
    let f = cli_json(
        &s,
        &alice,
        &[
            "fn",
            "create",
            path,
            "--name",
            "web",
            "--runtime",
            "python311",
            "--handler",
            "app.handler",
            "--subnet-id",
            &subnet_id,
            "--security-group-id",
            &group_id,
        ],
    );
    assert_eq!(
        f["vpcConfig"],
        json!({ "subnetIds": [subnet_id], "securityGroupIds": [group_id], "vpcId": null })
    );
    let r = cli_as(&s, &alice, &["sg", "delete", &group_id]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("in use"), "{r:?}");
    let f = cli_json(&s, &alice, &["fn", "update", "web", "--clear-vpc"]);
    assert_eq!(f["vpcConfig"], Value::Null);
    let r = cli_as(&s, &alice, &["sg", "delete", &group_id]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = cli_as(&s, ADMIN_TOKEN, &["subnet", "delete", &subnet_id]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Deleted subnet"), "{r:?}");
}
