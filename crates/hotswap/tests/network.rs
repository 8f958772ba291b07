//! Function instances on the network, checked from inside real isolated
//! instances (needs root, bubblewrap, `ip` and `nft`): default egress to
//! public addresses with NAT, the instances' resolver, what is refused
//! (the host, private and link-local ranges, other instances), the
//! clean-up of a server's table and interfaces, and how the runner
//! describes it.
//!
//! "Public" addresses are test hosts in their own network namespaces on
//! 203.0.113.0/24 (see `common/testnet.rs`).

mod common;
#[path = "common/testnet.rs"]
mod testnet;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use testnet::*;

/// One test host, a hosts file naming it, and an isolated server whose
/// default instance network is 10.215.n.0/24.
struct Setup {
    host: TestHost,
    name: String,
    n: u8,
    dir: tempfile::TempDir,
    server: Option<Server>,
}

impl Setup {
    fn new() -> Setup {
        Setup::with_args(&[])
    }

    /// With `extra` server arguments.
    fn with_args(extra: &[String]) -> Setup {
        let host = TestHost::start();
        let n = instance_octet();
        let name = format!("pub-{n}.example.test");
        let dir = tempfile::tempdir().unwrap();
        let hosts = hosts_file(dir.path(), &name, host.ip);
        let data = dir.path().join("data");
        let mut args = net_args(n, &hosts);
        args.extend_from_slice(extra);
        let server = Server::start_with(
            &data,
            ServerOptions {
                extra_args: args,
                ..Default::default()
            },
        );
        Setup {
            host,
            name,
            n,
            dir,
            server: Some(server),
        }
    }

    fn s(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn hosts(&self) -> std::path::PathBuf {
        self.dir.path().join("instance-hosts")
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        // The server goes before the test host, and cleans up after itself
        // (a killed server's table stays until the next server starts).
        if let Some(s) = self.server.take() {
            stop_gracefully(s, 20);
        }
    }
}

#[test]
fn default_egress_reaches_public_hosts_and_nothing_private() {
    let t = Setup::new();
    let s = t.s();
    create_probe(s, ADMIN_TOKEN, "probe", json!({}));
    let listener = HostListener::start();
    let gw = gateway(t.n).to_string();
    let api_port: u16 = s.url.rsplit(':').next().unwrap().parse().unwrap();
    let host_addr = host_public_addr().to_string();
    let ip = t.host.ip.to_string();

    let out = probe(
        s,
        ADMIN_TOKEN,
        "probe",
        json!({
            "self_to": ip,
            "fetch": { "by_ip": format!("http://{ip}/") },
            "resolve": { "host_internal": "host.hotswap.internal" },
            "connect": {
                "host_loopback_via_gateway": [gw, listener.port],
                "host_via_own_address": [host_addr, listener.port],
                "api_via_gateway": [gw, api_port],
                "metadata": ["169.254.169.254", 80],
                "ten": ["10.0.0.1", 80],
                "one_seven_two": ["172.16.0.1", 80],
                "one_nine_two": ["192.168.0.1", 80],
                "cgnat": ["100.64.0.1", 80],
            },
        }),
    );

    // Its own address is in the server's instance network.
    let me: std::net::Ipv4Addr = out["self"].as_str().unwrap().parse().unwrap();
    assert_eq!(me.octets()[..3], [10, 215, t.n], "{out}");
    assert_ne!(me, gateway(t.n), "{out}");

    let body = format!("{} {}", t.host.body.len(), t.host.body);
    assert_eq!(assert_ok(&out, "by_ip"), body, "{out}");
    assert_eq!(assert_ok(&out, "host_internal"), gw, "{out}");

    for refused in [
        "host_loopback_via_gateway",
        "host_via_own_address",
        "api_via_gateway",
        "metadata",
        "ten",
        "one_seven_two",
        "one_nine_two",
        "cgnat",
    ] {
        assert_refused(&out, refused);
    }
    // The refusals came from the policy, not from the listener missing.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", listener.port)).is_ok(),
        "the host's listener accepts local clients"
    );
}

/// The instances' resolver (the gateway, DNATed to the server's forwarder)
/// answers `host.hotswap.internal` and names of `--instance-hosts-file`,
/// and relays other names to `--instance-dns-upstream`.
#[test]
fn the_instance_resolver_answers_from_the_hosts_file_and_relays_the_rest() {
    let upstream = FakeDns::start(std::net::Ipv4Addr::new(203, 0, 113, 77));
    let t = Setup::with_args(&[
        "--instance-dns-upstream".into(),
        format!("127.0.0.1:{}", upstream.port),
    ]);
    let s = t.s();
    create_probe(s, ADMIN_TOKEN, "probe", json!({}));
    let ip = t.host.ip.to_string();
    let out = probe(
        s,
        ADMIN_TOKEN,
        "probe",
        json!({
            "fetch": { "by_name": format!("http://{}/", t.name) },
            "resolve": {
                "public_name": t.name,
                // Not in the sandbox's /etc/hosts: only the forwarder knows it.
                "host_internal_fqdn": "host.hotswap.internal.",
                "relayed": "elsewhere.example.test",
            },
        }),
    );
    let body = format!("{} {}", t.host.body.len(), t.host.body);
    assert_eq!(assert_ok(&out, "public_name"), ip, "{out}");
    assert_eq!(assert_ok(&out, "by_name"), body, "{out}");
    assert_eq!(
        assert_ok(&out, "host_internal_fqdn"),
        gateway(t.n).to_string(),
        "{out}"
    );
    assert_eq!(assert_ok(&out, "relayed"), "203.0.113.77", "{out}");
    assert!(
        upstream.asked("elsewhere.example.test"),
        "the upstream was asked"
    );
    assert!(
        !upstream.asked(&t.name),
        "hosts-file names are answered locally"
    );
}

