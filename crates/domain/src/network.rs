//! Function networking: subnets (address ranges an admin creates), security
//! groups (an owner's egress allow-rules) and the [`NetworkSpec`] a function
//! version's instances get from its `vpcConfig`.
//!
//! Wire forms: a CIDR block is `"10.0.0.0/8"`, a port range `"5432"` or
//! `"8000-8100"`, a protocol `"tcp" | "udp" | "all"`. Validation messages
//! start with the field they are about (`egress[0].ports: …`).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::names::is_valid_function_name;
use crate::validation::ValidationErrors;
use crate::value::VpcConfig;

// ---- CIDR blocks -------------------------------------------------------------

/// An IPv4 CIDR block whose host bits are zero (`10.0.0.0/8`, never
/// `10.0.0.1/8`). Built by [`Ipv4Cidr::new`] or parsed; the fields are
/// private so that the invariant holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

/// Why a CIDR block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not `A.B.C.D/N`.
    #[error("'{0}' is not an IPv4 CIDR block such as 10.0.0.0/16")]
    Syntax(String),
    /// `N` is not 0–32.
    #[error("the prefix length of '{0}' must be 0-32")]
    Prefix(String),
    /// The address has bits set beyond the prefix.
    #[error("{given} has host bits set; did you mean {network}")]
    HostBits { given: String, network: Ipv4Cidr },
}

/// The ranges [`Ipv4Cidr::is_private`] accepts: RFC 1918 and the shared
/// address space of RFC 6598 (CGNAT).
pub const PRIVATE_RANGES: [Ipv4Cidr; 4] = [
    Ipv4Cidr::unchecked(Ipv4Addr::new(10, 0, 0, 0), 8),
    Ipv4Cidr::unchecked(Ipv4Addr::new(172, 16, 0, 0), 12),
    Ipv4Cidr::unchecked(Ipv4Addr::new(192, 168, 0, 0), 16),
    Ipv4Cidr::unchecked(Ipv4Addr::new(100, 64, 0, 0), 10),
];

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl Ipv4Cidr {
    /// For constants known to be valid.
    const fn unchecked(addr: Ipv4Addr, prefix: u8) -> Self {
        Self { addr, prefix }
    }

    /// The block `addr/prefix`; refused when `prefix > 32` or `addr` has
    /// host bits set.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, CidrError> {
        let given = format!("{addr}/{prefix}");
        if prefix > 32 {
            return Err(CidrError::Prefix(given));
        }
        let network = Ipv4Addr::from(u32::from(addr) & mask(prefix));
        if network != addr {
            return Err(CidrError::HostBits {
                given,
                network: Self::unchecked(network, prefix),
            });
        }
        Ok(Self { addr, prefix })
    }

    /// The network address (the first address of the block).
    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0–32.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// `255.255.0.0` for a /16.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.prefix))
    }

    /// The last address of the block.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix))
    }

    /// How many addresses the block holds (2^(32 − prefix)).
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The address `n` places after the network address, if inside.
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        if n >= self.size() {
            return None;
        }
        let offset = u32::try_from(n).ok()?;
        Some(Ipv4Addr::from(u32::from(self.addr) + offset))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether every address of `other` is in this block.
    pub fn contains_block(&self, other: &Ipv4Cidr) -> bool {
        self.prefix <= other.prefix && self.contains(other.addr)
    }

    /// Whether the two blocks share an address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// Whether the whole block lies in RFC 1918 space or in 100.64.0.0/10.
    pub fn is_private(&self) -> bool {
        PRIVATE_RANGES.iter().any(|r| r.contains_block(self))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let syntax = || CidrError::Syntax(s.to_owned());
        let (addr, prefix) = s.split_once('/').ok_or_else(syntax)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| syntax())?;
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| CidrError::Prefix(s.to_owned()))?;
        if prefix > 32 {
            return Err(CidrError::Prefix(s.to_owned()));
        }
        Self::new(addr, prefix).map_err(|e| match e {
            CidrError::HostBits { network, .. } => CidrError::HostBits {
                given: s.to_owned(),
                network,
            },
            other => other,
        })
    }
}

