//! What an instance may reach: its subnet and egress rules, in the
//! domain's vocabulary (`Ipv4Cidr`, `EgressRule`); [`crate::nft`] renders
//! them as nftables rules.

use std::net::Ipv4Addr;

use hotswap_domain::network::{EgressRule, Ipv4Cidr};

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

/// How a subnet's addresses are used on a runner.
pub trait SubnetAddresses {
    /// The host's address in the subnet (its first one): the instances'
    /// gateway, resolver and `host.hotswap.internal`.
    fn gateway(&self) -> Ipv4Addr;
    /// The addresses instances get: every host address but the gateway.
    /// Empty for blocks smaller than /30.
    fn instance_range(&self) -> std::ops::RangeInclusive<u32>;
}

impl SubnetAddresses for Ipv4Cidr {
    fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) + 1)
    }

    fn instance_range(&self) -> std::ops::RangeInclusive<u32> {
        if self.prefix() > 30 {
            #[allow(clippy::reversed_empty_ranges)]
            return 1..=0;
        }
        u32::from(self.network()) + 2..=u32::from(self.broadcast()) - 1
    }
}

/// The network of one function version's instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Identifies the policy across updates of its rules (e.g.
    /// `functionId@version`): instances launched under a key follow its
    /// latest rules.
    pub key: String,
    /// Subnets its instances take addresses from, in order of preference.
    pub subnets: Vec<Ipv4Cidr>,
    /// The union of its security groups' egress rules.
    pub rules: Vec<EgressRule>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_addresses() {
        let c: Ipv4Cidr = "10.213.0.0/16".parse().unwrap();
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 213, 0, 1));
        assert_eq!(
            c.instance_range(),
            u32::from(Ipv4Addr::new(10, 213, 0, 2))..=u32::from(Ipv4Addr::new(10, 213, 255, 254))
        );
        let tiny: Ipv4Cidr = "10.0.0.0/30".parse().unwrap();
        assert_eq!(tiny.instance_range().count(), 1);
        assert_eq!(
            "10.0.0.0/31"
                .parse::<Ipv4Cidr>()
                .unwrap()
                .instance_range()
                .count(),
            0
        );
        for b in BLOCKED {
            b.parse::<Ipv4Cidr>().unwrap();
        }
    }
}
