//! Function instances on the network.
//!
//! Each isolated instance gets its own network namespace, prepared ahead of
//! time (see [`netns`]): a veth pair whose host end is routed (no bridge:
//! every packet an instance sends crosses the host's IP layer, where the
//! nftables table of this server decides, see [`nft`]), an address from its
//! subnet, a default route through the host with NAT, and a resolver (the
//! [`dns`] forwarder) on its gateway address.
//!
//! [`Network`] owns all of it: the table, a pool of prepared namespaces per
//! subnet (refilled by its own thread, so a cold start only takes one and
//! enters it), the policies of security groups, and the clean-up of what a
//! previous run of the same server (or a dead server) left behind.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub mod dns;
pub mod netns;
pub mod nft;
pub mod policy;

pub use hotswap_domain::network::{EgressRule, Ipv4Cidr as Cidr};
pub use policy::{Policy, SubnetAddresses};

use netns::Prepared;
use nft::{NftError, TableSpec, DEFAULT_GROUP, FIRST_POLICY_GROUP, QUARANTINE};

/// The name instances resolve to their host.
pub const HOST_NAME: &str = "host.hotswap.internal";
/// Table names start with this; interface names with `hs`.
const TABLE_PREFIX: &str = "hotswap_";

/// Errors of the network layer.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Nft(#[from] NftError),
    #[error("network set-up failed: {0}")]
    Setup(String),
    #[error("address already in use on this host")]
    AddressInUse,
    #[error("subnet {0} has no free address")]
    Exhausted(Cidr),
    #[error("no network namespace was prepared in time")]
    Timeout,
}

/// How the network layer is set up.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Per-server files (resolver configuration for the sandboxes).
    pub state_dir: PathBuf,
    /// Host-wide directory of lock files, one per live server
    /// (`/run/hotswap-net`).
    pub lock_dir: PathBuf,
    /// Five hex digits naming this server's table and interfaces; stable
    /// across restarts of the same server (derived from its data directory).
    pub id: String,
    /// Where instances without a VPC configuration get addresses.
    pub default_subnet: Cidr,
    /// Host ports no rule ever opens to an instance (the API's).
    pub protected_ports: Vec<u16>,
    /// Prepared namespaces kept ready per subnet in use.
    pub pool_size: usize,
    /// Upstream resolvers for the DNS forwarder (the host's by default).
    pub dns_upstreams: Vec<SocketAddr>,
    /// The host's hosts file, answered by the forwarder first.
    pub hosts_file: Option<PathBuf>,
}

/// The id of the server whose data lives in `dir`: five hex digits of a
/// hash of its canonical path.
pub fn id_for(dir: &Path) -> String {
    let path = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in path.as_os_str().as_encoded_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{:05x}", h & 0xf_ffff)
}

enum Job {
    /// A namespace was taken: refill after [`REFILL_DELAY`], off the
    /// cold start that took it (preparing one costs a few ms of CPU).
    Refill,
    /// Someone waits for a namespace: prepare now.
    RefillNow,
    Delete(Prepared),
}

/// How long a refill waits after a namespace is taken, so that preparing
/// the next one does not compete for the CPU with the instance starting.
const REFILL_DELAY: Duration = Duration::from_millis(100);

struct SubnetState {
    /// Addresses handed out or prepared (as u32).
    used: HashSet<u32>,
    cursor: u32,
    pool: Vec<Prepared>,
    /// Files the sandbox mounts as `/etc/resolv.conf` and `/etc/hosts`.
    resolv_conf: PathBuf,
    hosts: PathBuf,
    last_used: Instant,
}

struct PolicyState {
    group: u32,
    rules: Vec<EgressRule>,
}

struct Inner {
    config: NetworkConfig,
    table: String,
    prefix: String,
    home: OwnedFd,
    subnets: Mutex<HashMap<Cidr, SubnetState>>,
    ready: Condvar,
    policies: Mutex<HashMap<String, PolicyState>>,
    next_group: AtomicU32,
    next_if: AtomicU32,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// Held (flock) while this server runs.
    _lock: nix::fcntl::Flock<File>,
}