impl Serialize for Ipv4Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

// ---- protocols and ports -----------------------------------------------------

/// What a rule's traffic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    /// Every protocol (and port).
    All,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::All];

    /// `tcp`, `udp` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::All => "all",
        }
    }

    /// Whether rules of this protocol may name ports.
    pub fn has_ports(self) -> bool {
        self != Protocol::All
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol name that is not `tcp`, `udp` or `all`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be tcp, udp or all (got '{0}')")]
pub struct InvalidProtocol(pub String);

/// Case-insensitive.
impl FromStr for Protocol {
    type Err = InvalidProtocol;
    fn from_str(s: &str) -> Result<Self, InvalidProtocol> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| InvalidProtocol(s.to_owned()))
    }
}

/// Ports `from..=to`, both 1–65535, `from <= to`. Written `"5432"` for a
/// single port and `"8000-8100"` for a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    from: u16,
    to: u16,
}

/// A port range that is not `PORT` or `FROM-TO` within 1–65535.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a port (1-65535) or a range FROM-TO with FROM <= TO (got '{0}')")]
pub struct InvalidPortRange(pub String);

impl PortRange {
    /// `from..=to`; refused when a bound is 0 or `from > to`.
    pub fn new(from: u16, to: u16) -> Result<Self, InvalidPortRange> {
        if from == 0 || from > to {
            return Err(InvalidPortRange(format!("{from}-{to}")));
        }
        Ok(Self { from, to })
    }

    /// One port; refused for 0.
    pub fn single(port: u16) -> Result<Self, InvalidPortRange> {
        Self::new(port, port)
    }

    pub fn from(&self) -> u16 {
        self.from
    }

    pub fn to(&self) -> u16 {
        self.to
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.from..=self.to).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

impl FromStr for PortRange {
    type Err = InvalidPortRange;
    fn from_str(s: &str) -> Result<Self, InvalidPortRange> {
        let refused = || InvalidPortRange(s.to_owned());
        let port = |t: &str| -> Result<u16, InvalidPortRange> {
            if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(refused());
            }
            t.parse().map_err(|_| refused())
        };
        let (from, to) = match s.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(s)?;
                (p, p)
            }
        };
        Self::new(from, to).map_err(|_| refused())
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

// ---- egress rules ------------------------------------------------------------

/// One egress allow-rule: traffic of `protocol` (to `ports`, all when
/// absent) towards `cidr`, or towards the runner's machine (`host`, reached
/// as `host.hotswap.internal`). Exactly one of `cidr` and `host` is given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule {
    pub protocol: Protocol,
    /// tcp and udp only: `"5432"` or `"8000-8100"`; every port when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "5432"))]
    pub ports: Option<PortRange>,
    /// Destination block, e.g. `"10.0.0.0/8"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "10.0.0.0/8"))]
    pub cidr: Option<Ipv4Cidr>,
    /// The runner's machine (`host.hotswap.internal`); never the HotSwap
    /// API's own port.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host: bool,
}

impl EgressRule {
    /// The rules this one must keep, with messages naming `egress[index]`.
    pub fn validate(&self, index: usize) -> ValidationErrors {
        let mut errors = ValidationErrors::new();
        if self.cidr.is_some() == self.host {
            errors.push(format!(
                "egress[{index}]: give exactly one destination: cidr or \"host\": true"
            ));
        }
        if self.ports.is_some() && !self.protocol.has_ports() {
            errors.push(format!(
                "egress[{index}].ports: only tcp and udp rules take ports (protocol all covers every port)"
            ));
        }
        errors
    }
}

