//! The nftables table of one server: rendering (pure) and applying (`nft -f`).
//!
//! Everything lives in one table, `inet hotswap_<id>`, that matches only
//! this server's interfaces (`hs<id>*`), so the host's other rules and other
//! HotSwap servers' tables are never touched. An instance's policy is found
//! by its host-side interface's group (`iifgroup`): a prepared interface is
//! in [`QUARANTINE`] (everything dropped) until it is handed to an instance,
//! when its group becomes [`DEFAULT_GROUP`] or its policy's group.
//!
//! `host.hotswap.internal` is the subnet's gateway address; a connection to
//! it on a port a policy opens is DNATed to the host's loopback and SNATed
//! to 127.0.0.1 there, so a host service listening on loopback only (the
//! usual PostgreSQL or Redis) takes it as a local client. The API's port is
//! refused before any policy is looked at.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use hotswap_domain::network::{EgressRule, Protocol};

use crate::policy::BLOCKED;

/// Group of interfaces not (yet) given to an instance: nothing passes.
pub const QUARANTINE: u32 = 1;
/// Group of instances with the default policy: public egress only.
pub const DEFAULT_GROUP: u32 = 2;
/// First group number given to a security-group policy.
pub const FIRST_POLICY_GROUP: u32 = 16;

/// What a refused connection gets, so the function fails at once instead of
/// waiting for a timeout: a TCP reset (`ECONNREFUSED`), anything else ICMP
/// "administratively prohibited" (`EHOSTUNREACH`). TCP is not left to ICMP:
/// the kernel rate-limits the ICMP it sends (about six at once, then one a
/// second per destination), resets are not.
const REJECT: &str = "jump refuse";

/// What the base table needs to know.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// `hotswap_<id>`.
    pub table: String,
    /// Interface name prefix, e.g. `hs1a2b3`.
    pub prefix: String,
    /// The DNS forwarder's port on 127.0.0.1.
    pub dns_port: u16,
    /// Host ports no rule ever opens (the API's).
    pub protected_ports: Vec<u16>,
}

/// The whole table, replacing any previous one of the same name.
pub fn base_ruleset(spec: &TableSpec) -> String {
    let TableSpec {
        table,
        prefix,
        dns_port,
        protected_ports,
    } = spec;
    let blocked = BLOCKED.join(", ");
    let protected = if protected_ports.is_empty() {
        String::new()
    } else {
        let ports: Vec<String> = protected_ports.iter().map(u16::to_string).collect();
        format!(
            "    meta l4proto {{ tcp, udp }} th dport {{ {} }} {REJECT}\n",
            ports.join(", ")
        )
    };
    format!(
        r#"table inet {table} {{}}
delete table inet {table}
table inet {table} {{
  comment "HotSwap instance networking; removed by the server that owns it"
  set blocked {{
    type ipv4_addr
    flags interval
    elements = {{ {blocked} }}
  }}
  set gateways {{
    type ipv4_addr
  }}
  map pre_policy {{
    type devgroup : verdict
  }}
  map in_policy {{
    type devgroup : verdict
  }}
  map fwd_policy {{
    type devgroup : verdict
    elements = {{ {DEFAULT_GROUP} : jump fwd_default }}
  }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "{prefix}*" jump pre_instance
  }}
  chain pre_instance {{
    ip daddr @gateways meta l4proto {{ tcp, udp }} th dport 53 dnat ip to 127.0.0.1:{dns_port}
    ip daddr @gateways iifgroup vmap @pre_policy
  }}
  chain input_nat {{
    type nat hook input priority 100; policy accept;
    iifname "{prefix}*" ct status dnat ip daddr 127.0.0.1 meta l4proto {{ tcp, udp }} th dport != {dns_port} snat ip to 127.0.0.1
  }}
  chain input {{
    type filter hook input priority filter - 5; policy accept;
    iifname "{prefix}*" jump in_instance
  }}
  chain in_instance {{
    meta nfproto ipv6 drop
    ct state established,related accept
    ct status dnat ip daddr 127.0.0.1 meta l4proto {{ tcp, udp }} th dport {dns_port} accept
{protected}    ct status dnat ip daddr 127.0.0.1 iifgroup vmap @in_policy
    {REJECT}
  }}
  chain forward {{
    type filter hook forward priority filter - 5; policy accept;
    iifname "{prefix}*" jump fwd_instance
    oifname "{prefix}*" ct state established,related accept
    oifname "{prefix}*" drop
  }}
  chain fwd_instance {{
    meta nfproto ipv6 drop
    ct state established,related accept
    iifgroup vmap @fwd_policy
    {REJECT}
  }}
  chain refuse {{
    meta l4proto tcp reject with tcp reset
    reject with icmpx type admin-prohibited
  }}
  chain fwd_default {{
    ip daddr @blocked {REJECT}
    accept
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    iifname "{prefix}*" oifname != "{prefix}*" masquerade
  }}
}}
"#
    )
}

