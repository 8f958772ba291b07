//! Functions in subnets with security groups, checked from inside real
//! isolated instances (needs root, bubblewrap, `ip`, `nft`, and the host's
//! PostgreSQL on 127.0.0.1:5432 with trust auth and Redis on
//! 127.0.0.1:6379, as `.ci/run` provides): a `"host": true` rule opens one
//! host service and nothing else, subnets are apart until a rule joins
//! them, and rule changes reach running instances.

mod common;
#[path = "common/testnet.rs"]
mod testnet;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use testnet::*;

/// Any public address: instances learn their own address by routing a UDP
/// socket towards it (nothing is sent).
const SOMEWHERE: &str = "192.0.2.200";

/// An isolated server whose default instance network is 10.215.n.0/24
/// (so subnets 10.214.n.0/24 and 10.216.n.0/24 are free), stopped
/// gracefully on drop.
struct Vpc {
    n: u8,
    _dir: tempfile::TempDir,
    server: Option<Server>,
}

impl Vpc {
    fn new() -> Vpc {
        let n = instance_octet();
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("instance-hosts");
        std::fs::write(&hosts, "127.0.0.1\tlocalhost\n").unwrap();
        let server = net_server(&dir.path().join("data"), n, &hosts);
        Vpc {
            n,
            _dir: dir,
            server: Some(server),
        }
    }

    fn s(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    /// Creates subnet `name` with `cidr` as admin; its id.
    fn subnet(&self, name: &str, cidr: &str) -> String {
        let (st, b) = self.s().admin(
            "POST",
            "/v1/subnets",
            Some(json!({ "subnetName": name, "cidr": cidr })),
        );
        assert_eq!(st, 201, "create subnet {name} {cidr}: {b}");
        b["subnetId"].as_str().unwrap().to_owned()
    }

    /// Creates security group `name` as `token`; its id.
    fn group(&self, token: &str, name: &str, egress: Value) -> String {
        let (st, b) = self.s().call(
            "POST",
            "/v1/security-groups",
            Some(token),
            Some(json!({ "groupName": name, "egress": egress })),
        );
        assert_eq!(st, 201, "create security group {name}: {b}");
        b["securityGroupId"].as_str().unwrap().to_owned()
    }

    fn set_rules(&self, token: &str, id: &str, name: &str, egress: Value) {
        let (st, b) = self.s().call(
            "PUT",
            &format!("/v1/security-groups/{id}"),
            Some(token),
            Some(json!({ "groupName": name, "egress": egress })),
        );
        assert_eq!(st, 200, "update security group {name}: {b}");
    }
}

impl Drop for Vpc {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            stop_gracefully(s, 20);
        }
    }
}

fn in_cidr(addr: &Value, prefix24: &str) -> bool {
    addr.as_str()
        .is_some_and(|a| a.starts_with(prefix24) && a != format!("{prefix24}1"))
}

#[test]
fn a_host_rule_opens_that_host_service_only() {
    let v = Vpc::new();
    let s = v.s();
    let n = v.n;
    let tenant = s.token_for("net-tenant");
    let subnet = v.subnet("a", &format!("10.214.{n}.0/24"));
    let pg = v.group(
        &tenant,
        "pg",
        json!([ { "protocol": "tcp", "ports": "5432", "host": true } ]),
    );
    create_probe(
        s,
        &tenant,
        "db",
        json!({ "vpcConfig": { "subnetIds": [subnet], "securityGroupIds": [pg] } }),
    );
    create_probe(s, &tenant, "plain", json!({}));
    let api_port: u16 = s.url.rsplit(':').next().unwrap().parse().unwrap();
    let host = "host.hotswap.internal";

    let out = probe(
        s,
        &tenant,
        "db",
        json!({
            "self_to": SOMEWHERE,
            "resolve": { "host": host },
            "pg": { "query": [host, 5432, "select 40+2"] },
            "connect": {
                "redis": [host, 6379],
                "api": [host, api_port],
            },
        }),
    );
    let prefix = format!("10.214.{n}.");
    assert!(
        in_cidr(&out["self"], &prefix),
        "address from subnet a: {out}"
    );
    assert_eq!(assert_ok(&out, "host"), format!("{prefix}1"), "{out}");
    assert_eq!(assert_ok(&out, "query"), "42", "{out}");
    assert_refused(&out, "redis");
    assert_refused(&out, "api");

    let out = probe(
        s,
        &tenant,
        "plain",
        json!({
            "self_to": SOMEWHERE,
            "pg": { "query": [host, 5432, "select 40+2"] },
        }),
    );
    assert!(
        in_cidr(&out["self"], &format!("10.215.{n}.")),
        "the default network: {out}"
    );
    assert_refused(&out, "query");
}

