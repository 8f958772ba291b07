-- Asynchronous invocations: persisted before the caller's 202, claimed by a
-- worker under a lease, retried, then recorded as Succeeded or Failed.
CREATE TABLE async_invocations (
    request_id TEXT NOT NULL PRIMARY KEY,
    function_name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    content_type TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    result TEXT,
    executed_version TEXT
);

CREATE INDEX async_invocations_due ON async_invocations (status, next_attempt_at);