impl fmt::Display for EgressRule {
    /// The CLI's form: `PROTO[:PORTS]:DEST` (`tcp:5432:host`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protocol.as_str())?;
        if let Some(p) = &self.ports {
            write!(f, ":{p}")?;
        }
        match (&self.cidr, self.host) {
            (Some(c), _) => write!(f, ":{c}"),
            (None, true) => f.write_str(":host"),
            (None, false) => f.write_str(":?"),
        }
    }
}

/// An egress rule as a request gives it, before parsing: every field that
/// cannot be read becomes a validation message naming it, rather than one
/// refusal of the whole body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRuleInput {
    /// `tcp`, `udp` or `all`.
    #[cfg_attr(feature = "openapi", schema(example = "tcp"))]
    pub protocol: String,
    /// tcp and udp only: `"5432"` or `"8000-8100"` (a number is accepted
    /// too); every port when absent.
    #[serde(default, deserialize_with = "port_text")]
    #[cfg_attr(feature = "openapi", schema(example = "5432"))]
    pub ports: Option<String>,
    /// Destination block, e.g. `"10.0.0.0/8"`; give this or `host`.
    #[cfg_attr(feature = "openapi", schema(example = "10.0.0.0/8"))]
    pub cidr: Option<String>,
    /// `true`: the runner's machine, reached as `host.hotswap.internal`.
    #[serde(default)]
    pub host: bool,
}

/// `"5432"`, `"8000-8100"` or a bare number.
fn port_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        S(String),
        N(u64),
    }
    Ok(Option::<Text>::deserialize(d)?.map(|t| match t {
        Text::S(s) => s,
        Text::N(n) => n.to_string(),
    }))
}

impl EgressRuleInput {
    /// The rule, or every message that applies, each naming
    /// `egress[index].<field>`.
    pub fn parse(&self, index: usize) -> Result<EgressRule, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let field = |name: &str, e: &dyn fmt::Display| format!("egress[{index}].{name}: {e}");
        let protocol = self
            .protocol
            .parse::<Protocol>()
            .map_err(|e| errors.push(field("protocol", &e)))
            .ok();
        let ports = match self.ports.as_deref().map(str::parse::<PortRange>) {
            None => Some(None),
            Some(Ok(p)) => Some(Some(p)),
            Some(Err(e)) => {
                errors.push(field("ports", &e));
                None
            }
        };
        let cidr = match self.cidr.as_deref().map(str::parse::<Ipv4Cidr>) {
            None => Some(None),
            Some(Ok(c)) => Some(Some(c)),
            Some(Err(e)) => {
                errors.push(field("cidr", &e));
                None
            }
        };
        let (Some(protocol), Some(ports), Some(cidr)) = (protocol, ports, cidr) else {
            return Err(errors);
        };
        let rule = EgressRule {
            protocol,
            ports,
            cidr,
            host: self.host,
        };
        rule.validate(index).into_result()?;
        Ok(rule)
    }
}

impl From<&EgressRule> for EgressRuleInput {
    fn from(r: &EgressRule) -> Self {
        Self {
            protocol: r.protocol.as_str().to_owned(),
            ports: r.ports.map(|p| p.to_string()),
            cidr: r.cidr.map(|c| c.to_string()),
            host: r.host,
        }
    }
}

/// Parses every input rule; all messages of all rules at once.
pub fn parse_egress(rules: &[EgressRuleInput]) -> Result<Vec<EgressRule>, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let mut out = Vec::with_capacity(rules.len());
    for (i, r) in rules.iter().enumerate() {
        match r.parse(i) {
            Ok(rule) => out.push(rule),
            Err(e) => errors.extend(e),
        }
    }
    errors.into_result()?;
    Ok(out)
}

// ---- resources ---------------------------------------------------------------

