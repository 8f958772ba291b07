//! The DNS forwarder that instances resolve through.
//!
//! Instances' `/etc/resolv.conf` names their gateway; nftables DNATs
//! `GATEWAY:53` to this forwarder on the host's loopback, so a query's source
//! is the instance's own address. Only instances are served (anything else is
//! REFUSED). `host.hotswap.internal` is the client's gateway, other names
//! under `hotswap.internal` do not exist, names in the host's hosts file are
//! answered from it, and everything else is relayed unchanged to the host's
//! upstream resolvers (UDP clients over UDP, TCP clients over TCP).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use hickory_proto::op::{Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use tracing::debug;

/// How long one upstream gets to answer before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// A TCP client connection is closed after this long without a query.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Queries being answered at once (UDP and TCP together); more are dropped.
const MAX_IN_FLIGHT: usize = 256;
/// TCP client connections open at once; more are closed on accept.
const MAX_TCP_CONNECTIONS: usize = 128;
/// TTL of the answers the forwarder gives itself.
const LOCAL_TTL: u32 = 60;
const INTERNAL_ZONE: &str = "hotswap.internal";
const HOST_NAME: &str = "host.hotswap.internal";

/// Maps an instance address to its subnet's gateway; None for non-instances.
pub type GatewayFor = Arc<dyn Fn(Ipv4Addr) -> Option<Ipv4Addr> + Send + Sync>;

/// Where the forwarder listens and where it sends what it does not answer.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Where to listen (UDP and TCP on the same port), e.g. 127.0.0.1:0.
    pub listen: SocketAddr,
    /// Upstream resolvers (from the host's /etc/resolv.conf by default).
    pub upstreams: Vec<SocketAddr>,
    /// The host's hosts file, consulted first for A queries (e.g. /etc/hosts);
    /// re-read when it changes.
    pub hosts_file: Option<PathBuf>,
}

/// A running forwarder; dropping it (or [`DnsForwarder::shutdown`]) stops it.
#[derive(Debug)]
pub struct DnsForwarder {
    local_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

struct Shared {
    upstreams: Vec<SocketAddr>,
    hosts: Option<Mutex<HostsCache>>,
    gateway_for: GatewayFor,
    in_flight: Arc<Semaphore>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

impl DnsForwarder {
    /// Binds UDP and TCP on the same port (when `listen` has port 0, one port
    /// free for both) and serves until dropped or shut down.
    pub async fn start(config: DnsConfig, gateway_for: GatewayFor) -> io::Result<DnsForwarder> {
        let (udp, tcp) = bind_pair(config.listen).await?;
        let local_addr = udp.local_addr()?;
        let shared = Arc::new(Shared {
            upstreams: config.upstreams,
            hosts: config
                .hosts_file
                .map(|path| Mutex::new(HostsCache::new(path))),
            gateway_for,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        });
        debug!(%local_addr, upstreams = ?shared.upstreams, "dns forwarder listening");
        let tasks = vec![
            tokio::spawn(serve_udp(Arc::new(udp), shared.clone())),
            tokio::spawn(serve_tcp(tcp, shared)),
        ];
        Ok(DnsForwarder { local_addr, tasks })
    }

