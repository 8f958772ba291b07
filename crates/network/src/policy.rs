//! What an instance may reach: its subnet and egress rules. Pure values;
//! the control plane's subnets and security groups are translated into
//! these by the router, and [`crate::nft`] renders them as nftables rules.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network, `addr/prefix`, with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Cidr {
    /// `None` if the prefix is over 32 or host bits are set.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Cidr> {
        if prefix > 32 {
            return None;
        }
        let c = Cidr { addr, prefix };
        (u32::from(addr) & !c.mask() == 0).then_some(c)
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The host's address in this network: the first one.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    /// The addresses instances get: every host address but the gateway.
    /// Empty for networks smaller than /30.
    pub fn instance_range(&self) -> std::ops::RangeInclusive<u32> {
        let first = u32::from(self.addr) + 2;
        let last = u32::from(self.addr) | !self.mask();
        if self.prefix > 30 {
            #[allow(clippy::reversed_empty_ranges)]
            return 1..=0;
        }
        first..=last - 1
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not a CIDR (a.b.c.d/n)"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("'{a}' is not an IPv4 address"))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("'{p}' is not a prefix length (0-32)"))?;
        Cidr::new(addr, prefix).ok_or_else(|| format!("'{s}' has host bits set"))
    }
}

/// Destinations no instance reaches unless a rule names them: private
/// (RFC 1918), shared (CGNAT), loopback, link-local (the cloud metadata
/// address included), "this network", multicast and reserved.
pub const BLOCKED: [&str; 8] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/3",
];

/// A transport protocol a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    All,
}

/// Where a rule lets traffic go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dest {
    Cidr(Cidr),
    /// The machine the instance runs on, as `host.hotswap.internal`.
    Host,
}

/// One egress rule: protocol, optional port range (tcp/udp only),
/// destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule {
    pub proto: Proto,
    pub ports: Option<(u16, u16)>,
    pub dest: Dest,
}

/// The network of one function version's instances.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Policy {
    /// Identifies the policy across updates of its rules (e.g.
    /// `functionId@version`): instances launched under a key follow its
    /// latest rules.
    pub key: String,
    /// Subnets its instances take addresses from, in order of preference.
    pub subnets: Vec<Cidr>,
    pub rules: Vec<Rule>,
}

impl Policy {
    pub fn opens_host(&self) -> bool {
        self.rules.iter().any(|r| r.dest == Dest::Host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c: Cidr = "10.213.0.0/16".parse().unwrap();
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 213, 0, 1));
        assert_eq!(
            c.instance_range(),
            u32::from(Ipv4Addr::new(10, 213, 0, 2))..=u32::from(Ipv4Addr::new(10, 213, 255, 254))
        );
        assert!(c.contains(Ipv4Addr::new(10, 213, 9, 9)));
        assert!(!c.contains(Ipv4Addr::new(10, 214, 0, 1)));
        assert!(c.overlaps(&"10.0.0.0/8".parse().unwrap()));
        assert!(!c.overlaps(&"10.214.0.0/16".parse().unwrap()));
        assert!("10.213.0.1/16".parse::<Cidr>().is_err());
        assert!("10.213.0.0/33".parse::<Cidr>().is_err());
        assert!("10.213.0.0".parse::<Cidr>().is_err());
        assert_eq!(c.to_string(), "10.213.0.0/16");
        let tiny: Cidr = "10.0.0.0/30".parse().unwrap();
        assert_eq!(tiny.instance_range().count(), 1);
        assert_eq!(
            "10.0.0.0/31"
                .parse::<Cidr>()
                .unwrap()
                .instance_range()
                .count(),
            0
        );
        for b in BLOCKED {
            b.parse::<Cidr>().unwrap();
        }
    }
}