/// The network layer of one server.
pub struct Network {
    inner: Arc<Inner>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    dns: Mutex<Option<dns::DnsForwarder>>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("table", &self.inner.table)
            .finish()
    }
}

/// A namespace given to one instance; returned to be deleted on drop.
pub struct Attachment {
    prepared: Option<Prepared>,
    inner: Arc<Inner>,
    pub addr: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub resolv_conf: PathBuf,
    pub hosts: PathBuf,
    pub host_if: String,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("addr", &self.addr)
            .field("host_if", &self.host_if)
            .finish()
    }
}

impl Attachment {
    /// Runs `f` (which forks the instance) with this thread inside the
    /// instance's namespace.
    pub fn within<R>(&self, f: impl FnOnce() -> R) -> Result<R, NetworkError> {
        let p = self.prepared.as_ref().expect("held until drop");
        netns::within(&p.ns, &self.inner.home, f)
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if let Some(p) = self.prepared.take() {
            self.inner.send(Job::Delete(p));
        }
    }
}

impl Inner {
    fn send(&self, job: Job) {
        if let Some(tx) = self.jobs.lock().unwrap().as_ref() {
            let _ = tx.send(job);
        }
    }

    /// Registers a subnet: its gateway in the table, its resolver files.
    fn ensure_subnet(&self, subnet: Cidr) -> Result<(), NetworkError> {
        let mut subnets = self.subnets.lock().unwrap();
        if let Some(s) = subnets.get_mut(&subnet) {
            s.last_used = Instant::now();
            return Ok(());
        }
        if subnet.instance_range().is_empty() {
            return Err(NetworkError::Exhausted(subnet));
        }
        let gw = subnet.gateway();
        let dir = &self.config.state_dir;
        std::fs::create_dir_all(dir).map_err(|e| NetworkError::Setup(e.to_string()))?;
        let resolv_conf = dir.join(format!("resolv-{gw}.conf"));
        let hosts = dir.join(format!("hosts-{gw}"));
        std::fs::write(
            &resolv_conf,
            format!("nameserver {gw}\noptions timeout:2 attempts:2\n"),
        )
        .and_then(|()| {
            std::fs::write(
                &hosts,
                format!("127.0.0.1\tlocalhost\n::1\tlocalhost\n{gw}\t{HOST_NAME}\n"),
            )
        })
        .map_err(|e| NetworkError::Setup(format!("resolver files: {e}")))?;
        nft::apply(&nft::add_gateway(&self.table, gw))?;
        let range = subnet.instance_range();
        let span = range.end() - range.start() + 1;
        subnets.insert(
            subnet,
            SubnetState {
                used: HashSet::new(),
                // Servers sharing a host share the default subnet: start
                // each at its own place to make collisions rare (a
                // collision is detected and skipped).
                cursor: range.start()
                    + (u32::from_str_radix(&self.config.id, 16).unwrap_or(0) * 61) % span,
                pool: Vec::new(),
                resolv_conf,
                hosts,
                last_used: Instant::now(),
            },
        );
        Ok(())
    }

    /// Group of `policy`, installing or updating its chains.
    fn ensure_policy(&self, policy: &Policy) -> Result<u32, NetworkError> {
        let mut policies = self.policies.lock().unwrap();
        match policies.get_mut(&policy.key) {
            Some(p) if p.rules == policy.rules => Ok(p.group),
            Some(p) => {
                nft::apply(&nft::policy_script(
                    &self.table,
                    p.group,
                    &policy.rules,
                    true,
                ))?;
                p.rules = policy.rules.clone();
                tracing::info!(policy = %policy.key, group = p.group, "network policy updated");
                Ok(p.group)
            }
            None => {
                let group = self.next_group.fetch_add(1, Ordering::Relaxed);
                nft::apply(&nft::policy_script(
                    &self.table,
                    group,
                    &policy.rules,
                    false,
                ))?;
                policies.insert(
                    policy.key.clone(),
                    PolicyState {
                        group,
                        rules: policy.rules.clone(),
                    },
                );
                tracing::info!(policy = %policy.key, group, "network policy installed");
                Ok(group)
            }
        }
    }