/// Adds a subnet's gateway (where instances find DNS and the host).
pub fn add_gateway(table: &str, gateway: Ipv4Addr) -> String {
    format!("add element inet {table} gateways {{ {gateway} }}\n")
}

fn match_of(rule: &EgressRule) -> String {
    let mut m = String::new();
    match rule.protocol {
        Protocol::Tcp => m.push_str("meta l4proto tcp "),
        Protocol::Udp => m.push_str("meta l4proto udp "),
        Protocol::All => {}
    }
    if let (Some(p), true) = (rule.ports, rule.protocol.has_ports()) {
        let (from, to) = (p.from(), p.to());
        if from == to {
            let _ = write!(m, "th dport {from} ");
        } else {
            let _ = write!(m, "th dport {from}-{to} ");
        }
    }
    m
}

/// Creates or replaces the chains of policy `group` and maps the group to
/// them, in one transaction (the caller passes the script to [`apply`]).
/// `exists` says whether the chains were created before (then they are
/// flushed and refilled: instances already running follow the new rules
/// for their new connections).
pub fn policy_script(table: &str, group: u32, rules: &[EgressRule], exists: bool) -> String {
    let mut s = String::new();
    for chain in ["fwd", "pre", "in"] {
        let _ = writeln!(s, "add chain inet {table} {chain}_{group}");
        if exists {
            let _ = writeln!(s, "flush chain inet {table} {chain}_{group}");
        }
    }
    for rule in rules {
        let m = match_of(rule);
        match (rule.cidr, rule.host) {
            (Some(c), false) => {
                let _ = writeln!(
                    s,
                    "add rule inet {table} fwd_{group} ip daddr {c} {m}accept"
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "add rule inet {table} pre_{group} {m}dnat ip to 127.0.0.1"
                );
                let _ = writeln!(s, "add rule inet {table} in_{group} {m}accept");
            }
        }
    }
    let _ = writeln!(
        s,
        "add rule inet {table} fwd_{group} ip daddr @blocked {REJECT}"
    );
    let _ = writeln!(s, "add rule inet {table} fwd_{group} accept");
    if !exists {
        for (map, chain) in [
            ("fwd_policy", "fwd"),
            ("pre_policy", "pre"),
            ("in_policy", "in"),
        ] {
            let _ = writeln!(
                s,
                "add element inet {table} {map} {{ {group} : jump {chain}_{group} }}"
            );
        }
    }
    s
}

/// Removes a table (no error if it is gone).
pub fn delete_table(table: &str) -> String {
    format!("table inet {table} {{}}\ndelete table inet {table}\n")
}

/// Errors of running `nft`.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("nftables: the `nft` command is not installed (apt-get install nftables)")]
    Missing,
    #[error("nftables: cannot run `nft`: {0}")]
    Run(std::io::Error),
    #[error("nftables refused the rules: {0}")]
    Refused(String),
}

