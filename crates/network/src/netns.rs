//! Preparing one instance's network namespace over rtnetlink.
//!
//! Layout, with no bridge (every packet crosses the host's IP layer, so
//! one nftables table sees all instance traffic, instance to instance
//! included):
//!
//! ```text
//!  instance netns                      host
//!  eth0 ADDR/32  ── veth ──  hs<id><n>  GATEWAY/32, group (see below)
//!  GATEWAY/32 dev eth0 scope link      ADDR/32 dev hs<id><n> scope link
//!  default via GATEWAY
//! ```
//!
//! Both ends have IPv6 disabled. The namespace lives as long as a
//! descriptor or a process holds it: when the server dies, the kernel
//! removes it and its veth pair.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use futures::TryStreamExt;
use nix::sched::{setns, unshare, CloneFlags};
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::policy::SubnetAddresses;
use crate::Cidr;
use crate::NetworkError;

/// A prepared namespace, not yet given to an instance.
#[derive(Debug)]
pub struct Prepared {
    pub ns: OwnedFd,
    pub host_if: String,
    pub host_index: u32,
    pub addr: Ipv4Addr,
    pub subnet: Cidr,
    /// The interface group it was created in.
    pub group: u32,
}

fn io(what: &str, e: impl std::fmt::Display) -> NetworkError {
    NetworkError::Setup(format!("{what}: {e}"))
}

fn nl(what: &str, e: rtnetlink::Error) -> NetworkError {
    if let rtnetlink::Error::NetlinkError(m) = &e {
        if m.raw_code() == -nix::libc::EEXIST {
            return NetworkError::AddressInUse;
        }
    }
    io(what, e)
}

fn write_sysctl(path: &str, value: &str) -> Result<(), NetworkError> {
    std::fs::write(path, value).map_err(|e| io(path, e))
}

/// The calling thread's network namespace.
pub fn current_netns() -> Result<OwnedFd, NetworkError> {
    File::open("/proc/thread-self/ns/net")
        .map(OwnedFd::from)
        .map_err(|e| io("cannot open this thread's network namespace", e))
}

/// Runs `f` with the calling thread in namespace `ns`, then moves it back
/// to `home`. Processes forked meanwhile start in `ns`.
pub fn within<R>(ns: &OwnedFd, home: &OwnedFd, f: impl FnOnce() -> R) -> Result<R, NetworkError> {
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| io("setns", e))?;
    let r = f();
    if let Err(e) = setns(home.as_fd(), CloneFlags::CLONE_NEWNET) {
        // A thread left in an instance's namespace would open every later
        // socket there: never let it run on.
        panic!("cannot return to the host network namespace: {e}");
    }
    Ok(r)
}

async fn index_of(handle: &Handle, name: &str) -> Result<u32, NetworkError> {
    let link = handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await
        .map_err(|e| nl(name, e))?
        .ok_or_else(|| io(name, "interface not found"))?;
    Ok(link.header.index)
}

/// Creates a namespace wired as in the module docs. Must run on a thread
/// that may change namespaces (the calling thread returns to `home`).
pub async fn prepare(
    host: &Handle,
    home: &OwnedFd,
    host_if: &str,
    subnet: Cidr,
    addr: Ipv4Addr,
    group: u32,
) -> Result<Prepared, NetworkError> {
    let gateway = subnet.gateway();
    // A new namespace, entered by this thread only to open a netlink
    // socket in it.
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| io("unshare(CLONE_NEWNET)", e))?;
    let inside = (|| {
        let ns = current_netns()?;
        write_sysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1")?;
        write_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1")?;
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| io("netlink socket", e))?;
        tokio::spawn(conn);
        Ok::<_, NetworkError>((ns, handle))
    })();
    setns(home.as_fd(), CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("cannot return to the host network namespace: {e}"));
    let (ns, inner) = inside?;

    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name("eth0".to_owned())
        .setns_by_fd(ns.as_raw_fd())
        .build();
    let veth = LinkVeth::new(host_if, "eth0")
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .link_group(group)
        .build();
    host.link()
        .add(veth)
        .execute()
        .await
        .map_err(|e| nl("veth", e))?;
    let host_index = index_of(host, host_if).await?;
    let prepared = Prepared {
        ns,
        host_if: host_if.to_owned(),
        host_index,
        addr,
        subnet,
        group,
    };
    // From here on a failure leaves a link behind: the caller deletes it.
    let wire = async {
        write_sysctl(
            &format!("/proc/sys/net/ipv6/conf/{host_if}/disable_ipv6"),
            "1",
        )?;
        // Lets the table DNAT the gateway's DNS (and a policy's host ports)
        // to the host's loopback; the table's input chain drops everything
        // else an instance sends to the host, loopback included.
        write_sysctl(
            &format!("/proc/sys/net/ipv4/conf/{host_if}/route_localnet"),
            "1",
        )?;
        host.address()
            .add(host_index, gateway.into(), 32)
            .execute()
            .await
            .map_err(|e| nl("gateway address", e))?;
        host.link()
            .set(LinkUnspec::new_with_index(host_index).up().build())
            .execute()
            .await
            .map_err(|e| nl("link up", e))?;
        host.route()
            .add(
                RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(addr, 32)
                    .output_interface(host_index)
                    .scope(RouteScope::Link)
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| nl("instance route", e))?;

        let eth0 = index_of(&inner, "eth0").await?;
        let lo = index_of(&inner, "lo").await?;
        inner
            .link()
            .set(LinkUnspec::new_with_index(lo).up().build())
            .execute()
            .await
            .map_err(|e| nl("lo up", e))?;
        inner
            .address()
            .add(eth0, addr.into(), 32)
            .execute()
            .await
            .map_err(|e| nl("instance address", e))?;
        inner
            .link()
            .set(LinkUnspec::new_with_index(eth0).up().build())
            .execute()
            .await
            .map_err(|e| nl("eth0 up", e))?;
        inner
            .route()
            .add(
                RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(gateway, 32)
                    .output_interface(eth0)
                    .scope(RouteScope::Link)
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| nl("gateway route", e))?;
        inner
            .route()
            .add(
                RouteMessageBuilder::<Ipv4Addr>::new()
                    .gateway(gateway)
                    .output_interface(eth0)
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| nl("default route", e))?;
        Ok::<(), NetworkError>(())
    };
    match wire.await {
        Ok(()) => Ok(prepared),
        Err(e) => {
            let _ = host.link().del(host_index).execute().await;
            Err(e)
        }
    }
}

/// Names of this host's interfaces starting with `prefix`, with indexes.
pub async fn links_with_prefix(
    host: &Handle,
    prefix: &str,
) -> Result<Vec<(String, u32)>, NetworkError> {
    let mut links = host.link().get().execute();
    let mut out = Vec::new();
    while let Some(l) = links.try_next().await.map_err(|e| nl("list links", e))? {
        for a in &l.attributes {
            if let LinkAttribute::IfName(n) = a {
                if n.starts_with(prefix) {
                    out.push((n.clone(), l.header.index));
                }
            }
        }
    }
    Ok(out)
}
