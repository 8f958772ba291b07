//! Stream triggers' shards on SQL: `stream_shards`, one row per trigger and
//! shard, holding the checkpoint and the lease.
//!
//! Taking or renewing a lease is one `INSERT … ON CONFLICT DO UPDATE …
//! WHERE … RETURNING`: the row is written only when the lease is free,
//! expired or the caller's, and a row comes back only when it was. On
//! PostgreSQL concurrent upserts of one row wait for each other and
//! re-check the condition on the newest row; on SQLite the statement holds
//! the database's write lock. Either way two owners never both get a row
//! back for an unexpired lease. Checkpoint writes and releases match the
//! owner in their `WHERE`, so a server that lost the lease changes nothing.

use hotswap_domain::time::Timestamp;
use sqlx::error::ErrorKind;

use super::record::{query_with, text, Cols, Value};
use super::{execute, not_found, SqlStore};
use crate::{Result, StoreError, StreamShardState};

fn micros(t: Timestamp) -> Value {
    Value::Int(t.timestamp_micros())
}

fn shard_value(shard: u32) -> Value {
    Value::Int(i64::from(shard))
}

impl SqlStore {
    pub(crate) async fn stream_lease_impl(
        &self,
        trigger_id: &str,
        shard: u32,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Option<String>>> {
        let row = query_with(
            "INSERT INTO stream_shards \
             (trigger_id, shard, checkpoint, lease_owner, lease_expires_at, updated_at) \
             VALUES ($1, $2, NULL, $3, $4, $5) \
             ON CONFLICT (trigger_id, shard) DO UPDATE \
             SET lease_owner = $3, lease_expires_at = $4, updated_at = $5 \
             WHERE stream_shards.lease_owner IS NULL OR stream_shards.lease_owner = $3 \
             OR stream_shards.lease_expires_at IS NULL OR stream_shards.lease_expires_at <= $5 \
             RETURNING checkpoint",
            vec![
                text(trigger_id),
                shard_value(shard),
                text(owner),
                micros(until),
                micros(now),
            ],
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation => {
                not_found("trigger", trigger_id)
            }
            _ => StoreError::Database(e),
        })?;
        row.map(|row| Cols::new(&row, "stream_shards").opt_text("checkpoint"))
            .transpose()
    }

    pub(crate) async fn stream_checkpoint_impl(
        &self,
        trigger_id: &str,
        shard: u32,
        owner: &str,
        sequence: &str,
    ) -> Result<bool> {
        let written = execute(
            &self.pool,
            "UPDATE stream_shards SET checkpoint = $4, updated_at = $5 \
             WHERE trigger_id = $1 AND shard = $2 AND lease_owner = $3",
            vec![
                text(trigger_id),
                shard_value(shard),
                text(owner),
                text(sequence),
                micros(hotswap_domain::time::now()),
            ],
        )
        .await?;
        Ok(written > 0)
    }

    pub(crate) async fn stream_release_impl(
        &self,
        trigger_id: &str,
        shard: u32,
        owner: &str,
    ) -> Result<bool> {
        let released = execute(
            &self.pool,
            "UPDATE stream_shards SET lease_owner = NULL, lease_expires_at = NULL, updated_at = $4 \
             WHERE trigger_id = $1 AND shard = $2 AND lease_owner = $3",
            vec![
                text(trigger_id),
                shard_value(shard),
                text(owner),
                micros(hotswap_domain::time::now()),
            ],
        )
        .await?;
        Ok(released > 0)
    }

    pub(crate) async fn stream_shards_impl(
        &self,
        trigger_id: &str,
    ) -> Result<Vec<StreamShardState>> {
        let rows = query_with(
            "SELECT shard, checkpoint, lease_owner, lease_expires_at FROM stream_shards \
             WHERE trigger_id = $1 ORDER BY shard",
            vec![text(trigger_id)],
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        rows.iter()
            .map(|row| {
                let c = Cols::new(row, "stream_shards");
                Ok(StreamShardState {
                    shard: c.int("shard")?,
                    checkpoint: c.opt_text("checkpoint")?,
                    lease_owner: c.opt_text("lease_owner")?,
                    lease_expires_at: c.opt_time("lease_expires_at")?,
                })
            })
            .collect()
    }
}
