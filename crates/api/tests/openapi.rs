//! The committed OpenAPI document (`docs/openapi.json`) must match the one
//! the code generates. Regenerate with:
//! `HOTSWAP_UPDATE_OPENAPI=1 cargo test -p hotswap-api --test openapi`.

use std::path::PathBuf;

#[test]
fn committed_openapi_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = hotswap_api::openapi::document_json() + "\n";
    if std::env::var_os("HOTSWAP_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date; run HOTSWAP_UPDATE_OPENAPI=1 cargo test -p hotswap-api --test openapi"
    );
}

#[test]
fn document_names_every_public_endpoint() {
    let doc: serde_json::Value =
        serde_json::from_str(&hotswap_api::openapi::document_json()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/functions",
        "/v1/functions/{name}",
        "/v1/functions/{name}/code",
        "/v1/functions/{name}/versions",
        "/v1/functions/{name}/versions/{version}",
        "/v1/functions/{name}/aliases",
        "/v1/functions/{name}/aliases/{alias}",
        "/v1/functions/{name}/deployments",
        "/v1/functions/{name}/deployments/{id}",
        "/v1/triggers",
        "/v1/triggers/{id}",
        "/v1/runners",
        "/v1/runners/{node_id}",
        "/v1/runners/{node_id}/heartbeat",
        "/v1/tokens",
        "/v1/subnets",
        "/v1/subnets/{id}",
        "/v1/security-groups",
        "/v1/security-groups/{id}",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "Function",
        "FunctionVersion",
        "FunctionAlias",
        "Deployment",
        "DeploymentConfig",
        "RunnerNode",
        "Trigger",
        "ApiError",
        "Subnet",
        "SecurityGroup",
        "EgressRule",
        "EgressRuleInput",
    ] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
}