/// Most egress rules one security group holds.
pub const MAX_EGRESS_RULES: usize = 60;
/// Most subnets one function names (Lambda's limit).
pub const MAX_SUBNETS_PER_FUNCTION: usize = 16;
/// Most security groups one function names (Lambda's limit).
pub const MAX_SECURITY_GROUPS_PER_FUNCTION: usize = 5;
/// Narrowest and widest subnet prefixes.
pub const SUBNET_PREFIXES: std::ops::RangeInclusive<u8> = 16..=28;

/// A fresh id: `{prefix}-` and 17 lower-case hex digits (`subnet-…`, `sg-…`).
pub fn new_id(prefix: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &hex[..17])
}

/// The name rule of subnets and groups (that of functions): 1–64 letters,
/// digits or `-`; the message names `field`.
pub fn validate_name(field: &str, name: &str) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    if !is_valid_function_name(name) {
        errors.push(format!(
            "{field}: must be 1-64 letters, digits or '-' (got '{}')",
            name.chars().take(80).collect::<String>()
        ));
    }
    errors
}

/// An address range, created by an admin, that any owner's functions may be
/// placed in: their instances get addresses from `cidr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Subnet {
    /// `subnet-` and 17 hex digits.
    pub subnet_id: String,
    /// Letters, digits and dashes, at most 64; unique.
    pub subnet_name: String,
    /// A private block (RFC 1918 or 100.64.0.0/10), /16 to /28.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "10.20.0.0/24"))]
    pub cidr: Ipv4Cidr,
    pub created_at: DateTime<Utc>,
    /// Owner id of the admin token that created it.
    pub created_by: String,
}

impl Subnet {
    /// A new subnet with a fresh id, created now.
    pub fn new(name: impl Into<String>, cidr: Ipv4Cidr, created_by: impl Into<String>) -> Self {
        Self {
            subnet_id: new_id("subnet"),
            subnet_name: name.into(),
            cidr,
            created_at: crate::time::now(),
            created_by: created_by.into(),
        }
    }

    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        errors.extend(validate_name("subnetName", &self.subnet_name));
        errors.extend(check_subnet_cidr(&self.cidr));
        errors.into_result()
    }
}

/// The rules a subnet's block keeps: private, /16 to /28.
pub fn check_subnet_cidr(cidr: &Ipv4Cidr) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    if !cidr.is_private() {
        errors.push(format!(
            "cidr: {cidr} is not a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10)"
        ));
    }
    if !SUBNET_PREFIXES.contains(&cidr.prefix()) {
        errors.push(format!(
            "cidr: the prefix must be /{} to /{} (got /{})",
            SUBNET_PREFIXES.start(),
            SUBNET_PREFIXES.end(),
            cidr.prefix()
        ));
    }
    errors
}

/// Parses and checks a subnet's block; messages name `cidr`.
pub fn parse_subnet_cidr(text: &str) -> Result<Ipv4Cidr, ValidationErrors> {
    let cidr: Ipv4Cidr = text
        .parse()
        .map_err(|e: CidrError| ValidationErrors::from(format!("cidr: {e}")))?;
    check_subnet_cidr(&cidr).into_result()?;
    Ok(cidr)
}

