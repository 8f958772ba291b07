//! The embedded queue on SQL: `queues` (one row per owner and name, from
//! the first message on) and `queue_messages`.
//!
//! Every operation is one statement or one transaction. A receive is a
//! single `UPDATE … WHERE message_id IN (SELECT … LIMIT n) RETURNING`: on
//! PostgreSQL the inner select takes `FOR UPDATE SKIP LOCKED`, so concurrent
//! receivers (on one server or several) pass over each other's rows instead
//! of waiting or taking the same message; on SQLite the statement holds the
//! database's write lock, which serialises receivers. Acknowledge, release
//! and move match the message id *and* the receipt of its latest receive,
//! so a receipt from an earlier receive changes nothing.

use std::time::Duration;

use hotswap_domain::queue::DEAD_LETTER_SOURCE_ATTRIBUTE;
use hotswap_domain::time::Timestamp;
use hotswap_domain::{QueueMessage, QueueSummary, Receipt};

use super::record::{columns, query_with, text, Cols, Record, SqlText, Value};
use super::{execute, SqlStore};
use crate::{Result, StoreError};

impl Record for QueueMessage {
    const TABLE: &'static str = "queue_messages";
    const KIND: &'static str = "queue message";
    const KEY_LEN: usize = 1;

    columns! {
        message_id, owner_id, queue_name, body, attributes, sent_at, first_received_at,
        receive_count, visible_at
    }

    fn describe(&self) -> String {
        format!("'{}'", self.message_id)
    }
}

/// Receipts per statement (each binds two parameters).
const RECEIPTS_PER_STATEMENT: usize = 200;

fn micros(t: Timestamp) -> Value {
    Value::Int(t.timestamp_micros())
}