    /// Takes a prepared namespace of `subnet`, waiting for the worker if
    /// the pool is empty.
    fn take(&self, subnet: Cidr) -> Result<Prepared, NetworkError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut subnets = self.subnets.lock().unwrap();
        loop {
            let s = subnets
                .get_mut(&subnet)
                .ok_or(NetworkError::Exhausted(subnet))?;
            if let Some(p) = s.pool.pop() {
                drop(subnets);
                self.send(Job::Refill);
                return Ok(p);
            }
            self.send(Job::RefillNow);
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NetworkError::Timeout);
            }
            subnets = self.ready.wait_timeout(subnets, left).unwrap().0;
        }
    }

    /// Next free address of `subnet`, marked used.
    fn allocate(&self, subnet: Cidr) -> Option<Ipv4Addr> {
        let mut subnets = self.subnets.lock().unwrap();
        let s = subnets.get_mut(&subnet)?;
        let range = subnet.instance_range();
        let span = range.end() - range.start() + 1;
        for _ in 0..span {
            let a = s.cursor;
            s.cursor = if a >= *range.end() {
                *range.start()
            } else {
                a + 1
            };
            if s.used.insert(a) {
                return Some(Ipv4Addr::from(a));
            }
        }
        None
    }

    fn release(&self, subnet: Cidr, addr: Ipv4Addr) {
        if let Some(s) = self.subnets.lock().unwrap().get_mut(&subnet) {
            s.used.remove(&u32::from(addr));
        }
    }
}

impl Network {
    /// Sets up the table, cleans what earlier runs left and starts the
    /// pool. Fails, naming the missing piece, if any step is impossible
    /// here (no `nft`, no nf_tables, no netlink, no namespaces).
    pub async fn start(config: NetworkConfig) -> Result<Network, NetworkError> {
        let table = format!("{TABLE_PREFIX}{}", config.id);
        let prefix = format!("hs{}", config.id);
        std::fs::create_dir_all(&config.lock_dir)
            .map_err(|e| NetworkError::Setup(format!("{}: {e}", config.lock_dir.display())))?;
        // Retrying sleeps: off the async worker threads.
        let (dir, id) = (config.lock_dir.clone(), config.id.clone());
        let lock = tokio::task::spawn_blocking(move || take_own_lock(&dir, &id))
            .await
            .map_err(|e| NetworkError::Setup(format!("lock: {e}")))??
            .ok_or_else(|| {
                NetworkError::Setup(format!(
                    "another running server uses network id {} (the same data directory)",
                    config.id
                ))
            })?;
        let home = netns::current_netns()?;
        enable_forwarding()?;

        // The DNS forwarder answers instances of the subnets registered.
        let slot: Arc<Mutex<Option<std::sync::Weak<Inner>>>> = Arc::new(Mutex::new(None));
        let lookup = slot.clone();
        let gateway_for = Arc::new(move |client: Ipv4Addr| {
            let inner = lookup.lock().unwrap().as_ref()?.upgrade()?;
            let subnets = inner.subnets.lock().unwrap();
            subnets
                .keys()
                .find(|c| c.contains(client))
                .map(SubnetAddresses::gateway)
        });
        let dns = dns::DnsForwarder::start(
            dns::DnsConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                upstreams: config.dns_upstreams.clone(),
                hosts_file: config.hosts_file.clone(),
            },
            gateway_for,
        )
        .await
        .map_err(|e| NetworkError::Setup(format!("DNS forwarder: {e}")))?;

        clean_tables(&config.lock_dir, &config.id)?;
        nft::apply(&nft::base_ruleset(&TableSpec {
            table: table.clone(),
            prefix: prefix.clone(),
            dns_port: dns.local_addr().port(),
            protected_ports: config.protected_ports.clone(),
        }))?;

