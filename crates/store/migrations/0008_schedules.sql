-- Scheduled triggers: each tick is claimed once, whatever the number of
-- servers sharing the database. The claim row and the tick's asynchronous
-- invocation are written in one transaction (`claim_tick`), so a tick is
-- never fired twice and never lost once claimed. The newest claim of each
-- trigger also tells a starting server where its schedule stopped.
CREATE TABLE schedule_ticks (
    trigger_id TEXT NOT NULL REFERENCES triggers (trigger_id) ON DELETE CASCADE,
    tick_at BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    claimed_at BIGINT NOT NULL,
    PRIMARY KEY (trigger_id, tick_at)
);

-- The trigger that queued an asynchronous invocation (a schedule tick):
-- its final failure counts in the trigger's failure_count.
ALTER TABLE async_invocations ADD COLUMN trigger_id TEXT;
