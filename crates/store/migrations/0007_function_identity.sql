-- A function's identity, and names per owner.
--
-- Every function gets `function_id`, which a function deleted and created
-- again under the same name never shares; names become unique per owner
-- (two owners may each have `orders`). Child rows reference their function
-- by its id. SQLite cannot change a primary key in place, so the tables are
-- rebuilt: new tables are filled from the old ones, the old ones dropped
-- (children first: dropping a parent runs its ON DELETE CASCADE), and the new
-- ones renamed (SQLite rewrites the REFERENCES of the children; PostgreSQL
-- follows the table itself).
--
-- Existing functions get the id `migrated-{name}`: names were unique across
-- owners until now, and a function created from here on gets a UUID, so
-- these ids are unique and never shared either. Stored code locations
-- (`functions/{name}/…`) stay as they are and keep working.

CREATE TABLE functions_0007 (
    function_id TEXT NOT NULL PRIMARY KEY,
    owner_id TEXT NOT NULL,
    name TEXT NOT NULL,
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
    version_counter BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    total_invocations BIGINT NOT NULL,
    last_invoked_at BIGINT,
    scaling_config TEXT NOT NULL,
    dead_letter_target TEXT
);

INSERT INTO functions_0007 (function_id, owner_id, name, description, runtime, handler,
    memory_size, timeout, environment, layers, vpc_config, tags, published_version,
    version_counter, created_at, updated_at, total_invocations, last_invoked_at,
    scaling_config, dead_letter_target)
SELECT 'migrated-' || name, owner_id, name, description, runtime, handler,
    memory_size, timeout, environment, layers, vpc_config, tags, published_version,
    version_counter, created_at, updated_at, total_invocations, last_invoked_at,
    scaling_config, dead_letter_target
FROM functions;

CREATE TABLE function_tags_0007 (
    function_id TEXT NOT NULL REFERENCES functions_0007 (function_id) ON DELETE CASCADE,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (function_id, tag_key)
);

INSERT INTO function_tags_0007 (function_id, tag_key, tag_value)
SELECT 'migrated-' || function_name, tag_key, tag_value FROM function_tags;

CREATE TABLE versions_0007 (
    function_id TEXT NOT NULL REFERENCES functions_0007 (function_id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    function_name TEXT NOT NULL,
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
    PRIMARY KEY (function_id, version)
);

INSERT INTO versions_0007 (function_id, version, function_name, code_sha256, code_size,
    code_location, runtime, handler, memory_size, timeout, environment, layers, created_at,
    created_by, description, invocation_count, status)
SELECT 'migrated-' || function_name, version, function_name, code_sha256, code_size,
    code_location, runtime, handler, memory_size, timeout, environment, layers, created_at,
    created_by, description, invocation_count, status
FROM versions;

CREATE TABLE aliases_0007 (
    function_id TEXT NOT NULL REFERENCES functions_0007 (function_id) ON DELETE CASCADE,
    alias_name TEXT NOT NULL,
    function_name TEXT NOT NULL,
    version BIGINT NOT NULL,
    routing_config TEXT NOT NULL,
    description TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (function_id, alias_name)
);

INSERT INTO aliases_0007 (function_id, alias_name, function_name, version, routing_config,
    description, created_at, updated_at)
SELECT 'migrated-' || function_name, alias_name, function_name, version, routing_config,
    description, created_at, updated_at
FROM aliases;

CREATE TABLE triggers_0007 (
    trigger_id TEXT NOT NULL PRIMARY KEY,
    function_id TEXT NOT NULL REFERENCES functions_0007 (function_id) ON DELETE CASCADE,
    function_name TEXT NOT NULL,
    target_version TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    is_enabled BIGINT NOT NULL CHECK (is_enabled IN (0, 1)),
    config TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_executed_at BIGINT,
    execution_count BIGINT NOT NULL,
    failure_count BIGINT NOT NULL
);

INSERT INTO triggers_0007 (trigger_id, function_id, function_name, target_version,
    trigger_type, is_enabled, config, created_at, last_executed_at, execution_count,
    failure_count)
SELECT trigger_id, 'migrated-' || function_name, function_name, target_version,
    trigger_type, is_enabled, config, created_at, last_executed_at, execution_count,
    failure_count
FROM triggers;

CREATE TABLE deployments_0007 (
    deployment_id TEXT NOT NULL PRIMARY KEY,
    function_id TEXT NOT NULL REFERENCES functions_0007 (function_id) ON DELETE CASCADE,
    function_name TEXT NOT NULL,
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
    metrics TEXT,
    step BIGINT NOT NULL DEFAULT 0,
    step_started_at BIGINT,
    timeline TEXT NOT NULL DEFAULT '[]',
    version_metrics TEXT NOT NULL DEFAULT '{}',
    revision BIGINT NOT NULL DEFAULT 0,
    rolling_nodes TEXT NOT NULL DEFAULT '[]'
);

INSERT INTO deployments_0007 (deployment_id, function_id, function_name, alias_name,
    target_version, source_version, strategy, config, status, progress, current_phase,
    started_at, completed_at, deployed_by, error_message, rollback_reason, metrics, step,
    step_started_at, timeline, version_metrics, revision, rolling_nodes)
SELECT deployment_id, 'migrated-' || function_name, function_name, alias_name,
    target_version, source_version, strategy, config, status, progress, current_phase,
    started_at, completed_at, deployed_by, error_message, rollback_reason, metrics, step,
    step_started_at, timeline, version_metrics, revision, rolling_nodes
FROM deployments;

DROP TABLE function_tags;
DROP TABLE versions;
DROP TABLE aliases;
DROP TABLE triggers;
DROP TABLE deployments;
DROP TABLE functions;

ALTER TABLE functions_0007 RENAME TO functions;
ALTER TABLE function_tags_0007 RENAME TO function_tags;
ALTER TABLE versions_0007 RENAME TO versions;
ALTER TABLE aliases_0007 RENAME TO aliases;
ALTER TABLE triggers_0007 RENAME TO triggers;
ALTER TABLE deployments_0007 RENAME TO deployments;

-- Names are unique per owner.
CREATE UNIQUE INDEX functions_by_owner ON functions (owner_id, name);
CREATE INDEX functions_by_name ON functions (name, owner_id);
CREATE INDEX function_tags_by_tag ON function_tags (tag_key, tag_value);
CREATE INDEX triggers_by_function ON triggers (function_id, created_at);
CREATE INDEX triggers_by_creation ON triggers (created_at, trigger_id);
CREATE INDEX deployments_by_function ON deployments (function_id, started_at);
CREATE INDEX deployments_by_status ON deployments (status);
-- At most one active (Pending or InProgress) deployment per alias.
CREATE UNIQUE INDEX deployments_one_active_per_alias ON deployments (function_id, alias_name)
    WHERE status IN ('Pending', 'InProgress');

-- An asynchronous invocation runs only on the function it was queued for:
-- one deleted meanwhile (even if created again under its name) fails it.
-- Invocations already queued name the function that has their function's
-- name now (names were global until this migration, and an admin's
-- invocation of another owner's function carries the admin as its owner);
-- NULL where no such function exists.
ALTER TABLE async_invocations ADD COLUMN function_id TEXT;
UPDATE async_invocations SET function_id = 'migrated-' || function_name
    WHERE EXISTS (SELECT 1 FROM functions f WHERE f.name = async_invocations.function_name);
