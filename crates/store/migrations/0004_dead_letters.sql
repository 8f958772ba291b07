-- Dead-letter destinations, conditional async-attempt writes, and layer
-- version numbers that are never reused.

-- `name[:qualifier]` of the function that receives an asynchronous
-- invocation of this one once its attempts are exhausted.
ALTER TABLE functions ADD COLUMN dead_letter_target TEXT;

-- A fresh token per claim: an attempt's outcome is recorded only while the
-- row still carries the token of the claim that started it.
ALTER TABLE async_invocations ADD COLUMN lease_token TEXT;
-- The dead letter queued for this invocation after its last failure.
ALTER TABLE async_invocations ADD COLUMN dead_letter_request_id TEXT;
-- Set on a dead letter: the invocation it reports (dead letters are not
-- dead-lettered again).
ALTER TABLE async_invocations ADD COLUMN dead_letter_of TEXT;

CREATE INDEX async_invocations_by_function ON async_invocations (function_name, created_at);

-- One row per layer name ever published: its owner and the last version
-- number handed out, which only ever grows (like functions.version_counter).
CREATE TABLE layer_names (
    layer_name TEXT NOT NULL PRIMARY KEY,
    owner_id TEXT NOT NULL,
    version_counter BIGINT NOT NULL
);

INSERT INTO layer_names (layer_name, owner_id, version_counter)
    SELECT layer_name, MIN(owner_id), MAX(version) FROM layer_versions GROUP BY layer_name;