        let inner = Arc::new(Inner {
            config,
            table,
            prefix,
            home,
            subnets: Mutex::new(HashMap::new()),
            ready: Condvar::new(),
            policies: Mutex::new(HashMap::new()),
            next_group: AtomicU32::new(FIRST_POLICY_GROUP),
            next_if: AtomicU32::new(0),
            jobs: Mutex::new(None),
            _lock: lock,
        });
        *slot.lock().unwrap() = Some(Arc::downgrade(&inner));
        let (tx, rx) = mpsc::channel();
        *inner.jobs.lock().unwrap() = Some(tx);
        let (started_tx, started_rx) = mpsc::channel();
        let worker_inner = inner.clone();
        let worker = std::thread::Builder::new()
            .name("hotswap-netns".into())
            .spawn(move || worker(worker_inner, rx, started_tx))
            .map_err(|e| NetworkError::Setup(format!("network thread: {e}")))?;
        started_rx
            .recv()
            .map_err(|_| NetworkError::Setup("network thread died at start".into()))??;
        inner.ensure_subnet(inner.config.default_subnet)?;
        inner.send(Job::RefillNow);
        Ok(Network {
            inner,
            worker: Mutex::new(Some(worker)),
            dns: Mutex::new(Some(dns)),
        })
    }

    pub fn summary(&self) -> String {
        format!(
            "network: own namespace per instance, egress via NAT, nftables table inet {} (default subnet {})",
            self.inner.table, self.inner.config.default_subnet
        )
    }

    pub fn table(&self) -> &str {
        &self.inner.table
    }

    /// The interface name prefix of this server's instances.
    pub fn interface_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// A prepared namespace for an instance under `policy` (`None`: the
    /// default policy in the default subnet), its interface in the
    /// policy's group.
    pub fn attach(&self, policy: Option<&Policy>) -> Result<Attachment, NetworkError> {
        let inner = &self.inner;
        let (subnet, group) = match policy {
            None => (inner.config.default_subnet, DEFAULT_GROUP),
            Some(p) => {
                let subnet = *p
                    .subnets
                    .first()
                    .ok_or_else(|| NetworkError::Setup("a VPC policy needs a subnet".into()))?;
                if subnet.overlaps(&inner.config.default_subnet) {
                    return Err(NetworkError::Setup(format!(
                        "subnet {subnet} overlaps this server's default instance network {}",
                        inner.config.default_subnet
                    )));
                }
                (subnet, inner.ensure_policy(p)?)
            }
        };
        inner.ensure_subnet(subnet)?;
        let prepared = inner.take(subnet)?;
        let (resolv_conf, hosts) = {
            let subnets = inner.subnets.lock().unwrap();
            let s = &subnets[&subnet];
            (s.resolv_conf.clone(), s.hosts.clone())
        };
        let attachment = Attachment {
            addr: prepared.addr,
            gateway: subnet.gateway(),
            host_if: prepared.host_if.clone(),
            prepared: Some(prepared),
            inner: inner.clone(),
            resolv_conf,
            hosts,
        };
        if attachment.prepared.as_ref().map(|p| p.group) != Some(group) {
            // Waits for the kernel's rtnl lock (a namespace being prepared
            // or deleted holds it): only VPC instances pay it.
            let ifname = &attachment.host_if;
            std::fs::write(
                format!("/sys/class/net/{ifname}/netdev_group"),
                group.to_string(),
            )
            .map_err(|e| NetworkError::Setup(format!("interface group: {e}")))?;
        }
        Ok(attachment)
    }

    /// Applies `policy`'s current rules if it is installed (instances
    /// already running follow them for new connections).
    pub fn refresh(&self, policy: &Policy) -> Result<(), NetworkError> {
        if self
            .inner
            .policies
            .lock()
            .unwrap()
            .contains_key(&policy.key)
        {
            self.inner.ensure_policy(policy)?;
        }
        Ok(())
    }

    /// The keys of the policies installed.
    pub fn policy_keys(&self) -> Vec<String> {
        self.inner
            .policies
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    /// Removes the prepared namespaces and the table. Instances still
    /// running lose their network; their namespaces go with them.
    pub async fn shutdown(&self) {
        let tx = self.inner.jobs.lock().unwrap().take();
        drop(tx);
        let worker = self.worker.lock().unwrap().take();
        if let Some(w) = worker {
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
        let dns = self.dns.lock().unwrap().take();
        if let Some(d) = dns {
            d.shutdown().await;
        }
        if let Err(e) = nft::apply(&nft::delete_table(&self.inner.table)) {
            tracing::warn!(error = %e, "cannot remove the network table");
        }
    }
}

/// Takes `<lock_dir>/<id>.lock`; `None` if another process holds it.
fn lock_file(lock_dir: &Path, id: &str) -> Result<Option<nix::fcntl::Flock<File>>, NetworkError> {
    let path = lock_dir.join(format!("{id}.lock"));
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| NetworkError::Setup(format!("{}: {e}", path.display())))?;
    match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(locked) => Ok(Some(locked)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(NetworkError::Setup(format!("{}: {e}", path.display()))),
    }
}