/// Where `nft` is installed (fixed paths: never looked up on `PATH`).
fn nft_binary() -> Result<&'static str, NftError> {
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .ok_or(NftError::Missing)
}

/// Runs `nft -f -` with `script` as one atomic transaction.
pub fn apply(script: &str) -> Result<(), NftError> {
    let nft = nft_binary()?;
    let mut child = Command::new(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NftError::Run)?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(NftError::Run)?;
    let out = child.wait_with_output().map_err(NftError::Run)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NftError::Refused(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// Names of the `inet` tables whose name starts with `prefix`.
pub fn tables_with_prefix(prefix: &str) -> Result<Vec<String>, NftError> {
    let nft = nft_binary()?;
    let out = Command::new(nft)
        .args(["list", "tables", "inet"])
        .output()
        .map_err(NftError::Run)?;
    if !out.status.success() {
        return Err(NftError::Refused(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table inet "))
        .filter(|t| t.starts_with(prefix))
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TableSpec {
        TableSpec {
            table: "hotswap_abcde".into(),
            prefix: "hsabcde".into(),
            dns_port: 5353,
            protected_ports: vec![8080],
        }
    }

    #[test]
    fn base_table_scopes_every_hook_to_its_interfaces() {
        let r = base_ruleset(&spec());
        assert!(r.starts_with("table inet hotswap_abcde {}\ndelete table inet hotswap_abcde\n"));
        for hook in ["prerouting", "input_nat", "input", "forward", "postrouting"] {
            let chain = r.split(&format!("chain {hook} {{")).nth(1).unwrap();
            let chain = chain.split("}\n").next().unwrap();
            assert!(chain.contains("hsabcde*"), "{hook}: {chain}");
        }
        assert!(r.contains("dnat ip to 127.0.0.1:5353"));
        assert!(r.contains("th dport { 8080 } jump refuse"));
        assert!(r.contains("th dport != 5353 snat ip to 127.0.0.1"));
        assert!(r.contains("169.254.0.0/16"));
        assert!(r.contains("masquerade"));
    }

    #[test]
    fn policies_render_rules_before_the_private_ranges() {
        use hotswap_domain::network::PortRange;
        let rules = [
            EgressRule {
                protocol: Protocol::Tcp,
                ports: Some(PortRange::single(5432).unwrap()),
                cidr: None,
                host: true,
            },
            EgressRule {
                protocol: Protocol::Udp,
                ports: Some(PortRange::new(8000, 8100).unwrap()),
                cidr: Some("10.1.0.0/16".parse().unwrap()),
                host: false,
            },
            EgressRule {
                protocol: Protocol::All,
                ports: None,
                cidr: Some("192.168.0.0/24".parse().unwrap()),
                host: false,
            },
        ];
        let s = policy_script("t", 16, &rules, false);
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines.contains(
            &"add rule inet t pre_16 meta l4proto tcp th dport 5432 dnat ip to 127.0.0.1"
        ));
        assert!(lines.contains(&"add rule inet t in_16 meta l4proto tcp th dport 5432 accept"));
        let udp = lines
            .iter()
            .position(|l| *l == "add rule inet t fwd_16 ip daddr 10.1.0.0/16 meta l4proto udp th dport 8000-8100 accept")
            .unwrap();
        let all = lines
            .iter()
            .position(|l| *l == "add rule inet t fwd_16 ip daddr 192.168.0.0/24 accept")
            .unwrap();
        let drop = lines
            .iter()
            .position(|l| *l == "add rule inet t fwd_16 ip daddr @blocked jump refuse")
            .unwrap();
        assert!(udp < drop && all < drop);
        assert!(lines.contains(&"add element inet t fwd_policy { 16 : jump fwd_16 }"));
        let again = policy_script("t", 16, &rules, true);
        assert!(again.contains("flush chain inet t fwd_16"));
        assert!(!again.contains("add element"));
    }
}
