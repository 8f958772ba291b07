//! The OpenAPI document, generated from the handlers' annotations and the
//! domain types. A committed copy lives at `docs/openapi.json`; a test fails
//! when it drifts.

use axum::response::IntoResponse;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayItems, KnownFormat, Schema, SchemaFormat,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, Number, OpenApi};

use crate::routes;

struct BearerAuth;

/// Adds to every operation the error responses that any `/v1` request can
/// get, so that the handlers' annotations name only their own:
///
/// - 400 `BadRequest` / `ValidationFailed`: a malformed or unknown query
///   parameter, a malformed path parameter;
/// - 401 `Unauthorized`: no token, or an unknown one;
/// - 500 `Internal`: the metadata or blob store failed;
/// - with a request body: 400 for a body that is not what the schema says,
///   413 `PayloadTooLarge` past `--max-body-bytes`, and, for JSON bodies,
///   415 `UnsupportedMediaType` without `Content-Type: application/json`.
///
/// A status a handler names without a description gets the standard one
/// for it here.
struct CommonErrors;

fn error_response(description: &str) -> utoipa::openapi::Response {
    utoipa::openapi::ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ApiError")))
                .build(),
        )
        .build()
}

/// The standard description of a status.
fn error_description(status: &str) -> Option<&'static str> {
    Some(match status {
        "200" => "OK",
        "201" => "created",
        "202" => "accepted",
        "204" => "done; no body",
        "400" => "bad request: a malformed or unknown parameter, or a body that breaks the schema or the rules (`errors` lists every rule broken)",
        "401" => "no `Authorization: Bearer` token, or an unknown one",
        "403" => "the token has no right to change this resource",
        "404" => "no such resource visible to this token",
        "409" => "conflicts with the resource's current state",
        "413" => "the request body is larger than the server's limit (`--max-body-bytes`)",
        "415" => "the body is not `application/json`",
        "429" => "too many concurrent invocations of this version (`MaxInstances`)",
        "500" => "the server failed (detail in its log)",
        "502" => "the invocation failed inside the platform",
        "503" => "the runtime is not available on this runner",
        _ => return None,
    })
}

/// Every operation of the document, to change in place.
fn operations_mut(
    doc: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

impl Modify for CommonErrors {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for op in operations_mut(doc) {
            let mut common = vec!["400", "401", "500"];
            if let Some(body) = &op.request_body {
                common.push("413");
                if body.content.contains_key("application/json") {
                    common.push("415");
                }
            }
            let responses = &mut op.responses.responses;
            for status in common {
                if !responses.contains_key(status) {
                    let text = error_description(status).unwrap_or_default();
                    responses.insert(status.to_owned(), RefOr::T(error_response(text)));
                }
            }
            for (status, response) in responses.iter_mut() {
                if let (RefOr::T(r), Some(text)) = (response, error_description(status)) {
                    if r.description.is_empty() {
                        r.description = text.to_owned();
                    }
                }
            }
        }
    }
}

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Writes each integer's range out as `minimum`/`maximum` from its Rust
/// type (`format`: `uint32`, `int64`, …): a JSON Schema reader knows no
/// `uint32`, and the server refuses a number its type cannot hold.
struct IntegerBounds;

fn integer_range(format: &KnownFormat) -> Option<(Number, Number)> {
    use Number::{Int, UInt};
    Some(match format {
        KnownFormat::Int8 => (Int(i8::MIN.into()), Int(i8::MAX.into())),
        KnownFormat::Int16 => (Int(i16::MIN.into()), Int(i16::MAX.into())),
        KnownFormat::Int32 => (Int(i32::MIN as isize), Int(i32::MAX as isize)),
        KnownFormat::Int64 => (Int(isize::MIN), Int(isize::MAX)),
        KnownFormat::UInt8 => (UInt(0), UInt(u8::MAX.into())),
        KnownFormat::UInt16 => (UInt(0), UInt(u16::MAX.into())),
        KnownFormat::UInt32 => (UInt(0), UInt(u32::MAX as usize)),
        KnownFormat::UInt64 => (UInt(0), UInt(usize::MAX)),
        _ => return None,
    })
}

