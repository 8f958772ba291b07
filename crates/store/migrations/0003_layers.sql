-- Layer versions: zips that functions attach and the runner unpacks at /opt.
CREATE TABLE layer_versions (
    layer_name TEXT NOT NULL,
    version BIGINT NOT NULL,
    description TEXT,
    code_sha256 TEXT NOT NULL,
    code_size BIGINT NOT NULL,
    code_location TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (layer_name, version)
);
