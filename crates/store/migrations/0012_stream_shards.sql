-- Stream triggers: where each trigger is in each shard of its stream (its
-- checkpoint) and which server consumes the shard (its lease). The same
-- statements serve SQLite and PostgreSQL.
--
-- `checkpoint` is the sequence number of the last record the trigger is
-- done with ('' before the first record; NULL: the shard was never
-- started, so the trigger's starting position applies). A lease is held by
-- `lease_owner` until `lease_expires_at` (microseconds); an expired or
-- released lease (NULL owner) may be taken by any server, in one
-- conditional upsert, and only the holder may move the checkpoint. The
-- rows go with their trigger.

CREATE TABLE stream_shards (
    trigger_id TEXT NOT NULL REFERENCES triggers (trigger_id) ON DELETE CASCADE,
    shard BIGINT NOT NULL,
    checkpoint TEXT,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (trigger_id, shard)
);