    /// The address (UDP and TCP) the forwarder listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving: closes both sockets and every client connection, and
    /// abandons the queries in flight.
    pub async fn shutdown(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for DnsForwarder {
    fn drop(&mut self) {
        // The serving tasks own the tasks of connections and queries (JoinSets),
        // so aborting them stops everything.
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The `nameserver` lines of a resolv.conf, as port-53 addresses (IPv4 and
/// IPv6; an IPv6 address with a `%zone` is skipped).
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut fields = line.split_whitespace();
            if fields.next() != Some("nameserver") {
                return None;
            }
            let ip: IpAddr = fields.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

async fn bind_pair(listen: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    if listen.port() != 0 {
        return Ok((
            UdpSocket::bind(listen).await?,
            TcpListener::bind(listen).await?,
        ));
    }
    let mut last_error = None;
    for _ in 0..32 {
        let udp = UdpSocket::bind(listen).await?;
        let mut addr = listen;
        addr.set_port(udp.local_addr()?.port());
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::ErrorKind::AddrInUse.into()))
}

/// A DNS query message, or None for anything else (garbage, responses).
fn parse_query(bytes: &[u8]) -> Option<Message> {
    Message::from_vec(bytes)
        .ok()
        .filter(|m| m.metadata.message_type == MessageType::Query)
}

async fn serve_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut queries = JoinSet::new();
    let mut buf = vec![0u8; 65535];
    loop {
        while queries.try_join_next().is_some() {}
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                debug!(error = %e, "dns: udp receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(request) = parse_query(&buf[..n]) else {
            debug!(%peer, len = n, "dns: ignoring malformed udp packet");
            continue;
        };
        let Ok(permit) = shared.in_flight.clone().try_acquire_owned() else {
            debug!(%peer, "dns: too many queries in flight, dropping one");
            continue;
        };
        let raw = buf[..n].to_vec();
        let (socket, shared) = (socket.clone(), shared.clone());
        queries.spawn(async move {
            let _permit = permit;
            if let Some(answer) = respond(&shared, peer.ip(), &raw, &request, Transport::Udp).await
            {
                if let Err(e) = socket.send_to(&answer, peer).await {
                    debug!(%peer, error = %e, "dns: udp send failed");
                }
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    let connections = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                debug!(error = %e, "dns: tcp accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            debug!(%peer, "dns: too many tcp connections, closing one");
            continue;
        };
        let shared = shared.clone();
        tasks.spawn(async move {
            let _permit = permit;
            serve_tcp_connection(stream, peer, shared).await;
        });
    }
}

/// Reads length-prefixed queries until EOF, idleness or a malformed message;
/// answers each in its own task (so answers may come out of order, as TCP
/// DNS allows), then waits for the answers still being worked on.
async fn serve_tcp_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let (mut reader, writer) = stream.into_split();
    let writer = Arc::new(tokio::sync::Mutex::new(writer));
    let mut queries = JoinSet::new();
    loop {
        while queries.try_join_next().is_some() {}
        let mut len = [0u8; 2];
        if !matches!(
            timeout(TCP_IDLE_TIMEOUT, reader.read_exact(&mut len)).await,
            Ok(Ok(_))
        ) {
            break;
        }
        let mut raw = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if !matches!(
            timeout(TCP_IDLE_TIMEOUT, reader.read_exact(&mut raw)).await,
            Ok(Ok(_))
        ) {
            break;
        }
        let Some(request) = parse_query(&raw) else {
            debug!(%peer, "dns: malformed tcp message, closing");
            break;
        };
        let Ok(permit) = shared.in_flight.clone().try_acquire_owned() else {
            debug!(%peer, "dns: too many queries in flight, dropping one");
            continue;
        };
        let (writer, shared) = (writer.clone(), shared.clone());
        queries.spawn(async move {
            let _permit = permit;
            if let Some(answer) = respond(&shared, peer.ip(), &raw, &request, Transport::Tcp).await
            {
                if let Err(e) = write_framed(&mut *writer.lock().await, &answer).await {
                    debug!(%peer, error = %e, "dns: tcp send failed");
                }
            }
        });
    }
    while queries.join_next().await.is_some() {}
}

async fn write_framed(writer: &mut OwnedWriteHalf, message: &[u8]) -> io::Result<()> {
    let len =
        u16::try_from(message.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    writer.write_all(&framed).await
}

/// The wire answer to one query, or None when nothing should be sent.
async fn respond(
    shared: &Shared,
    client: IpAddr,
    raw: &[u8],
    request: &Message,
    transport: Transport,
) -> Option<Vec<u8>> {
    let client = match client {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(ip) => ip.to_ipv4_mapped(),
    };
    let Some(gateway) = client.and_then(|ip| (shared.gateway_for)(ip)) else {
        debug!(?client, "dns: refusing a query from a non-instance");
        return encode(&reply(request, ResponseCode::Refused, Vec::new()));
    };
    if request.metadata.op_code == OpCode::Query && request.queries.len() == 1 {
        if let Some(local) = answer_locally(shared, request, gateway) {
            return encode(&local);
        }
    }
    match forward(&shared.upstreams, raw, transport).await {
        Some(answer) => Some(answer),
        None => encode(&reply(request, ResponseCode::ServFail, Vec::new())),
    }
}

/// The answer for `hotswap.internal` names and names of the hosts file.
fn answer_locally(shared: &Shared, request: &Message, gateway: Ipv4Addr) -> Option<Message> {
    let query = &request.queries[0];
    let name = query.name().to_ascii().to_ascii_lowercase();
    let name = name.trim_end_matches('.');
    let (qtype, is_in) = (query.query_type(), query.query_class() == DNSClass::IN);
    let record = |data| Record::from_rdata(query.name().clone(), LOCAL_TTL, data);
    if name == HOST_NAME {
        let answers = match (qtype, is_in) {
            (RecordType::A, true) => vec![record(RData::A(A(gateway)))],
            _ => Vec::new(),
        };
        return Some(reply(request, ResponseCode::NoError, answers));
    }
    if name == INTERNAL_ZONE {
        return Some(reply(request, ResponseCode::NoError, Vec::new()));
    }
    if name.ends_with(".hotswap.internal") {
        return Some(reply(request, ResponseCode::NXDomain, Vec::new()));
    }
    if !is_in || !matches!(qtype, RecordType::A | RecordType::AAAA) {
        return None;
    }
    let entry = shared
        .hosts
        .as_ref()?
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .lookup(name)?;
    let answers = if qtype == RecordType::A {
        entry.v4.iter().map(|ip| record(RData::A(A(*ip)))).collect()
    } else {
        entry
            .v6
            .iter()
            .map(|ip| record(RData::AAAA(AAAA(*ip))))
            .collect()
    };
    Some(reply(request, ResponseCode::NoError, answers))
}

fn reply(request: &Message, code: ResponseCode, answers: Vec<Record>) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata = Metadata::response_from_request(&request.metadata);
    response.metadata.recursion_available = true;
    response.metadata.response_code = code;
    response.add_queries(request.queries.iter().cloned());
    response.add_answers(answers);
    response
}

fn encode(message: &Message) -> Option<Vec<u8>> {
    message
        .to_vec()
        .inspect_err(|e| debug!(error = %e, "dns: cannot encode an answer"))
        .ok()
}

/// Relays `query` to each upstream in turn; the first answer that is not
/// SERVFAIL/REFUSED wins, else the last such answer, else None.
async fn forward(upstreams: &[SocketAddr], query: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let mut fallback = None;
    for &upstream in upstreams {
        let exchange = async {
            match transport {
                Transport::Udp => exchange_udp(upstream, query).await,
                Transport::Tcp => exchange_tcp(upstream, query).await,
            }
        };
        match timeout(UPSTREAM_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => {
                let rcode = ResponseCode::from(0, answer[3] & 0x0f);
                if !matches!(rcode, ResponseCode::ServFail | ResponseCode::Refused) {
                    return Some(answer);
                }
                debug!(%upstream, %rcode, "dns: upstream failed the query, trying the next");
                fallback = Some(answer);
            }
            Ok(Err(e)) => {
                debug!(%upstream, ?transport, error = %e, "dns: upstream exchange failed")
            }
            Err(_) => debug!(%upstream, ?transport, "dns: upstream timed out"),
        }
    }
    fallback
}

/// Whether `answer` is a response (QR set) with the id of `query`.
fn answers(answer: &[u8], query: &[u8]) -> bool {
    answer.len() >= 12 && answer[..2] == query[..2] && answer[2] & 0x80 != 0
}

async fn exchange_udp(upstream: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let any: IpAddr = if upstream.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind((any, 0)).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = socket.recv(&mut buf).await?;
        if answers(&buf[..n], query) {
            buf.truncate(n);
            return Ok(buf);
        }
        debug!(%upstream, "dns: ignoring a stray udp packet from upstream");
    }
}

async fn exchange_tcp(upstream: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    let (mut reader, mut writer) = stream.split();
    let len =
        u16::try_from(query.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    writer
        .write_all(&[&len.to_be_bytes()[..], query].concat())
        .await?;
    let mut len = [0u8; 2];
    reader.read_exact(&mut len).await?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    reader.read_exact(&mut answer).await?;
    if !answers(&answer, query) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not an answer to the query",
        ));
    }
    Ok(answer)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct HostEntry {
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
}

/// The hosts file's entries, re-read when its mtime, size or inode changes.
struct HostsCache {
    path: PathBuf,
    stamp: Option<(SystemTime, u64, u64)>,
    entries: HashMap<String, HostEntry>,
}

impl HostsCache {
    fn new(path: PathBuf) -> Self {
        HostsCache {
            path,
            stamp: None,
            entries: HashMap::new(),
        }
    }

    /// `name`: lower case, without the trailing dot.
    fn lookup(&mut self, name: &str) -> Option<HostEntry> {
        self.refresh();
        self.entries.get(name).cloned()
    }

    fn refresh(&mut self) {
        let stamp = std::fs::metadata(&self.path).ok().map(|m| {
            (
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.len(),
                m.ino(),
            )
        });
        if stamp == self.stamp {
            return;
        }
        match std::fs::read_to_string(&self.path) {
            Ok(text) => {
                self.entries = parse_hosts(&text);
                self.stamp = stamp;
                debug!(path = %self.path.display(), names = self.entries.len(), "dns: read the hosts file");
            }
            Err(e) => {
                debug!(path = %self.path.display(), error = %e, "dns: cannot read the hosts file");
                self.entries.clear();
                self.stamp = None;
            }
        }
    }
}

/// hosts(5): `ADDRESS NAME [ALIAS...]`, `#` comments; names case-insensitive.
fn parse_hosts(text: &str) -> HashMap<String, HostEntry> {
    let mut entries: HashMap<String, HostEntry> = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split('#').next().unwrap_or("").split_whitespace();
        let Some(Ok(addr)) = fields.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        for name in fields {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name.is_empty() {
                continue;
            }
            let entry = entries.entry(name).or_default();
            match addr {
                IpAddr::V4(ip) if !entry.v4.contains(&ip) => entry.v4.push(ip),
                IpAddr::V6(ip) if !entry.v6.contains(&ip) => entry.v6.push(ip),
                _ => {}
            }
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::time::Instant;

    const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);
    const UPSTREAM_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
    const WAIT: Duration = Duration::from_secs(10);

    /// 127.0.0.1 is an instance of the subnet whose gateway is GATEWAY; no other address is.
    fn gateway_for() -> GatewayFor {
        Arc::new(|ip| (ip == Ipv4Addr::LOCALHOST).then_some(GATEWAY))
    }

    async fn forwarder(upstreams: Vec<SocketAddr>, hosts_file: Option<PathBuf>) -> DnsForwarder {
        let listen = (Ipv4Addr::LOCALHOST, 0).into();
        DnsForwarder::start(
            DnsConfig {
                listen,
                upstreams,
                hosts_file,
            },
            gateway_for(),
        )
        .await
        .unwrap()
    }

    fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
        let mut message = Message::new(id, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        message.to_vec().unwrap()
    }

    async fn ask_udp_from(from: Ipv4Addr, server: SocketAddr, packet: &[u8]) -> Message {
        let socket = UdpSocket::bind((from, 0)).await.unwrap();
        socket.send_to(packet, server).await.unwrap();
        let mut buf = vec![0u8; 65535];
        let (n, _) = timeout(WAIT, socket.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        Message::from_vec(&buf[..n]).unwrap()
    }

    async fn ask_udp(server: SocketAddr, packet: &[u8]) -> Message {
        ask_udp_from(Ipv4Addr::LOCALHOST, server, packet).await
    }

    async fn read_framed(stream: &mut TcpStream) -> Message {
        let mut len = [0u8; 2];
        timeout(WAIT, stream.read_exact(&mut len))
            .await
            .unwrap()
            .unwrap();
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await.unwrap();
        Message::from_vec(&buf).unwrap()
    }

    async fn send_framed(stream: &mut TcpStream, packet: &[u8]) {
        let len = u16::try_from(packet.len()).unwrap().to_be_bytes();
        stream
            .write_all(&[&len[..], packet].concat())
            .await
            .unwrap();
    }

    fn a_records(message: &Message) -> Vec<(Ipv4Addr, u32)> {
        let ips = message.answers.iter().filter_map(|r| match &r.data {
            RData::A(A(ip)) => Some((*ip, r.ttl)),
            _ => None,
        });
        ips.collect()
    }

    /// An upstream on 127.0.0.1 (UDP and TCP, one port) answering every query
    /// with `UPSTREAM_IP`, TTL 1234.
    async fn fake_upstream() -> SocketAddr {
        fn answer(raw: &[u8]) -> Vec<u8> {
            let request = Message::from_vec(raw).unwrap();
            let mut response = reply(&request, ResponseCode::NoError, Vec::new());
            let name = request.queries[0].name().clone();
            response.add_answer(Record::from_rdata(name, 1234, RData::A(A(UPSTREAM_IP))));
            response.to_vec().unwrap()
        }
        let (udp, tcp) = bind_pair((Ipv4Addr::LOCALHOST, 0).into()).await.unwrap();
        let addr = udp.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                udp.send_to(&answer(&buf[..n]), peer).await.unwrap();
            }
        });
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = tcp.accept().await {
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    while stream.read_exact(&mut len).await.is_ok() {
                        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        stream.read_exact(&mut buf).await.unwrap();
                        send_framed(&mut stream, &answer(&buf)).await;
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn forwards_over_udp_and_tcp_with_the_clients_id() {
        let upstream = fake_upstream().await;
        let dns = forwarder(vec![upstream], None).await;
        let answer = ask_udp(
            dns.local_addr(),
            &query(0x1234, "example.com.", RecordType::A),
        )
        .await;
        assert_eq!(answer.metadata.id, 0x1234);
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a_records(&answer), vec![(UPSTREAM_IP, 1234)]);

        let mut stream = TcpStream::connect(dns.local_addr()).await.unwrap();
        for id in [7, 8] {
            send_framed(&mut stream, &query(id, "example.org.", RecordType::A)).await;
            let answer = read_framed(&mut stream).await;
            assert_eq!(answer.metadata.id, id);
            assert_eq!(a_records(&answer), vec![(UPSTREAM_IP, 1234)]);
        }
        dns.shutdown().await;
    }

    #[tokio::test]
    async fn answers_host_hotswap_internal_itself() {
        // No upstreams: anything forwarded would come back SERVFAIL.
        let dns = forwarder(Vec::new(), None).await;
        for name in [
            "host.hotswap.internal.",
            "HOST.HotSwap.Internal",
            "host.hotswap.internal",
        ] {
            let answer = ask_udp(dns.local_addr(), &query(1, name, RecordType::A)).await;
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::NoError,
                "{name}"
            );
            assert_eq!(a_records(&answer), vec![(GATEWAY, 60)], "{name}");
        }
        let aaaa = ask_udp(
            dns.local_addr(),
            &query(2, "host.hotswap.internal.", RecordType::AAAA),
        )
        .await;
        assert_eq!(
            (aaaa.metadata.response_code, aaaa.answers.len()),
            (ResponseCode::NoError, 0)
        );
        let other = ask_udp(
            dns.local_addr(),
            &query(3, "foo.hotswap.internal.", RecordType::A),
        )
        .await;
        assert_eq!(other.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(other.metadata.id, 3);
    }

    #[tokio::test]
    async fn answers_from_the_hosts_file_and_rereads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        let text =
            "# the host's names\n127.0.0.1 localhost\n10.1.2.3\tdb.example DB # the database\n\
                    ::1 localhost ip6-localhost\n2001:db8::5 v6only\nnot-an-address ignored\n";
        std::fs::write(&path, text).unwrap();
        let dns = forwarder(Vec::new(), Some(path.clone())).await;
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        for name in ["db.", "DB.example.", "db.example"] {
            let answer = ask_udp(dns.local_addr(), &query(1, name, RecordType::A)).await;
            assert_eq!(a_records(&answer), vec![(ip, 60)], "{name}");
        }
        let aaaa = ask_udp(dns.local_addr(), &query(2, "db.", RecordType::AAAA)).await;
        assert_eq!(
            (aaaa.metadata.response_code, aaaa.answers.len()),
            (ResponseCode::NoError, 0)
        );
        let aaaa = ask_udp(dns.local_addr(), &query(3, "v6only.", RecordType::AAAA)).await;
        assert!(
            matches!(aaaa.answers[0].data, RData::AAAA(AAAA(ip)) if ip == "2001:db8::5".parse::<Ipv6Addr>().unwrap())
        );
        let ignored = ask_udp(dns.local_addr(), &query(4, "ignored.", RecordType::A)).await;
        assert_eq!(ignored.metadata.response_code, ResponseCode::ServFail);

        std::fs::write(&path, "10.9.9.9 db\n").unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let answer = ask_udp(dns.local_addr(), &query(5, "db.", RecordType::A)).await;
        assert_eq!(a_records(&answer), vec![(Ipv4Addr::new(10, 9, 9, 9), 60)]);
    }

    #[tokio::test]
    async fn refuses_clients_that_are_not_instances() {
        let upstream = fake_upstream().await;
        let dns = forwarder(vec![upstream], None).await;
        let stranger = Ipv4Addr::new(127, 0, 0, 2);
        for name in ["example.com.", "host.hotswap.internal."] {
            let answer =
                ask_udp_from(stranger, dns.local_addr(), &query(9, name, RecordType::A)).await;
            assert_eq!(
                (answer.metadata.id, answer.metadata.response_code),
                (9, ResponseCode::Refused)
            );
            assert!(answer.answers.is_empty());
        }
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((stranger, 0).into()).unwrap();
        let mut stream = socket.connect(dns.local_addr()).await.unwrap();
        send_framed(&mut stream, &query(10, "example.com.", RecordType::A)).await;
        assert_eq!(
            read_framed(&mut stream).await.metadata.response_code,
            ResponseCode::Refused
        );
    }

    #[tokio::test]
    async fn servfail_when_upstreams_fail_and_failover_to_the_next() {
        let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let dns = forwarder(vec![silent.local_addr().unwrap()], None).await;
        let started = Instant::now();
        let answer = ask_udp(dns.local_addr(), &query(11, "example.com.", RecordType::A)).await;
        assert_eq!(
            (answer.metadata.id, answer.metadata.response_code),
            (11, ResponseCode::ServFail)
        );
        assert!(
            started.elapsed() < UPSTREAM_TIMEOUT + Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );

        let closed = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let dns = forwarder(vec![closed, fake_upstream().await], None).await;
        let answer = ask_udp(dns.local_addr(), &query(12, "example.com.", RecordType::A)).await;
        assert_eq!(a_records(&answer), vec![(UPSTREAM_IP, 1234)]);
    }

    #[tokio::test]
    async fn garbage_is_ignored_and_later_queries_answered() {
        let dns = forwarder(vec![fake_upstream().await], None).await;
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let mut response = Message::new(5, MessageType::Response, OpCode::Query);
        response.add_query(Query::query(Name::from_ascii("x.").unwrap(), RecordType::A));
        for junk in [
            &b""[..],
            b"\x01",
            b"\x12\x34garbage-garbage",
            &[0xff; 12],
            &response.to_vec().unwrap(),
        ] {
            socket.send_to(junk, dns.local_addr()).await.unwrap();
        }
        socket
            .send_to(&query(13, "example.com.", RecordType::A), dns.local_addr())
            .await
            .unwrap();
        let mut buf = vec![0u8; 65535];
        let (n, _) = timeout(WAIT, socket.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(Message::from_vec(&buf[..n]).unwrap().metadata.id, 13);

        // Over TCP a malformed message closes the connection; new ones still work.
        let mut stream = TcpStream::connect(dns.local_addr()).await.unwrap();
        send_framed(&mut stream, b"garbage").await;
        assert_eq!(
            timeout(WAIT, stream.read(&mut buf)).await.unwrap().unwrap(),
            0
        );
        let mut stream = TcpStream::connect(dns.local_addr()).await.unwrap();
        send_framed(&mut stream, &query(14, "example.com.", RecordType::A)).await;
        assert_eq!(read_framed(&mut stream).await.metadata.id, 14);
    }

    #[test]
    fn parses_resolv_conf() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\n  nameserver\t1.1.1.1 # cloudflare\n\
                    nameserver 2001:4860:4860::8888\nnameserver fe80::1%eth0\nnameserver bogus\n; nameserver 9.9.9.9\n\
                    options edns0\nnameservers 8.8.8.8\n";
        let expected: Vec<SocketAddr> = ["10.0.0.2:53", "1.1.1.1:53", "[2001:4860:4860::8888]:53"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(upstreams_from_resolv_conf(text), expected);
        assert!(upstreams_from_resolv_conf("").is_empty());
    }

    #[test]
    fn parses_hosts_files() {
        let hosts =
            parse_hosts("1.2.3.4 a b.\n#5.6.7.8 c\n1.2.3.4 A\n::1 a\nfe80::1%lo d\n   \n9.9.9.9\n");
        assert_eq!(hosts.len(), 2);
        assert_eq!(
            hosts["a"],
            HostEntry {
                v4: vec![Ipv4Addr::new(1, 2, 3, 4)],
                v6: vec![Ipv6Addr::LOCALHOST]
            }
        );
        assert_eq!(hosts["b"].v4, vec![Ipv4Addr::new(1, 2, 3, 4)]);
    }
}