#[test]
fn instances_cannot_reach_each_other() {
    let t = Setup::new();
    let s = t.s();
    create_probe(s, ADMIN_TOKEN, "a", json!({}));
    create_probe(s, ADMIN_TOKEN, "b", json!({}));
    let ip = t.host.ip.to_string();

    let a = probe(
        s,
        ADMIN_TOKEN,
        "a",
        json!({ "listen": 9000, "self_to": ip }),
    );
    assert_eq!(assert_ok(&a, "listen"), "listening 9000", "{a}");
    let a_addr = a["self"].as_str().unwrap().to_owned();

    let b = probe(
        s,
        ADMIN_TOKEN,
        "b",
        json!({ "self_to": ip, "connect": { "to_a": [a_addr, 9000] } }),
    );
    assert_ne!(b["self"], a["self"], "two instances, two addresses: {b}");
    assert_refused(&b, "to_a");

    // A's listener itself works: A (the same warm instance) reaches it.
    let again = probe(
        s,
        ADMIN_TOKEN,
        "a",
        json!({ "self_to": ip, "connect": { "own": [a_addr, 9000] } }),
    );
    assert_eq!(again["self"], a["self"], "the same instance: {again}");
    assert_eq!(
        assert_ok(&again, "own"),
        "connected hello from 9000",
        "{again}"
    );
}

#[test]
fn a_large_download_arrives_whole() {
    let t = Setup::new();
    let s = t.s();
    create_probe(s, ADMIN_TOKEN, "dl", json!({ "timeout": 30 }));
    let out = probe(
        s,
        ADMIN_TOKEN,
        "dl",
        json!({ "fetch": { "big": format!("http://{}/big?mb=20", t.host.ip) } }),
    );
    let got = assert_ok(&out, "big");
    assert_eq!(got.split(' ').next(), Some("20971520"), "{out}");
}