/// An owner's set of egress allow-rules, added to the defaults of the
/// functions (of the same owner) that name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroup {
    /// `sg-` and 17 hex digits.
    pub security_group_id: String,
    /// Letters, digits and dashes, at most 64; unique per owner.
    pub group_name: String,
    pub owner_id: String,
    /// At most 60 rules.
    pub egress: Vec<EgressRule>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SecurityGroup {
    /// A new group with a fresh id, created now.
    pub fn new(
        name: impl Into<String>,
        owner_id: impl Into<String>,
        egress: Vec<EgressRule>,
    ) -> Self {
        let now = crate::time::now();
        Self {
            security_group_id: new_id("sg"),
            group_name: name.into(),
            owner_id: owner_id.into(),
            egress,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        errors.extend(validate_name("groupName", &self.group_name));
        if self.egress.len() > MAX_EGRESS_RULES {
            errors.push(format!(
                "egress: at most {MAX_EGRESS_RULES} rules (got {})",
                self.egress.len()
            ));
        }
        for (i, rule) in self.egress.iter().enumerate() {
            errors.extend(rule.validate(i));
        }
        errors.into_result()
    }
}

/// The shape rules of a function's `vpcConfig` that need no lookup: counts
/// and repeated ids, each message naming `vpcConfig.<field>[i]`. (Empty ids
/// and "groups need a subnet" are [`VpcConfig::validate`]'s.)
pub fn check_vpc_config(vpc: &VpcConfig) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    for (field, ids, max) in [
        ("subnetIds", &vpc.subnet_ids, MAX_SUBNETS_PER_FUNCTION),
        (
            "securityGroupIds",
            &vpc.security_group_ids,
            MAX_SECURITY_GROUPS_PER_FUNCTION,
        ),
    ] {
        if ids.len() > max {
            errors.push(format!(
                "vpcConfig.{field}: at most {max} ids (got {})",
                ids.len()
            ));
        }
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                errors.push(format!("vpcConfig.{field}[{i}]: '{id}' is listed twice"));
            }
        }
    }
    errors
}

/// What a function version's instances get from its `vpcConfig`: the
/// subnets to take addresses from, in the order the config names them, and
/// the egress rules added to the defaults: the union of its groups' rules,
/// in group order (a rule repeated by a later group is kept once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    pub subnets: Vec<Subnet>,
    pub rules: Vec<EgressRule>,
}

