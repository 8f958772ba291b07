-- Deployment orchestration state: the current step of the strategy's plan,
-- when it began, the timeline, both versions' metrics, the rolling fleet,
-- and a revision that writers compare so that the controller and a person's
-- promote/rollback never overwrite each other.
ALTER TABLE deployments ADD COLUMN step BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN step_started_at BIGINT;
ALTER TABLE deployments ADD COLUMN timeline TEXT NOT NULL DEFAULT '[]';
ALTER TABLE deployments ADD COLUMN version_metrics TEXT NOT NULL DEFAULT '{}';
ALTER TABLE deployments ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN rolling_nodes TEXT NOT NULL DEFAULT '[]';

CREATE INDEX deployments_by_status ON deployments (status);