fn bound_integers(schema: &mut RefOr<Schema>) {
    let RefOr::T(schema) = schema else { return };
    match schema {
        Schema::Object(o) => {
            if let Some(SchemaFormat::KnownFormat(f)) = &o.format {
                if let Some((min, max)) = integer_range(f) {
                    if o.minimum.is_none() && o.exclusive_minimum.is_none() {
                        o.minimum = Some(min);
                    }
                    if o.maximum.is_none() && o.exclusive_maximum.is_none() {
                        o.maximum = Some(max);
                    }
                }
            }
            o.properties.values_mut().for_each(bound_integers);
            if let Some(AdditionalProperties::RefOr(extra)) = o.additional_properties.as_deref_mut()
            {
                bound_integers(extra);
            }
        }
        Schema::Array(a) => {
            if let ArrayItems::RefOrSchema(items) = &mut a.items {
                bound_integers(items);
            }
        }
        Schema::OneOf(c) => c.items.iter_mut().for_each(bound_integers),
        Schema::AllOf(c) => c.items.iter_mut().for_each(bound_integers),
        Schema::AnyOf(c) => c.items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

impl Modify for IntegerBounds {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = &mut doc.components {
            components.schemas.values_mut().for_each(bound_integers);
        }
        for op in operations_mut(doc) {
            for p in op.parameters.iter_mut().flatten() {
                p.schema.iter_mut().for_each(bound_integers);
            }
            if let Some(body) = &mut op.request_body {
                for content in body.content.values_mut() {
                    content.schema.iter_mut().for_each(bound_integers);
                }
            }
            for response in op.responses.responses.values_mut() {
                if let RefOr::T(r) = response {
                    for content in r.content.values_mut() {
                        content.schema.iter_mut().for_each(bound_integers);
                    }
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "HotSwap API", description = "Self-hosted serverless functions with live version swaps."),
    modifiers(&BearerAuth, &CommonErrors, &IntegerBounds),
    security(("bearer" = [])),
    paths(
        routes::tokens::create, routes::tokens::list, routes::tokens::get, routes::tokens::revoke, routes::tokens::whoami,
        routes::functions::create, routes::functions::list, routes::functions::get, routes::functions::update,
        routes::functions::update_code, routes::functions::delete,
        routes::invoke::invoke, routes::invoke::logs, routes::invoke::metrics, routes::invoke::instances, routes::invoke::get_invocation, routes::invoke::list_invocations,
        routes::layers::publish, routes::layers::list, routes::layers::versions, routes::layers::get, routes::layers::delete,
        routes::versions::publish, routes::versions::list, routes::versions::get, routes::versions::update, routes::versions::delete,
        routes::aliases::create, routes::aliases::list, routes::aliases::get, routes::aliases::update, routes::aliases::patch, routes::aliases::delete,
        routes::triggers::create, routes::triggers::list, routes::triggers::get, routes::triggers::update, routes::triggers::delete,
        routes::network::create_subnet, routes::network::list_subnets, routes::network::get_subnet, routes::network::delete_subnet,
        routes::network::create_security_group, routes::network::list_security_groups, routes::network::get_security_group,
        routes::network::update_security_group, routes::network::delete_security_group,
        routes::queues::send, routes::queues::list, routes::queues::get, routes::queues::purge,
        routes::runners::register, routes::runners::heartbeat, routes::runners::list, routes::runners::get, routes::runners::status,
        routes::deployments::create, routes::deployments::list, routes::deployments::get, routes::deployments::cancel, routes::deployments::promote, routes::deployments::rollback,
    ),
    components(schemas(crate::error::ApiError, hotswap_domain::InvocationResult, crate::dto::LogLineSchema, crate::dto::VersionMetricsSchema, crate::dto::InstanceSchema))
)]
pub struct ApiDoc;

/// The document as pretty JSON (what `docs/openapi.json` holds).
pub fn document_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

pub(crate) async fn serve() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::from_str(&super::document_json()).unwrap()
    }

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                ops.push((method.clone(), path.clone(), op.clone()));
            }
        }
        ops
    }

    #[test]
    fn every_path_parameter_is_declared() {
        for (method, path, op) in operations(&doc()) {
            let mut in_path: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let mut declared: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            in_path.sort_unstable();
            declared.sort_unstable();
            assert_eq!(in_path, declared, "{method} {path}");
        }
    }

    #[test]
    fn every_operation_needs_the_bearer_token_and_names_its_errors() {
        let doc = doc();
        assert_eq!(doc["security"], serde_json::json!([{ "bearer": [] }]));
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        for (method, path, op) in operations(&doc) {
            assert!(
                op.get("security").is_none(),
                "{method} {path} overrides security"
            );
            let responses = op["responses"].as_object().unwrap();
            let mut common = vec!["400", "401", "500"];
            if op.get("requestBody").is_some() {
                common.push("413");
            }
            for status in common {
                assert!(
                    responses.contains_key(status),
                    "{method} {path}: no {status}"
                );
            }
            for (status, r) in responses {
                assert!(
                    r["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status}: no description"
                );
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ApiError",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }

    #[test]
    fn integers_carry_the_range_of_their_rust_type() {
        let doc = doc();
        let schemas = &doc["components"]["schemas"];
        let version = &schemas["CreateAliasRequest"]["properties"]["version"];
        assert_eq!(version["minimum"], 1);
        assert_eq!(version["maximum"], u64::from(u32::MAX));
        let memory = &schemas["CreateFunctionRequest"]["properties"]["memorySize"];
        assert_eq!(memory["minimum"], 128);
        assert_eq!(memory["maximum"], 10240);
        let total = &schemas["RunnerResources"]["properties"]["totalMemoryMB"];
        assert_eq!(total["maximum"], u64::MAX, "{total}");
        let limit = doc["paths"]["/v1/functions"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap()
            .clone();
        assert_eq!(limit["schema"]["minimum"], 1);
        assert_eq!(limit["schema"]["maximum"], 1000);
    }

    /// The documented `LogLine` and `VersionMetrics` have the fields the
    /// runner's types serialise.
    #[test]
    fn log_and_metrics_schemas_match_the_runner_types() {
        let doc = doc();
        let keys = |v: &Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let line = hotswap_router::LogLine {
            timestamp: chrono::Utc::now(),
            function_id: "id".into(),
            function_name: "f".into(),
            version: "1".into(),
            log_stream_name: "s".into(),
            request_id: None,
            stream: "stdout",
            message: "m".into(),
            truncated: true,
        };
        assert_eq!(
            keys(&serde_json::to_value(&line).unwrap()),
            keys(&doc["components"]["schemas"]["LogLine"]["properties"])
        );
        let metrics = hotswap_router::VersionMetrics {
            function_id: "id".into(),
            owner_id: "o".into(),
            function_name: "f".into(),
            version: "1".into(),
            invocations: 0,
            errors: 0,
            error_rate: 0.0,
            cold_starts: 0,
            avg_duration_ms: 0.0,
            p50_duration_ms: 0.0,
            p99_duration_ms: 0.0,
        };
        assert_eq!(
            keys(&serde_json::to_value(&metrics).unwrap()),
            keys(&doc["components"]["schemas"]["VersionMetrics"]["properties"])
        );
    }
}