fn enable_forwarding() -> Result<(), NetworkError> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    let now =
        std::fs::read_to_string(path).map_err(|e| NetworkError::Setup(format!("{path}: {e}")))?;
    if now.trim() != "1" {
        std::fs::write(path, "1").map_err(|e| {
            NetworkError::Setup(format!("cannot enable IPv4 forwarding ({path}): {e}"))
        })?;
        tracing::warn!(
            "enabled IPv4 forwarding on this host (net.ipv4.ip_forward=1) for instance egress"
        );
    }
    Ok(())
}

/// Whether server `id` is gone: nobody holds its lock. The lock file is
/// created if missing and never removed (a starting server must never
/// lock a file that a cleaner is about to unlink).
fn is_dead(lock_dir: &Path, id: &str) -> bool {
    is_id(id) && matches!(lock_file(lock_dir, id), Ok(Some(_)))
}

fn is_id(s: &str) -> bool {
    s.len() == 5 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Takes this server's lock, retrying briefly: a server cleaning up may
/// hold it for an instant while it checks whether this id is alive.
fn take_own_lock(
    lock_dir: &Path,
    id: &str,
) -> Result<Option<nix::fcntl::Flock<File>>, NetworkError> {
    for _ in 0..40 {
        if let Some(l) = lock_file(lock_dir, id)? {
            return Ok(Some(l));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(None)
}

/// Removes the tables of servers that are gone: this server's previous
/// run and every server whose lock is free (their interfaces go with their
/// namespaces, or are removed by the worker at start).
fn clean_tables(lock_dir: &Path, own_id: &str) -> Result<(), NetworkError> {
    for table in nft::tables_with_prefix(TABLE_PREFIX)? {
        let id = &table[TABLE_PREFIX.len()..];
        if id == own_id || is_dead(lock_dir, id) {
            nft::apply(&nft::delete_table(&table))?;
            tracing::info!(table, "removed the network table of a server that is gone");
        }
    }
    Ok(())
}

/// The thread that prepares and deletes namespaces: it may change its own
/// namespace, which no async worker thread may.
fn worker(
    inner: Arc<Inner>,
    jobs: mpsc::Receiver<Job>,
    started: mpsc::Sender<Result<(), NetworkError>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = started.send(Err(NetworkError::Setup(format!("runtime: {e}"))));
            return;
        }
    };
    rt.block_on(async move {
        let host = match rtnetlink::new_connection() {
            Ok((conn, handle, _)) => {
                tokio::spawn(conn);
                handle
            }
            Err(e) => {
                let _ = started.send(Err(NetworkError::Setup(format!("netlink: {e}"))));
                return;
            }
        };
        // Interfaces of a previous run or of dead servers whose namespace
        // is still held (normally none: they die with their instances).
        match netns::links_with_prefix(&host, "hs").await {
            Ok(links) => {
                let mut dead: HashMap<String, bool> = HashMap::new();
                for (name, index) in links {
                    let id = name.get(2..7).unwrap_or("");
                    let counter = name.get(7..).unwrap_or("");
                    let ours =
                        !counter.is_empty() && counter.bytes().all(|b| b.is_ascii_hexdigit());
                    let gone = ours
                        && *dead.entry(id.to_owned()).or_insert_with(|| {
                            id == inner.config.id || is_dead(&inner.config.lock_dir, id)
                        });
                    if gone {
                        let _ = host.link().del(index).execute().await;
                        tracing::info!(interface = %name, "removed a leftover instance interface");
                    }
                }
            }
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        }
        let _ = started.send(Ok(()));
        let mut due: Option<Instant> = None;
        loop {
            // Refill when due, and every few seconds even without a
            // request, so a subnet whose pool was drained comes back.
            let wait = due.map_or(Duration::from_secs(2), |d| {
                d.saturating_duration_since(Instant::now())
            });
            let job = match jobs.recv_timeout(wait) {
                Ok(j) => Some(j),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            match job {
                Some(Job::Delete(p)) => {
                    let _ = host.link().del(p.host_index).execute().await;
                    inner.release(p.subnet, p.addr);
                }
                Some(Job::Refill) => {
                    due.get_or_insert_with(|| Instant::now() + REFILL_DELAY);
                }
                Some(Job::RefillNow) | None => {
                    due = None;
                    refill(&inner, &host).await;
                }
            }
            if due.is_some_and(|d| d <= Instant::now()) {
                due = None;
                refill(&inner, &host).await;
            }
        }
        // Stopping: the pool's namespaces go.
        let pooled: Vec<Prepared> = inner
            .subnets
            .lock()
            .unwrap()
            .values_mut()
            .flat_map(|s| std::mem::take(&mut s.pool))
            .collect();
        for p in pooled {
            let _ = host.link().del(p.host_index).execute().await;
        }
    });
}

async fn refill(inner: &Arc<Inner>, host: &rtnetlink::Handle) {
    let wanted: Vec<Cidr> = {
        let subnets = inner.subnets.lock().unwrap();
        subnets
            .iter()
            .filter(|(c, s)| {
                s.pool.len() < inner.config.pool_size
                    // Subnets nobody used for 10 minutes keep no pool.
                    && (**c == inner.config.default_subnet
                        || s.last_used.elapsed() < Duration::from_secs(600))
            })
            .map(|(c, _)| *c)
            .collect()
    };
    for subnet in wanted {
        let mut failures = 0;
        loop {
            let short = {
                let subnets = inner.subnets.lock().unwrap();
                subnets
                    .get(&subnet)
                    .is_some_and(|s| s.pool.len() < inner.config.pool_size)
            };
            if !short || failures > 8 {
                break;
            }
            let Some(addr) = inner.allocate(subnet) else {
                tracing::warn!(%subnet, "no free address in the subnet");
                break;
            };
            let n = inner.next_if.fetch_add(1, Ordering::Relaxed);
            let name = format!("{}{:x}", inner.prefix, n);
            let started = Instant::now();
            // The default subnet's namespaces are made in the default
            // policy's group (nothing runs in a pooled namespace, and a cold
            // start then needs no interface change); a VPC subnet's are
            // quarantined until an instance's policy is known.
            let group = if subnet == inner.config.default_subnet {
                DEFAULT_GROUP
            } else {
                QUARANTINE
            };
            match netns::prepare(host, &inner.home, &name, subnet, addr, group).await {
                Ok(p) => {
                    tracing::debug!(interface = %name, %addr, took = ?started.elapsed(), "network namespace prepared");
                    let mut subnets = inner.subnets.lock().unwrap();
                    match subnets.get_mut(&subnet) {
                        Some(s) => s.pool.push(p),
                        None => drop(p),
                    }
                    inner.ready.notify_all();
                }
                Err(NetworkError::AddressInUse) => {
                    // Another server on this host has it: leave it marked
                    // used and go on with the next one.
                    failures += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, %subnet, "cannot prepare a network namespace");
                    inner.release(subnet, addr);
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_dead_when_nobody_holds_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let held = take_own_lock(dir.path(), "abcde").unwrap().expect("free");
        assert!(!is_dead(dir.path(), "abcde"));
        assert!(lock_file(dir.path(), "abcde").unwrap().is_none());
        drop(held);
        assert!(is_dead(dir.path(), "abcde"));
        // A table whose lock file is missing is a dead server's too.
        assert!(is_dead(dir.path(), "12345"));
        assert!(!is_dead(dir.path(), "hsdemo"));
        // Lock files are never removed.
        assert!(dir.path().join("abcde.lock").exists());
    }

    #[test]
    fn ids_are_stable_five_hex_digits() {
        let a = id_for(Path::new("/nonexistent/a"));
        assert_eq!(a.len(), 5);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, id_for(Path::new("/nonexistent/a")));
        assert_ne!(a, id_for(Path::new("/nonexistent/b")));
    }
}
