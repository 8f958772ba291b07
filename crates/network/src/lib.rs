//! Function instances on the network.
//!
//! Each isolated instance gets its own network namespace, prepared ahead of
//! time: a veth pair whose host end is routed (no bridge: every packet an
//! instance sends crosses the host's IP layer, where the nftables table of
//! this server decides), an address from its subnet, a default route
//! through the host with NAT, and a resolver (the DNS forwarder) on its
//! gateway address.

pub mod dns;
