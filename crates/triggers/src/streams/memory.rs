//! In-memory doubles of a stream ([`MemoryStream`], a [`StreamSource`])
//! and of the lease store ([`MemoryLeases`], [`ShardLeases`]), for tests of
//! consumers. Lease expiry runs on tokio's clock, so paused test time
//! drives it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use hotswap_domain::trigger::source::StartingPosition;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::leases::{LeaseError, LeaseState, ShardLeases};
use crate::sources::stream::BEFORE_FIRST;
use crate::sources::{SourceError, StreamRecord, StreamSource};

/// A stream held in memory: shards `0..n`, sequence numbers `1`, `2`, …
/// per shard (decimal text, ordered as numbers, not as text).
pub struct MemoryStream {
    name: String,
    state: Mutex<StreamState>,
    pushed: Notify,
}

struct StreamState {
    shards: Vec<ShardLog>,
    /// When set, every call fails with [`SourceError::Unavailable`].
    unavailable: bool,
}

#[derive(Default)]
struct ShardLog {
    last_seq: u64,
    records: VecDeque<StreamRecord>,
}

fn seq_of(r: &StreamRecord) -> u64 {
    r.sequence_number.parse().unwrap_or(0)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl MemoryStream {
    /// An empty stream `name` of `shards` shards (at least one).
    pub fn new(name: impl Into<String>, shards: u32) -> Self {
        Self {
            name: name.into(),
            state: Mutex::new(StreamState {
                shards: (0..shards.max(1)).map(|_| ShardLog::default()).collect(),
                unavailable: false,
            }),
            pushed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, StreamState> {
        // A test that panicked while holding the lock leaves usable data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a record arriving now; its sequence number.
    pub fn push(&self, shard: u32, partition_key: &str, data: impl Into<Vec<u8>>) -> String {
        self.push_at(shard, partition_key, data, now_ms())
    }

    /// Appends a record that arrived at `arrival_ms`; its sequence number
    /// (empty when there is no such shard).
    pub fn push_at(
        &self,
        shard: u32,
        partition_key: &str,
        data: impl Into<Vec<u8>>,
        arrival_ms: i64,
    ) -> String {
        let seq = {
            let mut state = self.lock();
            let Some(log) = state.shards.get_mut(shard as usize) else {
                return String::new();
            };
            log.last_seq += 1;
            let seq = log.last_seq.to_string();
            log.records.push_back(StreamRecord {
                partition_key: partition_key.to_owned(),
                sequence_number: seq.clone(),
                data: data.into(),
                arrival_timestamp_ms: arrival_ms,
            });
            seq
        };
        self.pushed.notify_waiters();
        seq
    }

    /// Drops the oldest records of `shard` until `keep` remain (retention).
    pub fn trim(&self, shard: u32, keep: usize) {
        let mut state = self.lock();
        if let Some(log) = state.shards.get_mut(shard as usize) {
            while log.records.len() > keep {
                log.records.pop_front();
            }
        }
    }

    /// Makes every call fail (a broker that is down) or work again.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock().unavailable = unavailable;
    }

    fn check(&self, state: &StreamState) -> Result<(), SourceError> {
        if state.unavailable {
            return Err(SourceError::Unavailable(
                self.describe(),
                "connection refused".into(),
            ));
        }
        Ok(())
    }

    fn position(&self, after: &str) -> Result<u64, SourceError> {
        if after == BEFORE_FIRST {
            return Ok(0);
        }
        after.parse().map_err(|_| {
            SourceError::Refused(
                self.describe(),
                format!("'{after}' is not a sequence number of this stream"),
            )
        })
    }

    fn shard_log<'a>(
        &self,
        state: &'a StreamState,
        shard: u32,
    ) -> Result<&'a ShardLog, SourceError> {
        state
            .shards
            .get(shard as usize)
            .ok_or_else(|| SourceError::Refused(self.describe(), format!("no shard {shard}")))
    }

    /// Up to `max` records of `shard` after `after`, now.
    fn take(&self, shard: u32, after: u64, max: usize) -> Result<Vec<StreamRecord>, SourceError> {
        let state = self.lock();
        self.check(&state)?;
        Ok(self
            .shard_log(&state, shard)?
            .records
            .iter()
            .filter(|r| seq_of(r) > after)
            .take(max)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl StreamSource for MemoryStream {
    fn describe(&self) -> String {
        format!("memory stream '{}'", self.name)
    }

    async fn shards(&self) -> Result<Vec<u32>, SourceError> {
        let state = self.lock();
        self.check(&state)?;
        Ok((0..state.shards.len() as u32).collect())
    }

    async fn start(&self, shard: u32, at: StartingPosition) -> Result<String, SourceError> {
        let state = self.lock();
        self.check(&state)?;
        let log = self.shard_log(&state, shard)?;
        let last = || {
            if log.last_seq == 0 {
                BEFORE_FIRST.to_owned()
            } else {
                log.last_seq.to_string()
            }
        };
        Ok(match at {
            StartingPosition::TrimHorizon => BEFORE_FIRST.to_owned(),
            StartingPosition::Latest => last(),
            StartingPosition::AtTimestamp(t) => {
                let t = t.timestamp_millis();
                match log.records.iter().find(|r| r.arrival_timestamp_ms >= t) {
                    Some(r) if seq_of(r) > 1 => (seq_of(r) - 1).to_string(),
                    Some(_) => BEFORE_FIRST.to_owned(),
                    None => last(),
                }
            }
        })
    }

    async fn read(
        &self,
        shard: u32,
        after: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<StreamRecord>, SourceError> {
        let after = self.position(after)?;
        let deadline = Instant::now() + wait;
        loop {
            let pushed = self.pushed.notified();
            tokio::pin!(pushed);
            pushed.as_mut().enable();
            let got = self.take(shard, after, max)?;
            if !got.is_empty() || Instant::now() >= deadline {
                return Ok(got);
            }
            if tokio::time::timeout_at(deadline, pushed).await.is_err() {
                return self.take(shard, after, max);
            }
        }
    }

    async fn lag(&self, shard: u32, after: &str) -> Result<u64, SourceError> {
        let after = self.position(after)?;
        let state = self.lock();
        self.check(&state)?;
        Ok(self
            .shard_log(&state, shard)?
            .records
            .iter()
            .filter(|r| seq_of(r) > after)
            .count() as u64)
    }
}

/// Leases and checkpoints in memory; clones share them (two consumers of
/// one trigger on "two servers").
#[derive(Clone, Default)]
pub struct MemoryLeases {
    shards: Arc<Mutex<HashMap<u32, MemoryLease>>>,
}

#[derive(Debug, Clone)]
struct MemoryLease {
    checkpoint: Option<String>,
    owner: Option<String>,
    expires: Instant,
}

impl MemoryLeases {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u32, MemoryLease>> {
        self.shards.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The shard's stored checkpoint.
    pub fn checkpoint_of(&self, shard: u32) -> Option<String> {
        self.lock().get(&shard).and_then(|l| l.checkpoint.clone())
    }

    /// Gives the shard's lease to `owner` for `ttl`, whoever holds it (as
    /// if the holder's had run out and `owner` had taken it).
    pub fn hand_over(&self, shard: u32, owner: &str, ttl: Duration) {
        let mut shards = self.lock();
        let lease = shards.entry(shard).or_insert(MemoryLease {
            checkpoint: None,
            owner: None,
            expires: Instant::now(),
        });
        lease.owner = Some(owner.to_owned());
        lease.expires = Instant::now() + ttl;
    }

    /// Who holds the shard's lease now (expired leases are nobody's).
    pub fn holder(&self, shard: u32) -> Option<String> {
        let now = Instant::now();
        self.lock()
            .get(&shard)
            .filter(|l| l.expires > now)
            .and_then(|l| l.owner.clone())
    }
}

#[async_trait]
impl ShardLeases for MemoryLeases {
    async fn take_or_renew(
        &self,
        shard: u32,
        owner: &str,
        ttl: Duration,
    ) -> Result<LeaseState, LeaseError> {
        let now = Instant::now();
        let mut shards = self.lock();
        let lease = shards.entry(shard).or_insert(MemoryLease {
            checkpoint: None,
            owner: None,
            expires: now,
        });
        let free = match &lease.owner {
            None => true,
            Some(o) => o == owner || lease.expires <= now,
        };
        if !free {
            return Ok(LeaseState::HeldElsewhere);
        }
        lease.owner = Some(owner.to_owned());
        lease.expires = now + ttl;
        Ok(LeaseState::Held {
            checkpoint: lease.checkpoint.clone(),
        })
    }

    async fn checkpoint(
        &self,
        shard: u32,
        owner: &str,
        sequence: &str,
    ) -> Result<bool, LeaseError> {
        let mut shards = self.lock();
        match shards.get_mut(&shard) {
            Some(l) if l.owner.as_deref() == Some(owner) => {
                l.checkpoint = Some(sequence.to_owned());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, shard: u32, owner: &str) -> Result<(), LeaseError> {
        if let Some(l) = self.lock().get_mut(&shard) {
            if l.owner.as_deref() == Some(owner) {
                l.owner = None;
            }
        }
        Ok(())
    }
}
