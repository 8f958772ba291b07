-- Function networking: subnets (admin-made address ranges), security groups
-- (an owner's egress rules, stored as JSON text), and the vpcConfig each
-- version was published with.
--
-- Subnet names are unique; group names are unique per owner. `$LATEST`
-- rows take their function's current vpcConfig; versions published before
-- this migration keep none (they were published when vpcConfig had no
-- effect, and run with the default egress).

CREATE TABLE subnets (
    subnet_id TEXT NOT NULL PRIMARY KEY,
    subnet_name TEXT NOT NULL,
    cidr TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);

CREATE UNIQUE INDEX subnets_name ON subnets (subnet_name);

CREATE TABLE security_groups (
    security_group_id TEXT NOT NULL PRIMARY KEY,
    group_name TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    egress TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX security_groups_owner_name ON security_groups (owner_id, group_name);

ALTER TABLE versions ADD COLUMN vpc_config TEXT;

UPDATE versions SET vpc_config = (
    SELECT f.vpc_config FROM functions f WHERE f.function_id = versions.function_id
) WHERE version = 0;