/// Invokes `name` until `done(result)` or `secs` pass; the last result.
fn probe_until(
    s: &Server,
    token: &str,
    name: &str,
    event: &Value,
    secs: u64,
    done: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let start = Instant::now();
    loop {
        let out = probe(s, token, name, event.clone());
        if done(&out) || start.elapsed() > Duration::from_secs(secs) {
            return (out, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn subnets_are_apart_until_a_rule_joins_them_and_rule_changes_apply_to_running_instances() {
    let v = Vpc::new();
    let s = v.s();
    let n = v.n;
    let tenant = s.token_for("net-tenant");
    let cidr_a = format!("10.214.{n}.0/24");
    let cidr_b = format!("10.216.{n}.0/24");
    let a = v.subnet("a", &cidr_a);
    let b = v.subnet("b", &cidr_b);
    let ga = v.group(&tenant, "ga", json!([]));
    let gb = v.group(&tenant, "gb", json!([]));
    create_probe(
        s,
        &tenant,
        "in-a",
        json!({ "vpcConfig": { "subnetIds": [a], "securityGroupIds": [ga] } }),
    );
    create_probe(
        s,
        &tenant,
        "also-in-a",
        json!({ "vpcConfig": { "subnetIds": [a] } }),
    );
    create_probe(
        s,
        &tenant,
        "in-b",
        json!({ "vpcConfig": { "subnetIds": [b], "securityGroupIds": [gb] } }),
    );

    let out_a = probe(
        s,
        &tenant,
        "in-a",
        json!({ "listen": 9000, "self_to": SOMEWHERE }),
    );
    assert_eq!(assert_ok(&out_a, "listen"), "listening 9000", "{out_a}");
    assert!(
        in_cidr(&out_a["self"], &format!("10.214.{n}.")),
        "in-a's address is from {cidr_a}: {out_a}"
    );
    let addr_a = out_a["self"].as_str().unwrap().to_owned();

    let to_a = json!({ "self_to": SOMEWHERE, "connect": { "to_a": [addr_a, 9000] } });
    let out_b = probe(s, &tenant, "in-b", to_a.clone());
    assert!(
        in_cidr(&out_b["self"], &format!("10.216.{n}.")),
        "in-b's address is from {cidr_b}: {out_b}"
    );
    assert_refused(&out_b, "to_a");
    // The same subnet is no exception without a rule.
    let out = probe(s, &tenant, "also-in-a", to_a.clone());
    assert!(in_cidr(&out["self"], &format!("10.214.{n}.")), "{out}");
    assert_ne!(out["self"], out_a["self"], "{out}");
    assert_refused(&out, "to_a");

    // A rule in b's group opens a's port 9000 to b's (running) instance.
    v.set_rules(
        &tenant,
        &gb,
        "gb",
        json!([ { "protocol": "tcp", "ports": "9000", "cidr": cidr_a } ]),
    );
    let (out_b, took) = probe_until(s, &tenant, "in-b", &to_a, 3, |o| {
        o["to_a"].as_str().is_some_and(|r| r.starts_with("ok: "))
    });
    assert_eq!(
        assert_ok(&out_b, "to_a"),
        "connected hello from 9000",
        "after {took:?}: {out_b}"
    );
    let again_a = probe(s, &tenant, "in-a", json!({ "self_to": SOMEWHERE }));
    assert_eq!(again_a["self"], out_a["self"], "in-a stayed warm");

    // Removing it closes the port again for new connections.
    v.set_rules(&tenant, &gb, "gb", json!([]));
    let (out_b, took) = probe_until(s, &tenant, "in-b", &to_a, 3, |o| {
        o["to_a"]
            .as_str()
            .is_some_and(|r| r.starts_with("denied: "))
    });
    assert_refused(&out_b, "to_a");
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
}