/// `t + d`, saturating at the largest timestamp.
fn later(t: Timestamp, d: Duration) -> Timestamp {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// `message_id IN ($a…) AND receipt IN ($b…)` over `receipts`, with
/// placeholders from `$first` on, and its values. A receipt starts with its
/// message's id, so a row matches only its own receipt.
fn receipt_filter(receipts: &[Receipt], first: usize) -> (String, Vec<Value>) {
    let n = receipts.len();
    let ids: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
    let handles: Vec<String> = (first + n..first + 2 * n)
        .map(|i| format!("${i}"))
        .collect();
    let mut values: Vec<Value> = receipts.iter().map(|r| text(r.message_id())).collect();
    values.extend(receipts.iter().map(|r| text(r.as_str())));
    (
        format!(
            "message_id IN ({}) AND receipt IN ({})",
            ids.join(", "),
            handles.join(", ")
        ),
        values,
    )
}

/// Reads a summary row of [`SqlStore::queue_summaries_impl`]'s query.
fn summary_from_row(row: &sqlx::any::AnyRow, now: Timestamp) -> Result<QueueSummary> {
    let c = Cols::new(row, "queues");
    let oldest = c.opt_time("oldest")?;
    let oldest_age_seconds = oldest
        .map(|t| u64::try_from((now - t).num_seconds()).unwrap_or(0))
        .unwrap_or(0);
    Ok(QueueSummary {
        queue_name: c.text("queue_name")?,
        owner_id: c.text("owner_id")?,
        created_at: c.time("created_at")?,
        depth: c.int("depth")?,
        in_flight: c.int("in_flight")?,
        oldest_age_seconds,
    })
}

impl SqlStore {
    /// Records the queue (if new) and stores the message, in one
    /// transaction.
    pub(crate) async fn queue_send_impl(&self, message: &QueueMessage) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(StoreError::Database)?;
        ensure_queue(
            &mut tx,
            &message.owner_id,
            &message.queue_name,
            message.sent_at,
        )
        .await?;
        super::insert(&mut *tx, message).await?;
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(())
    }

    pub(crate) async fn queue_receive_impl(
        &self,
        owner_id: &str,
        queue_name: &str,
        max: u32,
        visibility: Duration,
        now: Timestamp,
    ) -> Result<Vec<(QueueMessage, Receipt)>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let lock = match self.backend {
            super::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            super::Backend::Sqlite => "",
        };
        let nonce = Receipt::nonce();
        let sql = format!(
            "UPDATE queue_messages SET visible_at = $4, receive_count = receive_count + 1, \
             first_received_at = COALESCE(first_received_at, $3), \
             receipt = message_id || '.' || CAST(receive_count + 1 AS TEXT) || '.' || $5 \
             WHERE message_id IN (SELECT message_id FROM queue_messages \
             WHERE owner_id = $1 AND queue_name = $2 AND visible_at <= $3 \
             ORDER BY sent_at, message_id LIMIT $6{lock}) \
             RETURNING {}",
            QueueMessage::COLUMNS.join(", ")
        );
        let rows = query_with(
            &sql,
            vec![
                text(owner_id),
                text(queue_name),
                micros(now),
                micros(later(now, visibility)),
                text(&nonce),
                Value::Int(i64::from(max)),
            ],
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        let mut received: Vec<(QueueMessage, Receipt)> = rows
            .iter()
            .map(|row| {
                let m = QueueMessage::from_row(row)?;
                let receipt = Receipt::new(&m.message_id, m.receive_count, &nonce);
                Ok((m, receipt))
            })
            .collect::<Result<_>>()?;
        received
            .sort_by(|(a, _), (b, _)| (a.sent_at, &a.message_id).cmp(&(b.sent_at, &b.message_id)));
        Ok(received)
    }

    pub(crate) async fn queue_ack_impl(
        &self,
        owner_id: &str,
        queue_name: &str,
        receipts: &[Receipt],
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await.map_err(StoreError::Database)?;
        let mut done = 0;
        for chunk in receipts.chunks(RECEIPTS_PER_STATEMENT) {
            let (filter, mut values) = receipt_filter(chunk, 3);
            let mut all = vec![text(owner_id), text(queue_name)];
            all.append(&mut values);
            done += execute(
                &mut *tx,
                &format!(
                    "DELETE FROM queue_messages WHERE owner_id = $1 AND queue_name = $2 AND {filter}"
                ),
                all,
            )
            .await?;
        }
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(done)
    }

    pub(crate) async fn queue_release_impl(
        &self,
        owner_id: &str,
        queue_name: &str,
        receipts: &[Receipt],
        delay: Duration,
        uncount: bool,
        now: Timestamp,
    ) -> Result<u64> {
        // Released, the receipt is spent: the message may go to another
        // receiver at once.
        let counts = if uncount {
            "receive_count = CASE WHEN receive_count > 0 THEN receive_count - 1 ELSE 0 END, \
             first_received_at = CASE WHEN receive_count <= 1 THEN NULL ELSE first_received_at END, "
        } else {
            ""
        };
        let mut tx = self.pool.begin().await.map_err(StoreError::Database)?;
        let mut done = 0;
        for chunk in receipts.chunks(RECEIPTS_PER_STATEMENT) {
            let (filter, mut values) = receipt_filter(chunk, 4);
            let mut all = vec![text(owner_id), text(queue_name), micros(later(now, delay))];
            all.append(&mut values);
            done += execute(
                &mut *tx,
                &format!(
                    "UPDATE queue_messages SET {counts}visible_at = $3, receipt = NULL \
                     WHERE owner_id = $1 AND queue_name = $2 AND {filter}"
                ),
                all,
            )
            .await?;
        }
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(done)
    }

    pub(crate) async fn queue_move_impl(
        &self,
        owner_id: &str,
        queue_name: &str,
        receipt: &Receipt,
        to_queue: &str,
        now: Timestamp,
    ) -> Result<Option<QueueMessage>> {
        let mut tx = self.pool.begin().await.map_err(StoreError::Database)?;
        let (filter, mut values) = receipt_filter(std::slice::from_ref(receipt), 3);
        let mut all = vec![text(owner_id), text(queue_name)];
        all.append(&mut values);
        let lock = self.backend.row_lock();
        let sql = SqlText::select::<QueueMessage>(&format!(
            "WHERE owner_id = $1 AND queue_name = $2 AND {filter}{lock}"
        ));
        let Some(mut message) = super::fetch_optional::<QueueMessage>(&mut *tx, &sql, all).await?
        else {
            return Ok(None);
        };
        ensure_queue(&mut tx, owner_id, to_queue, now).await?;
        message.attributes.insert(
            DEAD_LETTER_SOURCE_ATTRIBUTE.to_owned(),
            queue_name.to_owned(),
        );
        message.queue_name = to_queue.to_owned();
        message.receive_count = 0;
        message.first_received_at = None;
        message.visible_at = now;
        let moved = execute(
            &mut *tx,
            "UPDATE queue_messages SET queue_name = $2, attributes = $3, receive_count = 0, \
             first_received_at = NULL, visible_at = $4, receipt = NULL WHERE message_id = $1",
            vec![
                text(&message.message_id),
                text(to_queue),
                Value::Text(super::record::json(&message.attributes, "attributes")?),
                micros(now),
            ],
        )
        .await?;
        if moved == 0 {
            return Ok(None);
        }
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(Some(message))
    }

    pub(crate) async fn queue_purge_impl(&self, owner_id: &str, queue_name: &str) -> Result<u64> {
        execute(
            &self.pool,
            "DELETE FROM queue_messages WHERE owner_id = $1 AND queue_name = $2",
            vec![text(owner_id), text(queue_name)],
        )
        .await
    }

    pub(crate) async fn queue_summaries_impl(
        &self,
        owner_id: Option<&str>,
        queue_name: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<QueueSummary>> {
        let mut values = vec![micros(now)];
        let mut conditions = Vec::new();
        if let Some(owner) = owner_id {
            values.push(text(owner));
            conditions.push(format!("q.owner_id = ${}", values.len()));
        }
        if let Some(name) = queue_name {
            values.push(text(name));
            conditions.push(format!("q.queue_name = ${}", values.len()));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT q.owner_id AS owner_id, q.queue_name AS queue_name, q.created_at AS created_at, \
             COALESCE(SUM(CASE WHEN m.visible_at <= $1 THEN 1 ELSE 0 END), 0) AS depth, \
             COALESCE(SUM(CASE WHEN m.visible_at > $1 THEN 1 ELSE 0 END), 0) AS in_flight, \
             MIN(m.sent_at) AS oldest \
             FROM queues q LEFT JOIN queue_messages m \
             ON m.owner_id = q.owner_id AND m.queue_name = q.queue_name \
             {filter} GROUP BY q.owner_id, q.queue_name, q.created_at \
             ORDER BY q.queue_name, q.owner_id"
        );
        let rows = query_with(&sql, values)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        rows.iter().map(|row| summary_from_row(row, now)).collect()
    }
}

/// Records the queue `(owner, name)` unless it exists.
async fn ensure_queue(
    conn: &mut sqlx::AnyConnection,
    owner_id: &str,
    queue_name: &str,
    at: Timestamp,
) -> Result<()> {
    execute(
        conn,
        "INSERT INTO queues (owner_id, queue_name, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (owner_id, queue_name) DO NOTHING",
        vec![text(owner_id), text(queue_name), micros(at)],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_filters_number_their_placeholders() {
        let a = Receipt::new("m1", 1, "n");
        let b = Receipt::new("m2", 4, "n");
        let (sql, values) = receipt_filter(&[a, b], 3);
        assert_eq!(sql, "message_id IN ($3, $4) AND receipt IN ($5, $6)");
        assert_eq!(values.len(), 4);
    }

    #[test]
    fn visibility_saturates() {
        let now = hotswap_domain::time::now();
        assert_eq!(
            later(now, Duration::from_secs(1)),
            now + chrono::Duration::seconds(1)
        );
        assert_eq!(
            later(now, Duration::MAX),
            chrono::DateTime::<chrono::Utc>::MAX_UTC
        );
    }
}