/// Interfaces of server `id` (`hs<id><hex counter>`).
fn interfaces_of(id: &str) -> Vec<(String, u32)> {
    links_with_prefix(&format!("hs{id}"))
        .into_iter()
        .filter(|(n, _)| {
            let rest = &n[2 + id.len()..];
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .collect()
}

fn table_handle(id: &str) -> Option<u64> {
    let name = format!("hotswap_{id}");
    nft_tables()
        .into_iter()
        .find(|(t, _)| *t == name)
        .map(|(_, h)| h)
}

fn fetches_the_test_host(s: &Server, t: &Setup) {
    let out = probe(
        s,
        ADMIN_TOKEN,
        "probe",
        json!({ "fetch": { "page": format!("http://{}/", t.host.ip) } }),
    );
    assert_eq!(
        assert_ok(&out, "page"),
        format!("{} {}", t.host.body.len(), t.host.body),
        "{out}"
    );
}

#[test]
fn a_stopped_server_leaves_no_table_or_interfaces() {
    let mut t = Setup::new();
    let s = t.server.take().unwrap();
    let id = network_id(&s);
    assert!(table_handle(&id).is_some(), "table hotswap_{id} exists");
    create_probe(&s, ADMIN_TOKEN, "probe", json!({}));
    fetches_the_test_host(&s, &t);
    assert!(
        !interfaces_of(&id).is_empty(),
        "the server has instance interfaces"
    );

    assert!(stop_gracefully(s, 30), "the server exits on SIGTERM");
    assert!(
        wait_until(10, || interfaces_of(&id).is_empty()),
        "interfaces left after a graceful stop: {:?}",
        interfaces_of(&id)
    );
    assert_eq!(table_handle(&id), None, "table hotswap_{id} left behind");
}

#[test]
fn a_killed_servers_leftovers_are_replaced_by_its_next_start() {
    let mut t = Setup::new();
    let s = t.server.take().unwrap();
    let id = network_id(&s);
    let old_table = table_handle(&id).expect("the server's table");
    create_probe(&s, ADMIN_TOKEN, "probe", json!({}));
    fetches_the_test_host(&s, &t);
    let old_ifs = interfaces_of(&id);
    assert!(!old_ifs.is_empty(), "the server has instance interfaces");

    s.stop(); // SIGKILL: no clean-up of its own
    assert_eq!(
        table_handle(&id),
        Some(old_table),
        "a killed server cannot remove its table"
    );

    let s = net_server(&t.data_dir(), t.n, &t.hosts());
    assert_eq!(network_id(&s), id, "the same data directory, the same id");
    let new_table = table_handle(&id).expect("the restarted server's table");
    assert_ne!(new_table, old_table, "the old table was replaced");
    let stale = |ifs: &[(String, u32)]| -> Vec<(String, u32)> {
        let now = interfaces_of(&id);
        ifs.iter().filter(|i| now.contains(i)).cloned().collect()
    };
    assert!(
        wait_until(10, || stale(&old_ifs).is_empty()),
        "interfaces of the killed server remain: {:?}",
        stale(&old_ifs)
    );
    let tables: Vec<String> = nft_tables()
        .into_iter()
        .map(|(t, _)| t)
        .filter(|n| *n == format!("hotswap_{id}"))
        .collect();
    assert_eq!(tables.len(), 1, "{tables:?}");
    fetches_the_test_host(&s, &t);
    t.server = Some(s);
}

#[test]
fn the_runner_says_whether_network_policy_is_enforced() {
    let t = Setup::new();
    let summary = sandbox_summary(t.s());
    assert!(summary.starts_with("isolated"), "{summary}");
    assert!(
        summary.contains("network") && summary.contains("hotswap_"),
        "{summary}"
    );
    assert!(!summary.contains("no network"), "{summary}");

    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        ServerOptions {
            extra_args: vec!["--sandbox".into(), "unisolated".into()],
            ..Default::default()
        },
    );
    let summary = sandbox_summary(&s);
    assert!(summary.contains("NOT enforced"), "{summary}");
}

/// `hotswap server` in a private mount namespace where `/usr/sbin/nft` is
/// `/dev/null` (not executable): nftables cannot be used, for this process
/// only.
fn server_without_nft(dir: &std::path::Path, sandbox: &str) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "for f in /usr/sbin/nft /sbin/nft /usr/bin/nft; do [ -e \"$f\" ] && { mount --bind /dev/null \"$f\" || exit 99; }; done; exec \"$0\" \"$@\"",
        bin(),
        "server",
        "--listen",
        "127.0.0.1:0",
        "--sandbox",
        sandbox,
        "--data-dir",
    ])
    .arg(dir)
    .env("HOTSWAP_ADMIN_TOKEN", ADMIN_TOKEN)
    .env_remove("HOTSWAP_DATABASE_URL")
    .env("HOTSWAP_LOG", "warn");
    cmd
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn without_nftables_isolated_refuses_to_start_and_auto_runs_without_network() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        server_without_nft(&dir.path().join("isolated"), "isolated")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let exited = wait_until(60, || matches!(child.0.try_wait(), Ok(Some(_))));
    assert!(exited, "--sandbox isolated without nftables must not serve");
    let status = child.0.wait().unwrap();
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_ne!(status.code(), Some(99), "bind mount failed: {err}");
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("nft"),
        "the error names nftables: {status}: {err}"
    );

    let mut child = KillOnDrop(
        server_without_nft(&dir.path().join("auto"), "auto")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let url = listening_url(stdout)
        .recv_timeout(Duration::from_secs(60))
        .expect("--sandbox auto starts without nftables");
    let local: Value = reqwest::blocking::Client::new()
        .get(format!("{url}/v1/runners/local"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let summary = local["sandbox"]
        .as_str()
        .unwrap_or_else(|| panic!("{local}"));
    assert!(
        summary.contains("no network") && summary.contains("nft"),
        "{summary}"
    );
}

/// The host's route to an instance address (`ADDR dev hs… scope link`),
/// if any.
fn route_to(addr: &str) -> Option<String> {
    let out = sh(&["ip", "-4", "-o", "route", "show", addr]);
    out.lines().find(|l| l.starts_with(addr)).map(str::to_owned)
}

#[test]
fn an_instance_that_ends_takes_its_interface_and_route_with_it() {
    let t = Setup::new();
    let s = t.s();
    create_probe(s, ADMIN_TOKEN, "short", json!({}));
    let out = probe(
        s,
        ADMIN_TOKEN,
        "short",
        json!({ "self_to": t.host.ip.to_string() }),
    );
    let addr = out["self"].as_str().unwrap().to_owned();
    let route = route_to(&addr).unwrap_or_else(|| panic!("no host route to {addr}"));
    let host_if = route
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(host_if.starts_with("hs"), "{route}");
    // Deleting the function stops its instances.
    let (st, _) = s.admin("DELETE", "/v1/functions/short", None);
    assert_eq!(st, 204);
    assert!(
        wait_until(10, || route_to(&addr).is_none()
            && !links_with_prefix(&host_if)
                .iter()
                .any(|(n, _)| *n == host_if)),
        "{host_if} ({addr}) outlived its instance"
    );
}