impl NetworkSpec {
    /// Subnets (repeats dropped) and the union of the groups' rules, in
    /// the order given.
    pub fn new<'a>(
        subnets: impl IntoIterator<Item = Subnet>,
        groups: impl IntoIterator<Item = &'a SecurityGroup>,
    ) -> Self {
        let mut out = NetworkSpec {
            subnets: Vec::new(),
            rules: Vec::new(),
        };
        for s in subnets {
            if !out.subnets.iter().any(|k| k.subnet_id == s.subnet_id) {
                out.subnets.push(s);
            }
        }
        for rule in groups.into_iter().flat_map(|g| &g.egress) {
            if !out.rules.contains(rule) {
                out.rules.push(rule.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_print() {
        let c = cidr("10.0.0.0/8");
        assert_eq!(c.network(), Ipv4Addr::new(10, 0, 0, 0));
        assert_eq!(c.prefix(), 8);
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert_eq!(c.size(), 1 << 24);
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 0, 0, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 255, 255, 255));
        assert_eq!(cidr("0.0.0.0/0").size(), 1 << 32);
        assert_eq!(cidr("0.0.0.0/0").netmask(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(cidr("1.2.3.4/32").size(), 1);
        assert_eq!(cidr("1.2.3.4/32").broadcast(), Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(cidr("10.1.0.0/24").nth(5), Some(Ipv4Addr::new(10, 1, 0, 5)));
        assert_eq!(cidr("10.1.0.0/24").nth(256), None);
        assert_eq!(cidr("0.0.0.0/0").nth(u64::MAX), None);
        assert_eq!(
            serde_json::to_value(c).unwrap(),
            serde_json::json!("10.0.0.0/8")
        );
        assert_eq!(
            serde_json::from_value::<Ipv4Cidr>(serde_json::json!("192.168.1.0/24")).unwrap(),
            cidr("192.168.1.0/24")
        );
    }

    #[test]
    fn host_bits_are_refused_with_the_network_suggested() {
        let e = "10.0.0.1/8".parse::<Ipv4Cidr>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8"
        );
        let e = Ipv4Cidr::new(Ipv4Addr::new(192, 168, 1, 77), 24).unwrap_err();
        assert_eq!(
            e.to_string(),
            "192.168.1.77/24 has host bits set; did you mean 192.168.1.0/24"
        );
        assert!(serde_json::from_value::<Ipv4Cidr>(serde_json::json!("10.0.0.1/8")).is_err());
    }

    #[test]
    fn malformed_cidrs_are_refused() {
        for bad in [
            "",
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0/8",
            "10.0.0.0.0/8",
            "256.0.0.0/8",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            " 10.0.0.0/8",
            "10.0.0.0/8 ",
            "a.b.c.d/8",
            "::/0",
            "10.0.0.0/0008",
            "10.0.0.0/255",
        ] {
            assert!(
                matches!(bad.parse::<Ipv4Cidr>(), Err(CidrError::Syntax(_))),
                "{bad:?}"
            );
        }
        for bad in ["10.0.0.0/33", "10.0.0.0/99"] {
            assert!(
                matches!(bad.parse::<Ipv4Cidr>(), Err(CidrError::Prefix(_))),
                "{bad:?}"
            );
        }
        assert!(Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 33).is_err());
    }

    #[test]
    fn containment_and_overlap() {
        let ten = cidr("10.0.0.0/8");
        assert!(ten.contains(Ipv4Addr::new(10, 255, 0, 1)));
        assert!(!ten.contains(Ipv4Addr::new(11, 0, 0, 0)));
        assert!(ten.overlaps(&cidr("10.1.0.0/16")));
        assert!(cidr("10.1.0.0/16").overlaps(&ten));
        assert!(ten.overlaps(&ten));
        assert!(!cidr("10.1.0.0/24").overlaps(&cidr("10.1.1.0/24")));
        assert!(cidr("0.0.0.0/0").overlaps(&cidr("1.2.3.4/32")));
        assert!(ten.contains_block(&cidr("10.1.0.0/16")));
        assert!(!cidr("10.1.0.0/16").contains_block(&ten));
    }

    #[test]
    fn private_ranges() {
        for ok in [
            "10.0.0.0/8",
            "10.20.0.0/16",
            "172.16.0.0/12",
            "172.31.255.0/24",
            "192.168.0.0/16",
            "192.168.10.0/28",
            "100.64.0.0/10",
            "100.127.0.0/16",
        ] {
            assert!(cidr(ok).is_private(), "{ok}");
        }
        for public in [
            "0.0.0.0/0",
            "8.8.8.0/24",
            "172.32.0.0/16",
            "172.0.0.0/8",
            "100.128.0.0/16",
            "192.169.0.0/16",
            "169.254.0.0/16",
            "127.0.0.0/8",
        ] {
            assert!(!cidr(public).is_private(), "{public}");
        }
    }

    #[test]
    fn protocols() {
        assert_eq!("TCP".parse::<Protocol>().unwrap(), Protocol::Tcp);
        assert_eq!("all".parse::<Protocol>().unwrap(), Protocol::All);
        assert_eq!(
            "icmp".parse::<Protocol>().unwrap_err().to_string(),
            "must be tcp, udp or all (got 'icmp')"
        );
        assert_eq!(
            serde_json::to_value(Protocol::Udp).unwrap(),
            serde_json::json!("udp")
        );
        assert!(serde_json::from_value::<Protocol>(serde_json::json!("Tcp")).is_err());
    }

    #[test]
    fn port_ranges() {
        let one: PortRange = "5432".parse().unwrap();
        assert_eq!((one.from(), one.to()), (5432, 5432));
        assert_eq!(one.to_string(), "5432");
        let span: PortRange = "8000-8100".parse().unwrap();
        assert_eq!(span.to_string(), "8000-8100");
        assert!(span.contains(8050) && !span.contains(8101));
        assert_eq!("1-65535".parse::<PortRange>().unwrap().to(), 65535);
        assert_eq!("80-80".parse::<PortRange>().unwrap().to_string(), "80");
        for bad in [
            "", "0", "65536", "99999999", "-1", "10-", "-10", "20-10", "1-2-3", "+5", " 5", "a",
            "0-10",
        ] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad:?}");
        }
        assert_eq!(
            serde_json::to_value(span).unwrap(),
            serde_json::json!("8000-8100")
        );
        assert!(PortRange::single(0).is_err());
    }

    fn input(
        protocol: &str,
        ports: Option<&str>,
        cidr: Option<&str>,
        host: bool,
    ) -> EgressRuleInput {
        EgressRuleInput {
            protocol: protocol.into(),
            ports: ports.map(Into::into),
            cidr: cidr.map(Into::into),
            host,
        }
    }

    #[test]
    fn egress_rules_parse_with_field_errors() {
        let r = input("tcp", Some("5432"), None, true).parse(0).unwrap();
        assert_eq!(r.to_string(), "tcp:5432:host");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"protocol": "tcp", "ports": "5432", "host": true})
        );
        let r = input("all", None, Some("10.1.0.0/16"), false)
            .parse(3)
            .unwrap();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"protocol": "all", "cidr": "10.1.0.0/16"})
        );
        assert_eq!(
            EgressRuleInput::from(&r),
            input("all", None, Some("10.1.0.0/16"), false)
        );

        let e = input("icmp", Some("0"), Some("10.0.0.1/8"), false)
            .parse(2)
            .unwrap_err()
            .into_messages();
        assert_eq!(
            e,
            vec![
                "egress[2].protocol: must be tcp, udp or all (got 'icmp')",
                "egress[2].ports: must be a port (1-65535) or a range FROM-TO with FROM <= TO (got '0')",
                "egress[2].cidr: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8",
            ]
        );
        let e = input("all", Some("80"), None, false)
            .parse(1)
            .unwrap_err()
            .into_messages();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("egress[1]: give exactly one destination"));
        assert!(e[1].starts_with("egress[1].ports: only tcp and udp"));
        let e = input("udp", None, Some("10.0.0.0/8"), true)
            .parse(0)
            .unwrap_err();
        assert!(e.messages()[0].starts_with("egress[0]: "), "{e}");

        let all = parse_egress(&[
            input("tcp", None, Some("10.0.0.0/8"), false),
            input("tcp", Some("x"), None, true),
            input("udp", Some("53"), Some("bad"), false),
        ])
        .unwrap_err();
        assert_eq!(all.messages().len(), 2);
        assert!(all.messages()[0].starts_with("egress[1].ports"));
        assert!(all.messages()[1].starts_with("egress[2].cidr"));
    }

    #[test]
    fn rule_inputs_read_json() {
        let r: EgressRuleInput =
            serde_json::from_str(r#"{"protocol":"tcp","ports":5432,"host":true}"#).unwrap();
        assert_eq!(r.ports.as_deref(), Some("5432"));
        let r: EgressRuleInput =
            serde_json::from_str(r#"{"protocol":"tcp","ports":"1-2","cidr":"10.0.0.0/8"}"#)
                .unwrap();
        assert_eq!(r.ports.as_deref(), Some("1-2"));
        assert!(!r.host);
        assert!(serde_json::from_str::<EgressRuleInput>(r#"{"protocol":"tcp","to":"x"}"#).is_err());
        // Stored rules read back as written, and refuse what they never hold.
        let stored: EgressRule =
            serde_json::from_str(r#"{"protocol":"udp","ports":"53","cidr":"10.0.0.0/8"}"#).unwrap();
        assert!(!stored.host);
        assert!(serde_json::from_str::<EgressRule>(
            r#"{"protocol":"udp","ports":"0","host":true}"#
        )
        .is_err());
    }

    fn group(rules: &[&str]) -> SecurityGroup {
        let egress = rules
            .iter()
            .map(|r| {
                let (proto, dest) = r.split_once(':').unwrap();
                input(
                    proto,
                    None,
                    (dest != "host").then_some(dest),
                    dest == "host",
                )
                .parse(0)
                .unwrap()
            })
            .collect();
        SecurityGroup::new("g", "alice", egress)
    }

    #[test]
    fn groups_validate() {
        let g = group(&["tcp:host", "all:10.0.0.0/8"]);
        assert!(g.security_group_id.starts_with("sg-"));
        assert_eq!(g.security_group_id.len(), 3 + 17);
        assert!(g.validate().is_ok());
        let mut bad = g.clone();
        bad.group_name = "no spaces".into();
        bad.egress = vec![g.egress[0].clone(); MAX_EGRESS_RULES + 1];
        bad.egress[5].host = false;
        let e = bad.validate().unwrap_err().into_messages();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("groupName: "));
        assert!(e[1].starts_with("egress: at most 60 rules"));
        assert!(e[2].starts_with("egress[5]: "));
        let json = serde_json::to_value(&g).unwrap();
        assert_eq!(json["groupName"], "g");
        assert_eq!(
            json["egress"][0],
            serde_json::json!({"protocol": "tcp", "host": true})
        );
        let back: SecurityGroup = serde_json::from_value(json).unwrap();
        assert_eq!(back, g);
    }

    #[test]
    fn subnets_validate() {
        let s = Subnet::new("app", cidr("10.20.0.0/24"), "admin");
        assert!(s.subnet_id.starts_with("subnet-"));
        assert!(s.validate().is_ok());
        assert_eq!(
            serde_json::to_value(&s).unwrap()["cidr"],
            serde_json::json!("10.20.0.0/24")
        );
        let e = Subnet::new("bad_name", cidr("8.8.0.0/16"), "admin")
            .validate()
            .unwrap_err()
            .into_messages();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("subnetName: "));
        assert!(e[1].starts_with("cidr: 8.8.0.0/16 is not a private range"));
        assert_eq!(
            parse_subnet_cidr("10.0.0.0/8").unwrap_err().messages(),
            ["cidr: the prefix must be /16 to /28 (got /8)"]
        );
        assert!(parse_subnet_cidr("10.0.0.0/29").is_err());
        assert!(parse_subnet_cidr("100.64.0.0/16").is_ok());
        assert!(parse_subnet_cidr("192.168.5.16/28").is_ok());
        assert_eq!(
            parse_subnet_cidr("10.0.0.1/24").unwrap_err().messages(),
            ["cidr: 10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24"]
        );
    }

    #[test]
    fn vpc_config_shape() {
        let ok = VpcConfig {
            subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
            security_group_ids: vec!["sg-a".into()],
            vpc_id: None,
        };
        assert!(check_vpc_config(&ok).is_empty());
        let bad = VpcConfig {
            subnet_ids: vec!["subnet-a".into(), "subnet-a".into()],
            security_group_ids: (0..6).map(|i| format!("sg-{i}")).collect(),
            vpc_id: None,
        };
        let e = check_vpc_config(&bad).into_messages();
        assert_eq!(
            e,
            vec![
                "vpcConfig.subnetIds[1]: 'subnet-a' is listed twice",
                "vpcConfig.securityGroupIds: at most 5 ids (got 6)",
            ]
        );
    }

    #[test]
    fn network_spec_unions_rules_in_group_order() {
        let a = group(&["tcp:host", "all:10.0.0.0/8"]);
        let b = group(&["all:10.0.0.0/8", "udp:192.168.0.0/16"]);
        let s1 = Subnet::new("one", cidr("10.1.0.0/24"), "admin");
        let s2 = Subnet::new("two", cidr("10.2.0.0/24"), "admin");
        let spec = NetworkSpec::new([s2.clone(), s1.clone(), s2.clone()], [&b, &a]);
        assert_eq!(spec.subnets, vec![s2, s1]);
        let rules: Vec<String> = spec.rules.iter().map(ToString::to_string).collect();
        assert_eq!(
            rules,
            vec!["all:10.0.0.0/8", "udp:192.168.0.0/16", "tcp:host"]
        );
    }
}
