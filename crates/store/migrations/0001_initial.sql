-- HotSwap metadata schema. One file for SQLite and PostgreSQL: only types and
-- syntax both accept (TEXT, BIGINT, DOUBLE PRECISION, partial indexes).
-- Timestamps are BIGINT microseconds since the Unix epoch (UTC); booleans are
-- BIGINT 0/1; nested values are TEXT holding JSON (camelCase, as on the wire).

CREATE TABLE functions (
    name TEXT NOT NULL PRIMARY KEY,
    owner_id TEXT NOT NULL,
    description TEXT,
    runtime TEXT NOT NULL,
    handler TEXT NOT NULL,
    memory_size BIGINT NOT NULL,
    timeout BIGINT NOT NULL,
    environment TEXT NOT NULL,
    layers TEXT NOT NULL,
    vpc_config TEXT,
    tags TEXT NOT NULL,
    published_version TEXT,
    -- Last version number handed out; only ever grows.
    version_counter BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    total_invocations BIGINT NOT NULL,
    last_invoked_at BIGINT,
    scaling_config TEXT NOT NULL
);

CREATE INDEX functions_by_owner ON functions (owner_id, name);

-- The tags of `functions.tags` again, one row each, for filtering in SQL.
CREATE TABLE function_tags (
    function_name TEXT NOT NULL REFERENCES functions (name) ON DELETE CASCADE,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (function_name, tag_key)
);

CREATE INDEX function_tags_by_tag ON function_tags (tag_key, tag_value);

CREATE TABLE versions (
    function_name TEXT NOT NULL REFERENCES functions (name) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    code_sha256 TEXT NOT NULL,
    code_size BIGINT NOT NULL,
    code_location TEXT NOT NULL,
    runtime TEXT NOT NULL,
    handler TEXT NOT NULL,
    memory_size BIGINT NOT NULL,
    timeout BIGINT NOT NULL,
    environment TEXT NOT NULL,
    layers TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    description TEXT,
    invocation_count BIGINT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (function_name, version)
);

CREATE TABLE aliases (
    function_name TEXT NOT NULL REFERENCES functions (name) ON DELETE CASCADE,
    alias_name TEXT NOT NULL,
    version BIGINT NOT NULL,
    routing_config TEXT NOT NULL,
    description TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (function_name, alias_name)
);

CREATE TABLE triggers (
    trigger_id TEXT NOT NULL PRIMARY KEY,
    function_name TEXT NOT NULL REFERENCES functions (name) ON DELETE CASCADE,
    target_version TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    is_enabled BIGINT NOT NULL CHECK (is_enabled IN (0, 1)),
    config TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_executed_at BIGINT,
    execution_count BIGINT NOT NULL,
    failure_count BIGINT NOT NULL
);

CREATE INDEX triggers_by_function ON triggers (function_name, created_at);
CREATE INDEX triggers_by_creation ON triggers (created_at, trigger_id);

CREATE TABLE runners (
    node_id TEXT NOT NULL PRIMARY KEY,
    hostname TEXT NOT NULL,
    port BIGINT NOT NULL,
    health TEXT NOT NULL,
    resources TEXT NOT NULL,
    active_containers TEXT NOT NULL,
    last_heartbeat BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    metrics TEXT NOT NULL,
    runtimes TEXT NOT NULL,
    sandbox TEXT
);

CREATE TABLE deployments (
    deployment_id TEXT NOT NULL PRIMARY KEY,
    function_name TEXT NOT NULL REFERENCES functions (name) ON DELETE CASCADE,
    alias_name TEXT NOT NULL,
    target_version BIGINT NOT NULL,
    source_version BIGINT,
    strategy TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    progress DOUBLE PRECISION NOT NULL,
    current_phase TEXT,
    started_at BIGINT NOT NULL,
    completed_at BIGINT,
    deployed_by TEXT NOT NULL,
    error_message TEXT,
    rollback_reason TEXT,
    metrics TEXT
);

CREATE INDEX deployments_by_function ON deployments (function_name, started_at);

-- At most one active (Pending or InProgress) deployment per alias. The store
-- checks this under the function's lock for a readable error; the index is
-- the backstop.
CREATE UNIQUE INDEX deployments_one_active_per_alias ON deployments (function_name, alias_name)
    WHERE status IN ('Pending', 'InProgress');

CREATE TABLE api_tokens (
    token_hash TEXT NOT NULL PRIMARY KEY,
    owner_id TEXT NOT NULL,
    is_admin BIGINT NOT NULL CHECK (is_admin IN (0, 1)),
    created_at BIGINT NOT NULL
);

CREATE INDEX api_tokens_admin ON api_tokens (is_admin);
