//! The network layer on this host, as root: namespaces are prepared,
//! handed out in their policy's group and removed again.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hotswap_domain::network::{EgressRule, PortRange, Protocol};
use hotswap_network::{Cidr, Network, NetworkConfig, Policy};

fn root() -> bool {
    nix::unistd::geteuid().is_root() && Path::new("/usr/sbin/nft").exists()
}

fn config(dir: &Path, subnet: &str) -> NetworkConfig {
    NetworkConfig {
        state_dir: dir.join("net"),
        lock_dir: dir.join("locks"),
        id: hotswap_network::id_for(dir),
        default_subnet: subnet.parse().unwrap(),
        protected_ports: vec![1],
        pool_size: 2,
        dns_upstreams: vec![],
        hosts_file: None,
    }
}

fn links(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["-o", "link"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn namespaces_are_prepared_attached_and_removed() {
    if !root() {
        eprintln!("skipped: needs root and nft");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = Network::start(config(dir.path(), "10.251.0.0/24"))
        .await
        .unwrap();
    let prefix = net.interface_prefix().to_owned();
    let t = Instant::now();
    let a = tokio::task::block_in_place(|| net.attach(None)).unwrap();
    eprintln!("first attach took {:?}", t.elapsed());
    assert!("10.251.0.0/24".parse::<Cidr>().unwrap().contains(a.addr));
    let out = a
        .within(|| {
            Command::new("ip")
                .args(["-4", "-o", "addr"])
                .output()
                .unwrap()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("eth0    inet {}/32", a.addr)),
        "{text}"
    );
    let group =
        std::fs::read_to_string(format!("/sys/class/net/{}/netdev_group", a.host_if)).unwrap();
    assert_eq!(group.trim(), "2");
    // The pool refills: the next attach is fast.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    let b = tokio::task::block_in_place(|| {
        net.attach(Some(&Policy {
            key: "f@1".into(),
            subnets: vec!["10.252.0.0/24".parse().unwrap()],
            rules: vec![EgressRule {
                protocol: Protocol::Tcp,
                ports: Some(PortRange::single(5432).unwrap()),
                cidr: None,
                host: true,
            }],
        }))
    })
    .unwrap();
    eprintln!("attach in a new subnet took {:?}", t.elapsed());
    // A cold start's share: taking a prepared namespace from a full pool.
    let mut took = Vec::new();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (c, t) = tokio::task::block_in_place(|| {
            let t = Instant::now();
            (net.attach(None).unwrap(), t.elapsed())
        });
        took.push(t);
        drop(c);
    }
    took.sort();
    eprintln!(
        "pooled attach: median {:?}, max {:?} (n=10)",
        took[5], took[9]
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c = tokio::task::block_in_place(|| net.attach(None)).unwrap();
    assert_ne!(a.addr, c.addr);
    let group =
        std::fs::read_to_string(format!("/sys/class/net/{}/netdev_group", b.host_if)).unwrap();
    assert_eq!(group.trim(), "16");
    let table = Command::new("nft")
        .args(["list", "table", "inet", net.table()])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("dnat ip to 127.0.0.1"), "{table}");
    drop((a, b, c));
    net.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !links(&prefix).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(links(&prefix), Vec::<String>::new());
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&tables.stdout).contains(net.table()));
}
